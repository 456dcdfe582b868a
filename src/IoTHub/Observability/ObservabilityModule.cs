using System.Text.Json;
using IoTHub.Contracts;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace IoTHub.Observability;

/// <summary>The Observability module: health checks, the Prometheus exporter, the OpenAPI document and its Swagger UI,
/// and the throttle for repeatable log lines.</summary>
public static class ObservabilityModule
{
    /// <summary>Registers health checks, the log throttle (section <c>LogThrottle</c>), the Prometheus exporter and OpenAPI.</summary>
    public static IServiceCollection AddObservability(this IServiceCollection services, IConfiguration config)
    {
        services.AddHealthChecks();
        // Lines an outsider can repeat (refused logins, connections, publishes) are written once per interval and key.
        services.AddOptions<LogThrottleOptions>().BindConfiguration(LogThrottleOptions.SectionName)
            .ValidateDataAnnotations().ValidateOnStart();
        services.AddSingleton<LogThrottle>();
        services.AddSingleton<PrometheusExporter>();
        services.AddHostedService<NativeHeapTrim>();
        services.AddOpenApi(ApiDescription.Configure);
        return services;
    }

    /// <summary>Maps, without authentication: <c>/health/live</c>, <c>/health/ready</c> (database and broker;
    /// <c>{"status", "checks": {name: {"status", "description"}}}</c>, 503 when unhealthy), <c>/metrics</c> (Prometheus text
    /// format 0.0.4), <c>/openapi/v1.json</c> and Swagger UI at <c>/docs</c>.</summary>
    public static IEndpointRouteBuilder MapObservability(this IEndpointRouteBuilder app)
    {
        app.MapHealthChecks("/health/live", new HealthCheckOptions { Predicate = _ => false, ResponseWriter = WriteAsync }).AllowAnonymous();
        app.MapHealthChecks("/health/ready", new HealthCheckOptions { Predicate = c => c.Tags.Contains("ready"), ResponseWriter = WriteAsync }).AllowAnonymous();
        // Created at start so that counters are listened to from the first message on.
        var exporter = app.ServiceProvider.GetRequiredService<PrometheusExporter>();
        // The API description (every endpoint with its summary and responses), readable without a login.
        app.MapOpenApi("/openapi/{documentName}.json").AllowAnonymous();
        if (app is IApplicationBuilder builder)
        {
            builder.UseSwaggerUI(o =>
            {
                o.RoutePrefix = "docs";
                o.DocumentTitle = "IoTHub API";
                o.SwaggerEndpoint("/openapi/v1.json", "IoTHub v1");
                o.EnableTryItOutByDefault();
                o.DisplayRequestDuration();
            });
        }
        app.MapGet("/metrics", () => Results.Text(exporter.Render(), "text/plain; version=0.0.4")).AllowAnonymous().ExcludeFromDescription();
        return app;
    }

    /// <summary><c>{"status": "Healthy", "checks": {"database": {"status", "description"}, ...}}</c></summary>
    private static Task WriteAsync(HttpContext http, HealthReport report)
    {
        http.Response.ContentType = "application/json";
        return http.Response.WriteAsync(JsonSerializer.Serialize(new
        {
            status = report.Status.ToString(),
            checks = report.Entries.ToDictionary(e => e.Key, e => new { status = e.Value.Status.ToString(), description = e.Value.Description }),
        }));
    }
}
