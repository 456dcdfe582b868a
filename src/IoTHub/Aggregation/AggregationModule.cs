using IoTHub.Contracts;

namespace IoTHub.Aggregation;

/// <summary>The Aggregation module: tumbling windows (1m, 1h, 1d) on event time over committed telemetry, their
/// <c>WindowClosed</c> and <c>WindowCorrected</c> notifications, and <c>GET /api/v1/windows/recent</c>.</summary>
public static class AggregationModule
{
    /// <summary>Registers the window tracker (a hosted service) and binds section <c>Aggregation</c>; invalid times stop the
    /// host at start.</summary>
    public static IServiceCollection AddAggregation(this IServiceCollection services, IConfiguration config)
    {
        services.AddOptions<AggregationOptions>().BindConfiguration(AggregationOptions.SectionName)
            .Validate(o => o.AllowedLateness >= TimeSpan.Zero && o.IdleClose >= TimeSpan.Zero, "Aggregation times must not be negative")
            .Validate(o => o.TickInterval >= TimeSpan.FromMilliseconds(50), "Aggregation:TickInterval must be at least 50 ms")
            .ValidateOnStart();
        services.AddSingleton<RecentWindows>();
        services.AddSingleton<WindowTracker>();
        services.AddHostedService(sp => sp.GetRequiredService<WindowTracker>());
        return services;
    }

    /// <summary>Maps <c>GET /windows/recent?deviceId=&amp;limit=</c> (limit 1-1000, default 100) on <paramref name="api"/>:
    /// <c>{"items": [WindowEvent], "next": null}</c>, newest first.</summary>
    public static IEndpointRouteBuilder MapAggregation(this IEndpointRouteBuilder app, RouteGroupBuilder api)
    {
        api.MapGet("/windows/recent", (string? deviceId, int? limit, RecentWindows recent) =>
                TypedResults.Ok(new Page<WindowEvent>(recent.Latest(deviceId, Math.Clamp(limit ?? 100, 1, 1000)), null)))
            .WithName("RecentWindows").WithSummary("The latest closed and corrected window aggregates, newest first").WithTags("Telemetry");
        return app;
    }
}
