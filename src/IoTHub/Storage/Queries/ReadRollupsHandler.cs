using System.Data.Common;
using IoTHub.Contracts;
using Mediator;
using Microsoft.EntityFrameworkCore;

namespace IoTHub.Storage.Queries;

/// <summary>Reads rollup rows by key, a few hundred keys per statement.</summary>
internal sealed class ReadRollupsHandler(HubDb db) : IRequestHandler<ReadRollups, IReadOnlyList<RollupRow>>
{
    private const int Chunk = 400;

    public async ValueTask<IReadOnlyList<RollupRow>> Handle(ReadRollups q, CancellationToken ct)
    {
        var rows = new List<RollupRow>(q.Keys.Count);
        var connection = db.Database.GetDbConnection();
        if (connection.State != System.Data.ConnectionState.Open) await db.Database.OpenConnectionAsync(ct);
        foreach (var byResolution in q.Keys.GroupBy(k => k.Resolution))
        {
            foreach (var chunk in byResolution.Chunk(Chunk))
            {
                await using var cmd = connection.CreateCommand();
                var values = new List<string>(chunk.Length);
                for (var i = 0; i < chunk.Length; i++)
                {
                    values.Add($"(@s{i}, @b{i})");
                    Add(cmd, $"@s{i}", chunk[i].SeriesId);
                    Add(cmd, $"@b{i}", chunk[i].Bucket);
                }
                cmd.CommandText = $"SELECT series_id, bucket, count, sum, min, max, last FROM {Resolution.Tables[byResolution.Key]} " +
                                  $"WHERE (series_id, bucket) IN (VALUES {string.Join(",", values)})";
                await using var reader = await cmd.ExecuteReaderAsync(ct);
                while (await reader.ReadAsync(ct))
                {
                    rows.Add(new RollupRow(new RollupKey(reader.GetInt64(0), byResolution.Key, reader.GetInt64(1)),
                        reader.GetInt64(2), reader.GetDouble(3), reader.GetDouble(4), reader.GetDouble(5), reader.GetDouble(6)));
                }
            }
        }
        return rows;
    }

    private static void Add(DbCommand cmd, string name, long value)
    {
        var p = cmd.CreateParameter();
        p.ParameterName = name;
        p.Value = value;
        cmd.Parameters.Add(p);
    }
}
