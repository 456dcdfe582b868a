// What the admin overview shows, asked of the modules that know it.
using Mediator;

namespace IoTHub.Contracts;

/// <summary>Devices by status.</summary>
public sealed record FleetSummaryQuery : IRequest<FleetSummary>;

/// <summary>Device counts for the overview. Online, offline and never partition the fleet; disabled devices are counted
/// in their status too.</summary>
/// <param name="Total">Registered devices.</param>
/// <param name="Online">Devices with a live MQTT connection.</param>
/// <param name="Offline">Devices heard from before, not connected now.</param>
/// <param name="Never">Devices never heard from.</param>
/// <param name="Disabled">Devices refused on every protocol.</param>
public sealed record FleetSummary(int Total, int Online, int Offline, int Never, int Disabled);

/// <summary>Totals of the hub's counters since start (the ones <c>/metrics</c> exports), by metric name.</summary>
public sealed record HubCountersQuery : IRequest<IReadOnlyDictionary<string, double>>;

/// <summary>Rows and (where the store can tell) bytes per telemetry table: raw and each rollup resolution.</summary>
public sealed record StorageSizesQuery : IRequest<IReadOnlyList<TableSize>>;

/// <summary>The size of one telemetry table.</summary>
/// <param name="Resolution"><c>raw</c>, <c>1m</c>, <c>1h</c> or <c>1d</c>.</param>
/// <param name="Rows">Rows: exact on SQLite, the planner's estimate on PostgreSQL (partitions summed).</param>
/// <param name="Bytes">Bytes on disk with indexes and TOAST (PostgreSQL); null on SQLite, which cannot tell per table.</param>
public sealed record TableSize(string Resolution, long Rows, long? Bytes);

/// <summary>Dead letters received since a time (all devices, or one).</summary>
public sealed record CountDeadLettersQuery(DateTimeOffset Since, string? DeviceId = null) : IRequest<long>;
