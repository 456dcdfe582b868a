// PostgreSQL keeps raw telemetry in daily range partitions of `telemetry` (by ts, Unix ms), created ahead of
// time so inserts never land in the default partition in normal operation; retention drops whole partitions.
using Npgsql;

namespace IoTHub.Storage;

internal sealed class PostgresMaintenance(string connectionString, ILogger<PostgresMaintenance> log, TimeProvider time) : IStoreMaintenance
{
    public const int DaysAhead = 7;
    public const int DaysBehind = 2;

    public async Task RunAsync(CancellationToken ct)
    {
        await using var c = new NpgsqlConnection(connectionString);
        await c.OpenAsync(ct);
        var today = DateOnly.FromDateTime(time.GetUtcNow().UtcDateTime);
        for (var d = -DaysBehind; d <= DaysAhead; d++)
        {
            var day = today.AddDays(d);
            var from = new DateTimeOffset(day.ToDateTime(TimeOnly.MinValue), TimeSpan.Zero).ToUnixTimeMilliseconds();
            var to = from + 86_400_000;
            var name = $"telemetry_{day:yyyyMMdd}";
            await using var cmd = new NpgsqlCommand(
                $"CREATE TABLE IF NOT EXISTS {name} PARTITION OF telemetry FOR VALUES FROM ({from}) TO ({to})", c);
            try
            {
                await cmd.ExecuteNonQueryAsync(ct);
            }
            catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.CheckViolation)
            {
                // Rows for that day are already in the default partition (the hub was down when it should have
                // been made); they stay there, still queried, and retention deletes them by range.
                log.LogWarning("Partition {Partition} not created: the default partition holds rows of that day", name);
            }
        }
    }
}
