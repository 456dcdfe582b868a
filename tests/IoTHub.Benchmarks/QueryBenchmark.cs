// N days (default 30) of 1-second data for one device and metric (2.6 M raw rows at 30 days, 26 M at 300, with their
// 1m/1h/1d rollups) on PostgreSQL, and as many other series as asked (hourly data over the same days, with rollups), then
// the median time of GET .../telemetry?resolution=auto for 30 days and for 24 hours, through the real API.
using System.Diagnostics;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using IoTHub.Simulator;
using Npgsql;

namespace IoTHub.Benchmarks;

internal sealed class QueryBenchmark(string postgresAdmin, int calls, int days = 30, int series = 1)
{
    public async Task<int> RunAsync()
    {
        Console.WriteLine($"machine: {Machine.Describe()}");
        var cs = await HubProcess.CreateDatabaseAsync(postgresAdmin, "iothub_bench_query");
        await using var hub = await HubProcess.StartAsync("Postgres", cs);
        using var http = new HttpClient { BaseAddress = hub.BaseAddress };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", await Provisioning.LoginAsync(http, "admin", HubProcess.Password, CancellationToken.None));
        var device = (await Provisioning.CreateAsync(http, http.DefaultRequestHeaders.Authorization.Parameter!, "query", 1, CancellationToken.None))[0];

        var end = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000 * 1000;
        var start = end - days * 86_400_000L;
        Console.WriteLine($"loading {days} days of 1 s data ({days * 86_400L:N0} rows) for the queried series, {series - 1:N0} other series with hourly data, and the rollups ...");
        var load = Stopwatch.StartNew();
        await using (var c = new NpgsqlConnection(cs))
        {
            await c.OpenAsync();
            await Exec(c, $"INSERT INTO series (device_id, metric) VALUES ('{device.Id}', 'temperature')");
            if (series > 1)
                await Exec(c, $"INSERT INTO series (device_id, metric) SELECT '{device.Id}', 'other-' || i FROM generate_series(1, {series - 1}) i");
            await Exec(c, $"""
                INSERT INTO telemetry (series_id, ts, kind, number)
                SELECT s.id, t, 0, 20 + 5 * sin(t / 3600000.0) FROM series s, generate_series({start}::bigint, {end - 1000}::bigint, 1000::bigint) t
                WHERE s.device_id = '{device.Id}' AND s.metric = 'temperature'
                """);
            if (series > 1)
                await Exec(c, $"""
                    INSERT INTO telemetry (series_id, ts, kind, number)
                    SELECT s.id, t, 0, 20 + 5 * sin(t / 3600000.0) FROM series s, generate_series({start}::bigint, {end - 1000}::bigint, 3600000::bigint) t
                    WHERE s.metric LIKE 'other-%'
                    """);
            // 1m from the raw rows, then 1h from 1m and 1d from 1h (exact: the aggregates are mergeable).
            await Exec(c, $"""
                INSERT INTO rollup_1m (series_id, bucket, count, sum, min, max, last_ts, last)
                SELECT series_id, ts - ts % 60000, count(*), sum(number), min(number), max(number), max(ts), (max(ARRAY[ts::float8, number]))[2]
                FROM telemetry GROUP BY 1, 2
                """);
            foreach (var (table, from, width) in new[] { ("rollup_1h", "rollup_1m", 3_600_000), ("rollup_1d", "rollup_1h", 86_400_000) })
                await Exec(c, $"""
                    INSERT INTO {table} (series_id, bucket, count, sum, min, max, last_ts, last)
                    SELECT series_id, bucket - bucket % {width}, sum(count), sum(sum), min(min), max(max), max(last_ts), (max(ARRAY[last_ts::float8, last]))[2]
                    FROM {from} GROUP BY 1, 2
                    """);
            await Exec(c, "ANALYZE");
        }
        Console.WriteLine($"  loaded in {load.Elapsed.TotalSeconds:0} s");

        foreach (var (label, span) in new[] { ("30 days", TimeSpan.FromDays(30)), ("24 hours", TimeSpan.FromHours(24)) })
        {
            var from = Uri.EscapeDataString(DateTimeOffset.FromUnixTimeMilliseconds(end).Subtract(span).ToString("O"));
            var to = Uri.EscapeDataString(DateTimeOffset.FromUnixTimeMilliseconds(end).ToString("O"));
            var url = $"/api/v1/devices/{device.Id}/telemetry?metric=temperature&resolution=auto&from={from}&to={to}";
            var times = new List<double>();
            string? resolution = null;
            int points = 0;
            for (var i = 0; i < calls + 3; i++)
            {
                var sw = Stopwatch.StartNew();
                var body = await http.GetFromJsonAsync<System.Text.Json.JsonElement>(url);
                if (i >= 3) times.Add(sw.Elapsed.TotalMilliseconds); // the first calls warm up the JIT and the plan cache
                resolution = body.GetProperty("resolution").GetString();
                points = body.GetProperty("points").GetArrayLength();
            }
            times.Sort();
            Console.WriteLine($"resolution=auto over {label}: median {times[times.Count / 2]:0.0} ms, p90 {times[(int)(times.Count * 0.9)]:0.0} ms " +
                              $"({calls} calls; answered at {resolution} with {points} points)");
        }
        return 0;
    }

    private static async Task Exec(NpgsqlConnection c, string sql)
    {
        await using var cmd = new NpgsqlCommand(sql, c) { CommandTimeout = 600 };
        await cmd.ExecuteNonQueryAsync();
    }
}
