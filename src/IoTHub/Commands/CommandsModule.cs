using FluentValidation;
using IoTHub.Commands.Delivery;
using IoTHub.Commands.ListCommands;
using IoTHub.Commands.SendCommand;
using IoTHub.Commands.State;

namespace IoTHub.Commands;

/// <summary>The Commands module: server-to-device commands with correlation, timeout and queueing, and the device twin
/// (desired and reported state).</summary>
public static class CommandsModule
{
    /// <summary>Registers the command dispatch, the expiry job and the request validators, and binds section <c>Commands</c>;
    /// inconsistent limits stop the host at start.</summary>
    public static IServiceCollection AddCommands(this IServiceCollection services, IConfiguration config)
    {
        services.AddOptions<CommandsOptions>().BindConfiguration(CommandsOptions.SectionName).ValidateDataAnnotations()
            .Validate(o => o.DefaultTimeoutSeconds <= o.MaxTimeoutSeconds, "Commands:DefaultTimeoutSeconds must not exceed MaxTimeoutSeconds")
            .Validate(o => o.DefaultExpirySeconds <= o.MaxExpirySeconds, "Commands:DefaultExpirySeconds must not exceed MaxExpirySeconds")
            .Validate(o => o.ExpiryCheckInterval >= TimeSpan.FromMilliseconds(100), "Commands:ExpiryCheckInterval must be at least 100 ms")
            .ValidateOnStart();
        services.AddSingleton<CommandSignals>();
        services.AddScoped<CommandDispatch>();
        services.AddHostedService<CommandExpiry>();
        services.AddValidatorsFromAssemblyContaining<SendCommandBodyValidator>(ServiceLifetime.Singleton,
            filter: r => r.ValidatorType.Namespace!.StartsWith("IoTHub.Commands", StringComparison.Ordinal), includeInternalTypes: true);
        return services;
    }

    /// <summary>Maps <c>/devices/{id}/commands</c> (send, list, get) and <c>/devices/{id}/state</c> (GET, PUT, PATCH) on <paramref name="api"/>.</summary>
    public static IEndpointRouteBuilder MapCommands(this IEndpointRouteBuilder app, RouteGroupBuilder api)
    {
        SendCommandHandler.Map(api);
        ListCommandsHandler.Map(api);
        DeviceStateHandler.Map(api);
        return app;
    }
}
