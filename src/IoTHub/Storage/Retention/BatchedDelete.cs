using System.Data.Common;

namespace IoTHub.Storage.Retention;

/// <summary>Deletes old rows of a (series_id, time) keyed table in bounded batches, each its own short statement.</summary>
internal static class BatchedDelete
{
    public const int BatchRows = 10_000;

    public static async Task<long> OlderThanAsync(DbConnection c, string table, string column, long cutoff, CancellationToken ct)
    {
        long total = 0;
        await using var cmd = c.CreateCommand();
        cmd.CommandText = $"DELETE FROM {table} WHERE (series_id, {column}) IN (SELECT series_id, {column} FROM {table} WHERE {column} < @cut LIMIT {BatchRows})";
        var p = cmd.CreateParameter();
        p.ParameterName = "@cut";
        p.Value = cutoff;
        cmd.Parameters.Add(p);
        int n;
        do
        {
            n = await cmd.ExecuteNonQueryAsync(ct);
            total += n;
        } while (n >= BatchRows); // more than BatchRows when a (series, ts) holds several points (hub-stamped readings)
        return total;
    }
}
