// Composes the host: configuration sources, Kestrel listeners and every module, by name.
using IoTHub.Aggregation;
using IoTHub.Commands;
using IoTHub.Connectivity;
using IoTHub.Devices;
using IoTHub.Gateway;
using IoTHub.Observability;
using IoTHub.Storage;
using IoTHub.Validation;
using IoTHub.Web;

namespace IoTHub;

public static class HubApp
{
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

        builder.Services.AddStorage(builder.Configuration);
        builder.Services.AddDevices(builder.Configuration);
        builder.Services.AddValidation(builder.Configuration);
        builder.Services.AddAggregation(builder.Configuration);
        builder.Services.AddGateway(builder.Configuration);
        builder.Services.AddCommands(builder.Configuration);
        builder.Services.AddConnectivity(builder.Configuration);
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
        app.UseExceptionHandler();
        app.UseStatusCodePages();
        app.UseGateway();
        app.UseConnectivity();

        var api = app.MapGroup("/api/v1").RequireAuthorization("viewer");
        app.MapGateway(api);
        app.MapDevices(api);
        app.MapConnectivity(api);
        app.MapValidation(api);
        app.MapAggregation(api);
        app.MapStorage(api);
        app.MapCommands(api);
        app.MapObservability();
        app.MapWeb();
        return app;
    }
}
