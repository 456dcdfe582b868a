using IoTHub.Connectivity.Http;
using IoTHub.Connectivity.Mqtt;
using IoTHub.Connectivity.Mqtt.Connect;
using IoTHub.Connectivity.Mqtt.Flow;
using IoTHub.Connectivity.Mqtt.Publish;
using IoTHub.Connectivity.Mqtt.Sessions;
using IoTHub.Connectivity.Mqtt.Subscriptions;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Http.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using MQTTnet.AspNetCore;
using MQTTnet.Server;

namespace IoTHub.Connectivity;

/// <summary>The Connectivity module: the embedded MQTT broker (TCP, TLS, WebSocket) and the HTTP device endpoints; it
/// authenticates devices and apps, applies the topic ACL and rate limits, and turns what devices send into telemetry,
/// state reports and command responses.</summary>
public static class ConnectivityModule
{
    /// <summary>Registers the broker and its parts, binds sections <c>Mqtt</c> and <c>Connectivity</c> (validated at start)
    /// and adds the <c>broker</c> readiness check.</summary>
    public static IServiceCollection AddConnectivity(this IServiceCollection services, IConfiguration config)
    {
        services.AddOptions<MqttOptions>().BindConfiguration(MqttOptions.SectionName).ValidateDataAnnotations()
            .Validate(o => string.IsNullOrEmpty(o.WebSocketPath) || o.WebSocketPath.StartsWith('/'), "Mqtt:WebSocketPath must start with '/' (or be empty to disable)")
            .Validate(o => string.IsNullOrEmpty(o.Host) || System.Net.IPAddress.TryParse(o.Host, out _), "Mqtt:Host must be an IP address")
            .ValidateOnStart();
        services.AddOptions<ConnectivityOptions>().BindConfiguration(ConnectivityOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();
        services.AddSingleton<IngestGate>();
        services.AddSingleton<Http.FirmwareDownloadSlots>();
        services.AddSingleton<AuthThrottle>();
        services.AddSingleton<MqttBroker>();
        services.AddSingleton<MqttConnectionGuard>();
        services.AddSingleton<RefusedConnections>();
        services.AddSingleton<DeviceRateLimiter>();
        services.AddSingleton<ModuleBridge>();
        services.AddSingleton<ConnectAuthentication>();
        services.AddSingleton<InboundPackets>();
        services.AddSingleton<OutboundPackets>();
        services.AddSingleton<PublishHandling>();
        services.AddSingleton<TelemetryIngest>();
        services.AddSingleton<SubscriptionHandling>();
        services.AddSingleton<SessionSubscriptions>();
        services.AddSingleton<SharedSubscriptions>();
        services.AddSingleton<SessionOwnership>();
        services.AddSingleton<ConnectingClients>();
        services.AddSingleton<SessionLifecycle>();
        services.AddSingleton<WillMessages>();
        services.AddSingleton<BrokerLifetime>();
        services.AddSingleton<StoredSessions>();
        services.AddHostedService(sp => sp.GetRequiredService<StoredSessions>());
        services.AddSingleton<ConnectionTracker>();
        services.AddHostedService(sp => sp.GetRequiredService<ConnectionTracker>());
        AddCoap(services);

        var mqtt = config.GetSection(MqttOptions.SectionName).Get<MqttOptions>() ?? new MqttOptions();
        var server = new MqttServerOptionsBuilder().WithoutDefaultEndpoint().WithKeepAlive()
            .WithDefaultCommunicationTimeout(TimeSpan.FromSeconds(mqtt.ConnectTimeoutSeconds))
            // Sessions outlive their connections as MQTT says (the hub ends them when they expire: SessionLifecycle).
            .WithPersistentSessions()
            .WithMaxPendingMessagesPerClient(mqtt.MaxQueuedMessagesPerSession)
            // A full queue refuses the newest message (counted) rather than silently dropping the oldest.
            .WithPendingMessagesOverflowStrategy(MQTTnet.Server.MqttPendingMessagesOverflowStrategy.DropNewMessage)
            .Build();
        // Each connection has its own packet writer. MQTTnet starts it at 4 KB and keeps whatever it grew to up to 64 KB.
        // A device's outbound packets are mostly PUBACKs of a few bytes: starting small and settling back to 4 KB after a
        // large command saves ~40 MB at 10,000 connections. The writer still grows for any packet that needs it.
        server.WriterBufferSize = 256;
        server.WriterBufferSizeMax = 4096;
        services.AddHostedMqttServer(server);
        services.AddHostedService<BrokerShutdown>();
        AddBrokerTier(services, config);
        // Kestrel's socket transport reads up to 1 MiB ahead of what a connection's reader has consumed. When the store
        // is slower than the devices, that is where their messages wait: 200 devices flooding held ~235 MB of pinned
        // buffers. The largest packet plus 64 KiB is enough for MQTTnet to see any whole packet it may receive (and for
        // HTTP, whose request line and headers are limited to 40 KB); beyond it TCP pushes back on the device.
        services.AddOptions<SocketTransportOptions>().Configure<IOptions<MqttOptions>>((o, mqtt) =>
            o.MaxReadBufferSize = mqtt.Value.MaxPacketBytes + 64 * 1024);
        services.AddMqttConnectionHandler();
        services.AddConnections();
        services.AddHealthChecks().AddCheck<BrokerHealthCheck>("broker", tags: ["ready"]);
        return services;
    }

    /// <summary>Section <c>Broker</c>: the embedded broker serves the other modules' messages to devices, or, with
    /// <c>Broker:Mode = RabbitMq</c>, a RabbitMQ cluster does (RabbitMqBroker, started here: after the telemetry stages it
    /// feeds, before nothing else, so it stops first and acknowledges what it took once that has committed).</summary>
    private static void AddBrokerTier(IServiceCollection services, IConfiguration config)
    {
        services.AddOptions<RabbitMq.BrokerOptions>().BindConfiguration(RabbitMq.BrokerOptions.SectionName)
            // Read as text: Connectivity knows Storage only by its database model (architecture test).
            .Validate(b => b.Mode != RabbitMq.BrokerMode.RabbitMq || string.Equals(config["Storage:Provider"], "Postgres", StringComparison.OrdinalIgnoreCase),
                "Broker:Mode RabbitMq needs Storage:Provider Postgres (every hub node shares one database)")
            .Validate(b => b.Mode != RabbitMq.BrokerMode.RabbitMq || RabbitMq.RabbitMqCluster.Problem(config) is null,
                RabbitMq.RabbitMqCluster.Problem(config) ?? "ConnectionStrings:RabbitMq is invalid")
            .ValidateOnStart();
        services.AddOptions<RabbitMq.RabbitMqOptions>().BindConfiguration(RabbitMq.RabbitMqOptions.SectionName).ValidateDataAnnotations()
            .Validate(o => o.AuthAllowedAddresses.All(a => System.Net.IPAddress.TryParse(a, out _)), "RabbitMq:AuthAllowedAddresses must be IP addresses")
            .Validate(o => string.IsNullOrEmpty(o.ManagementUri) || Uri.TryCreate(o.ManagementUri, UriKind.Absolute, out _), "RabbitMq:ManagementUri must be an http(s) URL")
            .ValidateOnStart();
        if (RabbitMq.RabbitMqMode.IsOn(config))
        {
            services.AddSingleton<RabbitMq.RabbitMqCluster>();
            services.AddSingleton<RabbitMq.RabbitMqAuthorization>();
            services.AddSingleton<RabbitMq.RabbitMqManagement>();
            services.AddHttpClient(RabbitMq.RabbitMqManagement.HttpClientName, c => c.Timeout = TimeSpan.FromSeconds(10));
            services.AddSingleton<RabbitMq.RabbitMqBroker>();
            services.AddSingleton<IBrokerLink>(sp => sp.GetRequiredService<RabbitMq.RabbitMqBroker>());
            services.AddHostedService(sp => sp.GetRequiredService<RabbitMq.RabbitMqBroker>());
        }
        else
        {
            services.AddSingleton<IBrokerLink>(sp => sp.GetRequiredService<MqttBroker>());
        }
    }

    /// <summary>The CoAP server (RFC 7252 over UDP), section <c>Coap</c>: it starts after the telemetry stages, like the broker.</summary>
    private static void AddCoap(IServiceCollection services)
    {
        services.AddOptions<Coap.CoapOptions>().BindConfiguration(Coap.CoapOptions.SectionName).ValidateDataAnnotations()
            .Validate(o => string.IsNullOrEmpty(o.Host) || System.Net.IPAddress.TryParse(o.Host, out _), "Coap:Host must be an IP address")
            .Validate(o => o.PiggybackWindow > TimeSpan.Zero && o.PiggybackWindow < o.AckTimeout, "Coap:PiggybackWindow must be above 0 and below Coap:AckTimeout")
            .Validate(o => o.AckTimeout >= TimeSpan.FromMilliseconds(100), "Coap:AckTimeout must be at least 100 ms")
            .Validate(o => o.ExchangeLifetime >= TimeSpan.FromSeconds(1), "Coap:ExchangeLifetime must be at least 1 s")
            .Validate(o => o.IdleTimeout >= TimeSpan.FromSeconds(1), "Coap:IdleTimeout must be at least 1 s")
            .Validate(o => o.DtlsHandshakeTimeout >= TimeSpan.FromSeconds(1) && o.DtlsHandshakeTimeout <= TimeSpan.FromMinutes(10),
                "Coap:DtlsHandshakeTimeout must be between 1 s and 10 minutes")
            .Validate(o => o.Port == 0 || o.Port != o.DtlsPort, "Coap:Port and Coap:DtlsPort must differ")
            .ValidateOnStart();
        services.AddSingleton<Coap.CoapExchanges>();
        services.AddSingleton<Coap.CoapOutbound>();
        services.AddSingleton<Coap.CoapBlockUploads>();
        services.AddSingleton<Coap.CoapObservers>();
        services.AddSingleton<Coap.CoapPresence>();
        services.AddHostedService(sp => sp.GetRequiredService<Coap.CoapPresence>());
        services.AddSingleton<Coap.CoapResources>();
        services.AddSingleton<Coap.CoapDispatcher>();
        services.AddSingleton<Coap.CoapServer>();
        services.AddHostedService(sp => sp.GetRequiredService<Coap.CoapServer>());
        services.AddSingleton<Coap.DtlsServer>();
        services.AddHostedService(sp => sp.GetRequiredService<Coap.DtlsServer>());
    }

    /// <summary>Kestrel's listeners: HTTP on <c>--urls</c>, MQTT on <c>Mqtt:Port</c>, and with a certificate MQTT over TLS and HTTPS.</summary>
    public static IWebHostBuilder UseConnectivityListeners(this IWebHostBuilder web, IConfiguration config) => web.ConfigureHubListeners(config);

    /// <summary>Completes when every device listener is up: the embedded MQTT broker's, which MQTTnet starts after the host
    /// has started (HTTP, CoAP and DTLS are up by then); in RabbitMQ mode at once (the hub listens for devices on HTTP and
    /// CoAP only). Call it once the host has started.</summary>
    public static Task ListenersUp(IServiceProvider services) =>
        services.GetService<RabbitMq.RabbitMqBroker>() is null ? services.GetRequiredService<Mqtt.MqttBroker>().Started : Task.CompletedTask;

    /// <summary>Adds WebSockets to the pipeline and attaches the broker to the MQTT server once the host is built.</summary>
    public static WebApplication UseConnectivity(this WebApplication app)
    {
        app.UseWebSockets();
        var broker = app.Services.GetRequiredService<MqttBroker>();
        app.UseMqttServer(broker.Attach);
        return app;
    }

    /// <summary>Maps MQTT over WebSocket on <c>Mqtt:WebSocketPath</c> (default <c>/mqtt</c>; empty disables it) and the HTTP
    /// device endpoints (<c>/devices/{id}/telemetry</c>, <c>/devices/{id}/state/reported</c>, <c>/devices/{id}/state/desired</c>)
    /// on <paramref name="api"/>.</summary>
    public static IEndpointRouteBuilder MapConnectivity(this IEndpointRouteBuilder app, RouteGroupBuilder api)
    {
        var path = app.ServiceProvider.GetRequiredService<IOptions<MqttOptions>>().Value.WebSocketPath;
        var rabbitMq = RabbitMq.RabbitMqMode.IsOn(app.ServiceProvider.GetRequiredService<IConfiguration>());
        if (rabbitMq) RabbitMq.RabbitMqAuthEndpoints.Map(app);
        if (!string.IsNullOrEmpty(path) && !rabbitMq)
        {
            // MQTTnet's MapMqtt, plus the connection guard the TCP and TLS listeners have: without it a WebSocket client
            // could declare a 256 MB packet (MQTTnet buffers until it has all of it), skip CONNECT, or open unlimited
            // connections from one address. WebSockets only: MQTT has no use for the SSE and long-polling fallbacks.
            var guard = app.ServiceProvider.GetRequiredService<MqttConnectionGuard>();
            var ws = new HttpConnectionDispatcherOptions { Transports = HttpTransportType.WebSockets };
            ws.WebSockets.SubProtocolSelector = MqttSubProtocolSelector.SelectSubProtocol;
            app.MapConnections(path, ws, b => b.Use(guard.Wrap).UseConnectionHandler<MqttConnectionHandler>());
        }
        IngestTelemetryOverHttp.Map(api);
        DeviceStateOverHttp.Map(api);
        FirmwareOverHttp.Map(api);
        return app;
    }
}

/// <summary>MQTTnet's hosted server starts fire-and-forget: ready only once it really has.</summary>
internal sealed class BrokerHealthCheck(MqttServer server, MqttBroker broker, IServiceProvider services) : IHealthCheck
{
    // MqttServer.IsStarted turns true before the listeners are wired; Started completes after.
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(services.GetService<RabbitMq.RabbitMqBroker>() is { } rabbitMq
            ? rabbitMq.IsConnected ? HealthCheckResult.Healthy("connected to RabbitMQ") : HealthCheckResult.Unhealthy("not connected to RabbitMQ")
            : server.IsStarted && broker.Started.IsCompleted
                ? HealthCheckResult.Healthy("MQTT broker started") : HealthCheckResult.Unhealthy("MQTT broker not started"));
}

/// <summary>Disconnects every MQTT client as soon as the host begins to stop, before any hosted service stops.
/// MQTTnet's hosted server stops last (it was registered first), and until then Kestrel, which stops first, waits for
/// its open MQTT connections to close: the whole shutdown timeout went by and the pipeline could not drain. Messages
/// already taken are still committed; their devices, disconnected before the PUBACK, resend them and the store keeps
/// one copy.</summary>
internal sealed class BrokerShutdown(MqttServer server, ConnectionTracker tracker, BrokerLifetime lifetime, ILogger<BrokerShutdown> log) : IHostedLifecycleService
{
    public async Task StoppingAsync(CancellationToken cancellationToken)
    {
        if (!server.IsStarted) return;
        lifetime.Stop(); // disconnects from here on say "server shutting down", and publish no Will
        var clients = (await server.GetClientsAsync()).Count;
        await server.StopAsync(new MqttServerStopOptions
        {
            DefaultClientDisconnectOptions = new MqttServerClientDisconnectOptions
            {
                ReasonCode = MQTTnet.Protocol.MqttDisconnectReasonCode.ServerShuttingDown,
                ReasonString = "the hub is stopping",
            },
        });
        // MQTTnet reports each connection's end on that connection's own task, after StopAsync returns: wait (briefly) for
        // those reports, so that every device's history says "server shutting down" rather than nothing.
        await tracker.WhenNoneOpenAsync(TimeSpan.FromSeconds(5), cancellationToken);
        log.LogInformation("MQTT broker stopped; {Clients} clients disconnected", clients);
    }

    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
