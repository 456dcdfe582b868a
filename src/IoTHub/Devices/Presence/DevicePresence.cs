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
        // The connect itself writes lastSeen (through the journal): the next flush of this device is a step later, so
        // a fleet connecting over some seconds is flushed spread over those seconds, not all at once.
        if (e.Flushed < atMs) e.Flushed = atMs;
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

    /// <summary>Devices whose lastSeen moved by at least <paramref name="minStepMs"/> since the last flush.</summary>
    public List<(string DeviceId, long LastSeen)> TakeUnflushed(long minStepMs)
    {
        var list = new List<(string, long)>();
        foreach (var (id, e) in _entries)
        {
            var seen = Volatile.Read(ref e.LastSeen);
            if (seen > e.Flushed && seen - e.Flushed >= minStepMs)
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
                    await lastSeen.FlushAsync(final: false, stoppingToken);
                    nextFlush = DateTime.UtcNow + LastSeenFlusher.Interval;
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        await lastSeen.FlushAsync(final: true, CancellationToken.None);
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
                await WriteAsync(batch, scopes, ct);
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
                        try { await WriteAsync([e], scopes, ct); }
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

    /// <summary>One transaction for the batch, in a constant number of statements on PostgreSQL (a connect storm of
    /// thousands of devices is a handful of round trips, not a few per device).</summary>
    private static async Task WriteAsync(IReadOnlyList<PresenceEvent> batch, IServiceScopeFactory scopes, CancellationToken ct)
    {
        var plan = PresencePlan.From(batch);
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<HubDb>();
        var npgsql = db.Database.IsNpgsql();
        await using var tx = await db.Database.BeginTransactionAsync(ct);

        // Connections that were open before this batch; the batch's own connections were closed in memory.
        foreach (var round in plan.CloseRounds)
        {
            if (npgsql)
            {
                var devices = round.Select(c => c.DeviceId).ToArray();
                var clients = round.Select(c => c.ClientId).ToArray();
                var at = round.Select(c => c.At).ToArray();
                var reasons = round.Select(c => c.Reason).ToArray();
                await db.Database.ExecuteSqlInterpolatedAsync($"""
                    UPDATE device_connections AS c SET disconnected_at = u.at, disconnect_reason = u.reason
                    FROM unnest({devices}::text[], {clients}::text[], {at}::bigint[], {reasons}::text[]) AS u(device, client, at, reason)
                    WHERE c.id = (SELECT max(o.id) FROM device_connections o
                                  WHERE o.device_id = u.device AND o.client_id = u.client AND o.disconnected_at IS NULL)
                    """, ct);
            }
            else
            {
                foreach (var c in round)
                {
                    var open = db.Set<DeviceConnection>().Where(o => o.DeviceId == c.DeviceId && o.ClientId == c.ClientId && o.DisconnectedAt == null);
                    await db.Set<DeviceConnection>().Where(o => o.Id == open.Max(x => (long?)x.Id))
                        .ExecuteUpdateAsync(s => s.SetProperty(o => o.DisconnectedAt, c.At).SetProperty(o => o.DisconnectReason, c.Reason), ct);
                }
            }
        }

        if (plan.NewConnections.Count > 0)
        {
            db.AddRange(plan.NewConnections);
            await db.SaveChangesAsync(ct);
        }

        // Each device ends the batch as its last event left it.
        if (npgsql)
        {
            var ids = plan.Devices.Keys.ToArray();
            var online = plan.Devices.Values.Select(v => v.Online).ToArray();
            var seen = plan.Devices.Values.Select(v => v.LastSeen).ToArray();
            await db.Database.ExecuteSqlInterpolatedAsync($"""
                UPDATE devices AS d SET online = u.online, last_seen = u.seen
                FROM unnest({ids}::text[], {online}::boolean[], {seen}::bigint[]) AS u(id, online, seen)
                WHERE d.id = u.id
                """, ct);
        }
        else
        {
            foreach (var (id, (online, lastSeen)) in plan.Devices)
            {
                await db.Set<Device>().Where(d => d.Id == id)
                    .ExecuteUpdateAsync(s => s.SetProperty(d => d.Online, online).SetProperty(d => d.LastSeen, lastSeen), ct);
            }
        }

        // History is capped per device; only devices that went over the cap are trimmed.
        if (plan.NewConnections.Count > 0)
        {
            var connected = plan.NewConnections.Select(c => c.DeviceId).Distinct().ToList();
            var over = await db.Set<DeviceConnection>().Where(c => connected.Contains(c.DeviceId)).GroupBy(c => c.DeviceId)
                .Where(g => g.Count() > ListConnectionsHandler.KeptPerDevice).Select(g => g.Key).ToListAsync(ct);
            foreach (var deviceId in over)
            {
                var oldest = await db.Set<DeviceConnection>().Where(c => c.DeviceId == deviceId).OrderByDescending(c => c.Id)
                    .Skip(ListConnectionsHandler.KeptPerDevice).Select(c => (long?)c.Id).FirstOrDefaultAsync(ct);
                if (oldest is { } cut) await db.Set<DeviceConnection>().Where(c => c.DeviceId == deviceId && c.Id <= cut).ExecuteDeleteAsync(ct);
            }
        }
        await tx.CommitAsync(ct);
    }
}

/// <summary>What a batch of presence events does to the database, worked out in memory and in event order: the
/// final state of each device, the new connection rows (closed already when their disconnect is in the same batch),
/// and the closes of rows opened before the batch, in rounds so that one statement never closes one key twice.</summary>
internal sealed class PresencePlan
{
    public readonly record struct Close(string DeviceId, string ClientId, long At, string? Reason);

    public Dictionary<string, (bool Online, long LastSeen)> Devices { get; } = new(StringComparer.Ordinal);
    public List<DeviceConnection> NewConnections { get; } = new();
    public List<List<Close>> CloseRounds { get; } = new();

    public static PresencePlan From(IReadOnlyList<PresenceEvent> batch)
    {
        var plan = new PresencePlan();
        var open = new Dictionary<(string, string), List<DeviceConnection>>();
        var closes = new Dictionary<(string, string), int>();
        foreach (var e in batch)
        {
            plan.Devices[e.DeviceId] = (e.Online, e.LastSeen);
            var key = (e.DeviceId, e.ClientId);
            if (e.IsConnect)
            {
                var row = new DeviceConnection
                {
                    DeviceId = e.DeviceId, ClientId = e.ClientId, Protocol = e.Protocol ?? "", RemoteAddress = e.RemoteAddress, ConnectedAt = e.At,
                };
                plan.NewConnections.Add(row);
                if (!open.TryGetValue(key, out var rows)) open[key] = rows = new List<DeviceConnection>();
                rows.Add(row);
                continue;
            }
            // A disconnect closes the newest open connection of that device and client id, as the database would.
            if (open.TryGetValue(key, out var pending) && pending.Count > 0)
            {
                var row = pending[^1];
                pending.RemoveAt(pending.Count - 1);
                row.DisconnectedAt = e.At;
                row.DisconnectReason = e.Reason;
                continue;
            }
            var n = closes.GetValueOrDefault(key);
            closes[key] = n + 1;
            if (plan.CloseRounds.Count == n) plan.CloseRounds.Add(new List<Close>());
            plan.CloseRounds[n].Add(new Close(e.DeviceId, e.ClientId, e.At, e.Reason));
        }
        return plan;
    }
}

/// <summary>Marks every device offline when the hub starts, and writes lastSeen and clock drift when the presence
/// writer asks (it runs this between its batches, so that only one writer ever updates device rows: two would deadlock).</summary>
internal sealed class LastSeenFlusher(DevicePresence presence, IServiceScopeFactory scopes, ILogger<LastSeenFlusher> log) : IHostedService
{
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(5);

    /// <summary>A device's lastSeen row is rewritten once it has moved by this much (and always when the hub stops).
    /// The API shows the live in-memory value; the row only has to survive a crash, and rewriting every device's row
    /// every few seconds cost PostgreSQL ~100 ms of work each time with 10,000 devices, which devices felt as ack latency.</summary>
    public static readonly TimeSpan Step = TimeSpan.FromMinutes(1);

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

    public async Task FlushAsync(bool final, CancellationToken ct)
    {
        var changed = presence.TakeUnflushed(final ? 0 : (long)Step.TotalMilliseconds);
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
                if (changed.Count > 0)
                {
                    var ids = changed.Select(c => c.DeviceId).ToArray();
                    var seen = changed.Select(c => c.LastSeen).ToArray();
                    await db.Database.ExecuteSqlInterpolatedAsync($"""
                        UPDATE devices AS d SET last_seen = u.seen
                        FROM unnest({ids}::text[], {seen}::bigint[]) AS u(id, seen)
                        WHERE d.id = u.id AND (d.last_seen IS NULL OR d.last_seen < u.seen)
                        """, ct);
                }
                if (drifts.Count > 0)
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
            }
            else
            {
                // SQLite: one writer, no network; a statement per device inside one local transaction is quick.
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
