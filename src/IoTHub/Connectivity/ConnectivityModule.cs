using IoTHub.Connectivity.Http;
using IoTHub.Connectivity.Mqtt;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using MQTTnet.AspNetCore;
using MQTTnet.Server;

namespace IoTHub.Connectivity;

public static class ConnectivityModule
{
    public static IServiceCollection AddConnectivity(this IServiceCollection services, IConfiguration config)
    {
        services.AddOptions<MqttOptions>().BindConfiguration(MqttOptions.SectionName).ValidateDataAnnotations()
            .Validate(o => string.IsNullOrEmpty(o.WebSocketPath) || o.WebSocketPath.StartsWith('/'), "Mqtt:WebSocketPath must start with '/' (or be empty to disable)")
            .Validate(o => string.IsNullOrEmpty(o.Host) || System.Net.IPAddress.TryParse(o.Host, out _), "Mqtt:Host must be an IP address")
            .ValidateOnStart();
        services.AddOptions<ConnectivityOptions>().BindConfiguration(ConnectivityOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();
        services.AddSingleton<IngestGate>();
        services.AddSingleton<AuthThrottle>();
        services.AddSingleton<MqttBroker>();
        services.AddSingleton<MqttConnectionGuard>();
        services.AddSingleton<DeviceRateLimiter>();

        var connectTimeout = config.GetValue(MqttOptions.SectionName + ":ConnectTimeoutSeconds", 10);
        var server = new MqttServerOptionsBuilder().WithoutDefaultEndpoint().WithKeepAlive().WithDefaultCommunicationTimeout(TimeSpan.FromSeconds(connectTimeout)).Build();
        // Each connection has its own packet writer. MQTTnet starts it at 4 KB and keeps whatever it grew to up to 64 KB.
        // A device's outbound packets are mostly PUBACKs of a few bytes: starting small and settling back to 4 KB after a
        // large command saves ~40 MB at 10,000 connections. The writer still grows for any packet that needs it.
        server.WriterBufferSize = 256;
        server.WriterBufferSizeMax = 4096;
        services.AddHostedMqttServer(server);
        services.AddMqttConnectionHandler();
        services.AddConnections();
        services.AddHealthChecks().AddCheck<BrokerHealthCheck>("broker", tags: ["ready"]);
        return services;
    }

    public static WebApplication UseConnectivity(this WebApplication app)
    {
        app.UseWebSockets();
        var broker = app.Services.GetRequiredService<MqttBroker>();
        app.UseMqttServer(broker.Attach);
        return app;
    }

    public static IEndpointRouteBuilder MapConnectivity(this IEndpointRouteBuilder app, RouteGroupBuilder api)
    {
        var path = app.ServiceProvider.GetRequiredService<IOptions<MqttOptions>>().Value.WebSocketPath;
        if (!string.IsNullOrEmpty(path)) app.MapMqtt(path);
        IngestTelemetryOverHttp.Map(api);
        DeviceStateOverHttp.Map(api);
        return app;
    }
}

/// <summary>MQTTnet's hosted server starts fire-and-forget: ready only once it really has.</summary>
internal sealed class BrokerHealthCheck(MqttServer server, MqttBroker broker) : IHealthCheck
{
    // MqttServer.IsStarted turns true before the listeners are wired; Started completes after.
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(server.IsStarted && broker.Started.IsCompleted
            ? HealthCheckResult.Healthy("MQTT broker started") : HealthCheckResult.Unhealthy("MQTT broker not started"));
}
