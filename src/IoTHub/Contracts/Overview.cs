// What the admin overview shows, asked of the modules that know it.
using Mediator;

namespace IoTHub.Contracts;

/// <summary>Devices by status.</summary>
public sealed record FleetSummaryQuery : IRequest<FleetSummary>;

public sealed record FleetSummary(int Total, int Online, int Offline, int Never, int Disabled);

/// <summary>Totals of the hub's counters since start (the ones <c>/metrics</c> exports), by metric name.</summary>
public sealed record HubCountersQuery : IRequest<IReadOnlyDictionary<string, double>>;

/// <summary>Rows and (where the store can tell) bytes per telemetry table: raw and each rollup resolution.</summary>
public sealed record StorageSizesQuery : IRequest<IReadOnlyList<TableSize>>;

public sealed record TableSize(string Resolution, long Rows, long? Bytes);

/// <summary>Dead letters received since a time (all devices, or one).</summary>
public sealed record CountDeadLettersQuery(DateTimeOffset Since, string? DeviceId = null) : IRequest<long>;
