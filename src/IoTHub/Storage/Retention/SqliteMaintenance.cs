// SQLite retention: deletes in bounded batches (BatchedDelete, 10,000 rows a statement) so the telemetry
// writer, which needs the same write lock, is never held up for long.
using IoTHub.Storage.Retention;
using Microsoft.Data.Sqlite;

using IoTHub.Contracts;

namespace IoTHub.Storage.Retention;

internal sealed class SqliteMaintenance(string connectionString) : IStoreMaintenance
{
    public Task RunAsync(CancellationToken ct) => Task.CompletedTask;

    public async Task<RetentionRemoved> ApplyRetentionAsync(long?[] cutoffs, CancellationToken ct)
    {
        await using var c = new SqliteConnection(connectionString);
        await c.OpenAsync(ct);
        var raw = cutoffs[0] is { } rc ? await BatchedDelete.OlderThanAsync(c, "telemetry", "ts", rc, ct) : 0;
        var rollups = new long[3];
        for (var r = 0; r < 3; r++)
            if (cutoffs[r + 1] is { } cut) rollups[r] = await BatchedDelete.OlderThanAsync(c, Resolution.Tables[r], "bucket", cut - WindowResolution.WidthsMs[r] + 1, ct);
        return new RetentionRemoved(raw, 0, rollups);
    }
}
