using FluentValidation;
using IoTHub.Alarms.Evaluation;
using IoTHub.Alarms.Lifecycle;
using IoTHub.Alarms.Rules;
using IoTHub.Contracts;
using Mediator;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace IoTHub.Alarms;

/// <summary>The Alarms module: rules over committed telemetry (thresholds, durations, N of M, rate of change, no data,
/// hysteresis, schedules), the alarm lifecycle (pending, active, cleared; acknowledged, snoozed, assigned; flapping),
/// and its notifications through the outbox (webhooks) and on <c>alarms/{deviceId}/{ruleId}</c> (MQTT apps).</summary>
public static class AlarmsModule
{
    /// <summary>Registers the evaluator (a hosted service, after the window tracker and before the broker), the store and the
    /// validators, and binds section <c>Alarms</c>; invalid settings stop the host at start.</summary>
    public static IServiceCollection AddAlarms(this IServiceCollection services, IConfiguration config)
    {
        services.AddOptions<AlarmsOptions>().BindConfiguration(AlarmsOptions.SectionName).ValidateDataAnnotations()
            .Validate(o => o.TickInterval >= TimeSpan.FromMilliseconds(50), "Alarms:TickInterval must be at least 50 ms")
            .Validate(o => o.NoDataGracePeriod >= TimeSpan.Zero, "Alarms:NoDataGracePeriod must not be negative")
            .Validate(o => o.FlappingWindow >= TimeSpan.FromSeconds(1), "Alarms:FlappingWindow must be at least 1 s")
            .Validate(o => o.ClearedRetention >= TimeSpan.FromHours(1), "Alarms:ClearedRetention must be at least 1 hour")
            .ValidateOnStart();
        services.TryAddSingleton<Outbox>();
        services.AddScoped<AlarmStore>();
        services.AddScoped<AlarmActions>();
        services.AddSingleton<AlarmEvaluator>();
        services.AddHostedService(sp => sp.GetRequiredService<AlarmEvaluator>());
        services.AddValidatorsFromAssemblyContaining<AlarmRuleBodyValidator>(ServiceLifetime.Singleton,
            filter: r => r.ValidatorType.Namespace!.StartsWith("IoTHub.Alarms", StringComparison.Ordinal), includeInternalTypes: true);
        return services;
    }

    /// <summary>Maps <c>/alarm-rules</c> and <c>/alarms</c> on <paramref name="api"/>.</summary>
    public static IEndpointRouteBuilder MapAlarms(this IEndpointRouteBuilder app, RouteGroupBuilder api)
    {
        RuleEndpoints.Map(api);
        AlarmEndpoints.Map(api);
        return app;
    }
}

/// <summary>Tells the evaluator what changed elsewhere: closed 1-minute windows, devices created, changed or deleted.</summary>
internal sealed class AlarmInputs(AlarmEvaluator evaluator) :
    INotificationHandler<WindowClosed>, INotificationHandler<DeviceCreated>, INotificationHandler<DeviceUpdated>,
    INotificationHandler<DeviceDeleted>, INotificationHandler<DeviceProfileAssigned>
{
    public ValueTask Handle(WindowClosed n, CancellationToken ct) { evaluator.OnWindowClosed(n.Window); return ValueTask.CompletedTask; }
    public ValueTask Handle(DeviceCreated n, CancellationToken ct) { evaluator.OnDeviceChanged(n.DeviceId, deleted: false); return ValueTask.CompletedTask; }
    public ValueTask Handle(DeviceUpdated n, CancellationToken ct) { evaluator.OnDeviceChanged(n.DeviceId, deleted: false); return ValueTask.CompletedTask; }
    public ValueTask Handle(DeviceDeleted n, CancellationToken ct) { evaluator.OnDeviceChanged(n.DeviceId, deleted: true); return ValueTask.CompletedTask; }
    public ValueTask Handle(DeviceProfileAssigned n, CancellationToken ct) { evaluator.OnDeviceChanged(n.DeviceId, deleted: false); return ValueTask.CompletedTask; }
}
