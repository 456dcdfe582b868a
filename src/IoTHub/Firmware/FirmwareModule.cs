using FluentValidation;
using IoTHub.Contracts;
using IoTHub.Firmware.Artifacts;
using IoTHub.Firmware.Campaigns;
using IoTHub.Firmware.Rollout;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace IoTHub.Firmware;

/// <summary>The Firmware module: images (artifacts), staged rollout campaigns with success and failure thresholds, the
/// per-device update state machine, and the automatic halt (docs/firmware.md).</summary>
public static class FirmwareModule
{
    /// <summary>Registers the catalogs, the rollout engine and its runner (a hosted service), and binds section
    /// <c>Firmware</c>; invalid settings (a signing key that is not Ed25519, a signature required without keys) stop the
    /// host at start.</summary>
    public static IServiceCollection AddFirmware(this IServiceCollection services, IConfiguration config)
    {
        services.AddOptions<FirmwareOptions>().BindConfiguration(FirmwareOptions.SectionName).ValidateDataAnnotations()
            .Validate(o => o.TickInterval >= TimeSpan.FromMilliseconds(50), "Firmware:TickInterval must be at least 50 ms")
            .Validate(o => !o.RequireSignature || o.SigningKeys.Count > 0, "Firmware:RequireSignature needs at least one key in Firmware:SigningKeys")
            .Validate(o => o.SigningKeys.All(k => IsKey(k.Key, k.Value)),
                "Firmware:SigningKeys must hold Ed25519 public keys (32 bytes in base64, or a PEM from `openssl pkey -pubout`)")
            .ValidateOnStart();
        services.TryAddSingleton<Outbox>();
        services.AddSingleton(sp => new ImageSignature(sp.GetRequiredService<IOptions<FirmwareOptions>>().Value.SigningKeys));
        services.AddSingleton<ArtifactFiles>();
        services.AddSingleton<RolloutSignal>();
        services.AddSingleton<InstallWatch>();
        services.AddScoped<TargetPlanner>();
        services.AddScoped<Rollouts>();
        services.AddHostedService<CampaignRunner>();
        services.AddSingleton<IValidator<CampaignDefinition>, CampaignDefinitionValidator>();
        return services;
    }

    /// <summary>Maps <c>/firmware</c>, <c>/firmware-campaigns</c> and <c>/devices/{id}/firmware</c> on <paramref name="api"/>.</summary>
    public static IEndpointRouteBuilder MapFirmware(this IEndpointRouteBuilder app, RouteGroupBuilder api)
    {
        FirmwareEndpoints.Map(api);
        return app;
    }

    private static bool IsKey(string name, string value)
    {
        try
        {
            ImageSignature.Parse(name, value);
            return true;
        }
        catch (FormatException)
        {
            return false;
        }
    }
}
