// Window aggregates: the notifications the aggregation module publishes, and how it reads the stored rollups.
using Mediator;

namespace IoTHub.Contracts;

/// <summary>A final (or corrected) tumbling-window aggregate of one numeric metric of one device.</summary>
public sealed record WindowAggregate(string DeviceId, string Metric, string Resolution, DateTimeOffset Start, DateTimeOffset End,
    long Count, double Sum, double Min, double Max, double Avg, double Last);

/// <summary>Published once per window, when the device's watermark passes its end plus the allowed lateness.</summary>
public sealed record WindowClosed(WindowAggregate Window) : INotification;

/// <summary>A point arrived for a window already closed; the stored rollup now says this.</summary>
public sealed record WindowCorrected(WindowAggregate Window, long? PreviousCount) : INotification;

/// <summary>A stored rollup row: resolution 0 = 1m, 1 = 1h, 2 = 1d; bucket = window start, Unix ms.</summary>
public readonly record struct RollupKey(long SeriesId, int Resolution, long Bucket);

public sealed record RollupRow(RollupKey Key, long Count, double Sum, double Min, double Max, double Last);

public sealed record ReadRollups(IReadOnlyList<RollupKey> Keys) : IRequest<IReadOnlyList<RollupRow>>;

/// <summary>Rollup rows whose bucket starts at or after since[resolution] (Unix ms), with their device and metric.</summary>
public sealed record ListRecentRollups(long[] SinceByResolution) : IRequest<IReadOnlyList<RecentRollup>>;

public sealed record RecentRollup(RollupKey Key, string DeviceId, string Metric);
