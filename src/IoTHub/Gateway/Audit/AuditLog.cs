// The audit log: every state-changing API call (who, what, on which target, when, from where, with what result),
// written after the call completes and readable by admins at GET /audit. Bodies are never recorded, so no
// password, token or key can reach it.
using IoTHub.Contracts;
using IoTHub.Storage;
using Mediator;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;
using System.Security.Claims;

namespace IoTHub.Gateway.Audit;

internal sealed class AuditEntry
{
    public long Id { get; set; }
    public long At { get; set; }
    public string Actor { get; set; } = "";
    public string ActorKind { get; set; } = "";
    public string? Role { get; set; }
    public string Action { get; set; } = "";
    public string? Target { get; set; }
    public string Method { get; set; } = "";
    public string Path { get; set; } = "";
    public int Status { get; set; }
    public string? RemoteAddress { get; set; }
}

internal sealed class AuditEntryConfiguration : IEntityTypeConfiguration<AuditEntry>
{
    public void Configure(EntityTypeBuilder<AuditEntry> b)
    {
        b.ToTable("audit_log");
        b.HasKey(x => x.Id);
        b.Property(x => x.Id).HasColumnName("id").ValueGeneratedOnAdd();
        b.Property(x => x.At).HasColumnName("at");
        b.Property(x => x.Actor).HasColumnName("actor").HasMaxLength(200);
        b.Property(x => x.ActorKind).HasColumnName("actor_kind").HasMaxLength(16);
        b.Property(x => x.Role).HasColumnName("role").HasMaxLength(16);
        b.Property(x => x.Action).HasColumnName("action").HasMaxLength(100);
        b.Property(x => x.Target).HasColumnName("target").HasMaxLength(300);
        b.Property(x => x.Method).HasColumnName("method").HasMaxLength(10);
        b.Property(x => x.Path).HasColumnName("path").HasMaxLength(500);
        b.Property(x => x.Status).HasColumnName("status");
        b.Property(x => x.RemoteAddress).HasColumnName("remote_address").HasMaxLength(64);
        b.HasIndex(x => x.At);
        b.HasIndex(x => new { x.Actor, x.Id });
    }
}

/// <summary>One audit entry, an item of <c>GET /api/v1/audit</c>: a state-changing API call or UI action. Bodies are never
/// recorded.</summary>
/// <param name="Id">The entry's id, increasing; the cursor of the next page.</param>
/// <param name="At">When the call completed (ISO 8601 UTC).</param>
/// <param name="Actor">The username, <c>apikey:{name}</c>, or for an anonymous call the username it tried (a sign-in) or
/// <c>anonymous</c>.</param>
/// <param name="ActorKind"><c>user</c>, <c>apikey</c> or <c>anonymous</c>.</param>
/// <param name="Role">The caller's role, or null when anonymous.</param>
/// <param name="Action">The endpoint's name, e.g. <c>CreateDevice</c>, <c>RevokeApiKey</c> (the OpenAPI operationId).</param>
/// <param name="Target">The route values, e.g. <c>id=sensor-1</c>, or null.</param>
/// <param name="Method">The HTTP method, or <c>UI</c> for an action taken in the web UI.</param>
/// <param name="Path">The request path (at most 500 characters).</param>
/// <param name="Status">The HTTP status answered (for UI actions 200 or 400).</param>
/// <param name="RemoteAddress">The client's IP address, or null.</param>
public sealed record AuditView(long Id, DateTimeOffset At, string Actor, string ActorKind, string? Role, string Action, string? Target,
    string Method, string Path, int Status, string? RemoteAddress);

/// <summary>A page of the audit log, newest first: <c>GET /api/v1/audit?actor=&amp;action=&amp;from=&amp;to=&amp;cursor=&amp;limit=</c> (admin).</summary>
/// <param name="Actor">Only entries of this actor (exact).</param>
/// <param name="Action">Only entries of this action (exact).</param>
/// <param name="From">Only entries at or after this time.</param>
/// <param name="To">Only entries before this time.</param>
/// <param name="Cursor">The <c>next</c> of the previous page: entries with a smaller id.</param>
/// <param name="Limit">Entries per page (the endpoint allows 1-1000, default 100).</param>
public sealed record ListAuditQuery(string? Actor, string? Action, DateTimeOffset? From, DateTimeOffset? To, long? Cursor, int Limit) : IRequest<Page<AuditView>>;

/// <summary>Endpoints set this item to name the account a request acted for when no one is signed in (a login attempt).</summary>
internal static class AuditItems
{
    public const string Actor = "iothub.audit.actor";
}

internal sealed class AuditTrail(ILogger<AuditTrail> log)
{
    private static readonly string[] Mutating = ["POST", "PUT", "PATCH", "DELETE"];

    public async Task InvokeAsync(HttpContext http, RequestDelegate next)
    {
        await next(http);
        var endpoint = http.GetEndpoint();
        if (!Mutating.Contains(http.Request.Method) || endpoint is null || endpoint.Metadata.GetMetadata<DeviceAuthenticatedEndpoint>() is not null) return;
        if (!http.Request.Path.StartsWithSegments("/api", StringComparison.OrdinalIgnoreCase) && !http.Request.Path.StartsWithSegments("/auth", StringComparison.OrdinalIgnoreCase)) return;
        var user = http.User;
        var signedIn = user.Identity?.IsAuthenticated == true;
        var target = string.Join(' ', http.Request.RouteValues.Where(kv => kv.Value is string).Select(kv => $"{kv.Key}={kv.Value}"));
        var entry = new AuditEntry
        {
            At = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(),
            Actor = Truncate(signedIn ? user.Identity!.Name ?? "?" : http.Items[AuditItems.Actor] as string ?? "anonymous", 200),
            ActorKind = signedIn ? user.FindFirstValue("kind") ?? "user" : "anonymous",
            Role = user.FindFirstValue(ClaimTypes.Role),
            Action = endpoint.Metadata.GetMetadata<IEndpointNameMetadata>()?.EndpointName ?? http.Request.Method,
            Target = target.Length == 0 ? null : Truncate(target, 300),
            Method = http.Request.Method,
            Path = Truncate(http.Request.Path.Value ?? "", 500),
            Status = http.Response.StatusCode,
            RemoteAddress = http.Connection.RemoteIpAddress?.ToString(),
        };
        try
        {
            await using var scope = http.RequestServices.GetRequiredService<IServiceScopeFactory>().CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<HubDb>();
            db.Add(entry);
            await db.SaveChangesAsync(CancellationToken.None);
        }
        catch (Exception ex)
        {
            log.LogError(ex, "Could not write the audit entry for {Action} by {Actor} ({Status})", entry.Action, entry.Actor, entry.Status);
        }
    }

    private static string Truncate(string s, int max) => s.Length <= max ? s : s[..max];
}

internal sealed class ListAuditHandler(HubDb db, TimeProvider time) : IRequestHandler<ListAuditQuery, Page<AuditView>>, IRequestHandler<RecordAuditEntry, Unit>
{
    public async ValueTask<Unit> Handle(RecordAuditEntry r, CancellationToken ct)
    {
        db.Add(new AuditEntry
        {
            At = time.NowMs(), Actor = r.Actor, ActorKind = r.ActorKind, Role = r.Role, Action = r.Action, Target = r.Target,
            Method = "UI", Path = r.Path, Status = r.Status, RemoteAddress = r.RemoteAddress,
        });
        await db.SaveChangesAsync(ct);
        return Unit.Value;
    }

    public async ValueTask<Page<AuditView>> Handle(ListAuditQuery q, CancellationToken ct)
    {
        var rows = db.Set<AuditEntry>().AsNoTracking();
        if (!string.IsNullOrWhiteSpace(q.Actor)) rows = rows.Where(e => e.Actor == q.Actor);
        if (!string.IsNullOrWhiteSpace(q.Action)) rows = rows.Where(e => e.Action == q.Action);
        if (q.From is { } from) rows = rows.Where(e => e.At >= from.ToUnixTimeMilliseconds());
        if (q.To is { } to) rows = rows.Where(e => e.At < to.ToUnixTimeMilliseconds());
        if (q.Cursor is { } before) rows = rows.Where(e => e.Id < before);
        var page = await rows.OrderByDescending(e => e.Id).Take(q.Limit + 1).ToListAsync(ct);
        var items = page.Take(q.Limit).Select(e => new AuditView(e.Id, UnixTime.ToDateTime(e.At), e.Actor, e.ActorKind, e.Role, e.Action, e.Target,
            e.Method, e.Path, e.Status, e.RemoteAddress)).ToList();
        return new Page<AuditView>(items, page.Count > q.Limit ? items[^1].Id.ToString(System.Globalization.CultureInfo.InvariantCulture) : null);
    }

    public static void Map(RouteGroupBuilder api) =>
        api.MapGet("/audit", async Task<Results<Ok<Page<AuditView>>, ValidationProblem>> (string? actor, string? action, DateTimeOffset? from,
                DateTimeOffset? to, long? cursor, int? limit, IMediator m, CancellationToken ct) =>
            {
                if (PageLimit.Check(limit, 100, 1000, out var n) is { } badLimit) return badLimit;
                return TypedResults.Ok(await m.Send(new ListAuditQuery(actor, action, from, to, cursor, n), ct));
            })
            .RequireAuthorization("admin")
            .WithName("ListAudit").WithSummary("Who changed what, when and from where; newest first (admin)").WithTags("Audit");
}
