using IoTHub.Contracts;

namespace IoTHub.Storage;

/// <summary>The three rollup resolutions: 1 minute, 1 hour, 1 day (UTC buckets).</summary>
internal static class Resolution
{
    public static readonly long[] WidthsMs = [60_000, 3_600_000, 86_400_000];
    public static readonly string[] Tables = ["rollup_1m", "rollup_1h", "rollup_1d"];
    public static readonly string[] Names = ["1m", "1h", "1d"];

    public static long BucketOf(long tsMs, int resolution) => tsMs - Mod(tsMs, WidthsMs[resolution]);

    private static long Mod(long a, long b) => ((a % b) + b) % b;
}

/// <summary>Folds points into one window aggregate; mergeable, so batches and hubs combine. The sum saturates
/// (<see cref="FiniteAggregates"/>); "last" is the value of the greatest (ts, seq).</summary>
internal struct RollupAccumulator
{
    public long Count;
    public double Sum, Min, Max, Last;
    public long LastTs, LastSeq;

    public void Add(long ts, long seq, double value)
    {
        if (Count == 0)
        {
            Min = Max = Last = value;
            LastTs = ts;
            LastSeq = seq;
        }
        else
        {
            if (value < Min) Min = value;
            if (value > Max) Max = value;
            if (ArrivalOrder.AtOrAfter(ts, seq, LastTs, LastSeq)) { LastTs = ts; LastSeq = seq; Last = value; }
        }
        Count++;
        Sum = FiniteAggregates.Add(Sum, value);
    }
}
