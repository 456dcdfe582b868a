// Composes the host: configuration sources, Kestrel listeners and every module, by name.
using IoTHub.Aggregation;
using IoTHub.Alarms;
using IoTHub.Commands;
using IoTHub.Connectivity;
using IoTHub.Devices;
using IoTHub.Firmware;
using IoTHub.Gateway;
using IoTHub.Observability;
using IoTHub.Storage;
using IoTHub.Validation;
using IoTHub.Web;
using IoTHub.Webhooks;

namespace IoTHub;

/// <summary>The host: one ASP.NET Core application that is the MQTT broker, the HTTP API, the store and the web UI.
/// <c>Program.cs</c> runs it; the tests start it in-process.</summary>
public static class HubApp
{
    /// <summary>Builds the host with every module, ready to run.</summary>
    /// <param name="args">Command-line arguments; they override <c>appsettings.json</c> and <c>IOTHUB_</c> environment
    /// variables (CONTRACT.md, "Running").</param>
    /// <param name="configure">Runs after configuration is loaded and before the modules are added: a test host changes
    /// settings or replaces services here.</param>
    public static WebApplication Build(string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions
        {
            Args = args,
            // The one appsettings.json is linked next to the binary; data stays relative to the working directory.
            ContentRootPath = AppContext.BaseDirectory,
            // The static web assets manifest is named after the host assembly, also when a test process hosts it.
            ApplicationName = typeof(HubApp).Assembly.GetName().Name,
        });
        builder.Configuration.AddEnvironmentVariables("IOTHUB_");
        // Serves the UI's assets (Radzen's, app.css) from the build output too, not only from a published folder.
        builder.WebHost.UseStaticWebAssets();
        builder.Configuration.AddCommandLine(args);
        configure?.Invoke(builder);
        var startupLogs = StartupLogFilter.AddTo(builder);

        builder.Services.AddMediator((Mediator.MediatorOptions o) =>
        {
            o.Namespace = "IoTHub.Mediation";
            o.ServiceLifetime = ServiceLifetime.Scoped;
            o.GenerateTypesAsInternal = true;
        });
        builder.Services.AddProblemDetails();
        builder.Services.ConfigureHttpJsonOptions(o => o.SerializerOptions.DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.Never);

        // The order below is the order hosted services start in, and the reverse of the order they stop in. The telemetry
        // stages start downstream first and stop upstream first, so that nothing is ever handed to a stage that is not
        // running and every stage drains what it holds before the one after it stops:
        //   start: schema → telemetry writer → presence writer → validation → window tracker → alarm evaluator → stored MQTT sessions,
        //          connection tracker → MQTT broker (devices may send from here on)
        //   stop:  broker (clients disconnected, their presence recorded) → connection tracker → validation drains into
        //          the writer's channels → presence writer drains → telemetry writer commits what is left.
        // The window tracker and other consumers of committed batches never hold the writer up (CommittedFeed).
        // tests/IoTHub.Tests/Architecture/StageOrderTests.cs keeps this true.
        builder.Services.AddStorage(builder.Configuration);
        builder.Services.AddDevices(builder.Configuration);
        builder.Services.AddValidation(builder.Configuration);
        builder.Services.AddAggregation(builder.Configuration);
        builder.Services.AddAlarms(builder.Configuration);
        builder.Services.AddGateway(builder.Configuration);
        builder.Services.AddCommands(builder.Configuration);
        builder.Services.AddFirmware(builder.Configuration);
        builder.Services.AddConnectivity(builder.Configuration);
        builder.Services.AddWebhooks(builder.Configuration);
        builder.Services.AddObservability(builder.Configuration);
        builder.Services.AddWeb(builder.Configuration);
        builder.Services.AddHttpContextAccessor();
        builder.WebHost.UseConnectivityListeners(builder.Configuration);
        // The listeners above already honour --urls. Kestrel would also bind what "urls" (or HTTP_PORTS, which the aspnet
        // container image sets) names, and warn that it is "Overriding address(es)" with the listeners. An empty "urls"
        // falls back to the value the host captured from the command line when it was created; ";" names no address.
        builder.WebHost.UseSetting(WebHostDefaults.ServerUrlsKey, ";");
        builder.WebHost.UseSetting(WebHostDefaults.HttpPortsKey, "");
        builder.WebHost.UseSetting(WebHostDefaults.HttpsPortsKey, "");

        var app = builder.Build();
        app.Lifetime.ApplicationStarted.Register(startupLogs.Started);
        // Ready once every listener is up: MQTTnet starts the broker's after the host has started.
        app.Lifetime.ApplicationStarted.Register(() =>
            ConnectivityModule.ListenersUp(app.Services).ContinueWith(_ => startupLogs.Ready(), TaskScheduler.Default));
        app.UseExceptionHandler();
        app.UseStatusCodePages();
        app.UseGateway();
        app.UseConnectivity();

        var api = app.MapGroup("/api/v1").RequireAuthorization("viewer");
        app.MapGateway(api);
        app.MapDevices(api);
        app.MapConnectivity(api);
        app.MapAggregation(api);
        app.MapAlarms(api);
        app.MapStorage(api);
        app.MapCommands(api);
        app.MapFirmware(api);
        app.MapWebhooks(api);
        app.MapObservability();
        app.MapWeb();
        return app;
    }
}
