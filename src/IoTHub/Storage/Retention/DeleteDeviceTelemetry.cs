using IoTHub.Storage.Write;
using IoTHub.Contracts;
using Mediator;
using Microsoft.EntityFrameworkCore;

namespace IoTHub.Storage.Retention;

/// <summary>A deleted device takes its telemetry and rollups with it.</summary>
internal sealed class DeleteDeviceTelemetry(HubDb db, TelemetryStores stores) : INotificationHandler<DeviceDeleted>
{
    public async ValueTask Handle(DeviceDeleted n, CancellationToken ct)
    {
        foreach (var store in stores.All) store.Forget(n.DeviceId);
        var series = db.Set<Series>().Where(s => s.DeviceId == n.DeviceId).Select(s => s.Id);
        await db.Set<TelemetryRow>().Where(t => series.Contains(t.SeriesId)).ExecuteDeleteAsync(ct);
        await db.Set<Rollup1m>().Where(t => series.Contains(t.SeriesId)).ExecuteDeleteAsync(ct);
        await db.Set<Rollup1h>().Where(t => series.Contains(t.SeriesId)).ExecuteDeleteAsync(ct);
        await db.Set<Rollup1d>().Where(t => series.Contains(t.SeriesId)).ExecuteDeleteAsync(ct);
        await db.Set<Series>().Where(s => s.DeviceId == n.DeviceId).ExecuteDeleteAsync(ct);
    }
}
