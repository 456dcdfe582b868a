// The delivery log of an endpoint, and sending again: one delivery, every message of a time range, or a test event.
// A replay is a new delivery of the same outbox message, so it carries the same webhook-id and body as the first.
using FluentValidation;
using IoTHub.Contracts;
using IoTHub.Storage;
using IoTHub.Webhooks.Dispatch;
using IoTHub.Webhooks.ManageEndpoints;
using Mediator;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;

namespace IoTHub.Webhooks.Deliveries;

/// <summary>One delivery of one message to one endpoint, with its last attempt.</summary>
/// <param name="Id">The delivery's id, increasing; the cursor of the next page.</param>
/// <param name="MessageId">The message's id: the <c>webhook-id</c> header, the same on retries and replays.</param>
/// <param name="Type">The event type.</param>
/// <param name="Attempt">Attempts made so far.</param>
/// <param name="Status"><c>pending</c> (not tried yet), <c>retrying</c>, <c>succeeded</c> or <c>failed</c> (given up).</param>
/// <param name="ResponseStatus">The receiver's HTTP status at the last attempt, or null (none yet, or no answer).</param>
/// <param name="DurationMs">How long the last attempt took, in milliseconds.</param>
/// <param name="Error">Why the last attempt failed, or null.</param>
/// <param name="NextAttemptAt">When it is tried next (pending or retrying), else null.</param>
/// <param name="CreatedAt">When the delivery was created (the message dispatched, or the replay asked for).</param>
/// <param name="LastAttemptAt">When the last attempt started, or null.</param>
public sealed record DeliveryView(long Id, string MessageId, string Type, int Attempt, string Status, int? ResponseStatus, int? DurationMs, string? Error,
    DateTimeOffset? NextAttemptAt, DateTimeOffset CreatedAt, DateTimeOffset? LastAttemptAt);

/// <summary>An endpoint's deliveries, newest first: <c>GET /api/v1/webhooks/{id}/deliveries?cursor=&amp;limit=</c>. Null when there is no such endpoint.</summary>
/// <param name="EndpointId">The endpoint.</param>
/// <param name="Cursor">The <c>next</c> of the previous page: deliveries with a smaller id.</param>
/// <param name="Limit">Deliveries per page (1-1000, default 100).</param>
public sealed record ListDeliveriesQuery(long EndpointId, long? Cursor, int Limit) : IRequest<Page<DeliveryView>?>;

/// <summary>Sends a delivery's message again to its endpoint, as a new delivery with the same <c>webhook-id</c>.</summary>
public sealed record ReplayDeliveryCommand(long EndpointId, long DeliveryId) : IRequest<ReplayResult>;

/// <summary>The body of <c>POST /api/v1/webhooks/{id}/replay</c>: every message the endpoint subscribes to that happened
/// in [<paramref name="From"/>, <paramref name="To"/>), as far back as <c>Webhooks:LogRetention</c> keeps them.</summary>
/// <param name="From">Start, inclusive (ISO 8601).</param>
/// <param name="To">End, exclusive (ISO 8601); after <paramref name="From"/>.</param>
public sealed record ReplayRangeRequest(DateTimeOffset? From, DateTimeOffset? To);

/// <summary>Replays a time range to an endpoint.</summary>
public sealed record ReplayRangeCommand(long EndpointId, DateTimeOffset From, DateTimeOffset To) : IRequest<ReplayResult>;

/// <summary>Sends a <c>webhook.test</c> event to one endpoint, through the same path as every event.</summary>
public sealed record SendTestEventCommand(long EndpointId) : IRequest<ReplayResult>;

/// <summary>How a replay or test ended.</summary>
public enum ReplayOutcome
{
    /// <summary>Queued: the result lists the new deliveries (HTTP 202).</summary>
    Queued,
    /// <summary>No such endpoint or delivery (HTTP 404).</summary>
    NotFound,
    /// <summary>The endpoint is disabled: enable it first (HTTP 409).</summary>
    EndpointDisabled,
}

/// <summary>The outcome of a replay or test, and the deliveries it queued.</summary>
public sealed record ReplayResult(ReplayOutcome Outcome, IReadOnlyList<DeliveryView> Deliveries);

/// <summary>The response to a replay or test (202): <c>{"queued", "deliveries"}</c>; a range lists at most its first 100.</summary>
/// <param name="Queued">How many deliveries were queued.</param>
/// <param name="Deliveries">The new deliveries (follow them in the delivery log).</param>
public sealed record ReplayResponse(int Queued, IReadOnlyList<DeliveryView> Deliveries);

internal sealed class ReplayRangeValidator : AbstractValidator<ReplayRangeRequest>
{
    public ReplayRangeValidator()
    {
        RuleFor(x => x.From).NotNull();
        RuleFor(x => x.To).NotNull().GreaterThan(x => x.From).WithMessage("to must be after from");
    }
}

internal sealed class DeliveriesHandler(HubDb db, DeliverySignal signal, TimeProvider time)
    : IRequestHandler<ListDeliveriesQuery, Page<DeliveryView>?>, IRequestHandler<ReplayDeliveryCommand, ReplayResult>,
      IRequestHandler<ReplayRangeCommand, ReplayResult>, IRequestHandler<SendTestEventCommand, ReplayResult>
{
    public async ValueTask<Page<DeliveryView>?> Handle(ListDeliveriesQuery q, CancellationToken ct)
    {
        if (!await db.Set<WebhookEndpoint>().AnyAsync(e => e.Id == q.EndpointId, ct)) return null;
        var rows = db.Set<WebhookDelivery>().AsNoTracking().Where(d => d.EndpointId == q.EndpointId);
        if (q.Cursor is { } c) rows = rows.Where(d => d.Id < c);
        var page = await rows.OrderByDescending(d => d.Id).Take(q.Limit + 1).ToListAsync(ct);
        var items = page.Take(q.Limit).Select(View).ToList();
        return new Page<DeliveryView>(items, page.Count > q.Limit ? items[^1].Id.ToString(System.Globalization.CultureInfo.InvariantCulture) : null);
    }

    public async ValueTask<ReplayResult> Handle(ReplayDeliveryCommand c, CancellationToken ct)
    {
        if (await EndpointAsync(c.EndpointId, ct) is { } refused) return refused;
        var original = await db.Set<WebhookDelivery>().AsNoTracking().FirstOrDefaultAsync(d => d.Id == c.DeliveryId && d.EndpointId == c.EndpointId, ct);
        if (original is null) return new ReplayResult(ReplayOutcome.NotFound, []);
        return await QueueAsync(c.EndpointId, [(original.OutboxId, original.MessageId, original.Type)], ct);
    }

    public async ValueTask<ReplayResult> Handle(ReplayRangeCommand c, CancellationToken ct)
    {
        if (await EndpointAsync(c.EndpointId, ct) is { } refused) return refused;
        var endpoint = await db.Set<WebhookEndpoint>().AsNoTracking().FirstAsync(e => e.Id == c.EndpointId, ct);
        var from = c.From.ToUnixTimeMilliseconds();
        var to = c.To.ToUnixTimeMilliseconds();
        // Only what was fanned out already: what is still in the outbox reaches the endpoint anyway.
        var messages = await db.Set<OutboxMessage>().AsNoTracking()
            .Where(m => m.OccurredAt >= from && m.OccurredAt < to && m.DispatchedAt != null && m.Type != HubEventTypes.Test)
            .OrderBy(m => m.Id).Select(m => new { m.Id, m.MessageId, m.Type }).ToListAsync(ct);
        return await QueueAsync(c.EndpointId, messages.Where(m => endpoint.Subscribes(m.Type)).Select(m => (m.Id, m.MessageId, m.Type)).ToList(), ct);
    }

    public async ValueTask<ReplayResult> Handle(SendTestEventCommand c, CancellationToken ct)
    {
        if (await EndpointAsync(c.EndpointId, ct) is { } refused) return refused;
        var now = time.GetUtcNow();
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        // Dispatched at once: it goes to this endpoint only, not to every endpoint that takes all types.
        var message = Outbox.Add(db, HubEventTypes.Test, new { endpointId = c.EndpointId, message = "A test event sent from IoTHub" }, now);
        message.DispatchedAt = now.ToUnixTimeMilliseconds();
        await db.SaveChangesAsync(ct);
        var result = await QueueAsync(c.EndpointId, [(message.Id, message.MessageId, message.Type)], ct);
        await tx.CommitAsync(ct);
        signal.Set();
        return result;
    }

    private async Task<ReplayResult?> EndpointAsync(long id, CancellationToken ct) =>
        await db.Set<WebhookEndpoint>().AsNoTracking().Where(e => e.Id == id).Select(e => (bool?)e.Enabled).FirstOrDefaultAsync(ct) switch
        {
            null => new ReplayResult(ReplayOutcome.NotFound, []),
            false => new ReplayResult(ReplayOutcome.EndpointDisabled, []),
            true => null,
        };

    private async Task<ReplayResult> QueueAsync(long endpointId, IReadOnlyList<(long OutboxId, string MessageId, string Type)> messages, CancellationToken ct)
    {
        var now = time.NowMs();
        var rows = messages.Select(m => new WebhookDelivery
        {
            EndpointId = endpointId, OutboxId = m.OutboxId, MessageId = m.MessageId, Type = m.Type, Status = DeliveryStatus.Pending,
            NextAttemptAt = now, CreatedAt = now,
        }).ToList();
        db.AddRange(rows);
        await db.SaveChangesAsync(ct);
        signal.Set();
        return new ReplayResult(ReplayOutcome.Queued, rows.Select(View).ToList());
    }

    internal static DeliveryView View(WebhookDelivery d) => new(d.Id, d.MessageId, d.Type, d.Attempt, d.Status switch
        {
            DeliveryStatus.Pending => "pending",
            DeliveryStatus.Retrying => "retrying",
            DeliveryStatus.Succeeded => "succeeded",
            _ => "failed",
        }, d.ResponseStatus, d.DurationMs, d.Error, d.Status is DeliveryStatus.Pending or DeliveryStatus.Retrying ? UnixTime.ToDateTime(d.NextAttemptAt) : null,
        UnixTime.ToDateTime(d.CreatedAt), UnixTime.ToDateTime(d.LastAttemptAt));

    public static void Map(RouteGroupBuilder hooks)
    {
        hooks.MapGet("/webhooks/{id:long}/deliveries", async Task<Results<Ok<Page<DeliveryView>>, ValidationProblem, NotFoundProblem>> (long id, long? cursor, int? limit,
                IMediator m, CancellationToken ct) =>
            {
                if (PageLimit.Check(limit, 100, 1000, out var n) is { } badLimit) return badLimit;
                return await m.Send(new ListDeliveriesQuery(id, cursor, n), ct) is { } page ? TypedResults.Ok(page) : ManageWebhooksHandler.NotFound(id);
            })
            .WithName("ListWebhookDeliveries").WithSummary("An endpoint's delivery log, newest first: attempts, response status, duration, error, next attempt");
        hooks.MapPost("/webhooks/{id:long}/deliveries/{deliveryId:long}/replay", async Task<Results<Accepted<ReplayResponse>, NotFoundProblem, ConflictProblem>> (long id,
                long deliveryId, IMediator m, CancellationToken ct) => Answer(id, await m.Send(new ReplayDeliveryCommand(id, deliveryId), ct), $"Delivery {deliveryId} of webhook {id} not found"))
            .WithName("ReplayWebhookDelivery").WithSummary("Send one delivery's message again (same webhook-id)");
        hooks.MapPost("/webhooks/{id:long}/replay", async Task<Results<Accepted<ReplayResponse>, ValidationProblem, NotFoundProblem, ConflictProblem>> (long id,
                ReplayRangeRequest body, IValidator<ReplayRangeRequest> validator, IMediator m, CancellationToken ct) =>
            {
                var v = await validator.ValidateAsync(body, ct);
                if (!v.IsValid) return TypedResults.ValidationProblem(v.ToDictionary());
                var r = await m.Send(new ReplayRangeCommand(id, body.From!.Value, body.To!.Value), ct);
                return r.Outcome switch
                {
                    ReplayOutcome.Queued => TypedResults.Accepted($"/api/v1/webhooks/{id}/deliveries", new ReplayResponse(r.Deliveries.Count, r.Deliveries.Take(100).ToList())),
                    ReplayOutcome.EndpointDisabled => Disabled(id),
                    _ => ManageWebhooksHandler.NotFound(id),
                };
            })
            .WithName("ReplayWebhookRange").WithSummary("Send again every message of a time range that the endpoint subscribes to (same webhook-ids)");
        hooks.MapPost("/webhooks/{id:long}/test", async Task<Results<Accepted<ReplayResponse>, NotFoundProblem, ConflictProblem>> (long id, IMediator m, CancellationToken ct) =>
                Answer(id, await m.Send(new SendTestEventCommand(id), ct), null))
            .WithName("TestWebhook").WithSummary("Send a webhook.test event to this endpoint through the normal delivery path");
    }

    private static Results<Accepted<ReplayResponse>, NotFoundProblem, ConflictProblem> Answer(long id, ReplayResult r, string? notFound) => r.Outcome switch
    {
        ReplayOutcome.Queued => TypedResults.Accepted($"/api/v1/webhooks/{id}/deliveries", new ReplayResponse(r.Deliveries.Count, r.Deliveries.Take(100).ToList())),
        ReplayOutcome.EndpointDisabled => Disabled(id),
        _ => notFound is not null ? new NotFoundProblem(notFound) : ManageWebhooksHandler.NotFound(id),
    };

    private static ConflictProblem Disabled(long id) => new($"Webhook {id} is disabled", "Enable it first: PATCH {\"enabled\": true}.");
}
