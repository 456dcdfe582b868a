// The arrival sequence tells apart the points the hub stamps with its own receive time: many readings of one series
// arrive in the same millisecond, and (series, ts) alone would take them for resends of each other (issue #15: 50
// acked messages, 7 stored). docs/adr/0005-hub-stamped-points-carry-an-arrival-sequence.md says why it looks like this.
namespace IoTHub.Contracts;

/// <summary>
/// A process-wide, strictly increasing counter: each message reserves a block of numbers as it is received (one
/// <see cref="Interlocked"/> add, no lock), enough for every point its payload can hold, so points keep the order in
/// which they arrived, also within one message. Seeded from the wall clock in 100 ns ticks since the Unix epoch: a
/// restarted hub starts beyond the numbers the previous run used unless that run reserved more than ten million a
/// second on average (a payload of 3 bytes per point would need 30 MB/s of telemetry for that).
/// </summary>
public sealed class ArrivalSequence(TimeProvider time)
{
    private long _next = Math.Max(1, (time.GetUtcNow() - DateTimeOffset.UnixEpoch).Ticks);

    /// <summary>Most points a payload of <paramref name="payloadBytes"/> bytes can hold, in JSON or CBOR: a point needs
    /// a key of at least one character and a value, at least 3 bytes in either encoding.</summary>
    public static int PointsBound(int payloadBytes) => payloadBytes / 3 + 1;

    /// <summary>Reserves the numbers of one message; its point at index k gets the returned value + k.</summary>
    public long Reserve(int payloadBytes)
    {
        var n = PointsBound(payloadBytes);
        return Interlocked.Add(ref _next, n) - n;
    }
}
