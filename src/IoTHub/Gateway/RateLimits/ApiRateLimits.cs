// Request rates for the REST API (ASP.NET Core's rate limiter): a sliding one-second window per API key, per user,
// and per client address for callers without credentials. Device endpoints are limited per device by Connectivity.
//
// Not a token bucket: .NET's TokenBucketRateLimiter, replenished by the partitioned limiter's 100 ms heartbeat, does
// not move its replenishment clock while the bucket is full, so the first heartbeat after an idle client drains it
// refills the whole bucket at once: a burst of twice the limit (11 password guesses in 0.6 s with a limit of 5). A
// sliding window counts what it let through in the last second and gives a permit back only when it leaves it.
using System.ComponentModel.DataAnnotations;
using System.Security.Claims;
using System.Threading.RateLimiting;
using IoTHub.Contracts;
using Microsoft.AspNetCore.RateLimiting;

namespace IoTHub.Gateway.RateLimits;

/// <summary>Section <c>RateLimits</c>: requests per second, counted over a sliding window (a burst spends the whole second's budget).</summary>
/// <summary>Section <c>RateLimits</c>: how many API requests a caller may make (excess: 429 with <c>Retry-After</c>, RFC 6585
/// §4) and how failed sign-ins are slowed down. Device endpoints are limited per device instead
/// (<c>Connectivity:DeviceMessagesPerSecond</c>).</summary>
public sealed class RateLimitOptions
{
    /// <summary>The configuration section: <c>RateLimits</c>.</summary>
    public const string SectionName = "RateLimits";

    /// <summary>Requests a second per API key (CONTRACT.md, "Limits": 50), over a sliding one-second window.</summary>
    [Range(1, 1_000_000)]
    public int ApiKeyRequestsPerSecond { get; set; } = 50;

    /// <summary>Requests a second per signed-in user (bearer token or the UI's cookie), over a sliding one-second window.</summary>
    [Range(1, 1_000_000)]
    public int UserRequestsPerSecond { get; set; } = 50;

    /// <summary>Per client IP address, for requests without credentials (logins, health checks, OpenAPI).</summary>
    [Range(1, 1_000_000)]
    public int AnonymousRequestsPerSecond { get; set; } = 20;

    /// <summary>After a failed sign-in (token endpoint or UI form), the next one for that username and the next one from
    /// that address wait this long before their password is checked, doubling per further failure; 0 turns it off.</summary>
    [Range(0, 60_000)]
    public int FailedLoginDelayMilliseconds { get; set; } = 500;

    /// <summary>The longest such wait. A right password gets in after at most this, however many guesses are made at
    /// its username; an address whose queued attempts would wait longer gets 429 with Retry-After.</summary>
    [Range(0, 600_000)]
    public int FailedLoginMaxDelayMilliseconds { get; set; } = 10_000;
}

internal static class ApiRateLimits
{
    private static readonly LogKind<string, int> Rejected = new(LogLevel.Warning, "requests over the rate limit",
        "Refused a request of {Caller} with 429: more than {Limit} requests a second");

    public static IServiceCollection AddApiRateLimits(this IServiceCollection services)
    {
        services.AddOptions<RateLimitOptions>().BindConfiguration(RateLimitOptions.SectionName).ValidateDataAnnotations()
            .Validate(o => o.FailedLoginMaxDelayMilliseconds >= o.FailedLoginDelayMilliseconds,
                "RateLimits:FailedLoginMaxDelayMilliseconds must be at least RateLimits:FailedLoginDelayMilliseconds")
            .ValidateOnStart();
        services.AddRateLimiter(o =>
        {
            o.GlobalLimiter = PartitionedRateLimiter.Create<HttpContext, string>(http =>
            {
                if (http.GetEndpoint()?.Metadata.GetMetadata<DeviceAuthenticatedEndpoint>() is not null)
                    return RateLimitPartition.GetNoLimiter("device"); // limited per device after its token is checked
                var (key, perSecond) = PartitionOf(http);
                // Four segments of 250 ms: the heartbeat (every 100 ms) moves the window on at the first beat 250 ms
                // after the last move, so a second's window lasts 1.0-1.2 s, never less.
                return RateLimitPartition.GetSlidingWindowLimiter(key, _ => new SlidingWindowRateLimiterOptions
                {
                    PermitLimit = perSecond, Window = TimeSpan.FromSeconds(1), SegmentsPerWindow = 4,
                    QueueLimit = 0, AutoReplenishment = true,
                });
            });
            o.OnRejected = async (context, ct) =>
            {
                var http = context.HttpContext;
                http.Response.StatusCode = StatusCodes.Status429TooManyRequests;
                http.Response.Headers.RetryAfter = context.Lease.TryGetMetadata(MetadataName.RetryAfter, out var after)
                    ? Math.Max(1, (int)Math.Ceiling(after.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture) : "1";
                var (key, perSecond) = PartitionOf(http);
                http.RequestServices.GetRequiredService<LogThrottle>().Write(http.RequestServices.GetRequiredService<ILogger<RateLimitOptions>>(),
                    Rejected, key, http.User.Identity?.Name ?? http.Connection.RemoteIpAddress?.ToString() ?? "?", perSecond);
                await Results.Problem(statusCode: 429, title: "Too many requests", detail: "Slow down; see Retry-After.").ExecuteAsync(http);
            };
        });
        return services;
    }

    /// <summary>Whose budget a request spends: its API key, its user, or else its client address; and that budget.</summary>
    private static (string Key, int PerSecond) PartitionOf(HttpContext http)
    {
        var limits = http.RequestServices.GetRequiredService<Microsoft.Extensions.Options.IOptions<RateLimitOptions>>().Value;
        return http.User.FindFirstValue("kind") switch
        {
            "apikey" => ("k:" + http.User.FindFirstValue("sub"), limits.ApiKeyRequestsPerSecond),
            "user" => ("u:" + http.User.FindFirstValue("sub"), limits.UserRequestsPerSecond),
            _ => ("a:" + http.Connection.RemoteIpAddress, limits.AnonymousRequestsPerSecond),
        };
    }
}
