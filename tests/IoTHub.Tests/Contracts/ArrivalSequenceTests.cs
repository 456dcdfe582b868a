using System.Collections.Concurrent;
using System.Text;
using IoTHub.Contracts;
using IoTHub.Validation.Decoding;
using Microsoft.Extensions.Time.Testing;

namespace IoTHub.Tests.Contracts;

/// <summary>The arrival sequence that tells apart the points the hub stamps (docs/adr/0005).</summary>
public sealed class ArrivalSequenceTests
{
    [Test]
    public void It_starts_at_the_wall_clock_in_100_ns_ticks_so_a_restart_starts_beyond_the_last_run()
    {
        var clock = new FakeTimeProvider(new DateTimeOffset(2026, 11, 30, 12, 0, 0, TimeSpan.Zero));
        var first = new ArrivalSequence(clock);
        var used = first.Reserve(60_000) + ArrivalSequence.PointsBound(60_000); // beyond everything the first run handed out
        clock.Advance(TimeSpan.FromMilliseconds(3)); // a restart takes longer than the 20,001 ticks that run used

        var restarted = new ArrivalSequence(clock);

        Assert.That(new ArrivalSequence(new FakeTimeProvider(DateTimeOffset.UnixEpoch.AddTicks(42))).Reserve(1), Is.EqualTo(42));
        Assert.That(restarted.Reserve(1), Is.GreaterThan(used));
    }

    [Test]
    public void Reservations_are_disjoint_and_increasing_also_when_taken_at_once()
    {
        var sequence = new ArrivalSequence(new FakeTimeProvider());
        var blocks = new ConcurrentBag<(long First, int Size)>();

        Parallel.For(0, 10_000, i =>
        {
            var bytes = i % 97;
            blocks.Add((sequence.Reserve(bytes), ArrivalSequence.PointsBound(bytes)));
        });

        var sorted = blocks.OrderBy(b => b.First).ToList();
        for (var i = 1; i < sorted.Count; i++)
            Assert.That(sorted[i].First, Is.GreaterThanOrEqualTo(sorted[i - 1].First + sorted[i - 1].Size), "blocks overlap");
        Assert.That(sorted[0].First, Is.GreaterThan(0), "0 is the sequence of device-timestamped points");
    }

    [TestCase("""{"a":1}""")]
    [TestCase("""{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6}""")]
    [TestCase("""[{"a":1},{"a":1},{"a":1},{"a":1}]""")]
    [TestCase("""{"a":1,"b":1,"c":1,"d":1,"e":1,"f":1,"g":1}""")] // a name occurs once in an object (RepeatedNames)
    public void The_densest_json_holds_no_more_points_than_its_reservation(string json)
    {
        var payload = Encoding.UTF8.GetBytes(json);
        var result = new TelemetryDecoder(new MetricNames()).Decode(payload, 1_000, 500, new DecodeLimits(1 << 20, 100_000, 1024));

        Assert.That(result.IsValid, Is.True, result.Reason);
        Assert.That(result.Count, Is.LessThanOrEqualTo(ArrivalSequence.PointsBound(payload.Length)));
        Assert.That(result.Points!.Select(p => p.Sequence), Is.EqualTo(Enumerable.Range(0, result.Count).Select(i => 500L + i)));
    }

    [Test]
    public void The_densest_cbor_holds_no_more_points_than_its_reservation()
    {
        foreach (var n in new[] { 1, 2, 10, 23, 24, 300 })
        {
            // One map of n keys with one-byte values: one-character keys while they last (3 bytes a point, the least CBOR
            // allows), then two. A key occurs once in a map (RFC 8949 §5.6; RepeatedNames).
            var w = new System.Formats.Cbor.CborWriter(System.Formats.Cbor.CborConformanceMode.Lax);
            w.WriteStartMap(n);
            for (var i = 0; i < n; i++)
            {
                w.WriteTextString(i < 26 ? ((char)('a' + i)).ToString() : $"{(char)('a' + i / 26 - 1)}{(char)('a' + i % 26)}");
                w.WriteInt32(i % 24);
            }
            w.WriteEndMap();
            var payload = w.Encode();

            var result = new TelemetryDecoder(new MetricNames()).DecodeCbor(payload, 1_000, 7, new DecodeLimits(1 << 20, 100_000, 1024));

            Assert.That(result.IsValid, Is.True, result.Reason);
            Assert.That(result.Count, Is.EqualTo(n).And.LessThanOrEqualTo(ArrivalSequence.PointsBound(payload.Length)), $"{n} points in {payload.Length} bytes");
        }
    }

    [Test]
    public void Points_with_ts_have_sequence_0_and_points_without_their_own_number()
    {
        var payload = Encoding.UTF8.GetBytes("""[{"ts": 5, "values": {"a": 1, "b": 2}}, {"a": 3}, {"ts": 6, "values": {"a": 4}}, {"a": 5, "b": 6}]""");

        var result = new TelemetryDecoder(new MetricNames()).Decode(payload, 1_000, 100, new DecodeLimits(1 << 20, 1000, 1024));

        Assert.That(result.Points!.Select(p => (p.TimestampMs, p.Sequence)),
            Is.EqualTo(new (long, long)[] { (5, 0), (5, 0), (1_000, 102), (6, 0), (1_000, 104), (1_000, 105) }));
    }
}
