// Applies EF Core migrations at start (both providers) and prepares provider-specific structures
// (PostgreSQL partitions) before any other hosted service touches the database.
using Microsoft.EntityFrameworkCore;

namespace IoTHub.Storage;

internal sealed class SchemaMigrator(IServiceProvider services, IStoreMaintenance maintenance, ILogger<SchemaMigrator> log) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await using var scope = services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<HubDb>();
        // MigrateAsync checks for the history table itself (asking for pending migrations first would log a failed
        // query on a new database).
        await db.Database.MigrateAsync(cancellationToken);
        log.LogInformation("Database schema is up to date on {Provider}", db.Database.ProviderName);
        if (db.Database.IsSqlite())
        {
            // WAL lets the API read while the writer commits; it is a property of the file and persists.
            await db.Database.ExecuteSqlRawAsync("PRAGMA journal_mode=WAL;", cancellationToken);
        }
        await maintenance.RunAsync(cancellationToken);
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}

/// <summary>Provider-specific upkeep run at start and periodically (partitions ahead, retention).</summary>
internal interface IStoreMaintenance
{
    Task RunAsync(CancellationToken ct);

    /// <summary>Removes raw rows older than cutoffs[0] and rollups older than cutoffs[1..3] (Unix ms; null keeps all).</summary>
    Task<Retention.RetentionRemoved> ApplyRetentionAsync(long?[] cutoffs, CancellationToken ct);
}
