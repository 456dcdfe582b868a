// Window aggregates: the notifications the aggregation module publishes, and how it reads the stored rollups.
using Mediator;

namespace IoTHub.Contracts;

/// <summary>A final (or corrected) tumbling-window aggregate of one numeric metric of one device. Every number is finite
/// (sums saturate at ±1.7976931348623157e308).</summary>
/// <param name="DeviceId">The device.</param>
/// <param name="Metric">The metric.</param>
/// <param name="Resolution">The window width: <c>1m</c>, <c>1h</c> or <c>1d</c>.</param>
/// <param name="Start">The window's start, inclusive (UTC, aligned to its width since the Unix epoch).</param>
/// <param name="End">The window's end, exclusive.</param>
/// <param name="Count">Points in the window.</param>
/// <param name="Sum">Sum of their values.</param>
/// <param name="Min">Smallest value.</param>
/// <param name="Max">Largest value.</param>
/// <param name="Avg">Sum / count, kept within [min, max].</param>
/// <param name="Last">The value with the latest timestamp.</param>
public sealed record WindowAggregate(string DeviceId, string Metric, string Resolution, DateTimeOffset Start, DateTimeOffset End,
    long Count, double Sum, double Min, double Max, double Avg, double Last);

/// <summary>Published once per window, when the device's watermark passes its end plus the allowed lateness.</summary>
public sealed record WindowClosed(WindowAggregate Window) : INotification;

/// <summary>A point arrived for a window already closed; the stored rollup now says this.</summary>
public sealed record WindowCorrected(WindowAggregate Window, long? PreviousCount) : INotification;

/// <summary>A stored rollup row: resolution 0 = 1m, 1 = 1h, 2 = 1d; bucket = window start, Unix ms.</summary>
public readonly record struct RollupKey(long SeriesId, int Resolution, long Bucket);

/// <summary>The stored aggregate of one window of one numeric series: what a <c>GROUP BY</c> over its raw rows gives
/// (the writer folds it in the same transaction). Sums saturate at ±<see cref="double.MaxValue"/> (FiniteAggregates).</summary>
/// <param name="Key">Series, resolution and window start.</param>
/// <param name="Count">Points in the window (duplicates are stored, and counted, once).</param>
/// <param name="Sum">Sum of their values.</param>
/// <param name="Min">Smallest value.</param>
/// <param name="Max">Largest value.</param>
/// <param name="Last">The value with the latest timestamp; among points of one millisecond, the last to arrive.</param>
public sealed record RollupRow(RollupKey Key, long Count, double Sum, double Min, double Max, double Last);

/// <summary>Reads stored rollup rows by key; keys with no row are left out of the answer.</summary>
public sealed record ReadRollups(IReadOnlyList<RollupKey> Keys) : IRequest<IReadOnlyList<RollupRow>>;

/// <summary>Rollup rows whose bucket starts at or after since[resolution] (Unix ms), with their device and metric.</summary>
public sealed record ListRecentRollups(long[] SinceByResolution) : IRequest<IReadOnlyList<RecentRollup>>;

/// <summary>A rollup row's key with the device and metric of its series (an answer to <see cref="ListRecentRollups"/>).</summary>
public sealed record RecentRollup(RollupKey Key, string DeviceId, string Metric);
