using IoTHub.Storage.Write;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace IoTHub.Storage;

/// <summary>Ready when the database answers, the telemetry writers' last commit worked and none has stalled.</summary>
internal sealed class DatabaseHealthCheck(IServiceScopeFactory scopes, StoreHealth store) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<HubDb>();
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(3));
        bool up;
        try
        {
            up = await db.Database.CanConnectAsync(timeout.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            up = false;
        }
        if (!up) return HealthCheckResult.Unhealthy($"{db.Database.ProviderName} does not answer");
        if (store.Error is { } error) return HealthCheckResult.Unhealthy("telemetry commits are failing: " + error);
        return store.Stall() is { } stall ? HealthCheckResult.Unhealthy(stall) : HealthCheckResult.Healthy(db.Database.ProviderName);
    }
}
