using System.Text.Json;
using IoTHub.Storage;
using IoTHub.Storage.Write;
using IoTHub.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Npgsql;
using NpgsqlTypes;

namespace IoTHub.Tests.Storage;

/// <summary>
/// A batch's cost follows the batch, not the tables: each statement the PostgreSQL writer runs per batch finds a small
/// batch's rows in <c>series</c> by index, however many series are stored. (The latest values once came from a temp
/// staging table that is never analysed; the planner took it for ~860 rows and read all of <c>series</c> per batch:
/// 7 ms of a small batch's 8 at 30,000 series, which saturated PostgreSQL at 1,000 msg/s from 10,000 devices.)
/// </summary>
[TestFixture]
public sealed class PostgresWritePlanTests
{
    private const int StoredSeries = 30_000;
    private string? _connectionString;

    [OneTimeSetUp]
    public async Task CreateAsync()
    {
        _connectionString = await TestPostgres.CreateDatabaseAsync();
        await using (var db = new PostgresHubDb(new DbContextOptionsBuilder<PostgresHubDb>().UseNpgsql(_connectionString).Options))
            await db.Database.MigrateAsync();
        await using var c = await OpenAsync();
        await using var fill = new NpgsqlCommand($"""
            INSERT INTO series (device_id, metric) SELECT 'device-' || (i / 3), 'metric-' || (i % 3) FROM generate_series(1, {StoredSeries}) i;
            ANALYZE series;
            """, c);
        await fill.ExecuteNonQueryAsync();
    }

    // Without a server the set-up skips before it creates anything: nothing to drop then.
    [OneTimeTearDown]
    public async Task DropAsync()
    {
        if (_connectionString is not null) await TestPostgres.DropDatabaseAsync(_connectionString);
    }

    private async Task<NpgsqlConnection> OpenAsync()
    {
        var c = new NpgsqlConnection(_connectionString ?? throw new InvalidOperationException("set-up did not create the database"));
        await c.OpenAsync();
        return c;
    }

    [Test]
    public async Task The_merge_of_a_three_series_batch_reads_series_by_index_among_30000()
    {
        await using var c = await OpenAsync();
        await using (var staging = new NpgsqlCommand(PostgresTelemetryStore.StagingSql, c)) await staging.ExecuteNonQueryAsync();
        await using var explain = new NpgsqlCommand("EXPLAIN (FORMAT JSON) " + PostgresTelemetryStore.UpsertStagedSql, c);
        explain.Parameters.Add(new NpgsqlParameter { Value = new long[] { 10, 20, 30 } });
        explain.Parameters.Add(new NpgsqlParameter { Value = new long[] { 1, 1, 1 } });
        explain.Parameters.Add(new NpgsqlParameter { Value = new long[] { 1, 2, 3 } });
        explain.Parameters.Add(new NpgsqlParameter { Value = new short[] { 0, 0, 0 } });
        explain.Parameters.Add(new NpgsqlParameter { Value = new double?[] { 1, 2, 3 } });
        explain.Parameters.Add(new NpgsqlParameter { Value = new string?[] { null, null, null }, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });

        AssertSeriesReadByIndex(ScansOf(await PlanAsync(explain)));
    }

    [Test]
    public async Task The_lookup_of_a_batchs_new_series_reads_series_by_index_among_30000()
    {
        await using var c = await OpenAsync();
        await using var explain = new NpgsqlCommand("EXPLAIN (FORMAT JSON) " + PostgresTelemetryStore.ResolveSeriesSql, c);
        explain.Parameters.Add(new NpgsqlParameter { Value = new[] { "device-7", "device-8", "new-device" } });
        explain.Parameters.Add(new NpgsqlParameter { Value = new[] { "metric-1", "metric-2", "metric-0" } });

        AssertSeriesReadByIndex(ScansOf(await PlanAsync(explain)));
    }

    private static void AssertSeriesReadByIndex(List<string> scans)
    {
        Assert.That(scans, Has.Some.Match("^Index (Only )?Scan on series$"), string.Join(", ", scans));
        Assert.That(scans, Has.None.Match("^(Seq|Bitmap Heap) Scan on series$"), string.Join(", ", scans));
    }

    private static async Task<JsonElement> PlanAsync(NpgsqlCommand explain)
    {
        var json = (string)(await explain.ExecuteScalarAsync() ?? throw new InvalidOperationException("EXPLAIN returned nothing"));
        return JsonDocument.Parse(json).RootElement[0].GetProperty("Plan").Clone();
    }

    /// <summary>Every scan of the plan as "{Node Type} on {Relation Name}", e.g. "Index Scan on series".</summary>
    private static List<string> ScansOf(JsonElement node)
    {
        var scans = new List<string>();
        if (node.TryGetProperty("Relation Name", out var relation) && node.GetProperty("Node Type").GetString() is { } type && type.Contains("Scan"))
            scans.Add($"{type} on {relation.GetString()}");
        if (node.TryGetProperty("Plans", out var children))
            foreach (var child in children.EnumerateArray()) scans.AddRange(ScansOf(child));
        return scans;
    }
}
