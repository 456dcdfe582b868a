using IoTHub.Validation.Decoding;

namespace IoTHub.Validation;

/// <summary>The Validation module: decodes JSON and CBOR telemetry into typed points, checks them against the device's
/// profile, the series' types and the clock-drift policy, and passes each message on to storage or the dead letters.</summary>
public static class ValidationModule
{
    /// <summary>Registers the decoder, the profile and type rules, the clock tracking and the validation workers, and binds
    /// section <c>Validation</c> (validated at start).</summary>
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
