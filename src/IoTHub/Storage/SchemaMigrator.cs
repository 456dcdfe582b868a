// Applies EF Core migrations at start (both providers) and prepares provider-specific structures
// (PostgreSQL partitions) before any other hosted service touches the database.
// PostgreSQL that cannot be reached yet is waited for, up to Storage:StartupWait; any other failure ends the start.
using System.Net.Sockets;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Npgsql;

namespace IoTHub.Storage;

internal sealed class SchemaMigrator(IServiceProvider services, IStoreMaintenance maintenance, IOptions<StorageOptions> options, TimeProvider time,
    ILogger<SchemaMigrator> log) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await using var scope = services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<HubDb>();
        if (!db.Database.IsSqlite()) await WaitForServerAsync(db, cancellationToken);
        // MigrateAsync checks for the history table itself (asking for pending migrations first would log a failed query
        // on a new database).
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

    /// <summary>Opens a connection until one opens or the failure is not one waiting mends (then the migration reports
    /// it: a wrong password, a missing database it creates), for at most Storage:StartupWait. Only the connection is
    /// waited for: a migration that fails part way is not run again.</summary>
    private async Task WaitForServerAsync(HubDb db, CancellationToken ct)
    {
        var giveUpAt = time.GetUtcNow() + options.Value.StartupWait;
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await db.Database.OpenConnectionAsync(ct);
                await db.Database.CloseConnectionAsync();
                return;
            }
            catch (Exception ex) when (NotReachableYet(ex) is { } cause && time.GetUtcNow() < giveUpAt)
            {
                var wait = TimeSpan.FromSeconds(Math.Min(attempt, 5));
                log.LogWarning("PostgreSQL cannot be reached yet ({Cause}); trying again in {Wait} s, until {GiveUpAt:u} (Storage:StartupWait)",
                    cause, wait.TotalSeconds, giveUpAt);
                await Task.Delay(wait, time, ct);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>Why PostgreSQL could not be reached, when it may be reachable later: a refused or timed-out connection, a
    /// host name that does not resolve yet (a container not started), or a server still starting up (57P03) or full (53300). Null for anything else (a wrong password, a missing
    /// database), which waiting does not mend.</summary>
    internal static string? NotReachableYet(Exception ex)
    {
        for (var e = ex; e is not null; e = e.InnerException)
        {
            if (e is PostgresException pg)
                return pg.SqlState is PostgresErrorCodes.CannotConnectNow or PostgresErrorCodes.TooManyConnections ? pg.MessageText : null;
            if (e is SocketException or TimeoutException) return e.Message;
        }
        return null;
    }
}

/// <summary>Provider-specific upkeep run at start and periodically (partitions ahead, retention).</summary>
internal interface IStoreMaintenance
{
    Task RunAsync(CancellationToken ct);

    /// <summary>Removes raw rows older than cutoffs[0] and rollups older than cutoffs[1..3] (Unix ms; null keeps all).</summary>
    Task<Retention.RetentionRemoved> ApplyRetentionAsync(long?[] cutoffs, CancellationToken ct);
}
