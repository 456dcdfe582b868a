// Points of one series can share a timestamp (readings the hub stamped in the same millisecond): among them the
// arrival sequence decides which is the later one, in the C# fold and in SQL alike.
namespace IoTHub.Storage;

/// <summary>The order of points that share a timestamp.</summary>
internal static class ArrivalOrder
{
    /// <summary>Whether the point (ts, seq) comes at or after (lastTs, lastSeq): later time, or same time and a sequence
    /// at least as high (a hub-stamped reading that arrived later).</summary>
    public static bool AtOrAfter(long ts, long seq, long lastTs, long lastSeq) => ts > lastTs || (ts == lastTs && seq >= lastSeq);

    /// <summary>The same comparison in SQL.</summary>
    public static string SqlAtOrAfter(string ts, string seq, string lastTs, string lastSeq) =>
        $"({ts} > {lastTs} OR ({ts} = {lastTs} AND {seq} >= {lastSeq}))";
}
