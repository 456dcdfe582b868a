// SQLite retention: deletes in bounded batches (10,000 rows, each its own short transaction) so the telemetry
// writer, which needs the same write lock, is never held up for long.
using IoTHub.Storage.Retention;
using Microsoft.Data.Sqlite;

namespace IoTHub.Storage;

internal sealed class SqliteMaintenance(string connectionString) : IStoreMaintenance
{
    private const int BatchRows = 10_000;

    public Task RunAsync(CancellationToken ct) => Task.CompletedTask;

    public async Task<RetentionRemoved> ApplyRetentionAsync(long?[] cutoffs, CancellationToken ct)
    {
        await using var c = new SqliteConnection(connectionString);
        await c.OpenAsync(ct);
        var raw = cutoffs[0] is { } rc ? await DeleteAsync(c, "telemetry", "ts", rc, ct) : 0;
        var rollups = new long[3];
        for (var r = 0; r < 3; r++)
            if (cutoffs[r + 1] is { } cut) rollups[r] = await DeleteAsync(c, Resolution.Tables[r], "bucket", cut - Resolution.WidthsMs[r] + 1, ct);
        return new RetentionRemoved(raw, 0, rollups);
    }

    /// <summary>Deletes rows whose <paramref name="column"/> is below <paramref name="cutoff"/>, a batch at a time.</summary>
    private static async Task<long> DeleteAsync(SqliteConnection c, string table, string column, long cutoff, CancellationToken ct)
    {
        long total = 0;
        await using var cmd = c.CreateCommand();
        cmd.CommandText = $"DELETE FROM {table} WHERE (series_id, {column}) IN (SELECT series_id, {column} FROM {table} WHERE {column} < $cut LIMIT {BatchRows})";
        cmd.Parameters.AddWithValue("$cut", cutoff);
        int n;
        do
        {
            n = await cmd.ExecuteNonQueryAsync(ct);
            total += n;
            if (n == BatchRows) await Task.Yield();
        } while (n == BatchRows);
        return total;
    }
}
