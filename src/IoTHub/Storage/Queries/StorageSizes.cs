// Table sizes for the overview: on PostgreSQL the planner's row estimates and the relations' bytes (partitions
// summed), which cost nothing to read; on SQLite exact counts.
using System.Data.Common;
using IoTHub.Contracts;
using Mediator;
using Microsoft.EntityFrameworkCore;

namespace IoTHub.Storage.Queries;

internal sealed class StorageSizesHandler(HubDb db) : IRequestHandler<StorageSizesQuery, IReadOnlyList<TableSize>>
{
    private static readonly (string Resolution, string Table)[] Tables = [("raw", "telemetry"), ("1m", "rollup_1m"), ("1h", "rollup_1h"), ("1d", "rollup_1d")];

    public async ValueTask<IReadOnlyList<TableSize>> Handle(StorageSizesQuery q, CancellationToken ct)
    {
        var connection = db.Database.GetDbConnection();
        if (connection.State != System.Data.ConnectionState.Open) await db.Database.OpenConnectionAsync(ct);
        var sizes = new List<TableSize>();
        var postgres = db.Database.ProviderName?.Contains("Npgsql", StringComparison.Ordinal) == true;
        foreach (var (resolution, table) in Tables)
        {
            await using var cmd = connection.CreateCommand();
            cmd.CommandText = postgres
                ? $"""
                   SELECT COALESCE(SUM(GREATEST(c.reltuples, 0)), 0)::bigint, COALESCE(SUM(pg_total_relation_size(c.oid)), 0)::bigint
                   FROM pg_class c WHERE c.oid = '{table}'::regclass OR c.oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = '{table}'::regclass)
                   """
                : $"SELECT COUNT(*), NULL FROM {table}";
            await using var reader = await cmd.ExecuteReaderAsync(ct);
            await reader.ReadAsync(ct);
            sizes.Add(new TableSize(resolution, Convert.ToInt64(reader.GetValue(0), System.Globalization.CultureInfo.InvariantCulture),
                reader.IsDBNull(1) ? null : reader.GetInt64(1)));
        }
        return sizes;
    }
}
