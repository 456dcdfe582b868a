// Presence: online while at least one connection is up; lastSeen advanced by every message. The per-message
// part is lock-free (a volatile write on an existing entry) and reaches the database in a periodic flush.
using System.Collections.Concurrent;
using System.Threading.Channels;
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

/// <summary>Takes presence changes from the broker: the in-memory count at once, the database through the journal,
/// so that a reconnect storm of thousands of devices neither waits for the database on every CONNECT nor opens a
/// database connection per device.</summary>
internal sealed class PresenceRecorder(DevicePresence presence, PresenceJournal journal, HubDb db, ILogger<PresenceRecorder> log)
    : INotificationHandler<DeviceConnected>, INotificationHandler<DeviceDisconnected>, INotificationHandler<DeviceDeleted>
{
    public async ValueTask Handle(DeviceConnected n, CancellationToken ct)
    {
        var at = n.At.ToUnixTimeMilliseconds();
        presence.Connected(n.DeviceId, at);
        await journal.AppendAsync(new PresenceEvent(true, n.DeviceId, n.ClientId, at, n.Protocol, n.RemoteAddress, Online: true, LastSeen: at, Reason: null), ct);
        log.LogInformation("Device {DeviceId} connected over {Protocol} from {Remote} as {ClientId}", n.DeviceId, n.Protocol, n.RemoteAddress, n.ClientId);
    }

    public async ValueTask Handle(DeviceDisconnected n, CancellationToken ct)
    {
        var at = n.At.ToUnixTimeMilliseconds();
        var remaining = presence.Disconnected(n.DeviceId, at);
        var lastSeen = presence.LastSeen(n.DeviceId) ?? at;
        await journal.AppendAsync(new PresenceEvent(false, n.DeviceId, n.ClientId, at, null, null, Online: remaining > 0, LastSeen: lastSeen, n.Reason), ct);
        log.LogInformation("Device {DeviceId} disconnected ({Reason}); {Remaining} connections left", n.DeviceId, n.Reason, remaining);
    }

    public async ValueTask Handle(DeviceDeleted n, CancellationToken ct)
    {
        presence.Forget(n.DeviceId);
        await db.Set<DeviceConnection>().Where(c => c.DeviceId == n.DeviceId).ExecuteDeleteAsync(ct);
    }
}

/// <summary>A connect or disconnect as the database records it (online flag, last seen, connection history).</summary>
internal sealed record PresenceEvent(bool IsConnect, string DeviceId, string ClientId, long At, string? Protocol, string? RemoteAddress,
    bool Online, long LastSeen, string? Reason);

/// <summary>Presence changes waiting for the database, in the order they happened.</summary>
internal sealed class PresenceJournal
{
    private readonly Channel<PresenceEvent> _events = Channel.CreateBounded<PresenceEvent>(new BoundedChannelOptions(100_000)
    {
        FullMode = BoundedChannelFullMode.Wait,
        SingleReader = true,
    });

    public ChannelReader<PresenceEvent> Reader => _events.Reader;

    public async ValueTask AppendAsync(PresenceEvent e, CancellationToken ct)
    {
        try
        {
            if (!_events.Writer.TryWrite(e)) await _events.Writer.WriteAsync(e, ct);
        }
        catch (ChannelClosedException)
        {
            // The hub is stopping: the start of the next run marks every device offline anyway.
        }
    }

    public void Complete() => _events.Writer.TryComplete();
}

/// <summary>Writes the journal in batches, one transaction each, on one connection: the order of a device's events is kept.</summary>
internal sealed class PresenceWriter(PresenceJournal journal, LastSeenFlusher lastSeen, IServiceScopeFactory scopes, ILogger<PresenceWriter> log) : BackgroundService
{
    private const int MaxBatch = 1_000;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var batch = new List<PresenceEvent>(MaxBatch);
        var nextFlush = DateTime.UtcNow + LastSeenFlusher.Interval;
        try
        {
            while (true)
            {
                var wait = nextFlush - DateTime.UtcNow;
                var more = true;
                if (wait > TimeSpan.Zero)
                {
                    using var timeout = new CancellationTokenSource(wait);
                    try { more = await journal.Reader.WaitToReadAsync(timeout.Token); }
                    catch (OperationCanceledException) when (timeout.IsCancellationRequested) { }
                }
                while (batch.Count < MaxBatch && journal.Reader.TryRead(out var e)) batch.Add(e);
                if (batch.Count > 0) await WriteWithRetryAsync(batch, stoppingToken);
                batch.Clear();
                if (!more) break;
                if (DateTime.UtcNow >= nextFlush)
                {
                    await lastSeen.FlushAsync(stoppingToken);
                    nextFlush = DateTime.UtcNow + LastSeenFlusher.Interval;
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        await lastSeen.FlushAsync(CancellationToken.None);
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        journal.Complete(); // what is queued is still written, then the loop ends
        await base.StopAsync(cancellationToken);
    }

    private async Task WriteWithRetryAsync(List<PresenceEvent> batch, CancellationToken ct)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await WriteAsync(batch, ct);
                return;
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                if (batch.Count > 1)
                {
                    // One bad event (say, a device deleted meanwhile) must not cost the others: write them one by one.
                    var failed = new List<PresenceEvent>();
                    foreach (var e in batch)
                    {
                        try { await WriteAsync([e], ct); }
                        catch (Exception one) when (one is not OperationCanceledException) { failed.Add(e); }
                    }
                    if (failed.Count < batch.Count)
                    {
                        foreach (var e in failed) log.LogWarning("Could not record {Event} of device {DeviceId}; dropped", e.IsConnect ? "a connect" : "a disconnect", e.DeviceId);
                        return;
                    }
                }
                if (attempt >= 5)
                {
                    log.LogError(ex, "Could not record {Count} presence changes after {Attempts} attempts; dropped", batch.Count, attempt);
                    return;
                }
                log.LogWarning(ex, "Recording {Count} presence changes failed; retrying", batch.Count);
                await Task.Delay(TimeSpan.FromSeconds(attempt), ct);
            }
        }
    }

    private async Task WriteAsync(IReadOnlyList<PresenceEvent> batch, CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<HubDb>();
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        var connectedDevices = new HashSet<string>(StringComparer.Ordinal);
        foreach (var e in batch)
        {
            await db.Set<Device>().Where(d => d.Id == e.DeviceId)
                .ExecuteUpdateAsync(s => s.SetProperty(d => d.Online, e.Online).SetProperty(d => d.LastSeen, e.LastSeen), ct);
            if (e.IsConnect)
            {
                db.Add(new DeviceConnection
                {
                    DeviceId = e.DeviceId, ClientId = e.ClientId, Protocol = e.Protocol ?? "", RemoteAddress = e.RemoteAddress, ConnectedAt = e.At,
                });
                await db.SaveChangesAsync(ct);
                connectedDevices.Add(e.DeviceId);
                continue;
            }
            var open = await db.Set<DeviceConnection>().Where(c => c.DeviceId == e.DeviceId && c.ClientId == e.ClientId && c.DisconnectedAt == null)
                .OrderByDescending(c => c.Id).Select(c => (long?)c.Id).FirstOrDefaultAsync(ct);
            if (open is { } row)
            {
                await db.Set<DeviceConnection>().Where(c => c.Id == row)
                    .ExecuteUpdateAsync(s => s.SetProperty(c => c.DisconnectedAt, e.At).SetProperty(c => c.DisconnectReason, e.Reason), ct);
            }
        }
        foreach (var deviceId in connectedDevices)
        {
            var oldest = await db.Set<DeviceConnection>().Where(c => c.DeviceId == deviceId).OrderByDescending(c => c.Id)
                .Skip(ListConnectionsHandler.KeptPerDevice).Select(c => (long?)c.Id).FirstOrDefaultAsync(ct);
            if (oldest is { } cut) await db.Set<DeviceConnection>().Where(c => c.DeviceId == deviceId && c.Id <= cut).ExecuteDeleteAsync(ct);
        }
        await tx.CommitAsync(ct);
        db.ChangeTracker.Clear();
    }
}

/// <summary>Marks every device offline when the hub starts, and writes lastSeen and clock drift when the presence
/// writer asks (it runs this between its batches, so that only one writer ever updates device rows: two would deadlock).</summary>
internal sealed class LastSeenFlusher(DevicePresence presence, IServiceScopeFactory scopes, ILogger<LastSeenFlusher> log) : IHostedService
{
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(5);

    /// <summary>No device is connected to a hub that is just starting: whatever the last run left "online" (a crash,
    /// a kill) is offline now, and its open connection rows are closed.</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
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
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public async Task FlushAsync(CancellationToken ct)
    {
        var changed = presence.TakeUnflushed();
        var drifts = presence.TakeDriftChanges();
        if (changed.Count == 0 && drifts.Count == 0) return;
        try
        {
            await using var scope = scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<HubDb>();
            await using var tx = await db.Database.BeginTransactionAsync(ct);
            if (db.Database.IsNpgsql())
            {
                // One statement for the whole fleet: a statement per device would hold the rows it has updated
                // through a thousand round trips, and every connect and disconnect (which update the same rows) would wait.
                var ids = changed.Select(c => c.DeviceId).ToArray();
                var seen = changed.Select(c => c.LastSeen).ToArray();
                await db.Database.ExecuteSqlInterpolatedAsync($"""
                    UPDATE devices AS d SET last_seen = u.seen
                    FROM unnest({ids}::text[], {seen}::bigint[]) AS u(id, seen)
                    WHERE d.id = u.id AND (d.last_seen IS NULL OR d.last_seen < u.seen)
                    """, ct);
            }
            else
            {
                // SQLite: one writer, no network; a statement per device inside one local transaction is quick.
                foreach (var (id, seen) in changed)
                {
                    await db.Set<Device>().Where(d => d.Id == id && (d.LastSeen == null || d.LastSeen < seen))
                        .ExecuteUpdateAsync(s => s.SetProperty(d => d.LastSeen, seen), ct);
                }
            }
            if (db.Database.IsNpgsql() && drifts.Count > 0)
            {
                var ids = drifts.Select(c => c.DeviceId).ToArray();
                var drift = drifts.Select(c => c.DriftMs).ToArray();
                var flagged = drifts.Select(c => c.Flagged).ToArray();
                await db.Database.ExecuteSqlInterpolatedAsync($"""
                    UPDATE devices AS d SET clock_drift_ms = u.drift, clock_drift_flagged = u.flagged
                    FROM unnest({ids}::text[], {drift}::bigint[], {flagged}::boolean[]) AS u(id, drift, flagged)
                    WHERE d.id = u.id
                    """, ct);
            }
            else
            {
                foreach (var (id, drift, flagged) in drifts)
                {
                    await db.Set<Device>().Where(d => d.Id == id)
                        .ExecuteUpdateAsync(s => s.SetProperty(d => d.ClockDriftMs, drift).SetProperty(d => d.ClockDriftFlagged, flagged), ct);
                }
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
