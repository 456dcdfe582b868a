using IoTHub.Validation.Decoding;

namespace IoTHub.Validation;

public static class ValidationModule
{
    public static IServiceCollection AddValidation(this IServiceCollection services, IConfiguration config)
    {
        services.AddOptions<ValidationOptions>().BindConfiguration(ValidationOptions.SectionName).ValidateDataAnnotations()
            .Validate(o => o.MaxPastAge > TimeSpan.Zero, "Validation:MaxPastAge must be positive")
            .Validate(o => o.ClockDriftTolerance >= TimeSpan.Zero, "Validation:ClockDriftTolerance must not be negative")
            .ValidateOnStart();
        services.AddSingleton<MetricNames>();
        services.AddSingleton<TelemetryDecoder>();
        services.AddSingleton<SeriesTypes>();
        services.AddSingleton<ProfileRules>();
        services.AddSingleton<DeviceClocks>();
        services.AddSingleton<ValidationWorkers>();
        services.AddHostedService(sp => sp.GetRequiredService<ValidationWorkers>());
        return services;
    }
}
