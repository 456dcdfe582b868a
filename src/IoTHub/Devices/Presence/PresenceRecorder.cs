using IoTHub.Contracts;
using IoTHub.Storage;
using Mediator;
using Microsoft.EntityFrameworkCore;

namespace IoTHub.Devices.Presence;

/// <summary>Takes presence changes from the broker: the in-memory count at once, the database through the journal,
/// so that a reconnect storm of thousands of devices neither waits for the database on every CONNECT nor opens a
/// database connection per device.</summary>
internal sealed class PresenceRecorder(DevicePresence presence, PresenceJournal journal, HubDb db, LogThrottle lines, ILogger<PresenceRecorder> log)
    : INotificationHandler<DeviceConnected>, INotificationHandler<DeviceDisconnected>, INotificationHandler<DeviceDeleted>
{
    public async ValueTask Handle(DeviceConnected n, CancellationToken ct)
    {
        var at = n.At.ToUnixTimeMilliseconds();
        presence.Connected(n.DeviceId, at);
        await journal.AppendAsync(new PresenceEvent(true, n.DeviceId, n.ClientId, at, n.Protocol, n.RemoteAddress, Online: true, LastSeen: at, Reason: null), ct);
        lines.Write(log, PresenceLines.Connected, n.DeviceId, n.DeviceId, n.Protocol, n.RemoteAddress, n.ClientId);
    }

    public async ValueTask Handle(DeviceDisconnected n, CancellationToken ct)
    {
        var at = n.At.ToUnixTimeMilliseconds();
        var remaining = presence.Disconnected(n.DeviceId, at);
        var lastSeen = presence.LastSeen(n.DeviceId) ?? at;
        await journal.AppendAsync(new PresenceEvent(false, n.DeviceId, n.ClientId, at, null, null, Online: remaining > 0, LastSeen: lastSeen, n.Reason), ct);
        lines.Write(log, PresenceLines.Disconnected, n.DeviceId, n.DeviceId, n.Reason, remaining);
    }

    public async ValueTask Handle(DeviceDeleted n, CancellationToken ct)
    {
        presence.Forget(n.DeviceId);
        await db.Set<DeviceConnection>().Where(c => c.DeviceId == n.DeviceId).ExecuteDeleteAsync(ct);
    }
}
