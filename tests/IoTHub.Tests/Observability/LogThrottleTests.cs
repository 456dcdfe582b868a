// LogThrottle on a fake clock: the first line of a kind and key per interval, one summary line with the count of the
// repeats when the interval ends, bounded memory under a flood of distinct keys.
using IoTHub.Contracts;
using IoTHub.Tests.Infrastructure;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace IoTHub.Tests.Observability;

[FixtureLifeCycle(LifeCycle.InstancePerTestCase)]
public sealed class LogThrottleTests
{
    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(30);

    private static readonly LogKind<string, int> Refused = new(LogLevel.Warning, "connections refused",
        "Refused a connection from {Remote}: more than {Max}");

    private static readonly LogKind<string> Other = new(LogLevel.Warning, "other refusals", "Refused {What}");

    private readonly FakeTimeProvider _time = new(DateTimeOffset.Parse("2026-11-28T10:00:00Z", System.Globalization.CultureInfo.InvariantCulture));
    private readonly CapturedLogs _logs = new();

    private LogThrottle Throttle(int maxKeys = 100) =>
        new(_time, Options.Create(new LogThrottleOptions { Interval = Interval, MaxKeys = maxKeys }));

    private ILogger Log => _logs.CreateLogger("spec");

    private IEnumerable<LogLine> Summaries => _logs.Lines.Where(l => l.Values.ContainsKey("Suppressed"));

    private IEnumerable<LogLine> FirstLines => _logs.Lines.Where(l => !l.Values.ContainsKey("Suppressed"));

    [Test]
    public void The_first_line_of_an_interval_is_written_and_its_repeats_are_one_summary_line_with_their_count_when_it_ends()
    {
        using var throttle = Throttle();
        for (var i = 0; i < 1000; i++) throttle.Write(Log, Refused, "10.0.0.7", "10.0.0.7", 5);

        Assert.That(_logs.Lines, Has.Count.EqualTo(1));
        Assert.That(_logs.Lines[0].Message, Is.EqualTo("Refused a connection from 10.0.0.7: more than 5"));
        Assert.That(_logs.Lines[0].Level, Is.EqualTo(LogLevel.Warning));

        _time.Advance(Interval - TimeSpan.FromMilliseconds(1));
        Assert.That(_logs.Lines, Has.Count.EqualTo(1), "no summary before the interval ends");
        _time.Advance(TimeSpan.FromMilliseconds(1));

        var summary = Summaries.Single();
        Assert.That(summary["Suppressed"], Is.EqualTo(999L));
        Assert.That(summary["Key"], Is.EqualTo("10.0.0.7"));
        Assert.That(summary.Level, Is.EqualTo(LogLevel.Warning));
        Assert.That(summary.Message, Is.EqualTo("connections refused: 999 more for 10.0.0.7 in the last 30 s, not logged one by one"));
    }

    [Test]
    public void A_line_without_repeats_gets_no_summary_and_the_next_interval_starts_with_a_written_line_again()
    {
        using var throttle = Throttle();
        throttle.Write(Log, Refused, "10.0.0.7", "10.0.0.7", 5);
        _time.Advance(Interval);
        Assert.That(Summaries, Is.Empty);

        throttle.Write(Log, Refused, "10.0.0.7", "10.0.0.7", 5);
        throttle.Write(Log, Refused, "10.0.0.7", "10.0.0.7", 5);
        Assert.That(FirstLines.Count(), Is.EqualTo(2));
        _time.Advance(Interval);
        Assert.That(Summaries.Single()["Suppressed"], Is.EqualTo(1L));
    }

    [Test]
    public void A_flood_over_several_intervals_writes_at_most_two_lines_per_interval_and_counts_every_repeat()
    {
        using var throttle = Throttle();
        var written = 0;
        for (var second = 0; second < 300; second++)
        {
            for (var i = 0; i < 100; i++, written++) throttle.Write(Log, Refused, "10.0.0.7", "10.0.0.7", 5);
            _time.Advance(TimeSpan.FromSeconds(1));
        }

        Assert.That(_logs.Lines, Has.Count.LessThanOrEqualTo(2 * (300 / 30)), "a first line and a summary per interval");
        Assert.That(FirstLines.Count() + Summaries.Sum(s => (long)s["Suppressed"]!), Is.EqualTo(written), "every repeat is counted once");
    }

    [Test]
    public void Keys_and_kinds_are_counted_apart()
    {
        using var throttle = Throttle();
        for (var i = 0; i < 3; i++) throttle.Write(Log, Refused, "10.0.0.7", "10.0.0.7", 5);
        for (var i = 0; i < 5; i++) throttle.Write(Log, Refused, "10.0.0.8", "10.0.0.8", 5);
        for (var i = 0; i < 7; i++) throttle.Write(Log, Other, "10.0.0.7", "a publish");

        Assert.That(FirstLines.Select(l => l.Message), Is.EquivalentTo(new[]
        {
            "Refused a connection from 10.0.0.7: more than 5", "Refused a connection from 10.0.0.8: more than 5", "Refused a publish",
        }));
        _time.Advance(Interval);
        Assert.That(Summaries.Select(s => s.Message), Is.EquivalentTo(new[]
        {
            "connections refused: 2 more for 10.0.0.7 in the last 30 s, not logged one by one",
            "connections refused: 4 more for 10.0.0.8 in the last 30 s, not logged one by one",
            "other refusals: 6 more for 10.0.0.7 in the last 30 s, not logged one by one",
        }));
    }

    [Test]
    public void A_flood_of_distinct_keys_tracks_at_most_max_keys_and_counts_the_rest_under_other_keys()
    {
        using var throttle = Throttle(maxKeys: 10);
        for (var i = 0; i < 10_000; i++) throttle.Write(Log, Refused, $"10.0.{i / 256}.{i % 256}", $"10.0.{i / 256}.{i % 256}", 5);

        Assert.That(throttle.TrackedKeys, Is.EqualTo(11), "ten keys and the bucket of the others");
        Assert.That(_logs.Lines, Has.Count.EqualTo(11), "the first line of each tracked key and of the others");
        _time.Advance(Interval);
        var others = Summaries.Single();
        Assert.That(others["Key"], Is.EqualTo(LogThrottle.OtherKeys));
        Assert.That(others["Suppressed"], Is.EqualTo(10_000L - 11));
        Assert.That(throttle.TrackedKeys, Is.Zero, "an interval's keys are forgotten when it ends");

        throttle.Write(Log, Refused, "10.9.9.9", "10.9.9.9", 5);
        Assert.That(_logs.Lines.Last().Message, Is.EqualTo("Refused a connection from 10.9.9.9: more than 5"), "a new interval has room for keys again");
    }

    [Test]
    public void No_repeat_is_lost_or_counted_twice_when_writers_race_the_end_of_intervals()
    {
        using var throttle = Throttle();
        const int writers = 3, perWriter = 1_000_000;
        using var done = new CountdownEvent(writers);
        var threads = Enumerable.Range(0, writers).Select(w => new Thread(() =>
        {
            for (var i = 0; i < perWriter; i++) throttle.Write(Log, Refused, "10.0.0.7", "x", i);
            done.Signal();
        })).ToList();
        threads.ForEach(t => t.Start());
        while (!done.IsSet) _time.Advance(Interval);
        threads.ForEach(t => t.Join());
        _time.Advance(Interval);

        Assert.That(FirstLines.Count() + Summaries.Sum(s => (long)s["Suppressed"]!), Is.EqualTo(writers * perWriter));
    }

    [Test]
    public void A_line_whose_level_is_off_is_neither_written_nor_counted()
    {
        using var factory = LoggerFactory.Create(b => b.AddProvider(_logs).SetMinimumLevel(LogLevel.Error));
        using var throttle = Throttle();
        for (var i = 0; i < 10; i++) throttle.Write(factory.CreateLogger("spec"), Refused, "10.0.0.7", "10.0.0.7", 5);
        _time.Advance(Interval);

        Assert.That(_logs.Lines, Is.Empty);
        Assert.That(throttle.TrackedKeys, Is.Zero);
    }

    [Test]
    public void Stopping_writes_the_summary_of_the_interval_in_progress()
    {
        var throttle = Throttle();
        for (var i = 0; i < 4; i++) throttle.Write(Log, Refused, "10.0.0.7", "10.0.0.7", 5);
        _time.Advance(TimeSpan.FromSeconds(12));
        throttle.Dispose();

        var summary = Summaries.Single();
        Assert.That(summary["Suppressed"], Is.EqualTo(3L));
        Assert.That(summary["Seconds"], Is.EqualTo(12.0), "the summary says how long its repeats took");
    }

    [Test]
    public void A_key_from_outside_is_cut_and_cannot_break_the_summary_line()
    {
        using var throttle = Throttle();
        var hostile = "evil\r\n2026-11-28 fake line" + new string('x', 10_000);
        throttle.Write(Log, Other, hostile, "x");
        throttle.Write(Log, Other, hostile, "x");
        _time.Advance(Interval);

        var key = (string)Summaries.Single()["Key"]!;
        Assert.That(key, Has.Length.EqualTo(128));
        Assert.That(key, Does.StartWith("evil??2026-11-28 fake line"));
    }
}
