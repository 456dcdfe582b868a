// Request rates for the REST API (ASP.NET Core's rate limiter): a token bucket per API key, per user, and per
// client address for callers without credentials. Device endpoints are limited per device by Connectivity.
using System.ComponentModel.DataAnnotations;
using System.Security.Claims;
using System.Threading.RateLimiting;
using IoTHub.Contracts;
using Microsoft.AspNetCore.RateLimiting;

namespace IoTHub.Gateway.RateLimits;

/// <summary>Section <c>RateLimits</c>: requests per second (bursts up to the same number).</summary>
public sealed class RateLimitOptions
{
    public const string SectionName = "RateLimits";

    [Range(1, 1_000_000)]
    public int ApiKeyRequestsPerSecond { get; set; } = 50;

    [Range(1, 1_000_000)]
    public int UserRequestsPerSecond { get; set; } = 50;

    /// <summary>Per client IP address, for requests without credentials (logins, health checks, OpenAPI).</summary>
    [Range(1, 1_000_000)]
    public int AnonymousRequestsPerSecond { get; set; } = 20;
}

internal static class ApiRateLimits
{
    public static IServiceCollection AddApiRateLimits(this IServiceCollection services)
    {
        services.AddOptions<RateLimitOptions>().BindConfiguration(RateLimitOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();
        services.AddRateLimiter(o =>
        {
            o.GlobalLimiter = PartitionedRateLimiter.Create<HttpContext, string>(http =>
            {
                if (http.GetEndpoint()?.Metadata.GetMetadata<DeviceAuthenticatedEndpoint>() is not null)
                    return RateLimitPartition.GetNoLimiter("device"); // limited per device after its token is checked
                var limits = http.RequestServices.GetRequiredService<Microsoft.Extensions.Options.IOptions<RateLimitOptions>>().Value;
                var kind = http.User.FindFirstValue("kind");
                var (key, perSecond) = kind switch
                {
                    "apikey" => ("k:" + http.User.FindFirstValue("sub"), limits.ApiKeyRequestsPerSecond),
                    "user" => ("u:" + http.User.FindFirstValue("sub"), limits.UserRequestsPerSecond),
                    _ => ("a:" + http.Connection.RemoteIpAddress, limits.AnonymousRequestsPerSecond),
                };
                return RateLimitPartition.GetTokenBucketLimiter(key, _ => new TokenBucketRateLimiterOptions
                {
                    TokenLimit = perSecond, TokensPerPeriod = perSecond, ReplenishmentPeriod = TimeSpan.FromSeconds(1),
                    QueueLimit = 0, AutoReplenishment = true,
                });
            });
            o.OnRejected = async (context, ct) =>
            {
                var http = context.HttpContext;
                http.Response.StatusCode = StatusCodes.Status429TooManyRequests;
                http.Response.Headers.RetryAfter = context.Lease.TryGetMetadata(MetadataName.RetryAfter, out var after)
                    ? Math.Max(1, (int)Math.Ceiling(after.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture) : "1";
                await Results.Problem(statusCode: 429, title: "Too many requests", detail: "Slow down; see Retry-After.").ExecuteAsync(http);
            };
        });
        return services;
    }
}
