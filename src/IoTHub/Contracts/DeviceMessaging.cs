// Server-to-device messaging: the Commands module decides what to send and keeps command and state records;
// Connectivity owns the wire (MQTT topics, HTTP device endpoints) and reports what devices send back.
using Mediator;

namespace IoTHub.Contracts;

/// <summary>Publishes on <c>devices/{id}/{subtopic}</c> at QoS 1. False when the device has no live connection
/// (retained messages are stored by the broker either way).</summary>
public sealed record DeliverToDevice(string DeviceId, string Subtopic, ReadOnlyMemory<byte> Payload, bool Retain, TimeSpan? ExpiresIn = null)
    : IRequest<bool>;

/// <summary>Does the device have a live broker connection on this hub?</summary>
public sealed record IsDeviceConnected(string DeviceId) : IRequest<bool>;

/// <summary>A device acknowledged (PUBACK) the command message.</summary>
public sealed record CommandDelivered(string DeviceId, string CommandId) : INotification;

/// <summary>A device answered a command on <c>devices/{id}/commands/{commandId}/response</c>. Null when recorded, else why not.</summary>
public sealed record RecordCommandResponse(string DeviceId, string CommandId, ReadOnlyMemory<byte> Payload) : IRequest<string?>;

/// <summary>A device reported state (a JSON merge patch onto its reported state) over MQTT or HTTP.</summary>
public sealed record ReportDeviceState(string DeviceId, ReadOnlyMemory<byte> Payload) : IRequest<StateReportOutcome>;

/// <summary>The new reported version, or why the report was refused.</summary>
public sealed record StateReportOutcome(long? Version, string? Error);

/// <summary>The desired state as a device receives it: <c>{"version": n, "state": {...}}</c>, UTF-8 JSON. Null when none was set.</summary>
public sealed record GetDesiredStateMessage(string DeviceId) : IRequest<byte[]?>;

/// <summary>Every device's desired-state message, for the broker's retained store when it starts.</summary>
public sealed record ListDesiredStateMessages : IRequest<IReadOnlyList<(string DeviceId, byte[] Payload)>>;

/// <summary>A device can now receive commands: it subscribed to <c>devices/{id}/commands/+</c> (or <c>#</c>), or reconnected to
/// a broker session that holds such a subscription. Queued commands go out now.</summary>
public sealed record DeviceReadyForCommands(string DeviceId) : INotification;
