using FluentValidation;
using IoTHub.Contracts;
using IoTHub.Devices.CreateDevice;
using IoTHub.Devices.DeleteDevice;
using IoTHub.Devices.GetDevice;
using IoTHub.Devices.ListDevices;
using IoTHub.Devices.Presence;
using IoTHub.Devices.RotateToken;
using IoTHub.Devices.UpdateDevice;

namespace IoTHub.Devices;

/// <summary>The Devices module: the device registry and its tokens, profiles, presence (online, last seen, clock drift,
/// connection history) and CSV import.</summary>
public static class DevicesModule
{
    /// <summary>Registers the device authenticator, presence tracking and its writers, and the request validators.</summary>
    public static IServiceCollection AddDevices(this IServiceCollection services, IConfiguration config)
    {
        services.AddSingleton<DevicePsk>();
        services.AddSingleton<DeviceAuthenticator>();
        services.AddSingleton<IDeviceAuthenticator>(sp => sp.GetRequiredService<DeviceAuthenticator>());
        services.AddSingleton<DevicePresence>();
        services.AddSingleton<IDevicePresence>(sp => sp.GetRequiredService<DevicePresence>());
        services.AddSingleton<IDeviceClock>(sp => sp.GetRequiredService<DevicePresence>());
        services.AddSingleton<LastSeenFlusher>();
        services.AddHostedService(sp => sp.GetRequiredService<LastSeenFlusher>());
        services.AddSingleton<PresenceJournal>();
        services.AddHostedService<PresenceWriter>();
        services.AddValidatorsFromAssemblyContaining<CreateDeviceValidator>(ServiceLifetime.Singleton, filter: r => r.ValidatorType.Namespace!.StartsWith("IoTHub.Devices", StringComparison.Ordinal), includeInternalTypes: true);
        return services;
    }

    /// <summary>Maps <c>/devices</c> (create, import, list, get, update, delete, rotate-token, connections) and
    /// <c>/profiles</c> on <paramref name="api"/>.</summary>
    public static IEndpointRouteBuilder MapDevices(this IEndpointRouteBuilder app, RouteGroupBuilder api)
    {
        CreateDeviceHandler.Map(api);
        ImportDevices.ImportDevicesHandler.Map(api);
        ListDevicesHandler.Map(api);
        GetDeviceHandler.Map(api);
        UpdateDeviceHandler.Map(api);
        Profiles.ProfilesHandler.Map(api);
        DeleteDeviceHandler.Map(api);
        RotateTokenHandler.Map(api);
        ListConnectionsHandler.Map(api);
        return app;
    }
}
