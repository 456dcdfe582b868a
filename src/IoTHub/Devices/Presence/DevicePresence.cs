// Presence: online while at least one connection is up; lastSeen advanced by every message. The per-message
// part is lock-free (a volatile write on an existing entry) and reaches the database in a periodic flush.
using System.Collections.Concurrent;
using IoTHub.Contracts;
using IoTHub.Storage;
using Mediator;
using Microsoft.EntityFrameworkCore;

namespace IoTHub.Devices.Presence;

internal sealed class DevicePresence : IDevicePresence, IDeviceClock
{
    private readonly ConcurrentDictionary<string, Entry> _entries = new(StringComparer.Ordinal);

    internal sealed class Entry
    {
        public long LastSeen;
        public long Flushed;
        public int Connections;
        public long DriftMs;
        public int DriftFlagged = -1; // -1: no estimate yet
        public long DriftFlushedMs = long.MinValue;
    }

    public void Drift(string deviceId, long driftMs, bool flagged)
    {
        var e = _entries.GetOrAdd(deviceId, static _ => new Entry());
        Volatile.Write(ref e.DriftMs, driftMs);
        Volatile.Write(ref e.DriftFlagged, flagged ? 1 : 0);
    }

    public (long DriftMs, bool Flagged)? Clock(string deviceId) =>
        _entries.TryGetValue(deviceId, out var e) && Volatile.Read(ref e.DriftFlagged) >= 0 ? (Volatile.Read(ref e.DriftMs), e.DriftFlagged == 1) : null;

    /// <summary>A flush failed: these devices are written again at the next one.</summary>
    public void Unflush(IEnumerable<(string DeviceId, long LastSeen)> devices)
    {
        foreach (var (id, _) in devices)
            if (_entries.TryGetValue(id, out var e)) e.Flushed = 0;
    }

    /// <summary>Devices whose drift estimate moved by more than a second since the last flush.</summary>
    public List<(string DeviceId, long DriftMs, bool Flagged)> TakeDriftChanges()
    {
        var list = new List<(string, long, bool)>();
        foreach (var (id, e) in _entries)
        {
            var flagged = Volatile.Read(ref e.DriftFlagged);
            if (flagged < 0) continue;
            var drift = Volatile.Read(ref e.DriftMs);
            if (e.DriftFlushedMs != long.MinValue && Math.Abs(drift - e.DriftFlushedMs) < 1000) continue;
            list.Add((id, drift, flagged == 1));
            e.DriftFlushedMs = drift;
        }
        return list;
    }

    public void Seen(string deviceId, long atMs)
    {
        var e = _entries.GetOrAdd(deviceId, static _ => new Entry());
        if (Volatile.Read(ref e.LastSeen) < atMs) Volatile.Write(ref e.LastSeen, atMs);
    }

    public long? LastSeen(string deviceId) => _entries.TryGetValue(deviceId, out var e) && e.LastSeen > 0 ? e.LastSeen : null;

    /// <summary>Returns the number of live connections after this one.</summary>
    public int Connected(string deviceId, long atMs)
    {
        var e = _entries.GetOrAdd(deviceId, static _ => new Entry());
        Seen(deviceId, atMs);
        return Interlocked.Increment(ref e.Connections);
    }

    public int Disconnected(string deviceId, long atMs)
    {
        var e = _entries.GetOrAdd(deviceId, static _ => new Entry());
        Seen(deviceId, atMs);
        var n = Interlocked.Decrement(ref e.Connections);
        if (n < 0) Interlocked.CompareExchange(ref e.Connections, 0, n);
        return Math.Max(n, 0);
    }

    public void Forget(string deviceId) => _entries.TryRemove(deviceId, out _);

    /// <summary>Devices whose lastSeen moved since the last flush.</summary>
    public List<(string DeviceId, long LastSeen)> TakeUnflushed()
    {
        var list = new List<(string, long)>();
        foreach (var (id, e) in _entries)
        {
            var seen = Volatile.Read(ref e.LastSeen);
            if (seen > e.Flushed)
            {
                list.Add((id, seen));
                e.Flushed = seen;
            }
        }
        return list;
    }
}

/// <summary>Writes presence changes: online/offline at once, lastSeen every few seconds.</summary>
internal sealed class PresenceRecorder(DevicePresence presence, HubDb db, ILogger<PresenceRecorder> log)
    : INotificationHandler<DeviceConnected>, INotificationHandler<DeviceDisconnected>, INotificationHandler<DeviceDeleted>
{
    public async ValueTask Handle(DeviceConnected n, CancellationToken ct)
    {
        presence.Connected(n.DeviceId, n.At.ToUnixTimeMilliseconds());
        var at = n.At.ToUnixTimeMilliseconds();
        await db.Set<Device>().Where(d => d.Id == n.DeviceId)
            .ExecuteUpdateAsync(s => s.SetProperty(d => d.Online, true).SetProperty(d => d.LastSeen, at), ct);
        db.Add(new DeviceConnection
        {
            DeviceId = n.DeviceId, ClientId = n.ClientId, Protocol = n.Protocol, RemoteAddress = n.RemoteAddress, ConnectedAt = at,
        });
        await db.SaveChangesAsync(ct);
        var oldest = await db.Set<DeviceConnection>().Where(c => c.DeviceId == n.DeviceId).OrderByDescending(c => c.Id)
            .Skip(ListConnectionsHandler.KeptPerDevice).Select(c => (long?)c.Id).FirstOrDefaultAsync(ct);
        if (oldest is { } cut) await db.Set<DeviceConnection>().Where(c => c.DeviceId == n.DeviceId && c.Id <= cut).ExecuteDeleteAsync(ct);
        log.LogInformation("Device {DeviceId} connected over {Protocol} from {Remote} as {ClientId}", n.DeviceId, n.Protocol, n.RemoteAddress, n.ClientId);
    }

    public async ValueTask Handle(DeviceDisconnected n, CancellationToken ct)
    {
        var at = n.At.ToUnixTimeMilliseconds();
        var remaining = presence.Disconnected(n.DeviceId, at);
        var lastSeen = presence.LastSeen(n.DeviceId) ?? at;
        await db.Set<Device>().Where(d => d.Id == n.DeviceId)
            .ExecuteUpdateAsync(s => s.SetProperty(d => d.Online, remaining > 0).SetProperty(d => d.LastSeen, lastSeen), ct);
        var open = await db.Set<DeviceConnection>().Where(c => c.DeviceId == n.DeviceId && c.ClientId == n.ClientId && c.DisconnectedAt == null)
            .OrderByDescending(c => c.Id).Select(c => (long?)c.Id).FirstOrDefaultAsync(ct);
        if (open is { } row)
        {
            await db.Set<DeviceConnection>().Where(c => c.Id == row)
                .ExecuteUpdateAsync(s => s.SetProperty(c => c.DisconnectedAt, at).SetProperty(c => c.DisconnectReason, n.Reason), ct);
        }
        log.LogInformation("Device {DeviceId} disconnected ({Reason}); {Remaining} connections left", n.DeviceId, n.Reason, remaining);
    }

    public async ValueTask Handle(DeviceDeleted n, CancellationToken ct)
    {
        presence.Forget(n.DeviceId);
        await db.Set<DeviceConnection>().Where(c => c.DeviceId == n.DeviceId).ExecuteDeleteAsync(ct);
    }
}

internal sealed class LastSeenFlusher(DevicePresence presence, IServiceScopeFactory scopes, ILogger<LastSeenFlusher> log) : BackgroundService
{
    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(5);

    /// <summary>No device is connected to a hub that is just starting: whatever the last run left "online" (a crash,
    /// a kill) is offline now, and its open connection rows are closed.</summary>
    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        await using (var scope = scopes.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<HubDb>();
            var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
            var stale = await db.Set<Device>().Where(d => d.Online).ExecuteUpdateAsync(s => s.SetProperty(d => d.Online, false), cancellationToken);
            await db.Set<DeviceConnection>().Where(c => c.DisconnectedAt == null)
                .ExecuteUpdateAsync(s => s.SetProperty(c => c.DisconnectedAt, now).SetProperty(c => c.DisconnectReason, "hub stopped"), cancellationToken);
            if (stale > 0) log.LogInformation("Marked {Count} devices offline that were online when the hub last stopped", stale);
        }
        await base.StartAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Interval);
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
        {
            await FlushAsync(stoppingToken);
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        await FlushAsync(cancellationToken);
    }

    private async Task FlushAsync(CancellationToken ct)
    {
        var changed = presence.TakeUnflushed();
        var drifts = presence.TakeDriftChanges();
        if (changed.Count == 0 && drifts.Count == 0) return;
        try
        {
            await using var scope = scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<HubDb>();
            await using var tx = await db.Database.BeginTransactionAsync(ct);
            foreach (var (id, seen) in changed)
            {
                await db.Set<Device>().Where(d => d.Id == id && (d.LastSeen == null || d.LastSeen < seen))
                    .ExecuteUpdateAsync(s => s.SetProperty(d => d.LastSeen, seen), ct);
            }
            foreach (var (id, drift, flagged) in drifts)
            {
                await db.Set<Device>().Where(d => d.Id == id)
                    .ExecuteUpdateAsync(s => s.SetProperty(d => d.ClockDriftMs, drift).SetProperty(d => d.ClockDriftFlagged, flagged), ct);
            }
            await tx.CommitAsync(ct);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            presence.Unflush(changed);
            log.LogWarning(ex, "Could not record last-seen times of {Count} devices; will retry", changed.Count);
        }
    }
}
