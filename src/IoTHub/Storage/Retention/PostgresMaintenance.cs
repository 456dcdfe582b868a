// PostgreSQL keeps raw telemetry in daily range partitions of `telemetry` (by ts, Unix ms), created ahead of
// time so inserts never land in the default partition in normal operation; retention drops whole partitions.
using Npgsql;

using IoTHub.Contracts;

namespace IoTHub.Storage.Retention;

internal sealed class PostgresMaintenance(string connectionString, int rawRetentionDays, ILogger<PostgresMaintenance> log, TimeProvider time) : IStoreMaintenance
{
    public const int DaysAhead = 7;

    public async Task RunAsync(CancellationToken ct)
    {
        await using var c = new NpgsqlConnection(connectionString);
        await c.OpenAsync(ct);
        var today = DateOnly.FromDateTime(time.GetUtcNow().UtcDateTime);
        // Back as far as raw data is kept (so late and backfilled points land in droppable partitions), and a week ahead.
        for (var d = -rawRetentionDays; d <= DaysAhead; d++)
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

    public async Task<Retention.RetentionRemoved> ApplyRetentionAsync(long?[] cutoffs, CancellationToken ct)
    {
        await using var c = new NpgsqlConnection(connectionString);
        await c.OpenAsync(ct);
        long rawRows = 0;
        var partitions = 0;
        if (cutoffs[0] is { } rawCut)
        {
            // Whole daily partitions that end at or before the cutoff are dropped, not deleted row by row.
            var old = new List<(string Name, long Rows)>();
            await using (var list = new NpgsqlCommand("""
                SELECT c.relname, c.reltuples::bigint FROM pg_inherits i
                JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
                WHERE p.relname = 'telemetry' AND c.relname ~ '^telemetry_[0-9]{8}$'
                """, c))
            await using (var reader = await list.ExecuteReaderAsync(ct))
            {
                while (await reader.ReadAsync(ct))
                {
                    var name = reader.GetString(0);
                    var day = DateOnly.ParseExact(name["telemetry_".Length..], "yyyyMMdd", System.Globalization.CultureInfo.InvariantCulture);
                    var end = new DateTimeOffset(day.AddDays(1).ToDateTime(TimeOnly.MinValue), TimeSpan.Zero).ToUnixTimeMilliseconds();
                    if (end <= rawCut) old.Add((name, Math.Max(0, reader.GetInt64(1))));
                }
            }
            foreach (var (name, rows) in old)
            {
                await using var drop = new NpgsqlCommand($"DROP TABLE IF EXISTS {name}", c);
                await drop.ExecuteNonQueryAsync(ct);
                partitions++;
                rawRows += rows;
                log.LogInformation("Retention dropped partition {Partition}", name);
            }
            rawRows += await Retention.BatchedDelete.OlderThanAsync(c, "telemetry", "ts", rawCut, ct);
        }
        var rollups = new long[3];
        for (var r = 0; r < 3; r++)
            if (cutoffs[r + 1] is { } cut) rollups[r] = await Retention.BatchedDelete.OlderThanAsync(c, Resolution.Tables[r], "bucket", cut - WindowResolution.WidthsMs[r] + 1, ct);
        return new Retention.RetentionRemoved(rawRows, partitions, rollups);
    }
}
