using IoTHub.Storage;
using Microsoft.EntityFrameworkCore;

namespace IoTHub.Devices.Presence;

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
        catch (Exception ex)
        {
            // Taken means marked written: put everything back, also when the stop cancelled the write (the final
            // flush at stop then writes it; it used to find those devices already "written").
            presence.Unflush(changed);
            presence.UnflushDrift(drifts);
            if (ex is OperationCanceledException) throw;
            log.LogWarning(ex, "Could not record last-seen times of {Count} devices; will retry", changed.Count);
        }
    }
}
