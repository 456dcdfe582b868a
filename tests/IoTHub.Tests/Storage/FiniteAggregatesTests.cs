using IoTHub.Storage.Queries;
using IoTHub.Storage.Write;
using IoTHub.Contracts;
using IoTHub.Storage;

namespace IoTHub.Tests.Storage;

/// <summary>Window aggregates stay finite (issue #15): the rule in C#; the SQL merges are run by PoisonIsolationTests.</summary>
public sealed class FiniteAggregatesTests
{
    [Test]
    public void A_sum_saturates_at_the_largest_double_instead_of_overflowing()
    {
        Assert.That(FiniteAggregates.Add(double.MaxValue, double.MaxValue), Is.EqualTo(double.MaxValue));
        Assert.That(FiniteAggregates.Add(-1.79e308, -1.79e308), Is.EqualTo(double.MinValue));
        Assert.That(FiniteAggregates.Add(double.MaxValue, -1.79e308), Is.EqualTo(double.MaxValue - 1.79e308));
        Assert.That(FiniteAggregates.Add(1.5, 2.25), Is.EqualTo(3.75));
        Assert.That(FiniteAggregates.Add(double.PositiveInfinity, 1), Is.EqualTo(double.MaxValue), "a sum stored before the rule counts as saturated");
    }

    [Test]
    public void An_average_stays_within_min_and_max_when_the_sum_saturated()
    {
        Assert.That(FiniteAggregates.Average(double.MaxValue, 2, double.MaxValue, double.MaxValue), Is.EqualTo(double.MaxValue));
        Assert.That(FiniteAggregates.Average(6, 4, 1, 2), Is.EqualTo(1.5));
        Assert.That(FiniteAggregates.Average(double.NaN, 1, 3, 3), Is.EqualTo(3));
        Assert.That(new[] { double.NaN, double.PositiveInfinity, double.NegativeInfinity }.Select(FiniteAggregates.Finite),
            Is.EqualTo(new[] { 0, double.MaxValue, double.MinValue }));
    }

    [Test]
    public void The_in_memory_fold_of_values_at_the_edge_of_double_is_finite_and_its_last_is_the_latest_arrival()
    {
        var fold = new BatchFold();
        foreach (var (ts, seq, v) in new[] { (1_000L, 0L, double.MaxValue), (2_000L, 0L, double.MaxValue), (2_000L, 9L, -1.79e308), (2_000L, 7L, 5.0) })
            fold.Add(1, new TelemetryPoint("m", ts, ValueKind.Number, v, null) { Sequence = seq });

        var minute = fold.Rollups[0].Single().Value;
        Assert.That((minute.Count, minute.Sum, minute.Min, minute.Max, minute.Last, minute.LastSeq),
            Is.EqualTo((4L, double.MaxValue - 1.79e308 + 5.0, -1.79e308, double.MaxValue, -1.79e308, 9L)));
        Assert.That(fold.Latest[1].Number, Is.EqualTo(-1.79e308), "the greatest (ts, seq)");
    }
}
