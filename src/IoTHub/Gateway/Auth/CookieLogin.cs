// The web UI's sign-in: a form post to /auth/login sets an HttpOnly, SameSite=Strict cookie (12 h, sliding);
// /auth/logout clears it. Both forms carry an antiforgery token. The REST API accepts the cookie too, but a
// state-changing API call made with it must also carry an antiforgery token (header RequestVerificationToken),
// so another site cannot borrow a signed-in browser.
using System.Security.Claims;
using IoTHub.Gateway.Users;
using IoTHub.Storage;
using Microsoft.AspNetCore.Antiforgery;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.Cookies;
using Microsoft.AspNetCore.Identity;
using Microsoft.AspNetCore.Mvc;

namespace IoTHub.Gateway.Auth;

internal static class CookieLogin
{
    public const string Scheme = CookieAuthenticationDefaults.AuthenticationScheme;
    /// <summary>Picks the scheme per request: API credentials in headers go to the hub scheme, everything else to the cookie.</summary>
    public const string Selector = "HubOrCookie";

    public static AuthenticationBuilder AddHubCookie(this AuthenticationBuilder auth) => auth
        .AddCookie(Scheme, o =>
        {
            o.Cookie.Name = "iothub.auth";
            o.Cookie.HttpOnly = true;
            o.Cookie.SameSite = SameSiteMode.Strict;
            o.Cookie.SecurePolicy = CookieSecurePolicy.SameAsRequest;
            o.ExpireTimeSpan = TimeSpan.FromHours(12);
            o.SlidingExpiration = true;
            o.LoginPath = "/login";
            o.AccessDeniedPath = "/login";
            // The API answers with status codes, not redirects to the login page.
            o.Events.OnRedirectToLogin = ctx => Answer(ctx, StatusCodes.Status401Unauthorized);
            o.Events.OnRedirectToAccessDenied = ctx => Answer(ctx, StatusCodes.Status403Forbidden);
        })
        .AddPolicyScheme(Selector, "API credentials or the UI cookie", o => o.ForwardDefaultSelector = http =>
            http.Request.Headers.ContainsKey("X-Api-Key") || http.Request.Headers.Authorization.Count > 0 ? HubAuthenticationHandler.SchemeName : Scheme);

    private static Task Answer(RedirectContext<CookieAuthenticationOptions> ctx, int status)
    {
        if (ctx.Request.Path.StartsWithSegments("/api")) ctx.Response.StatusCode = status;
        else ctx.Response.Redirect(ctx.RedirectUri);
        return Task.CompletedTask;
    }

    /// <summary>State-changing API calls authenticated by the cookie need a valid antiforgery token.</summary>
    public static async Task GuardAsync(HttpContext http, RequestDelegate next)
    {
        if (http.User.Identity is { IsAuthenticated: true, AuthenticationType: Scheme } && http.Request.Path.StartsWithSegments("/api")
            && !HttpMethods.IsGet(http.Request.Method) && !HttpMethods.IsHead(http.Request.Method) && !HttpMethods.IsOptions(http.Request.Method)
            && !await http.RequestServices.GetRequiredService<IAntiforgery>().IsRequestValidAsync(http))
        {
            await Results.Problem(statusCode: 400, title: "Antiforgery token missing or invalid",
                detail: "A state-changing call signed in with the UI cookie must send the RequestVerificationToken header.").ExecuteAsync(http);
            return;
        }
        await next(http);
    }

    public static void Map(IEndpointRouteBuilder app)
    {
        app.MapPost("/auth/login", async ([FromForm] string? username, [FromForm] string? password, [FromForm] string? returnUrl, HttpContext http,
                HubDb db, IPasswordHasher<User> hasher, LoginThrottle throttle, CancellationToken ct) =>
            {
                if (username is { Length: <= 200 }) http.Items[Audit.AuditItems.Actor] = username;
                var back = returnUrl is { Length: > 0 } r && r.StartsWith('/') && !r.StartsWith("//", StringComparison.Ordinal) && !r.StartsWith("/\\", StringComparison.Ordinal) ? r : "/";
                var outcome = await throttle.CheckAsync(username, http.Connection.RemoteIpAddress,
                    c => IssueTokenHandler.VerifyPasswordAsync(db, hasher, username, password, c), ct);
                if (outcome.RetryAfter is { } after)
                    return Results.Redirect($"/login?retryAfter={(int)after.TotalSeconds}&returnUrl=" + Uri.EscapeDataString(back));
                if (outcome.Caller is not { } user) return Results.Redirect("/login?failed=1&returnUrl=" + Uri.EscapeDataString(back));
                await db.SaveChangesAsync(ct); // a rehashed password
                var identity = new ClaimsIdentity(
                [
                    new Claim(ClaimTypes.Name, user.Username), new Claim(ClaimTypes.Role, user.Role), new Claim("kind", "user"),
                    new Claim("sub", user.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)),
                ], Scheme);
                await http.SignInAsync(Scheme, new ClaimsPrincipal(identity));
                return Results.Redirect(back);
            })
            .AllowAnonymous().ExcludeFromDescription().WithName("SignIn");

        app.MapPost("/auth/logout", async (HttpContext http) =>
            {
                await http.SignOutAsync(Scheme);
                return Results.Redirect("/login");
            })
            .AllowAnonymous().ExcludeFromDescription().WithName("SignOut");
    }
}
