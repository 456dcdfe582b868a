// Admins register, list, change, delete webhook endpoints and rotate their secrets. The secret is in the response to
// create and to rotate-secret only; it is stored encrypted (WebhookEndpoint.cs) and never listed or logged.
using FluentValidation;
using IoTHub.Contracts;
using IoTHub.Storage;
using IoTHub.Webhooks.Dispatch;
using IoTHub.Webhooks.Network;
using IoTHub.Webhooks.Signing;
using Mediator;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace IoTHub.Webhooks.ManageEndpoints;

/// <summary>The body of <c>POST /api/v1/webhooks</c> (admin). Invalid fields answer 400 naming them.</summary>
/// <param name="Url">Where deliveries are POSTed: an absolute http or https URL, at most 2048 characters; loopback,
/// private and link-local addresses are refused unless <c>Webhooks:AllowPrivateNetworks</c> is true.</param>
/// <param name="EventTypes">The event types to receive (see <see cref="HubEventTypes.All"/>); empty or absent = all
/// (except <c>webhook.test</c>, which only the test button sends).</param>
/// <param name="Description">What it is for, at most 500 characters.</param>
/// <param name="Enabled">False registers it paused; default true.</param>
public sealed record CreateWebhookRequest(string? Url, IReadOnlyList<string>? EventTypes, string? Description, bool? Enabled) : IRequest<CreatedWebhook>;

/// <summary>The only response with the new endpoint's secret (201 to <c>POST /api/v1/webhooks</c>).</summary>
/// <param name="Webhook">The endpoint as <c>GET</c> shows it.</param>
/// <param name="Secret">The signing secret, <c>whsec_</c> and base64 of 32 random bytes (Standard Webhooks). It cannot be
/// shown again; rotate it if it is lost.</param>
public sealed record CreatedWebhook(WebhookView Webhook, string Secret);

/// <summary>An endpoint as the API shows it (never its secret).</summary>
/// <param name="Id">Its id.</param>
/// <param name="Url">Where deliveries go.</param>
/// <param name="EventTypes">Subscribed types; empty = all.</param>
/// <param name="Description">What it is for, or null.</param>
/// <param name="Enabled">False: nothing is sent to it.</param>
/// <param name="DisabledReason">Why the hub disabled it (410 Gone, failing for a day), or null.</param>
/// <param name="FailingSince">Since when every attempt failed (ISO 8601 UTC), or null while it succeeds.</param>
/// <param name="PreviousSecretExpiresAt">After a rotation: until when the old secret also signs, or null.</param>
/// <param name="CreatedAt">When it was registered.</param>
/// <param name="UpdatedAt">When it was last changed.</param>
public sealed record WebhookView(long Id, string Url, IReadOnlyList<string> EventTypes, string? Description, bool Enabled, string? DisabledReason,
    DateTimeOffset? FailingSince, DateTimeOffset? PreviousSecretExpiresAt, DateTimeOffset CreatedAt, DateTimeOffset UpdatedAt);

/// <summary>The body of <c>PATCH /api/v1/webhooks/{id}</c>: absent (null) fields stay as they are.</summary>
/// <param name="Url">A new URL (same rules as on create).</param>
/// <param name="EventTypes">New subscribed types, replacing the old; empty = all.</param>
/// <param name="Description">A new description.</param>
/// <param name="Enabled">False pauses it (its pending deliveries fail; replay a time range to resend them); true
/// re-enables it and forgets why it was disabled.</param>
public sealed record UpdateWebhookRequest(string? Url, IReadOnlyList<string>? EventTypes, string? Description, bool? Enabled);

/// <summary>Applies <paramref name="Changes"/> to endpoint <paramref name="Id"/>; null when there is none.</summary>
public sealed record UpdateWebhookCommand(long Id, UpdateWebhookRequest Changes) : IRequest<WebhookView?>;

/// <summary>Every endpoint in id order, a page at a time: <c>GET /api/v1/webhooks?cursor=&amp;limit=</c>.</summary>
/// <param name="Cursor">The <c>next</c> of the previous page.</param>
/// <param name="Limit">Endpoints per page (1-1000, default 100).</param>
public sealed record ListWebhooksQuery(long? Cursor, int Limit) : IRequest<Page<WebhookView>>;

/// <summary>One endpoint, or null.</summary>
public sealed record GetWebhookQuery(long Id) : IRequest<WebhookView?>;

/// <summary>Deletes an endpoint and its delivery log; false when there is none.</summary>
public sealed record DeleteWebhookCommand(long Id) : IRequest<bool>;

/// <summary>Makes a new secret for an endpoint; the old one keeps signing for <c>Webhooks:SecretRotationGrace</c>. Null when there is no such endpoint.</summary>
public sealed record RotateWebhookSecretCommand(long Id) : IRequest<RotatedWebhookSecret?>;

/// <summary>The response to <c>POST /api/v1/webhooks/{id}/rotate-secret</c>: the only time the new secret is shown.</summary>
/// <param name="Secret">The new secret (<c>whsec_...</c>).</param>
/// <param name="PreviousSecretExpiresAt">Until when deliveries also carry a signature made with the old secret, or null
/// when the grace period is 0.</param>
public sealed record RotatedWebhookSecret(string Secret, DateTimeOffset? PreviousSecretExpiresAt);

internal sealed class CreateWebhookValidator : AbstractValidator<CreateWebhookRequest>
{
    public CreateWebhookValidator(IOptions<WebhooksOptions> options)
    {
        RuleFor(x => x.Url).NotEmpty().MaximumLength(2048).Custom((url, ctx) =>
        {
            if (WebhookTarget.CheckUrl(url, options.Value.AllowPrivateNetworks) is { } problem) ctx.AddFailure("url", problem);
        });
        RuleFor(x => x.EventTypes).Must(KnownTypes.AreKnown).WithMessage(KnownTypes.Message);
        RuleFor(x => x.Description).MaximumLength(500);
    }
}

internal sealed class UpdateWebhookValidator : AbstractValidator<UpdateWebhookRequest>
{
    public UpdateWebhookValidator(IOptions<WebhooksOptions> options)
    {
        RuleFor(x => x.Url).MaximumLength(2048).Custom((url, ctx) =>
        {
            if (url is not null && WebhookTarget.CheckUrl(url, options.Value.AllowPrivateNetworks) is { } problem) ctx.AddFailure("url", problem);
        });
        RuleFor(x => x.EventTypes).Must(KnownTypes.AreKnown).WithMessage(KnownTypes.Message);
        RuleFor(x => x.Description).MaximumLength(500);
    }
}

internal static class KnownTypes
{
    public static readonly string Message = "eventTypes must be among " + string.Join(", ", HubEventTypes.All);

    public static bool AreKnown(IReadOnlyList<string>? types) => types is null || types.All(t => HubEventTypes.All.Contains(t));
}

internal sealed class ManageWebhooksHandler(HubDb db, WebhookSecrets secrets, IOptions<WebhooksOptions> options, TimeProvider time, IPublisher publisher)
    : IRequestHandler<CreateWebhookRequest, CreatedWebhook>, IRequestHandler<UpdateWebhookCommand, WebhookView?>, IRequestHandler<ListWebhooksQuery, Page<WebhookView>>,
      IRequestHandler<GetWebhookQuery, WebhookView?>, IRequestHandler<DeleteWebhookCommand, bool>, IRequestHandler<RotateWebhookSecretCommand, RotatedWebhookSecret?>
{
    public async ValueTask<CreatedWebhook> Handle(CreateWebhookRequest r, CancellationToken ct)
    {
        var secret = WebhookSignature.NewSecret();
        var now = time.NowMs();
        var row = new WebhookEndpoint
        {
            Url = r.Url!, EventTypes = WebhookEndpoint.JoinTypes(r.EventTypes), Description = r.Description, Enabled = r.Enabled ?? true,
            ProtectedSecret = secrets.Protect(secret), CreatedAt = now, UpdatedAt = now,
        };
        db.Add(row);
        await db.SaveChangesAsync(ct);
        return new CreatedWebhook(View(row), secret);
    }

    public async ValueTask<WebhookView?> Handle(UpdateWebhookCommand c, CancellationToken ct)
    {
        var row = await db.Set<WebhookEndpoint>().FirstOrDefaultAsync(e => e.Id == c.Id, ct);
        if (row is null) return null;
        var ch = c.Changes;
        if (ch.Url is not null) row.Url = ch.Url;
        if (ch.EventTypes is not null) row.EventTypes = WebhookEndpoint.JoinTypes(ch.EventTypes);
        if (ch.Description is not null) row.Description = ch.Description.Length == 0 ? null : ch.Description;
        var pausing = ch.Enabled == false && row.Enabled;
        var reenabling = ch.Enabled == true && !row.Enabled;
        if (reenabling)
        {
            row.DisabledReason = null;
            row.FailingSince = null;
        }
        if (ch.Enabled is { } enabled) row.Enabled = enabled;
        row.UpdatedAt = time.NowMs();
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        if (pausing) await EndpointDisabling.FailOpenDeliveriesAsync(db, row.Id, "endpoint disabled by an admin", except: 0, ct);
        await db.SaveChangesAsync(ct);
        await tx.CommitAsync(ct);
        if (reenabling) await publisher.Publish(new WebhookEndpointEnabled(row.Id, time.GetUtcNow()), ct);
        return View(row);
    }

    public async ValueTask<Page<WebhookView>> Handle(ListWebhooksQuery q, CancellationToken ct)
    {
        var rows = db.Set<WebhookEndpoint>().AsNoTracking().AsQueryable();
        if (q.Cursor is { } c) rows = rows.Where(e => e.Id > c);
        var page = await rows.OrderBy(e => e.Id).Take(q.Limit + 1).ToListAsync(ct);
        var items = page.Take(q.Limit).Select(View).ToList();
        return new Page<WebhookView>(items, page.Count > q.Limit ? items[^1].Id.ToString(System.Globalization.CultureInfo.InvariantCulture) : null);
    }

    public async ValueTask<WebhookView?> Handle(GetWebhookQuery q, CancellationToken ct) =>
        await db.Set<WebhookEndpoint>().AsNoTracking().FirstOrDefaultAsync(e => e.Id == q.Id, ct) is { } row ? View(row) : null;

    public async ValueTask<bool> Handle(DeleteWebhookCommand c, CancellationToken ct) =>
        await db.Set<WebhookEndpoint>().Where(e => e.Id == c.Id).ExecuteDeleteAsync(ct) > 0;

    public async ValueTask<RotatedWebhookSecret?> Handle(RotateWebhookSecretCommand c, CancellationToken ct)
    {
        var row = await db.Set<WebhookEndpoint>().FirstOrDefaultAsync(e => e.Id == c.Id, ct);
        if (row is null) return null;
        var secret = WebhookSignature.NewSecret();
        var now = time.NowMs();
        var grace = options.Value.SecretRotationGrace;
        row.ProtectedPreviousSecret = grace > TimeSpan.Zero ? row.ProtectedSecret : null;
        row.PreviousSecretUntil = grace > TimeSpan.Zero ? now + (long)grace.TotalMilliseconds : null;
        row.ProtectedSecret = secrets.Protect(secret);
        row.UpdatedAt = now;
        await db.SaveChangesAsync(ct);
        return new RotatedWebhookSecret(secret, UnixTime.ToDateTime(row.PreviousSecretUntil));
    }

    internal WebhookView View(WebhookEndpoint e) => new(e.Id, e.Url, e.TypeList, e.Description, e.Enabled, e.DisabledReason, UnixTime.ToDateTime(e.FailingSince),
        e.PreviousSecretUntil > time.NowMs() ? UnixTime.ToDateTime(e.PreviousSecretUntil) : null, UnixTime.ToDateTime(e.CreatedAt), UnixTime.ToDateTime(e.UpdatedAt));

    public static void Map(RouteGroupBuilder hooks)
    {
        hooks.MapPost("/webhooks", async Task<Results<Created<CreatedWebhook>, ValidationProblem>> (CreateWebhookRequest body, IValidator<CreateWebhookRequest> validator,
                IMediator m, CancellationToken ct) =>
            {
                var v = await validator.ValidateAsync(body, ct);
                if (!v.IsValid) return TypedResults.ValidationProblem(v.ToDictionary());
                var created = await m.Send(body, ct);
                return TypedResults.Created($"/api/v1/webhooks/{created.Webhook.Id}", created);
            })
            .WithName("CreateWebhook").WithSummary("Register a webhook endpoint; its signing secret is shown only in this response");
        hooks.MapGet("/webhooks", async Task<Results<Ok<Page<WebhookView>>, ValidationProblem>> (long? cursor, int? limit, IMediator m, CancellationToken ct) =>
            {
                if (PageLimit.Check(limit, 100, 1000, out var n) is { } badLimit) return badLimit;
                return TypedResults.Ok(await m.Send(new ListWebhooksQuery(cursor, n), ct));
            })
            .WithName("ListWebhooks").WithSummary("Webhook endpoints (never their secrets)");
        hooks.MapGet("/webhooks/{id:long}", async Task<Results<Ok<WebhookView>, NotFoundProblem>> (long id, IMediator m, CancellationToken ct) =>
                await m.Send(new GetWebhookQuery(id), ct) is { } view ? TypedResults.Ok(view) : NotFound(id))
            .WithName("GetWebhook").WithSummary("One webhook endpoint");
        hooks.MapPatch("/webhooks/{id:long}", async Task<Results<Ok<WebhookView>, ValidationProblem, NotFoundProblem>> (long id, UpdateWebhookRequest body,
                IValidator<UpdateWebhookRequest> validator, IMediator m, CancellationToken ct) =>
            {
                var v = await validator.ValidateAsync(body, ct);
                if (!v.IsValid) return TypedResults.ValidationProblem(v.ToDictionary());
                return await m.Send(new UpdateWebhookCommand(id, body), ct) is { } view ? TypedResults.Ok(view) : NotFound(id);
            })
            .WithName("UpdateWebhook").WithSummary("Change a webhook endpoint's URL, event types or description; enable or disable it");
        hooks.MapDelete("/webhooks/{id:long}", async Task<Results<NoContent, NotFoundProblem>> (long id, IMediator m, CancellationToken ct) =>
                await m.Send(new DeleteWebhookCommand(id), ct) ? TypedResults.NoContent() : NotFound(id))
            .WithName("DeleteWebhook").WithSummary("Delete a webhook endpoint and its delivery log");
        hooks.MapPost("/webhooks/{id:long}/rotate-secret", async Task<Results<Ok<RotatedWebhookSecret>, NotFoundProblem>> (long id, IMediator m, CancellationToken ct) =>
                await m.Send(new RotateWebhookSecretCommand(id), ct) is { } rotated ? TypedResults.Ok(rotated) : NotFound(id))
            .WithName("RotateWebhookSecret").WithSummary("Make a new signing secret (shown only in this response); the old one signs too for a grace period");
    }

    internal static NotFoundProblem NotFound(long id) => new($"Webhook {id} not found");
}
