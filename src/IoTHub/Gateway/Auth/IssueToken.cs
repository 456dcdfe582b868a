using FluentValidation;
using IoTHub.Contracts;
using IoTHub.Gateway.Users;
using IoTHub.Storage;
using Mediator;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Identity;
using Microsoft.EntityFrameworkCore;

namespace IoTHub.Gateway.Auth;

/// <summary>The body of <c>POST /api/v1/auth/token</c>: <c>{"username", "password"}</c>, both required (else 400). A wrong
/// pair answers 401; repeated failures wait longer each time, and 429 once an address has too many queued
/// (<c>RateLimits:FailedLogin*</c>).</summary>
/// <param name="Username">A user's name.</param>
/// <param name="Password">Their password.</param>
public sealed record IssueTokenRequest(string? Username, string? Password) : IRequest<IssuedToken?>;

/// <summary>A bearer token for scripts (CONTRACT.md, "Identity"): <c>{"token", "expiresAt"}</c>.</summary>
/// <param name="Token">Send it as <c>Authorization: Bearer {token}</c>; 256 random bits, stored only as a hash.</param>
/// <param name="ExpiresAt">When it stops working: 12 hours after it was issued (ISO 8601 UTC).</param>
public sealed record IssuedToken(string Token, DateTimeOffset ExpiresAt);

internal sealed class IssueTokenHandler(HubDb db, IPasswordHasher<User> hasher, TimeProvider time) : IRequestHandler<IssueTokenRequest, IssuedToken?>
{
    public static readonly TimeSpan Lifetime = TimeSpan.FromHours(12);

    public async ValueTask<IssuedToken?> Handle(IssueTokenRequest r, CancellationToken ct)
    {
        var user = await VerifyPasswordAsync(db, hasher, r.Username, r.Password, ct);
        if (user is null) return null;
        var token = Secret.New();
        var expires = time.GetUtcNow().Add(Lifetime);
        db.Add(new AccessToken { TokenHash = Secret.Hash(token), UserId = user.Id, ExpiresAt = expires.ToUnixTimeMilliseconds() });
        await db.Set<AccessToken>().Where(t => t.ExpiresAt < time.NowMs()).ExecuteDeleteAsync(ct);
        await db.SaveChangesAsync(ct);
        return new IssuedToken(token, expires);
    }

    /// <summary>The user whose password this is (tracked, so a rehash is saved with the caller's changes), or null.</summary>
    internal static async Task<User?> VerifyPasswordAsync(HubDb db, IPasswordHasher<User> hasher, string? username, string? password, CancellationToken ct)
    {
        var user = string.IsNullOrEmpty(username) ? null : await db.Set<User>().FirstOrDefaultAsync(u => u.Username == username, ct);
        if (user is null)
        {
            // Same cost as a real check, so response time does not tell which usernames exist.
            hasher.VerifyHashedPassword(new User(), DummyHash.Value, password ?? "");
            return null;
        }
        var check = hasher.VerifyHashedPassword(user, user.PasswordHash, password ?? "");
        if (check == PasswordVerificationResult.Failed) return null;
        if (check == PasswordVerificationResult.SuccessRehashNeeded) user.PasswordHash = hasher.HashPassword(user, password!);
        return user;
    }

    private static readonly Lazy<string> DummyHash = new(() => new PasswordHasher<User>().HashPassword(new User(), Secret.New()));

    public static void Map(RouteGroupBuilder api) =>
        api.MapPost("/auth/token", async Task<Results<Ok<IssuedToken>, ValidationProblem, UnauthorizedProblem, TooManyRequestsProblem>> (IssueTokenRequest body,
                HttpContext http, IMediator m, LoginThrottle throttle, CancellationToken ct) =>
            {
                if (body.Username is { Length: <= 200 } name) http.Items[Audit.AuditItems.Actor] = name;
                if (string.IsNullOrEmpty(body.Username) || string.IsNullOrEmpty(body.Password))
                    return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["username"] = ["username and password are required"] });
                var outcome = await throttle.CheckAsync(body.Username, http.Connection.RemoteIpAddress, c => m.Send(body, c).AsTask(), ct);
                if (outcome.Caller is { } t) return TypedResults.Ok(t);
                if (outcome.RetryAfter is { } after)
                {
                    http.Response.Headers.RetryAfter = ((int)after.TotalSeconds).ToString(System.Globalization.CultureInfo.InvariantCulture);
                    return new TooManyRequestsProblem("Too many failed sign-ins", "Too many failed sign-ins from this address; see Retry-After.");
                }
                return new UnauthorizedProblem("Wrong username or password");
            })
            .AllowAnonymous()
            .WithName("IssueToken")
            .WithSummary("Exchange a username and password for a bearer token (12 h); after failed attempts the next ones wait (429 when an address has queued too many)")
            .WithTags("Auth");
}
