// Fast specifications of the clock-drift policy (no host): which device timestamps are kept as they are, which are
// restamped with the hub's time under `serverTime`, which `accept` lets through, and which are refused.
using IoTHub.Contracts;
using IoTHub.Validation;

namespace IoTHub.Tests.Validation;

public sealed class ClockPolicyRulesSpecs
{
    private const long Second = 1000, Minute = 60 * Second, Day = 24 * 60 * Minute;
    private const long ReceivedAt = 1_764_504_000_000; // 2025-11-30T12:00:00Z
    private const long FirstSequence = 900;
    private static readonly ClockLimits Limits = new(ToleranceMs: 60 * Second, MaxPastMs: 30 * Day, MaxFutureAcceptedMs: 1 * Day);

    /// <summary>Points as the decoder makes them: at the device's timestamp, which is also kept as DeviceTimestampMs.</summary>
    private static TelemetryPoint[] AtDeviceTime(params long[] offsetsFromReceive) => offsetsFromReceive
        .Select((o, i) => new TelemetryPoint("m" + i, ReceivedAt + o, ValueKind.Number, i, null) { DeviceTimestampMs = ReceivedAt + o }).ToArray();

    private static (TelemetryPoint[] Points, List<FieldError>? Errors) Apply(ClockPolicy policy, TelemetryPoint[] points, long driftMs = 0, bool flagged = false)
    {
        List<FieldError>? errors = null;
        ClockPolicyRules.Apply(points, ReceivedAt, FirstSequence, driftMs, flagged, policy, Limits, ref errors);
        return (points, errors);
    }

    [TestCase(0, false)]
    [TestCase(60 * Second, false, TestName = "Ahead by the tolerance is not drift")]
    [TestCase(60 * Second + 1, true, TestName = "Ahead by more than the tolerance is drift")]
    [TestCase(-2 * 60 * Minute, false, TestName = "Two hours behind is not drift: a backfill of buffered data looks the same")]
    [TestCase(-30 * Day, false, TestName = "Behind by the past limit is not drift")]
    [TestCase(-30 * Day - 1, true, TestName = "Behind by more than the past limit is drift: no buffered data is that old")]
    public void A_clock_is_drift_when_ahead_by_more_than_the_tolerance_or_behind_by_more_than_the_past_limit(long driftMs, bool drift)
    {
        Assert.That(ClockPolicyRules.IsDrift(driftMs, Limits), Is.EqualTo(drift));
    }

    [Test]
    public void A_timestamp_within_the_tolerance_ahead_or_within_the_past_limit_is_kept_under_every_policy(
        [Values] ClockPolicy policy, [Values(-30 * Day, -Minute, 0, 60 * Second)] long offset)
    {
        var (points, errors) = Apply(policy, AtDeviceTime(offset));

        Assert.That(errors, Is.Null);
        Assert.That(points[0].TimestampMs, Is.EqualTo(ReceivedAt + offset));
        Assert.That(points[0].DeviceTimestampMs, Is.Null, "nothing to keep beside it: the stored time is the device's");
        Assert.That(points[0].Sequence, Is.Zero, "still the device's reading: a resend is the same point");
    }

    [Test]
    public void A_point_without_a_device_timestamp_is_left_alone()
    {
        var stamped = new TelemetryPoint("m", ReceivedAt, ValueKind.Number, 1, null) { Sequence = 42 };
        var (points, errors) = Apply(ClockPolicy.Reject, [stamped]);

        Assert.That(errors, Is.Null);
        Assert.That(points[0], Is.EqualTo(stamped));
    }

    [Test]
    public void Reject_refuses_a_message_with_a_timestamp_more_than_the_tolerance_ahead_saying_how_far()
    {
        var (_, errors) = Apply(ClockPolicy.Reject, AtDeviceTime(0, 90 * Second));

        Assert.That(errors!.Select(e => (e.Field, e.Message)), Is.EqualTo(new[]
        {
            ("ts", "timestamp 2025-11-30T12:01:30.000Z is 90 s ahead of the hub's clock (tolerance 60 s)"),
        }));
    }

    [Test]
    public void Reject_refuses_a_message_with_a_timestamp_older_than_the_past_limit()
    {
        var (_, errors) = Apply(ClockPolicy.Reject, AtDeviceTime(-30 * Day - 1));

        Assert.That(errors!.Single().Message, Is.EqualTo("timestamp 2025-10-31T11:59:59.999Z is more than 30 days in the past"));
    }

    [Test]
    public void Server_time_stores_a_one_off_bad_timestamp_at_the_receive_time_and_keeps_the_devices_beside_it()
    {
        // The device's clock is fine on the whole (not flagged): this one reading is off, so the hub's time is the best guess.
        var (points, errors) = Apply(ClockPolicy.ServerTime, AtDeviceTime(0, 10 * Minute), driftMs: 0, flagged: false);

        Assert.That(errors, Is.Null);
        Assert.That((points[0].TimestampMs, points[0].DeviceTimestampMs, points[0].Sequence), Is.EqualTo((ReceivedAt, (long?)null, 0L)), "the good one is untouched");
        Assert.That((points[1].TimestampMs, points[1].DeviceTimestampMs), Is.EqualTo((ReceivedAt, (long?)(ReceivedAt + 10 * Minute))));
        Assert.That(points[1].Sequence, Is.EqualTo(FirstSequence + 1), "the hub's reading now: its arrival sequence, by its index in the message");
    }

    [Test]
    public void Server_time_corrects_a_flagged_devices_timestamps_by_its_drift_and_never_into_the_future()
    {
        // A device whose clock runs ten minutes ahead: its readings keep their spacing, moved back by the drift.
        var (points, errors) = Apply(ClockPolicy.ServerTime, AtDeviceTime(10 * Minute - 5 * Second, 10 * Minute + 5 * Second), driftMs: 10 * Minute, flagged: true);

        Assert.That(errors, Is.Null);
        Assert.That(points.Select(p => p.TimestampMs), Is.EqualTo(new[] { ReceivedAt - 5 * Second, ReceivedAt }),
            "the second would be 5 s in the future after correction: it is clamped to the receive time");
        Assert.That(points.Select(p => p.DeviceTimestampMs), Is.EqualTo(new long?[] { ReceivedAt + 10 * Minute - 5 * Second, ReceivedAt + 10 * Minute + 5 * Second }));
        Assert.That(points.Select(p => p.Sequence), Is.EqualTo(new[] { FirstSequence, FirstSequence + 1 }));
    }

    [Test]
    public void Server_time_rescues_a_device_whose_clock_reset_to_1970_but_never_before_the_past_limit()
    {
        var offset = -ReceivedAt + 5 * Second; // five seconds after the epoch
        var (points, errors) = Apply(ClockPolicy.ServerTime, AtDeviceTime(offset), driftMs: offset, flagged: true);
        Assert.That(errors, Is.Null);
        Assert.That(points[0].TimestampMs, Is.EqualTo(ReceivedAt), "corrected by its drift: now");
        Assert.That(points[0].DeviceTimestampMs, Is.EqualTo(5 * Second));

        var (skewed, _) = Apply(ClockPolicy.ServerTime, AtDeviceTime(offset), driftMs: 0, flagged: true);
        Assert.That(skewed[0].TimestampMs, Is.EqualTo(ReceivedAt - 30 * Day), "a correction that still lands too far back is clamped to the past limit");
    }

    [Test]
    public void Accept_stores_a_timestamp_ahead_at_the_devices_time_up_to_the_future_limit()
    {
        var (points, errors) = Apply(ClockPolicy.Accept, AtDeviceTime(Day), driftMs: Day, flagged: true);
        Assert.That(errors, Is.Null);
        Assert.That((points[0].TimestampMs, points[0].DeviceTimestampMs), Is.EqualTo((ReceivedAt + Day, (long?)null)));

        var (_, beyond) = Apply(ClockPolicy.Accept, AtDeviceTime(Day + 1), driftMs: Day, flagged: true);
        Assert.That(beyond!.Single().Message, Does.Contain("ahead of the hub's clock"));
    }

    [Test]
    public void Accept_still_refuses_a_timestamp_older_than_the_past_limit()
    {
        var (_, errors) = Apply(ClockPolicy.Accept, AtDeviceTime(-31 * Day));

        Assert.That(errors!.Single().Message, Does.Contain("more than 30 days in the past"));
    }
}
