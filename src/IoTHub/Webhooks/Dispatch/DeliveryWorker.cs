// Sends the deliveries that are due. Each attempt first claims its row with a conditional update that moves
// next_attempt_at to the end of a lease (the request timeout and a margin): a second hub instance cannot take the same
// row, and an attempt cut short by a crash is retried when the lease ends (so a receiver may, rarely, see a
// webhook-id twice: Standard Webhooks receivers deduplicate on it). Attempts run concurrently, at most
// MaxConcurrentDeliveries in all and MaxInFlightPerEndpoint per endpoint, so a slow or dead receiver holds only its own
// slots; its retries wait in the database, not in memory.
using System.Collections.Concurrent;
using IoTHub.Contracts;
using IoTHub.Storage;
using IoTHub.Webhooks.Signing;
using Mediator;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace IoTHub.Webhooks.Dispatch;

internal sealed class DeliveryWorker(IServiceScopeFactory scopes, WebhookSender sender, WebhookSecrets secrets, DeliverySignal signal,
    WebhookMetrics metrics, IOptions<WebhooksOptions> options, TimeProvider time, ILogger<DeliveryWorker> log) : BackgroundService
{
    private readonly ConcurrentDictionary<long, long> _inFlight = new(); // delivery id -> endpoint id
    private readonly RetrySchedule _schedule = new(options.Value, Random.Shared.NextDouble);
    private WebhooksOptions Options => options.Value;

    /// <summary>How soon to look again when deliveries are due but their endpoints' slots are full: a finished attempt
    /// wakes the loop anyway; this covers what became due while the pass ran.</summary>
    private static readonly TimeSpan HeldBack = TimeSpan.FromMilliseconds(250);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var failures = 0;
        while (!stoppingToken.IsCancellationRequested)
        {
            TimeSpan wait;
            try
            {
                wait = await StartDueAsync(stoppingToken);
                failures = 0;
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception ex)
            {
                failures++;
                if (failures == 1 || failures % 60 == 0) log.LogWarning(ex, "Reading due webhook deliveries failed ({Failures} times in a row); retrying", failures);
                wait = TimeSpan.FromSeconds(Math.Min(failures, 10));
            }
            if (stoppingToken.IsCancellationRequested) break;
            await SleepAsync(wait, stoppingToken);
        }
        // Attempts in flight end with the host (their lease makes them due again at the next start).
        while (!_inFlight.IsEmpty) await Task.Delay(50, CancellationToken.None);
    }

    /// <summary>Sleeps on the hub's clock (so a test's FakeTimeProvider moves the retry schedule), or until new deliveries
    /// or a finished attempt wake it.</summary>
    private async Task SleepAsync(TimeSpan wait, CancellationToken stoppingToken)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
        var delay = Task.Delay(wait, time, cts.Token);
        // Also on the machine's clock, at most the poll interval: a clock that jumped past a due time between the
        // query and this sleep (a test's SetUtcNow, a corrected system clock) costs one poll, not a stalled worker.
        var poll = Task.Delay(wait < Options.PollInterval ? wait : Options.PollInterval, cts.Token);
        var woken = signal.WaitAsync(Timeout.InfiniteTimeSpan, cts.Token);
        await Task.WhenAny(delay, poll, woken);
        await cts.CancelAsync();
        try { await Task.WhenAll(delay, poll, woken); } catch (OperationCanceledException) { }
    }

    /// <summary>Claims and starts what is due and has a free slot; returns how long to sleep before looking again.</summary>
    private async Task<TimeSpan> StartDueAsync(CancellationToken ct)
    {
        var free = Options.MaxConcurrentDeliveries - _inFlight.Count;
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<HubDb>();
        var now = time.NowMs();
        if (free > 0)
        {
            // Endpoint by endpoint, each up to its free slots, in a new order each pass: a backlog of one endpoint (a dead
            // receiver with thousands of retries due) never fills the page that another endpoint's deliveries are read from.
            var endpoints = await (from d in db.Set<WebhookDelivery>()
                    join e in db.Set<WebhookEndpoint>() on d.EndpointId equals e.Id
                    where (d.Status == DeliveryStatus.Pending || d.Status == DeliveryStatus.Retrying) && d.NextAttemptAt <= now && e.Enabled
                    select d.EndpointId)
                .Distinct().ToArrayAsync(ct);
            Random.Shared.Shuffle(endpoints);
            var perEndpoint = _inFlight.Values.GroupBy(e => e).ToDictionary(g => g.Key, g => g.Count());
            var lease = now + (long)(Options.RequestTimeout + TimeSpan.FromSeconds(30)).TotalMilliseconds;
            foreach (var endpointId in endpoints)
            {
                var slots = Math.Min(Options.MaxInFlightPerEndpoint - perEndpoint.GetValueOrDefault(endpointId), free);
                if (slots <= 0) continue;
                var due = await db.Set<WebhookDelivery>()
                    .Where(d => d.EndpointId == endpointId && (d.Status == DeliveryStatus.Pending || d.Status == DeliveryStatus.Retrying) && d.NextAttemptAt <= now)
                    .OrderBy(d => d.NextAttemptAt).ThenBy(d => d.Id).Select(d => new { d.Id, d.NextAttemptAt })
                    .Take(slots + Options.MaxInFlightPerEndpoint).ToListAsync(ct);
                foreach (var d in due)
                {
                    if (slots == 0) break;
                    if (_inFlight.ContainsKey(d.Id)) continue;
                    var claimed = await db.Set<WebhookDelivery>()
                        .Where(x => x.Id == d.Id && x.NextAttemptAt == d.NextAttemptAt && (x.Status == DeliveryStatus.Pending || x.Status == DeliveryStatus.Retrying))
                        .ExecuteUpdateAsync(s => s.SetProperty(x => x.NextAttemptAt, lease).SetProperty(x => x.Attempt, x => x.Attempt + 1)
                            .SetProperty(x => x.LastAttemptAt, now), ct);
                    if (claimed == 0) continue; // another hub instance took it
                    _inFlight[d.Id] = endpointId;
                    slots--;
                    free--;
                    _ = Task.Run(() => AttemptAsync(d.Id, ct), CancellationToken.None);
                }
                if (free == 0) break;
            }
        }
        // Sleep until the next one is due (retries scheduled by this or another instance), at most the poll interval.
        // What is due already waits for a slot: the attempt that frees it wakes the loop.
        var next = await (from d in db.Set<WebhookDelivery>()
                join e in db.Set<WebhookEndpoint>() on d.EndpointId equals e.Id
                where (d.Status == DeliveryStatus.Pending || d.Status == DeliveryStatus.Retrying) && e.Enabled
                select d.NextAttemptAt).MinAsync(ct);
        var poll = Options.PollInterval;
        if (next is null) return poll;
        var untilDue = UnixTime.ToDateTime(next.Value) - time.GetUtcNow(); // exact: a timer due a fraction early would find nothing due
        if (untilDue <= TimeSpan.Zero) untilDue = HeldBack; // due, waiting for a slot of its endpoint (or became due just now)
        return untilDue < poll ? untilDue : poll;
    }

    private async Task AttemptAsync(long deliveryId, CancellationToken ct)
    {
        try
        {
            await using var scope = scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<HubDb>();
            var delivery = await db.Set<WebhookDelivery>().FirstOrDefaultAsync(d => d.Id == deliveryId, ct);
            var endpoint = delivery is null ? null : await db.Set<WebhookEndpoint>().FirstOrDefaultAsync(e => e.Id == delivery.EndpointId, ct);
            var message = delivery is null ? null : await db.Set<OutboxMessage>().AsNoTracking().FirstOrDefaultAsync(m => m.Id == delivery.OutboxId, ct);
            if (delivery is null || endpoint is null || message is null) return; // deleted meanwhile

            var now = time.GetUtcNow();
            var keys = new List<string>();
            if (secrets.TryUnprotect(endpoint.ProtectedSecret) is { } current) keys.Add(current);
            if (endpoint.ProtectedPreviousSecret is { } previous && endpoint.PreviousSecretUntil > now.ToUnixTimeMilliseconds()
                && secrets.TryUnprotect(previous) is { } old) keys.Add(old);
            var result = keys.Count == 0
                ? new AttemptResult(AttemptOutcome.Failed, null, 0, "the endpoint's secret cannot be decrypted (data-protection keys lost or replaced): rotate it", null)
                : await sender.SendAsync(endpoint.Url, message, keys, ct);
            // Recorded whatever happens to the hub now: an answered attempt cancelled before its record stayed leased,
            // and was sent again (a duplicate, one attempt too many) after the next start.
            await RecordAsync(db, scope.ServiceProvider, delivery, endpoint, result, CancellationToken.None);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
        catch (DbUpdateConcurrencyException)
        {
            // The endpoint (and with it the delivery) was deleted during the attempt.
        }
        catch (Exception ex)
        {
            log.LogError(ex, "Webhook delivery {DeliveryId} failed unexpectedly; it is tried again when its lease ends", deliveryId);
        }
        finally
        {
            _inFlight.TryRemove(deliveryId, out _);
            signal.Set();
        }
    }

    private async Task RecordAsync(HubDb db, IServiceProvider services, WebhookDelivery delivery, WebhookEndpoint endpoint, AttemptResult result, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        delivery.ResponseStatus = result.Status;
        delivery.DurationMs = result.DurationMs;
        delivery.Error = result.Error;
        string? disable = null;
        switch (result.Outcome)
        {
            case AttemptOutcome.Succeeded:
                delivery.Status = DeliveryStatus.Succeeded;
                delivery.NextAttemptAt = null;
                endpoint.FailingSince = null;
                break;
            case AttemptOutcome.Retry when _schedule.Next(delivery.Attempt, UnixTime.ToDateTime(delivery.CreatedAt), now, result.RetryAfter) is { } next:
                delivery.Status = DeliveryStatus.Retrying;
                delivery.NextAttemptAt = next.ToUnixTimeMilliseconds();
                break;
            case AttemptOutcome.Retry:
                delivery.Status = DeliveryStatus.Failed;
                delivery.NextAttemptAt = null;
                delivery.Error = WebhookSender.Cut($"gave up after {delivery.Attempt} attempts over {Options.RetryWindow}: {result.Error}");
                break;
            case AttemptOutcome.Gone:
                delivery.Status = DeliveryStatus.Failed;
                delivery.NextAttemptAt = null;
                disable = "the receiver answered 410 Gone";
                break;
            default:
                delivery.Status = DeliveryStatus.Failed;
                delivery.NextAttemptAt = null;
                break;
        }
        if (result.Outcome != AttemptOutcome.Succeeded)
        {
            endpoint.FailingSince ??= delivery.LastAttemptAt ?? now.ToUnixTimeMilliseconds();
            if (disable is null && now.ToUnixTimeMilliseconds() - endpoint.FailingSince >= (long)Options.DisableAfter.TotalMilliseconds)
                disable = $"every delivery failed for {Options.DisableAfter} (since {UnixTime.ToDateTime(endpoint.FailingSince.Value):O})";
        }

        var disabling = disable is not null && endpoint.Enabled;
        if (disabling && delivery.Status == DeliveryStatus.Retrying)
        {
            delivery.Status = DeliveryStatus.Failed;
            delivery.NextAttemptAt = null;
            delivery.Error = WebhookSender.Cut($"{result.Error}; endpoint disabled: {disable}");
        }
        metrics.Attempted(delivery.Status switch { DeliveryStatus.Succeeded => "succeeded", DeliveryStatus.Retrying => "retrying", _ => "failed" });
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        if (disabling)
        {
            endpoint.Enabled = false;
            endpoint.DisabledReason = disable;
            endpoint.UpdatedAt = now.ToUnixTimeMilliseconds();
            await EndpointDisabling.FailOpenDeliveriesAsync(db, endpoint.Id, "endpoint disabled: " + disable, except: delivery.Id, ct);
        }
        await db.SaveChangesAsync(ct);
        await tx.CommitAsync(ct);
        if (disabling)
        {
            await services.GetRequiredService<IPublisher>().Publish(new WebhookEndpointDisabled(endpoint.Id, endpoint.Url, disable!, now), ct);
        }
    }
}

/// <summary>Logs every endpoint the hub disables (the Alarms module may also raise an alarm on it).</summary>
internal sealed class EndpointDisabledLog(ILogger<EndpointDisabledLog> log) : INotificationHandler<WebhookEndpointDisabled>
{
    public ValueTask Handle(WebhookEndpointDisabled n, CancellationToken ct)
    {
        log.LogWarning("Webhook endpoint {EndpointId} ({Url}) disabled: {Reason}", n.EndpointId, n.Url, n.Reason);
        return ValueTask.CompletedTask;
    }
}

/// <summary>What disabling an endpoint does to its open deliveries: they fail now rather than wait (a replay of the time
/// range sends them once it is enabled again).</summary>
internal static class EndpointDisabling
{
    public static Task<int> FailOpenDeliveriesAsync(HubDb db, long endpointId, string reason, long except, CancellationToken ct) =>
        db.Set<WebhookDelivery>()
            .Where(d => d.EndpointId == endpointId && d.Id != except && (d.Status == DeliveryStatus.Pending || d.Status == DeliveryStatus.Retrying))
            .ExecuteUpdateAsync(s => s.SetProperty(d => d.Status, DeliveryStatus.Failed).SetProperty(d => d.NextAttemptAt, (long?)null)
                .SetProperty(d => d.Error, reason), ct);
}
