// Fans the outbox out: undispatched messages in id order, one delivery row per (subscribed endpoint, message), and the
// message marked dispatched, in one transaction. The mark is conditional (dispatched_at IS NULL), so two hub instances
// on one database cannot fan the same message out twice: the second one's update finds fewer rows and rolls back.
// Also deletes what is older than Webhooks:LogRetention, once an hour.
using IoTHub.Contracts;
using IoTHub.Storage;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace IoTHub.Webhooks.Dispatch;

internal sealed class OutboxDispatcher(IServiceScopeFactory scopes, Outbox outbox, DeliverySignal deliveries, WebhookMetrics metrics,
    IOptions<WebhooksOptions> options, TimeProvider time, ILogger<OutboxDispatcher> log) : BackgroundService
{
    private const int BatchSize = 200;
    private static readonly TimeSpan CleanupInterval = TimeSpan.FromHours(1);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var nextCleanup = time.GetUtcNow() + TimeSpan.FromMinutes(1);
        var failures = 0;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                var more = await DispatchBatchAsync(stoppingToken);
                if (time.GetUtcNow() >= nextCleanup)
                {
                    await CleanUpAsync(stoppingToken);
                    nextCleanup = time.GetUtcNow() + CleanupInterval;
                }
                failures = 0;
                if (!more) await outbox.WaitAsync(options.Value.PollInterval, stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                // The database is away, say: the messages stay in the outbox and are dispatched when it is back.
                failures++;
                if (failures == 1 || failures % 60 == 0) log.LogWarning(ex, "Dispatching the outbox failed ({Failures} times in a row); retrying", failures);
                await Task.Delay(TimeSpan.FromSeconds(Math.Min(failures, 10)), time, stoppingToken);
            }
        }
    }

    /// <summary>Dispatches one batch; true when there may be more waiting.</summary>
    internal async Task<bool> DispatchBatchAsync(CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<HubDb>();
        var batch = await db.Set<OutboxMessage>().AsNoTracking().Where(m => m.DispatchedAt == null).OrderBy(m => m.Id).Take(BatchSize)
            .Select(m => new { m.Id, m.MessageId, m.Type, m.OccurredAt }).ToListAsync(ct);
        metrics.OldestUndispatched(batch.Count == 0 ? null : batch.Min(m => m.OccurredAt));
        if (batch.Count == 0) return false;

        var endpoints = await db.Set<WebhookEndpoint>().AsNoTracking().Where(e => e.Enabled).ToListAsync(ct);
        var ids = batch.Select(m => m.Id).ToList();
        var now = time.NowMs();
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        var marked = await db.Set<OutboxMessage>().Where(m => ids.Contains(m.Id) && m.DispatchedAt == null)
            .ExecuteUpdateAsync(s => s.SetProperty(m => m.DispatchedAt, now), ct);
        if (marked != batch.Count)
        {
            await tx.RollbackAsync(ct); // another instance took some of them: read again
            return true;
        }
        var added = 0;
        foreach (var m in batch)
        {
            foreach (var e in endpoints.Where(e => e.Subscribes(m.Type)))
            {
                db.Add(new WebhookDelivery
                {
                    EndpointId = e.Id, OutboxId = m.Id, MessageId = m.MessageId, Type = m.Type, Status = DeliveryStatus.Pending,
                    NextAttemptAt = now, CreatedAt = now,
                });
                added++;
            }
        }
        await db.SaveChangesAsync(ct);
        await tx.CommitAsync(ct);
        if (added > 0) deliveries.Set();
        return batch.Count == BatchSize;
    }

    private async Task CleanUpAsync(CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<HubDb>();
        var cutoff = time.NowMs() - (long)options.Value.LogRetention.TotalMilliseconds;
        var logs = await db.Set<WebhookDelivery>().Where(d => d.CreatedAt < cutoff && (d.Status == DeliveryStatus.Succeeded || d.Status == DeliveryStatus.Failed))
            .ExecuteDeleteAsync(ct);
        var open = db.Set<WebhookDelivery>().Where(d => d.Status == DeliveryStatus.Pending || d.Status == DeliveryStatus.Retrying).Select(d => d.OutboxId);
        var messages = await db.Set<OutboxMessage>().Where(m => m.DispatchedAt != null && m.DispatchedAt < cutoff && !open.Contains(m.Id))
            .ExecuteDeleteAsync(ct);
        if (logs + messages > 0) log.LogInformation("Deleted {Deliveries} webhook deliveries and {Messages} outbox messages older than {Retention}", logs, messages, options.Value.LogRetention);
    }
}
