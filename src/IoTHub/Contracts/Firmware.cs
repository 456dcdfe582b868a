// What the Firmware module exchanges with the others: devices' progress and version reports come in through
// Connectivity (MQTT topics, HTTP device endpoints) and Commands (reported state); the module's notifications go out
// through Connectivity (DeliverToDevice on devices/{id}/firmware) and its halts through Alarms (an alarm) and the outbox.
using Mediator;

namespace IoTHub.Contracts;

/// <summary>A device reported firmware progress on <c>devices/{id}/firmware/progress</c> or
/// <c>POST /api/v1/devices/{id}/firmware/progress</c>: <c>{"campaignId", "status", "bytes"?, "reason"?, "detail"?}</c>
/// (docs/firmware.md). Null when taken (a resent or stale report is taken and changes nothing), else why not.</summary>
/// <param name="DeviceId">The authenticated device.</param>
/// <param name="Payload">The report, UTF-8 JSON.</param>
public sealed record RecordFirmwareProgress(string DeviceId, ReadOnlyMemory<byte> Payload) : IRequest<string?>;

/// <summary>A device's reported state changed its <c>firmwareVersion</c> or <c>hardwareModel</c> (published by the
/// Commands module after the report is stored). A device proves an update by reporting the new version after it
/// reconnected.</summary>
/// <param name="DeviceId">The device.</param>
/// <param name="FirmwareVersion">The reported <c>firmwareVersion</c>, when the report named it.</param>
/// <param name="HardwareModel">The reported <c>hardwareModel</c>, when the report named it.</param>
/// <param name="At">When the hub stored the report.</param>
public sealed record DeviceFirmwareReported(string DeviceId, string? FirmwareVersion, string? HardwareModel, DateTimeOffset At) : INotification;

/// <summary>The firmware notification a device should hold now (the retained message of <c>devices/{id}/firmware</c>,
/// and the answer of <c>GET /api/v1/devices/{id}/firmware/pending</c>): UTF-8 JSON, or null when there is none.</summary>
/// <param name="DeviceId">The device.</param>
public sealed record GetPendingFirmware(string DeviceId) : IRequest<byte[]?>;

/// <summary>Every device's pending firmware notification, for the broker's retained store when it starts.</summary>
public sealed record ListPendingFirmware : IRequest<IReadOnlyList<(string DeviceId, byte[] Payload)>>;

/// <summary>May the device download the artifact, and where is it? Null when the device has no update in progress with
/// that artifact (the HTTP answer is 404 then) or the artifact does not exist.</summary>
/// <param name="DeviceId">The authenticated device.</param>
/// <param name="ArtifactId">The artifact id of the download URL.</param>
public sealed record GetFirmwareDownload(string DeviceId, long ArtifactId) : IRequest<FirmwareDownload?>;

/// <summary>An artifact's file for a device to download.</summary>
/// <param name="Path">The file's full path under the data directory.</param>
/// <param name="Sha256">Lowercase hex SHA-256 of the file: its strong ETag.</param>
/// <param name="Size">Bytes.</param>
/// <param name="CreatedAt">When it was uploaded: its Last-Modified.</param>
public sealed record FirmwareDownload(string Path, string Sha256, long Size, DateTimeOffset CreatedAt);

/// <summary>A firmware campaign stopped itself: more devices failed than its failure threshold allows, or a wave ended
/// below its success threshold. The Alarms module raises a major alarm that clears on <see cref="FirmwareCampaignResolved"/>.</summary>
/// <param name="CampaignId">The campaign (<c>/api/v1/firmware-campaigns/{id}</c>).</param>
/// <param name="Name">Its name, for people reading the alarm.</param>
/// <param name="Reason">Why, in one line.</param>
/// <param name="At">When it halted.</param>
public sealed record FirmwareCampaignHalted(long CampaignId, string Name, string Reason, DateTimeOffset At) : INotification;

/// <summary>A halted campaign was resumed, aborted or deleted by an operator: its alarm clears.</summary>
/// <param name="CampaignId">The campaign.</param>
/// <param name="How">What the operator did, for the alarm's history (e.g. <c>resumed by alice</c>).</param>
/// <param name="At">When.</param>
public sealed record FirmwareCampaignResolved(long CampaignId, string How, DateTimeOffset At) : INotification;
