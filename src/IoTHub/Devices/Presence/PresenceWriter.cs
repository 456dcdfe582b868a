using IoTHub.Contracts;
using IoTHub.Storage;
using Microsoft.EntityFrameworkCore;

namespace IoTHub.Devices.Presence;

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
        // What is queued is still written, then the loop ends by itself. Cancelling first (BackgroundService.StopAsync
        // does) made the last batch's write fail at once: the disconnects of a stopping hub were lost, and the next start
        // closed those connections as "hub stopped". Cancelled only if the host's shutdown timeout runs out.
        journal.Complete();
        if (ExecuteTask is { } loop)
        {
            try
            {
                await loop.WaitAsync(cancellationToken);
            }
            catch (OperationCanceledException)
            {
            }
        }
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

        // device.online / device.offline for the webhooks, in this transaction: every change of a device's online flag,
        // in event order, from the stored one (so a reconnect within the batch is an offline and an online, and a second
        // connection of a device that is online already is nothing). The start-up reset of devices left online by a
        // stopped hub (LastSeenFlusher) writes none: that would be a storm of offline events on every restart.
        var known = plan.Devices.Keys.ToList();
        var stored = await db.Set<Device>().AsNoTracking().Where(d => known.Contains(d.Id)).Select(d => new { d.Id, d.Online })
            .ToDictionaryAsync(d => d.Id, d => d.Online, StringComparer.Ordinal, ct);
        var changes = 0;
        foreach (var e in batch)
        {
            if (!stored.TryGetValue(e.DeviceId, out var was) || was == e.Online) continue;
            stored[e.DeviceId] = e.Online;
            var at = UnixTime.ToDateTime(e.At);
            if (e.Online) Outbox.Add(db, HubEventTypes.DeviceOnline, new { deviceId = e.DeviceId, at, protocol = e.Protocol, remoteAddress = e.RemoteAddress }, at);
            else Outbox.Add(db, HubEventTypes.DeviceOffline, new { deviceId = e.DeviceId, at, reason = e.Reason }, at);
            changes++;
        }
        db.AddRange(plan.NewConnections);
        if (db.ChangeTracker.HasChanges()) await db.SaveChangesAsync(ct);

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
        if (changes > 0) scope.ServiceProvider.GetRequiredService<Outbox>().Committed();
    }
}
