// The writer's isolation of messages the database refuses, against a store that refuses on cue (no database): one
// poison message in a batch costs its sender a rejection and nobody else anything.
using IoTHub.Storage.Queries;
using IoTHub.Storage.Write;
using IoTHub.Contracts;
using IoTHub.Storage;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Npgsql;

namespace IoTHub.Tests.Storage;

public sealed class TelemetryWriterTests
{
    /// <summary>Refuses (as PostgreSQL refuses an overflow) every batch holding a point of a device in <see cref="PoisonPoints"/>,
    /// and every batch holding anything of a device in <see cref="Hopeless"/>; fails transiently <see cref="Outages"/> times first.</summary>
    private sealed class RefusingStore : ITelemetryStore
    {
        public HashSet<string> PoisonPoints { get; } = [];
        public HashSet<string> Hopeless { get; } = [];
        public int Outages { get; set; }
        public List<ValidatedTelemetry> Stored { get; } = [];
        public int Attempts { get; private set; }

        public Task CommitAsync(IReadOnlyList<ValidatedTelemetry> batch, List<CommittedPoint> committed, CancellationToken ct)
        {
            Attempts++;
            if (Outages > 0)
            {
                Outages--;
                throw new NpgsqlException("Exception while reading from stream", new IOException("connection reset"));
            }
            if (batch.Any(m => Hopeless.Contains(m.Source.DeviceId) || (m.RejectReason is null && PoisonPoints.Contains(m.Source.DeviceId))))
                throw new PostgresException("value out of range: overflow", "ERROR", "ERROR", "22003");
            Stored.AddRange(batch);
            return Task.CompletedTask;
        }

        public void Forget(string deviceId)
        {
        }
    }

    private static (ValidatedTelemetry Message, IngestTicket Ticket) Message(string device, int i)
    {
        var ticket = new IngestTicket();
        var raw = new RawTelemetry(device, TelemetryProtocol.Mqtt, PayloadFormat.Json, "{}"u8.ToArray(), 1_000, 0, ticket);
        return (new ValidatedTelemetry(raw, [new TelemetryPoint("v", 1_000 + i, ValueKind.Number, i, null)], 1, null, null), ticket);
    }

    private static async Task<IReadOnlyList<(string Device, IngestOutcome Outcome)>> RunAsync(RefusingStore store, IEnumerable<string> devices, StoreHealth? health = null)
    {
        var channels = new IngestChannels(1000, 1000);
        var sent = devices.Select((d, i) => (Device: d, Sent: Message(d, i))).ToList();
        foreach (var (_, (message, _)) in sent) Assert.That(channels.Stores[0].Writer.TryWrite(message), Is.True);
        var options = Options.Create(new StorageOptions { BatchLingerMilliseconds = 0 });
        health ??= new StoreHealth(NullLogger<StoreHealth>.Instance, new FakeTimeProvider(), options);
        var writer = new TelemetryWriter(channels, new CommittedFeed(), new TelemetryStores([store]), health, options, NullLogger<TelemetryWriter>.Instance);

        await writer.StartAsync(CancellationToken.None);
        var outcomes = await Task.WhenAll(sent.Select(s => s.Sent.Ticket.Task)).WaitAsync(TimeSpan.FromSeconds(10));
        await writer.StopAsync(CancellationToken.None);
        return sent.Select((s, i) => (s.Device, outcomes[i])).ToList();
    }

    /// <summary>Commits everything and reports each numeric point as committed (what the real stores do).</summary>
    private sealed class CommittingStore : ITelemetryStore
    {
        public Task CommitAsync(IReadOnlyList<ValidatedTelemetry> batch, List<CommittedPoint> committed, CancellationToken ct)
        {
            foreach (var m in batch)
                foreach (var p in m.Points ?? []) committed.Add(new CommittedPoint(1, m.Source.DeviceId, p.Metric, p.TimestampMs, p.Number));
            return Task.CompletedTask;
        }

        public void Forget(string deviceId)
        {
        }
    }

    [Test]
    public async Task A_consumer_downstream_of_the_commit_that_never_reads_holds_back_no_ack_and_its_losses_are_counted()
    {
        // Issue #16: the writer used to wait on a bounded channel to the window tracker before it released a batch's
        // acks, so a slow consumer of committed telemetry slowed every device's PUBACK.
        var channels = new IngestChannels(10_000, 10_000);
        var feed = new CommittedFeed();
        var stalled = feed.Subscribe("stalled", capacity: 4); // never read
        var reading = feed.Subscribe("reading", capacity: 10_000);
        var options = Options.Create(new StorageOptions { BatchLingerMilliseconds = 0, BatchMaxPoints = 10 });
        var health = new StoreHealth(NullLogger<StoreHealth>.Instance, new FakeTimeProvider(), options);
        var writer = new TelemetryWriter(channels, feed, new TelemetryStores([new CommittingStore()]), health, options, NullLogger<TelemetryWriter>.Instance);
        var sent = Enumerable.Range(0, 500).Select(i => Message("d" + (i % 7), i)).ToList();
        await writer.StartAsync(CancellationToken.None);
        foreach (var (message, _) in sent) await channels.Stores[0].Writer.WriteAsync(message);

        var outcomes = await Task.WhenAll(sent.Select(s => s.Ticket.Task)).WaitAsync(TimeSpan.FromSeconds(10));
        await writer.StopAsync(CancellationToken.None);

        Assert.That(outcomes.Select(o => o.Status), Is.All.EqualTo(IngestStatus.Stored), "every ack released though a consumer never read");
        Assert.That(stalled.Count, Is.EqualTo(4), "the stalled consumer holds its queue's worth, no more");
        var seen = 0;
        await foreach (var batch in reading.ReadAllAsync()) seen += batch.Length;
        Assert.That(seen, Is.EqualTo(500), "a consumer that keeps up sees every committed point");
    }

    [Test]
    public async Task One_message_the_database_refuses_is_dead_lettered_alone_and_the_rest_of_its_batch_is_stored()
    {
        var store = new RefusingStore();
        store.PoisonPoints.Add("poison");
        var devices = Enumerable.Range(0, 40).Select(i => i == 27 ? "poison" : $"d{i % 5}").ToList();

        var outcomes = await RunAsync(store, devices);

        Assert.That(outcomes.Where(o => o.Device != "poison").Select(o => o.Outcome.Status), Is.All.EqualTo(IngestStatus.Stored));
        var refused = outcomes.Single(o => o.Device == "poison").Outcome;
        Assert.That(refused.Status, Is.EqualTo(IngestStatus.Rejected));
        Assert.That(refused.Reason, Is.EqualTo("the database refused it: 22003 value out of range: overflow"));
        Assert.That(store.Stored.Where(m => m.RejectReason is null).Select(m => m.Points![0].Number), Is.EquivalentTo(Enumerable.Range(0, 40).Where(i => i != 27).Select(i => (double)i)),
            "every other message is stored once");
        Assert.That(store.Stored.Where(m => m.RejectReason is not null).Select(m => (m.Source.DeviceId, m.PointCount)), Is.EqualTo(new[] { ("poison", 0) }),
            "the poison message is kept as a dead letter, without its points");
        Assert.That(store.Attempts, Is.LessThanOrEqualTo(2 * 6 + 2), "isolated by halving: about 2·log2(40) commits");
        Assert.That(store.Stored.Where(m => m.Source.DeviceId == "d2").Select(m => m.Points![0].Number), Is.Ordered, "a device's messages keep their order");
    }

    [Test]
    public async Task A_message_whose_dead_letter_is_refused_too_is_still_answered_and_blocks_nobody()
    {
        var store = new RefusingStore();
        store.Hopeless.Add("hopeless");

        var outcomes = await RunAsync(store, ["a", "hopeless", "b"]);

        Assert.That(outcomes.Select(o => (o.Device, o.Outcome.Status)),
            Is.EqualTo(new[] { ("a", IngestStatus.Stored), ("hopeless", IngestStatus.Rejected), ("b", IngestStatus.Stored) }));
        Assert.That(outcomes[1].Outcome.Reason, Is.EqualTo("the database refused this message"));
    }

    [Test]
    public async Task A_lost_connection_is_retried_until_the_batch_commits_whole()
    {
        var store = new RefusingStore { Outages = 3 };

        var outcomes = await RunAsync(store, ["a", "b", "c"]);

        Assert.That(outcomes.Select(o => o.Outcome.Status), Is.All.EqualTo(IngestStatus.Stored));
        Assert.That(store.Attempts, Is.EqualTo(4), "three failed attempts, then the whole batch in one commit");
        Assert.That(store.Stored.Where(m => m.RejectReason is not null), Is.Empty, "nothing dead-lettered for an outage");
    }

    [Test]
    public void A_writer_holding_a_batch_without_committing_past_the_threshold_is_reported_as_stalled()
    {
        var clock = new FakeTimeProvider();
        var health = new StoreHealth(NullLogger<StoreHealth>.Instance, clock, Options.Create(new StorageOptions { CommitStallThreshold = TimeSpan.FromSeconds(30) }));
        var first = health.Writer(0, null);
        var second = health.Writer(1, null);

        Assert.That(health.Stall(), Is.Null, "idle writers are not stalled");
        clock.Advance(TimeSpan.FromHours(1));
        Assert.That(health.Stall(), Is.Null, "however long they idle");

        first.Began(57);
        second.Began(3);
        clock.Advance(TimeSpan.FromSeconds(20));
        second.Committed(); // progress, e.g. half of a batch being split
        clock.Advance(TimeSpan.FromSeconds(20));
        Assert.That(health.Stall(), Does.StartWith("telemetry writer 0 has not committed for 40.0 s while holding 57 messages"));

        first.Committed();
        first.Idle();
        Assert.That(health.Stall(), Is.Null, "the second writer committed 20 s ago");
        clock.Advance(TimeSpan.FromSeconds(11));
        Assert.That(health.Stall(), Does.StartWith("telemetry writer 1 has not committed for 31.0 s"));
        second.Idle();
        Assert.That(health.Stall(), Is.Null);
    }

    [TestCase("00:00:00")]
    [TestCase("01:00:01")]
    public void A_stall_threshold_outside_1_s_to_1_h_stops_the_host_at_start_naming_it(string threshold)
    {
        var ex = Assert.CatchAsync(async () => await (await IoTHub.Tests.Infrastructure.HubHost.StartAsync(IoTHub.Tests.Infrastructure.Store.Sqlite,
            new Dictionary<string, string?> { ["Storage:CommitStallThreshold"] = threshold })).DisposeAsync());
        Assert.That(ex, Is.InstanceOf<OptionsValidationException>());
        Assert.That(ex!.Message, Does.Contain("CommitStallThreshold"));
    }
}
