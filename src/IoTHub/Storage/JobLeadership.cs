// The one-at-a-time jobs' lock (IJobLeadership): a PostgreSQL advisory lock held on a connection of its own, not a
// home-made election. The lock lives as long as that session: a node that dies loses it with its connection, and the
// others try every two seconds. Only with several nodes possible (Broker:Mode RabbitMq); otherwise always the leader.
using IoTHub.Contracts;
using Npgsql;

namespace IoTHub.Storage;

internal sealed class JobLeadership(IConfiguration config, TimeProvider time, ILogger<JobLeadership> log) : BackgroundService, IJobLeadership
{
    /// <summary>The advisory lock's key (advisory locks are per database).</summary>
    private const long LockKey = 0x10_7_4_0B_01;

    private readonly bool _shared = string.Equals(config["Broker:Mode"], "RabbitMq", StringComparison.OrdinalIgnoreCase);
    private volatile bool _leader;

    public bool IsLeader => !_shared || _leader;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!_shared) return;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await using var connection = new NpgsqlConnection(config.GetConnectionString("Postgres"));
                await connection.OpenAsync(stoppingToken);
                await using (var take = new NpgsqlCommand("SELECT pg_try_advisory_lock(@key)", connection))
                {
                    take.Parameters.AddWithValue("key", LockKey);
                    while (!(bool)(await take.ExecuteScalarAsync(stoppingToken))!)
                        await Task.Delay(IJobLeadership.RetryInterval, time, stoppingToken);
                }
                _leader = true;
                log.LogInformation("This node runs the one-at-a-time jobs (campaigns, retention, alarm deadlines)");
                // Held while the session lives: checked every few seconds, so a lost connection is noticed.
                await using var alive = new NpgsqlCommand("SELECT 1", connection);
                while (true)
                {
                    await Task.Delay(IJobLeadership.RetryInterval, time, stoppingToken);
                    await alive.ExecuteScalarAsync(stoppingToken);
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (ex is NpgsqlException or InvalidOperationException or TimeoutException)
            {
                if (_leader) log.LogWarning("Lost the one-at-a-time jobs' lock ({Reason}); trying to take it again", ex.Message);
                _leader = false;
                await Task.Delay(IJobLeadership.RetryInterval, time, stoppingToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            }
            finally
            {
                _leader = false;
            }
        }
    }
}
