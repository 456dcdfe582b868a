using FluentValidation;
using IoTHub.Contracts;
using IoTHub.Gateway.Auth;
using IoTHub.Storage;
using Mediator;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;

namespace IoTHub.Gateway.ApiKeys;

/// <summary>Creates an API key for an app: the body of <c>POST /api/v1/api-keys</c> (admin). Invalid fields answer 400.</summary>
/// <param name="Name">Which app or integration it is for, 1-100 characters; shown in the audit log as <c>apikey:{name}</c>.</param>
/// <param name="Role"><c>viewer</c>, <c>operator</c> or <c>admin</c>: what the key may do, over REST and MQTT.</param>
public sealed record CreateApiKeyRequest(string Name, string Role) : IRequest<CreatedApiKey>;

/// <summary>The only response that carries the key itself (201 to <c>POST /api/v1/api-keys</c>):
/// <c>{"id", "name", "role", "key", "createdAt"}</c>.</summary>
/// <param name="Id">The key's id, for revoking it.</param>
/// <param name="Name">Its name.</param>
/// <param name="Role">Its role.</param>
/// <param name="Key">The key: <c>ihk_</c> and 43 base64url characters (256 random bits). Send it as <c>X-Api-Key</c>, or as
/// the MQTT password with username <c>apikey</c>. Only its hash is stored, so it cannot be shown again.</param>
/// <param name="CreatedAt">When it was created (ISO 8601 UTC).</param>
public sealed record CreatedApiKey(long Id, string Name, string Role, string Key, DateTimeOffset CreatedAt);

/// <summary>An API key as <c>GET /api/v1/api-keys</c> lists it: never the key itself.</summary>
/// <param name="Id">The key's id.</param>
/// <param name="Name">Its name.</param>
/// <param name="Role">Its role.</param>
/// <param name="CreatedAt">When it was created (ISO 8601 UTC).</param>
/// <param name="LastUsedAt">When it was last accepted, to within a few seconds (recorded every 5 s); null if never.</param>
/// <param name="RevokedAt">When it was revoked, or null while it works.</param>
public sealed record ApiKeyView(long Id, string Name, string Role, DateTimeOffset CreatedAt, DateTimeOffset? LastUsedAt, DateTimeOffset? RevokedAt);

/// <summary>Every API key, revoked ones too, in creation order, in one page.</summary>
public sealed record ListApiKeysQuery : IRequest<Page<ApiKeyView>>;

/// <summary>Revokes a key at once: it is refused from now on and its live MQTT connections drop. False when no live key
/// has this id (unknown, or revoked already).</summary>
public sealed record RevokeApiKeyCommand(long Id) : IRequest<bool>;

internal sealed class CreateApiKeyValidator : AbstractValidator<CreateApiKeyRequest>
{
    public CreateApiKeyValidator()
    {
        RuleFor(x => x.Name).NotEmpty().MaximumLength(100);
        RuleFor(x => x.Role).Must(Roles.IsValid).WithMessage("role must be admin, operator or viewer");
    }
}

internal sealed class ApiKeysHandler(HubDb db, TimeProvider time, CredentialVerifier verifier, IPublisher publisher)
    : IRequestHandler<CreateApiKeyRequest, CreatedApiKey>, IRequestHandler<ListApiKeysQuery, Page<ApiKeyView>>, IRequestHandler<RevokeApiKeyCommand, bool>
{
    public async ValueTask<CreatedApiKey> Handle(CreateApiKeyRequest r, CancellationToken ct)
    {
        var key = "ihk_" + Secret.New();
        var row = new ApiKey { Name = r.Name, Role = r.Role, KeyHash = Secret.Hash(key), CreatedAt = time.NowMs() };
        db.Add(row);
        await db.SaveChangesAsync(ct);
        return new CreatedApiKey(row.Id, row.Name, row.Role, key, UnixTime.ToDateTime(row.CreatedAt));
    }

    public async ValueTask<Page<ApiKeyView>> Handle(ListApiKeysQuery q, CancellationToken ct)
    {
        var rows = await db.Set<ApiKey>().AsNoTracking().OrderBy(k => k.Id).ToListAsync(ct);
        return new Page<ApiKeyView>(rows.Select(k => new ApiKeyView(k.Id, k.Name, k.Role, UnixTime.ToDateTime(k.CreatedAt),
            UnixTime.ToDateTime(k.LastUsedAt), UnixTime.ToDateTime(k.RevokedAt))).ToList(), null);
    }

    public async ValueTask<bool> Handle(RevokeApiKeyCommand c, CancellationToken ct)
    {
        var now = time.NowMs();
        var n = await db.Set<ApiKey>().Where(k => k.Id == c.Id && k.RevokedAt == null).ExecuteUpdateAsync(s => s.SetProperty(k => k.RevokedAt, now), ct);
        verifier.Forget();
        if (n > 0) await publisher.Publish(new ApiKeyRevoked(c.Id), ct);
        return n > 0;
    }

    public static void Map(RouteGroupBuilder api)
    {
        api.MapPost("/api-keys", async Task<Results<Created<CreatedApiKey>, ValidationProblem>> (CreateApiKeyRequest body,
                IValidator<CreateApiKeyRequest> validator, IMediator m, CancellationToken ct) =>
            {
                var v = await validator.ValidateAsync(body, ct);
                if (!v.IsValid) return TypedResults.ValidationProblem(v.ToDictionary());
                var k = await m.Send(body, ct);
                return TypedResults.Created($"/api/v1/api-keys/{k.Id}", k);
            })
            .RequireAuthorization("admin")
            .WithName("CreateApiKey").WithSummary("Create an API key for an app; the key is shown only in this response").WithTags("API keys");
        api.MapGet("/api-keys", async Task<Ok<Page<ApiKeyView>>> (IMediator m, CancellationToken ct) => TypedResults.Ok(await m.Send(new ListApiKeysQuery(), ct)))
            .RequireAuthorization("admin")
            .WithName("ListApiKeys").WithSummary("API keys with role and last use (never the keys)").WithTags("API keys");
        api.MapDelete("/api-keys/{id:long}", async Task<Results<NoContent, NotFoundProblem>> (long id, IMediator m, CancellationToken ct) =>
                await m.Send(new RevokeApiKeyCommand(id), ct) ? TypedResults.NoContent() : new NotFoundProblem($"API key {id} not found"))
            .RequireAuthorization("admin")
            .WithName("RevokeApiKey").WithSummary("Revoke an API key at once").WithTags("API keys");
    }
}

/// <summary>Writes API keys' last-use times every few seconds (never per request), and once more at stop. Uses taken
/// from memory are written without the stop's token and put back when the write fails: a stop or a database outage
/// in the middle of a write loses none of them.</summary>
internal sealed class KeyUseRecorder(CredentialVerifier verifier, IServiceScopeFactory scopes, ILogger<KeyUseRecorder> log) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(5));
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken)) await FlushAsync();
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        await FlushAsync(); // the uses of the last seconds: the callers (HTTP, broker) have stopped before this service
    }

    private async Task FlushAsync()
    {
        var used = verifier.TakeKeyUse();
        if (used.Count == 0) return;
        try
        {
            await using var scope = scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<HubDb>();
            foreach (var (id, at) in used)
                await db.Set<ApiKey>().Where(k => k.Id == id).ExecuteUpdateAsync(s => s.SetProperty(k => k.LastUsedAt, at), CancellationToken.None);
        }
        catch (Exception ex)
        {
            verifier.ReturnKeyUse(used);
            log.LogWarning(ex, "Could not record API key use; retrying in 5 s");
        }
    }
}
