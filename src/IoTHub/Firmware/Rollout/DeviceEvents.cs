// What devices and other modules tell the Firmware module: progress reports, version reports, connections, deletions;
// and what the broker and the HTTP device API ask it: the notification a device should hold now.
using IoTHub.Contracts;
using IoTHub.Storage;
using Mediator;
using Microsoft.EntityFrameworkCore;

namespace IoTHub.Firmware.Rollout;

internal sealed class DeviceEvents(Rollouts rollouts, IServiceScopeFactory scopes, InstallWatch watch, ILogger<DeviceEvents> log) :
    IRequestHandler<RecordFirmwareProgress, string?>, IRequestHandler<GetPendingFirmware, byte[]?>,
    IRequestHandler<ListPendingFirmware, IReadOnlyList<(string DeviceId, byte[] Payload)>>,
    INotificationHandler<DeviceFirmwareReported>, INotificationHandler<DeviceConnected>, INotificationHandler<DeviceDeleted>
{
    public async ValueTask<string?> Handle(RecordFirmwareProgress r, CancellationToken ct) => await rollouts.RecordProgressAsync(r.DeviceId, r.Payload, ct);

    public async ValueTask<byte[]?> Handle(GetPendingFirmware q, CancellationToken ct) =>
        (await rollouts.PendingAsync(q.DeviceId, ct)) is [var one, ..] ? one.Payload : null;

    public async ValueTask<IReadOnlyList<(string DeviceId, byte[] Payload)>> Handle(ListPendingFirmware q, CancellationToken ct) =>
        await rollouts.PendingAsync(null, ct);

    // Both run in a scope of their own: the publisher's context holds the publisher's entities, and a failure here must
    // not fail the report or the connection (the step's timeout still ends an update that is never proven).
    public async ValueTask Handle(DeviceFirmwareReported n, CancellationToken ct) =>
        await ObserveAsync(n.DeviceId, f =>
        {
            if (n.FirmwareVersion is { } v)
            {
                f.Version = SafeText.Prefix(v, 128);
                f.VersionReportedAt = n.At.ToUnixTimeMilliseconds();
            }
            if (n.HardwareModel is { } m) f.HardwareModel = SafeText.Prefix(m, 64);
        }, ct);

    public async ValueTask Handle(DeviceConnected n, CancellationToken ct)
    {
        if (!watch.Watches(n.DeviceId)) return; // only a device coming back from an install needs its connection recorded
        await ObserveAsync(n.DeviceId, f => f.ConnectedAt = n.At.ToUnixTimeMilliseconds(), ct);
    }

    public async ValueTask Handle(DeviceDeleted n, CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<HubDb>();
        await db.Set<CampaignDevice>().Where(e => e.DeviceId == n.DeviceId).ExecuteDeleteAsync(ct);
        await db.Set<DeviceFirmware>().Where(f => f.DeviceId == n.DeviceId).ExecuteDeleteAsync(ct);
        watch.Track(n.DeviceId, false);
    }

    private async Task ObserveAsync(string deviceId, Action<DeviceFirmware> record, CancellationToken ct)
    {
        try
        {
            await using var scope = scopes.CreateAsyncScope();
            await scope.ServiceProvider.GetRequiredService<Rollouts>().ObserveAsync(deviceId, record, ct);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            log.LogWarning(ex, "Could not record the firmware report of device {DeviceId}", deviceId);
        }
    }
}
