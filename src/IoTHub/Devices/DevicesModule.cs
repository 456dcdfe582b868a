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

public static class DevicesModule
{
    public static IServiceCollection AddDevices(this IServiceCollection services, IConfiguration config)
    {
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
