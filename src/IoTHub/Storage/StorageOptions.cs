using System.ComponentModel.DataAnnotations;

namespace IoTHub.Storage;

/// <summary>The database behind the hub (<c>Storage:Provider</c>; CONTRACT.md, "Running").</summary>
public enum StorageProvider
{
    /// <summary>An embedded SQLite file, <c>iothub.db</c> in the data directory: nothing to install.</summary>
    Sqlite,
    /// <summary>PostgreSQL at <c>ConnectionStrings:Postgres</c>: telemetry partitioned by day, binary COPY writes.</summary>
    Postgres,
}

/// <summary>Section <c>Storage</c>: where telemetry lives and how the writer batches it.</summary>
public sealed class StorageOptions
{
    /// <summary>The configuration section: <c>Storage</c>.</summary>
    public const string SectionName = "Storage";

    /// <summary><c>Sqlite</c> (embedded default, file under <c>DataDirectory</c>) or <c>Postgres</c> (<c>ConnectionStrings:Postgres</c>).</summary>
    public StorageProvider Provider { get; set; } = StorageProvider.Sqlite;

    /// <summary>A batch commits when it holds this many points... Under light load batches close on the linger time long
    /// before this; only a backlog fills them, and then larger batches are cheaper per point (each commit rewrites every
    /// index and rollup page it touched, once per series rather than once per message): 30,000 measured +40 % on SQLite
    /// and +14 % on PostgreSQL over 5,000 with 1,000 devices, at a lower p99 (docs/benchmarks.md).</summary>
    [Range(1, 100_000)]
    public int BatchMaxPoints { get; set; } = 30_000;

    /// <summary>...or this many milliseconds after its first message arrived, whichever comes first.</summary>
    [Range(0, 1_000)]
    public int BatchLingerMilliseconds { get; set; } = 2;

    /// <summary>Messages waiting for validation; when full, adapters wait (and devices' acks with them).</summary>
    [Range(1, 1_000_000)]
    public int IngestQueueCapacity { get; set; } = 20_000;

    /// <summary>Validated messages waiting for the writer.</summary>
    [Range(1, 1_000_000)]
    public int StoreQueueCapacity { get; set; } = 20_000;

    /// <summary>Parallel telemetry writers, each with its own connection and its own share of the devices.
    /// 0 = automatic: 2 on PostgreSQL, 1 on SQLite (which has one write lock, so SQLite always uses 1).</summary>
    [Range(0, 16)]
    public int Writers { get; set; }

    /// <summary>The writers that run: <see cref="Writers"/>, with 0 resolved and SQLite held to 1.</summary>
    public int EffectiveWriters => Provider == StorageProvider.Sqlite ? 1 : Writers > 0 ? Writers : 2;

    /// <summary>A telemetry writer that holds a batch and has not committed for longer than this makes <c>/health/ready</c>
    /// answer 503, naming the writer: a commit that hangs without failing (a lock held elsewhere, a stuck disk) would
    /// otherwise only show as devices waiting for acks. A commit takes milliseconds; 30 s leaves room for SQLite's
    /// 10 s busy timeout and a large PostgreSQL batch under load.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00")]
    public TimeSpan CommitStallThreshold { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How long a start waits for PostgreSQL that cannot be reached yet (connection refused or timed out, or the
    /// server still starting up, SQLSTATE 57P03) before it gives up with one sentence: a hub started beside its database
    /// (a compose file, a reboot) comes up once the database does. 0 gives up at the first failure. Not used for SQLite.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:10:00")]
    public TimeSpan StartupWait { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>How many bytes of a rejected payload the dead-letter store keeps.</summary>
    [Range(0, 16 * 1024 * 1024)]
    public int DeadLetterPayloadLimit { get; set; } = 16 * 1024;
}
