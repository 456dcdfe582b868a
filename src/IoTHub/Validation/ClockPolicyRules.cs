// Applies the clock-drift policy to a decoded message. A point more than the tolerance ahead of the hub's clock
// is never stored silently: `reject` dead-letters the message, `serverTime` stores the hub's corrected time and
// keeps the device's, `accept` stores the device's time with the device flagged. Points older than MaxPastAge
// are rejected unless `serverTime` can correct them (a device whose clock reset to 1970). A restamped point is the hub's
// reading, no longer the device's: like a point without `ts`, it gets its own arrival sequence number.
using IoTHub.Contracts;

namespace IoTHub.Validation;

internal readonly record struct ClockLimits(long ToleranceMs, long MaxPastMs, long MaxFutureAcceptedMs);

internal static class ClockPolicyRules
{
    /// <summary>Whether a device's clock estimate (median of device time − receive time, ms) is drift: ahead by more than
    /// <c>Validation:ClockDriftTolerance</c>, or behind by more than <c>Validation:MaxPastAge</c>. Less behind than that
    /// cannot be told from data a device buffered while offline and sends late (a backfill of hours, a message per
    /// reading), which is not a clock problem; a clock ahead can only be one.</summary>
    public static bool IsDrift(long driftMs, in ClockLimits limits) => driftMs > limits.ToleranceMs || driftMs < -limits.MaxPastMs;

    /// <summary>Applies <paramref name="policy"/> to the points of one message; a point restamped by <c>serverTime</c> gets
    /// the arrival sequence number <paramref name="firstSequence"/> + its index, as a point without <c>ts</c> does.</summary>
    public static void Apply(Span<TelemetryPoint> points, long receivedAtMs, long firstSequence, long driftMs, bool flagged, ClockPolicy policy,
        in ClockLimits limits, ref List<FieldError>? errors)
    {
        for (var i = 0; i < points.Length; i++)
        {
            ref var p = ref points[i];
            if (p.DeviceTimestampMs is not { } ts) continue;
            var offset = ts - receivedAtMs;
            var ahead = offset > limits.ToleranceMs;
            var tooOld = offset < -limits.MaxPastMs;
            if (!ahead && !tooOld)
            {
                p = p with { DeviceTimestampMs = null };
                continue;
            }
            switch (policy)
            {
                case ClockPolicy.ServerTime:
                    var corrected = flagged ? ts - driftMs : receivedAtMs;
                    corrected = Math.Clamp(corrected, receivedAtMs - limits.MaxPastMs, receivedAtMs);
                    p = p with { TimestampMs = corrected, DeviceTimestampMs = ts, Sequence = firstSequence + i };
                    break;
                case ClockPolicy.Accept when !tooOld && offset <= limits.MaxFutureAcceptedMs:
                    p = p with { DeviceTimestampMs = null };
                    break;
                default:
                    (errors ??= []).Add(new FieldError("ts", ahead
                        ? $"timestamp {Decoding.TelemetryDecoder.Iso(ts)} is {offset / 1000.0:0.#} s ahead of the hub's clock (tolerance {limits.ToleranceMs / 1000.0:0.#} s)"
                        : $"timestamp {Decoding.TelemetryDecoder.Iso(ts)} is more than {limits.MaxPastMs / 86_400_000.0:0.#} days in the past"));
                    return;
            }
        }
    }
}
