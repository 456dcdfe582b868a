using IoTHub.Contracts;

namespace IoTHub.Aggregation;

public static class AggregationModule
{
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

    public static IEndpointRouteBuilder MapAggregation(this IEndpointRouteBuilder app, RouteGroupBuilder api)
    {
        api.MapGet("/windows/recent", (string? deviceId, int? limit, RecentWindows recent) =>
                TypedResults.Ok(new Page<WindowEvent>(recent.Latest(deviceId, Math.Clamp(limit ?? 100, 1, 1000)), null)))
            .WithName("RecentWindows").WithSummary("The latest closed and corrected window aggregates, newest first").WithTags("Telemetry");
        return app;
    }
}
