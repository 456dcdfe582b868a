using IoTHub.Contracts;

namespace IoTHub.Storage;

/// <summary>The rollup tables of the three resolutions (<see cref="WindowResolution"/> has their widths and names).</summary>
internal static class Resolution
{
    public static readonly string[] Tables = ["rollup_1m", "rollup_1h", "rollup_1d"];
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
