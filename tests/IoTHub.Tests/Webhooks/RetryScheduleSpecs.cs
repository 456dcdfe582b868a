using IoTHub.Webhooks;
using IoTHub.Webhooks.Dispatch;

namespace IoTHub.Tests.Webhooks;

/// <summary>When a failed delivery is tried again, with the defaults: 5 s, 30 s, 3 min, 18 min, 1.8 h, then every 6 h,
/// ±20 %, for a day.</summary>
public sealed class RetryScheduleSpecs
{
    private static readonly DateTimeOffset Created = new(2026, 11, 30, 12, 0, 0, TimeSpan.Zero);

    private static RetrySchedule Schedule(double random = 0.5) => new(new WebhooksOptions(), () => random);

    [TestCase(1, 5)]
    [TestCase(2, 30)]
    [TestCase(3, 180)]
    [TestCase(4, 1080)]
    [TestCase(5, 6480)]
    [TestCase(6, 21600)]
    [TestCase(9, 21600)]
    public void The_delay_grows_by_the_factor_up_to_the_maximum(int attempt, int seconds) =>
        Assert.That(Schedule().BaseDelay(attempt), Is.EqualTo(TimeSpan.FromSeconds(seconds)));

    [TestCase(0.0, 4.0)]
    [TestCase(0.5, 5.0)]
    [TestCase(1.0, 6.0)]
    public void Jitter_moves_a_retry_by_at_most_a_fifth(double random, double seconds) =>
        Assert.That(Schedule(random).Next(1, Created, Created, null), Is.EqualTo(Created.AddSeconds(seconds)));

    [Test]
    public void Retry_after_from_the_receiver_is_a_floor_capped_at_the_maximum_delay() =>
        Assert.Multiple(() =>
        {
            Assert.That(Schedule().Next(1, Created, Created, TimeSpan.FromMinutes(2)), Is.EqualTo(Created.AddMinutes(2)));
            Assert.That(Schedule().Next(1, Created, Created, TimeSpan.FromSeconds(1)), Is.EqualTo(Created.AddSeconds(5)), "a shorter Retry-After does not hurry the schedule");
            Assert.That(Schedule().Next(1, Created, Created, TimeSpan.FromDays(3)), Is.EqualTo(Created.AddHours(6)));
        });

    [Test]
    public void Retries_span_a_day_with_a_last_attempt_at_its_end_and_then_stop()
    {
        var schedule = Schedule();
        var at = Created;
        var attempts = new List<DateTimeOffset> { at };
        for (var n = 1; schedule.Next(n, Created, at, null) is { } next; n++)
        {
            Assert.That(next, Is.GreaterThan(at));
            attempts.Add(at = next);
        }
        Assert.Multiple(() =>
        {
            Assert.That(attempts[^1], Is.EqualTo(Created.AddDays(1)), "the last attempt is at the end of the window");
            Assert.That(attempts, Has.Count.InRange(9, 11));
        });
    }
}
