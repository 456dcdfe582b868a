// How cost grows with the work: one hub on one store, loaded for a long time (30 minutes by default) at the rate it
// sustains (1,000 devices, closed loop, 10 QoS 1 messages in flight each, as `ingest`), printing per minute the stored
// rate, the hub's RSS and the bytes on disk per stored point (raw + rollups + indexes). At the end: the rate of the last
// 5 minutes against the first 5 (target >= 0.9), RSS flat, and PostgreSQL's bare narrow table (device, metric, ts,
// value, primary key (device, metric, ts)) holding as many points, in bytes per point, beside the hub's.
using System.Diagnostics;
using IoTHub.Simulator;
using Npgsql;

namespace IoTHub.Benchmarks;

internal sealed class SoakBenchmark(string provider, string postgresAdmin, int devices, TimeSpan duration, int inFlight)
{
    private const int PointsPerMessage = 3; // thermostat: temperature, humidity, heating

    public async Task<int> RunAsync()
    {
        Console.WriteLine($"machine: {Machine.Describe()}");
        Console.WriteLine($"soak: IoTHub on {provider}, {devices} devices, closed loop ({inFlight} QoS 1 messages in flight each), {duration.TotalMinutes:0} min, thermostat payloads ({PointsPerMessage} points)");
        const string database = "iothub_bench_soak";
        var postgres = provider == "Postgres" ? await HubProcess.CreateDatabaseAsync(postgresAdmin, database) : null;
        var minutes = new List<(double Rate, double RssMiB, long Bytes, long Points)>();
        await using (var hub = await HubProcess.StartAsync(provider, postgres))
        {
            using var http = new HttpClient { BaseAddress = hub.BaseAddress };
            var bearer = await Provisioning.LoginAsync(http, "admin", HubProcess.Password, CancellationToken.None);
            var fleet = await Provisioning.CreateAsync(http, bearer, "soak", devices, CancellationToken.None);
            long lastAcked = 0;
            var lastAt = TimeSpan.Zero;
            var progress = new List<Task>();
            var options = new LoadOptions("127.0.0.1", hub.MqttPort, null, "mqtt", 1, 0, duration, DeviceModel.Thermostat, InFlight: inFlight,
                ProgressInterval: TimeSpan.FromMinutes(1), Progress: p =>
                {
                    var rate = (p.Acked - lastAcked) / (p.Elapsed - lastAt).TotalSeconds;
                    (lastAcked, lastAt) = (p.Acked, p.Elapsed);
                    var rss = Machine.RssMiB(hub.Pid);
                    var points = p.Acked * PointsPerMessage;
                    progress.Add(Task.Run(async () =>
                    {
                        var bytes = await BytesOnDiskAsync(postgres, hub.DataDirectory);
                        lock (minutes) minutes.Add((rate, rss, bytes, points));
                        Console.WriteLine($"  {p.Elapsed.TotalMinutes,3:0} min: {rate,8:N0} msg/s stored, hub RSS {rss,5:0} MiB, on disk {bytes / 1048576.0,8:N0} MiB = {(double)bytes / points,6:0.0} B per point");
                    }));
                });
            var load = await LoadGenerator.RunAsync(fleet, options, CancellationToken.None);
            await Task.WhenAll(progress);
            Console.WriteLine($"  {load}");
        }

        Console.WriteLine();
        var window = Math.Max(1, Math.Min(5, minutes.Count / 2));
        var first = minutes.Take(window).Average(m => m.Rate);
        var last = minutes.TakeLast(window).Average(m => m.Rate);
        Console.WriteLine($"stored rate, first {window} min {first:N0} msg/s, last {window} min {last:N0} msg/s: {last / first:0.00}x (target >= 0.9)");
        Console.WriteLine($"hub RSS per minute (MiB): {string.Join(' ', minutes.Select(m => m.RssMiB.ToString("0", System.Globalization.CultureInfo.InvariantCulture)))}");
        if (minutes.Count > 0)
        {
            var end = minutes[^1];
            Console.WriteLine($"on disk at the end: {end.Bytes / 1048576.0:N0} MiB for {end.Points:N0} points, {(double)end.Bytes / end.Points:0.0} B per point (raw + 1m/1h/1d rollups + indexes)");
            var bare = await BareNarrowBytesPerPointAsync(Math.Min(end.Points, 20_000_000));
            Console.WriteLine($"PostgreSQL's bare narrow table (device text, metric text, ts timestamptz, value float8, primary key (device, metric, ts)): {bare:0.0} B per point");
        }
        if (postgres is not null) await HubProcess.QuietAsync(postgresAdmin, database);
        return 0;
    }

    /// <summary>Bytes of the store on disk: PostgreSQL's tables with their indexes and TOAST (every relation of the public
    /// schema); SQLite's database file with its write-ahead log.</summary>
    private static async Task<long> BytesOnDiskAsync(string? postgres, string dataDirectory)
    {
        if (postgres is null)
            return new[] { "iothub.db", "iothub.db-wal" }.Select(f => new FileInfo(Path.Combine(dataDirectory, f))).Where(f => f.Exists).Sum(f => f.Length);
        await using var c = new NpgsqlConnection(postgres);
        await c.OpenAsync();
        await using var cmd = new NpgsqlCommand("SELECT coalesce(sum(pg_total_relation_size(oid)), 0)::bigint FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace", c);
        return (long)(await cmd.ExecuteScalarAsync())!;
    }

    /// <summary>The same count of points (thermostat-like: 1,000 devices, 3 metrics, one point per second each) in the
    /// narrow table a hand-built store would use, in bytes per point.</summary>
    private async Task<double> BareNarrowBytesPerPointAsync(long points)
    {
        var cs = await HubProcess.CreateDatabaseAsync(postgresAdmin, "iothub_bench_soak_narrow");
        double perPoint;
        await using (var c = new NpgsqlConnection(cs))
        {
            await c.OpenAsync();
            await using (var create = new NpgsqlCommand(ReferenceSubscriber.CreateTableSql("narrow"), c)) await create.ExecuteNonQueryAsync();
            var seconds = Math.Max(1, points / (devices * PointsPerMessage));
            await using (var fill = new NpgsqlCommand($"""
                INSERT INTO telemetry (device, metric, ts, value)
                SELECT 'soak-' || lpad(d::text, 5, '0'), m, now() - make_interval(secs => s), random() * 30
                FROM generate_series(1, {seconds}) s, generate_series(1, {devices}) d, unnest(ARRAY['temperature', 'humidity', 'heating']) m
                """, c) { CommandTimeout = 1800 })
                await fill.ExecuteNonQueryAsync();
            await using var size = new NpgsqlCommand("SELECT pg_total_relation_size('telemetry')::float8 / (SELECT count(*) FROM telemetry)", c) { CommandTimeout = 600 };
            perPoint = (double)(await size.ExecuteScalarAsync())!;
        }
        await HubProcess.QuietAsync(postgresAdmin, "iothub_bench_soak_narrow");
        return perPoint;
    }
}
