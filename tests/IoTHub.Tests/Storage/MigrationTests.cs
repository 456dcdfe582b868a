// The schema change of issue #15 (raw telemetry keyed by (series, ts, seq)) applied to a database that already holds
// data, as an upgraded hub meets it: the rows stay, a resend of them is still a duplicate, and hub-stamped readings of
// one millisecond now fit beside them.
using System.Data.Common;
using IoTHub.Storage;
using IoTHub.Tests.Infrastructure;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;
using Npgsql;

namespace IoTHub.Tests.Storage;

[TestFixture(Store.Sqlite)]
[TestFixture(Store.Postgres)]
public sealed class MigrationTests(Store store)
{
    private const string BeforeSequence = "DeviceCertificates";
    private string? _connectionString;
    private string ConnectionString => _connectionString ?? throw new InvalidOperationException("set-up made no database");
    private string? _directory;

    [SetUp]
    public async Task CreateDatabase()
    {
        if (store == Store.Postgres)
        {
            _connectionString = await TestPostgres.CreateDatabaseAsync();
            return;
        }
        _directory = Path.Combine(Path.GetTempPath(), "iothub-migration-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(_directory);
        _connectionString = $"Data Source={Path.Combine(_directory, "hub.db")};Pooling=False";
    }

    [TearDown]
    public async Task DropDatabase()
    {
        // Without a server the set-up skips before it creates anything: nothing to drop then.
        if (store == Store.Postgres && _connectionString is not null) await TestPostgres.DropDatabaseAsync(_connectionString);
        else if (_directory is not null) Directory.Delete(_directory, true);
        _connectionString = null;
        _directory = null;
    }

    private HubDb Context() => store == Store.Postgres
        ? new PostgresHubDb(new DbContextOptionsBuilder<PostgresHubDb>().UseNpgsql(ConnectionString).Options)
        : new SqliteHubDb(new DbContextOptionsBuilder<SqliteHubDb>().UseSqlite(ConnectionString).Options);

    private async Task MigrateAsync(string? target)
    {
        await using var db = Context();
        var migrator = db.GetService<IMigrator>();
        var id = target is null ? null : db.Database.GetMigrations().Single(m => m.EndsWith("_" + target, StringComparison.Ordinal));
        await migrator.MigrateAsync(id);
    }

    private async Task<int> ExecuteAsync(string sql)
    {
        await using DbConnection c = store == Store.Postgres ? new NpgsqlConnection(ConnectionString) : new SqliteConnection(ConnectionString);
        await c.OpenAsync();
        await using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        return await cmd.ExecuteNonQueryAsync();
    }

    [Test]
    public async Task Stored_points_keep_their_key_as_sequence_0_after_the_upgrade()
    {
        await MigrateAsync(BeforeSequence);
        // On PostgreSQL the rows sit in a daily partition, as PostgresMaintenance creates them: its key changes too.
        if (store == Store.Postgres) await ExecuteAsync("CREATE TABLE telemetry_19700101 PARTITION OF telemetry FOR VALUES FROM (0) TO (86400000)");
        await ExecuteAsync("""
            INSERT INTO series (device_id, metric, last_ts) VALUES ('d', 'm', 2000);
            INSERT INTO telemetry (series_id, ts, kind, number) VALUES (1, 1000, 0, 1.5), (1, 2000, 0, 2.5);
            INSERT INTO rollup_1m (series_id, bucket, count, sum, min, max, last_ts, last) VALUES (1, 0, 2, 4, 1.5, 2.5, 2000, 2.5);
            """);

        await MigrateAsync(null);

        await using var db = Context();
        var rows = await db.Set<TelemetryRow>().OrderBy(r => r.Ts).Select(r => new { r.Ts, r.Seq, r.Number }).ToListAsync();
        Assert.That(rows.Select(r => (r.Ts, r.Seq, r.Number)), Is.EqualTo(new (long, long, double?)[] { (1000, 0, 1.5), (2000, 0, 2.5) }));
        Assert.That((await db.Set<Rollup1m>().SingleAsync()).LastSeq, Is.Zero);
        Assert.That((await db.Set<Series>().SingleAsync()).LastSeq, Is.Zero);
        Assert.That(await ExecuteAsync("INSERT INTO telemetry (series_id, ts, seq, kind, number) VALUES (1, 1000, 0, 0, 9) ON CONFLICT DO NOTHING"), Is.Zero,
            "a resend of a stored device point is still a duplicate");
        Assert.That(await ExecuteAsync("INSERT INTO telemetry (series_id, ts, seq, kind, number) VALUES (1, 1000, 77, 0, 9), (1, 1000, 78, 0, 9)"), Is.EqualTo(2),
            "hub-stamped readings of the same millisecond fit beside it");
    }

    [Test]
    public async Task Rollup_sums_an_older_version_stored_as_infinity_are_clamped_to_the_largest_double()
    {
        await MigrateAsync(BeforeSequence);
        var (inf, nan) = store == Store.Postgres ? ("'Infinity'::float8", "'NaN'::float8") : ("9e999", "-9e999");
        await ExecuteAsync($"""
            INSERT INTO series (device_id, metric) VALUES ('d', 'm');
            INSERT INTO rollup_1m (series_id, bucket, count, sum, min, max, last_ts, last) VALUES (1, 0, 2, {inf}, 1e308, 1.7e308, 1, 1.7e308);
            INSERT INTO rollup_1h (series_id, bucket, count, sum, min, max, last_ts, last) VALUES (1, 0, 2, -{inf}, -1.7e308, -1e308, 1, -1e308);
            INSERT INTO rollup_1d (series_id, bucket, count, sum, min, max, last_ts, last) VALUES (1, 0, 2, {nan}, -1.7e308, 1.7e308, 1, 1.7e308);
            """);

        await MigrateAsync(null);

        await using var db = Context();
        Assert.That((await db.Set<Rollup1m>().SingleAsync()).Sum, Is.EqualTo(double.MaxValue));
        Assert.That((await db.Set<Rollup1h>().SingleAsync()).Sum, Is.EqualTo(double.MinValue));
        Assert.That((await db.Set<Rollup1d>().SingleAsync()).Sum, Is.EqualTo(store == Store.Postgres ? 0 : double.MinValue),
            "PostgreSQL's NaN (Infinity - Infinity) becomes 0; SQLite cannot hold NaN");
    }
}
