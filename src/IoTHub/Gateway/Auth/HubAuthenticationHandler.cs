// One scheme for the REST API: `X-Api-Key: <key>` for apps or `Authorization: Bearer <token>` for scripts.
using System.Security.Claims;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using IoTHub.Contracts;
using Microsoft.Extensions.Options;

namespace IoTHub.Gateway.Auth;

internal sealed class HubAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> options, ILoggerFactory logger, UrlEncoder encoder, CredentialVerifier verifier)
    : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    public const string SchemeName = "Hub";

    protected override async Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        Caller? caller;
        if (Request.Headers.TryGetValue("X-Api-Key", out var key))
        {
            caller = await verifier.ApiKeyAsync(key.ToString(), Context.RequestAborted);
            if (caller is null) return AuthenticateResult.Fail("invalid or revoked API key");
        }
        else if (Request.Headers.Authorization.ToString() is { } auth && auth.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            // Device endpoints read their own bearer device token; here a bearer is a user's access token.
            if (Context.GetEndpoint()?.Metadata.GetMetadata<DeviceAuthenticatedEndpoint>() is not null) return AuthenticateResult.NoResult();
            caller = await verifier.BearerAsync(auth["Bearer ".Length..].Trim(), Context.RequestAborted);
            if (caller is null) return AuthenticateResult.Fail("invalid or expired bearer token");
        }
        else
        {
            return AuthenticateResult.NoResult();
        }
        var identity = new ClaimsIdentity(
            [new Claim(ClaimTypes.Name, caller.Name), new Claim(ClaimTypes.Role, caller.Role), new Claim("kind", caller.Kind),
                new Claim("sub", caller.Id.ToString(System.Globalization.CultureInfo.InvariantCulture))], SchemeName);
        return AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(identity), SchemeName));
    }
}
