using FluentValidation;
using IoTHub.Gateway.ApiKeys;
using IoTHub.Gateway.Audit;
using IoTHub.Gateway.RateLimits;
using IoTHub.Gateway.Auth;
using IoTHub.Gateway.Users;
using IoTHub.Contracts;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.DataProtection.KeyManagement;
using Microsoft.AspNetCore.Identity;

namespace IoTHub.Gateway;

/// <summary>The Gateway module: users, API keys, roles, cookie and bearer authentication, rate limits and the audit log.</summary>
public static class GatewayModule
{
    /// <summary>Registers authentication (API key, bearer token, the UI's cookie), the role policies <c>viewer</c>,
    /// <c>operator</c> and <c>admin</c>, rate limits, the audit trail and the first admin's bootstrap.</summary>
    public static IServiceCollection AddGateway(this IServiceCollection services, IConfiguration config)
    {
        // U+0000 in any JSON string of a request body is a 400 (PostgreSQL text cannot hold it).
        // Numbers are finite (JSON has no NaN or ∞) and a date-time without an offset is UTC, wherever the hub runs.
        // A name given twice in one object is refused, in JsonNode-typed fields (params, desired state) too.
        services.ConfigureHttpJsonOptions(o =>
        {
            o.SerializerOptions.Converters.Add(new Input.NulGuard.StringConverter());
            o.SerializerOptions.Converters.Add(new Input.FiniteNumbers.DoubleConverter());
            o.SerializerOptions.Converters.Add(new IsoTime.JsonConverter());
            o.SerializerOptions.Converters.Add(new Input.StrictJsonNodes());
            o.SerializerOptions.AllowDuplicateProperties = false; // a name twice in one object is a 400 (Contracts/RepeatedNames)
            // Free-form values are taken at most 32 deep (Contracts/FreeFormJson); one stored deeper before that rule, put
            // in a response's envelope, is still written rather than failing every read of it (the default is 64).
            o.SerializerOptions.MaxDepth = 128;
        });
        // A request that cannot be bound is a 400 naming the field or query parameter, not a bare one.
        services.Configure<Microsoft.AspNetCore.Routing.RouteHandlerOptions>(o => o.ThrowOnBadRequest = true);
        services.AddExceptionHandler<Input.BadRequestProblems>();
        services.AddOptions<BootstrapOptions>().BindConfiguration(BootstrapOptions.SectionName);
        services.AddSingleton<IPasswordHasher<User>, PasswordHasher<User>>();
        var dataDirectory = Path.GetFullPath(config["DataDirectory"] is { Length: > 0 } dir ? dir : "data");
        services.AddDataProtection().SetApplicationName("IoTHub");
        // As PersistKeysToFileSystem, but the keys (which sign the UI's cookies) are readable by the hub's user only.
        services.AddOptions<KeyManagementOptions>().Configure<ILoggerFactory>((o, loggers) =>
            o.XmlRepository = new PrivateKeyRing(dataDirectory, loggers));
        services.AddSingleton<CredentialVerifier>();
        services.AddSingleton<LoginThrottle>();
        services.AddSingleton<IAppKeyVerifier>(sp => sp.GetRequiredService<CredentialVerifier>());
        services.AddHostedService<AdminBootstrap>();
        services.AddHostedService<KeyUseRecorder>();
        services.AddValidatorsFromAssemblyContaining<CreateUserValidator>(ServiceLifetime.Singleton,
            filter: r => r.ValidatorType.Namespace!.StartsWith("IoTHub.Gateway", StringComparison.Ordinal), includeInternalTypes: true);

        services.AddApiRateLimits();
        services.AddSingleton<AuditTrail>();
        services.AddAuthentication(CookieLogin.Selector)
            .AddScheme<Microsoft.AspNetCore.Authentication.AuthenticationSchemeOptions, HubAuthenticationHandler>(HubAuthenticationHandler.SchemeName, null)
            .AddHubCookie();
        services.AddAntiforgery();
        services.AddAuthorizationBuilder()
            .AddPolicy("viewer", p => p.RequireRole(Roles.All))
            .AddPolicy("operator", p => p.RequireRole(Roles.Operator, Roles.Admin))
            .AddPolicy("admin", p => p.RequireRole(Roles.Admin));
        return services;
    }

    /// <summary>Adds the request pipeline's gate, in this order: the U+0000 guard (400), authentication, the audit trail,
    /// authorization (401, 403), antiforgery for cookie-authenticated API writes (400), rate limiting (429).</summary>
    public static WebApplication UseGateway(this WebApplication app)
    {
        app.Use(Input.NulGuard.InvokeAsync);
        app.UseAuthentication();
        // Before authorization, so refused attempts (401, 403, 429) are in the audit log too.
        var audit = app.Services.GetRequiredService<AuditTrail>();
        app.Use((http, next) => audit.InvokeAsync(http, next));
        app.UseAuthorization();
        app.UseAntiforgery();
        app.Use(CookieLogin.GuardAsync);
        app.UseRateLimiter();
        return app;
    }

    /// <summary>Maps <c>/auth/token</c>, <c>/users</c>, <c>/api-keys</c> and <c>/audit</c> on <paramref name="api"/>, and the
    /// UI's <c>/auth/login</c> and <c>/auth/logout</c> at the root.</summary>
    public static IEndpointRouteBuilder MapGateway(this IEndpointRouteBuilder app, RouteGroupBuilder api)
    {
        IssueTokenHandler.Map(api);
        UsersHandler.Map(api);
        ApiKeysHandler.Map(api);
        ListAuditHandler.Map(api);
        CookieLogin.Map(app);
        return app;
    }
}
