// A store alone, without brokers or load generator: the same batches committed the way the hub's writer commits them
// (PostgresTelemetryStore or SqliteTelemetryStore, in this process). On PostgreSQL it prints the CPU time every
// PostgreSQL process spent on them, per stored point and per 3-point message. Each batch holds 10 messages of each of
// 1,000 devices (30,000 points, as the hub's default Storage:BatchMaxPoints), 2 numeric metrics and a boolean,
// timestamps 60 ms apart as at ~17 msg/s a device: the shape `ingest` gives the store. Deterministic work, so a change
// to the store can be measured on a noisy machine where end-to-end throughput swings by 2x between runs.
// On SQLite it also prints, every --report batches, the rate of those batches and the database's size, and at the end
// the last report's rate against the first's: how the cost of a commit grows with the data (what `soak` measures end to
// end, in minutes instead of half an hour, without the broker's noise).
using System.Diagnostics;
using IoTHub.Contracts;
using IoTHub.Simulator;
using IoTHub.Storage.Write;

namespace IoTHub.Benchmarks;

internal sealed class StoreBenchmark(string provider, string postgresAdmin, int batches, int devices, int report)
{
    private const int MessagesPerDevice = 10;

    public async Task<int> RunAsync()
    {
        Console.WriteLine($"machine: {Machine.Describe()}");
        Console.WriteLine($"store: {batches} batches of {devices * MessagesPerDevice:N0} messages ({devices * MessagesPerDevice * 3:N0} points) committed by IoTHub's {provider} store, after 5 unmeasured");
        const string database = "iothub_bench_store";
        var cs = provider == "Postgres" ? await HubProcess.CreateDatabaseAsync(postgresAdmin, database) : null;
        List<SimDevice> fleet;
        // The schema and the devices the series belong to; on SQLite the hub stays up (idle) and its database file is used.
        var hub = await HubProcess.StartAsync(provider, cs);
        try
        {
            using (var http = new HttpClient { BaseAddress = hub.BaseAddress })
                fleet = await Provisioning.CreateAsync(http, await Provisioning.LoginAsync(http, "admin", HubProcess.Password, CancellationToken.None), "store", devices, CancellationToken.None);
            if (provider == "Postgres")
            {
                await hub.DisposeAsync();
                await using var pg = new PostgresTelemetryStore(cs!, 1024);
                await MeasureAsync(pg, fleet, null);
                await HubProcess.QuietAsync(postgresAdmin, database);
            }
            else
            {
                var file = Path.Combine(hub.DataDirectory, "iothub.db");
                using var sqlite = new SqliteTelemetryStore($"Data Source={file};Cache=Private;Pooling=True;Default Timeout=30", 1024);
                await MeasureAsync(sqlite, fleet, file);
            }
        }
        finally
        {
            await hub.DisposeAsync();
        }
        return 0;
    }

    private async Task MeasureAsync(ITelemetryStore store, List<SimDevice> fleet, string? sqliteFile)
    {
        var committed = new List<CommittedPoint>();
        var start = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() - batches * MessagesPerDevice * 60L - 60_000;
        var seq = 0L;
        ValidatedTelemetry[] Batch(int b)
        {
            var batch = new ValidatedTelemetry[devices * MessagesPerDevice];
            for (var k = 0; k < MessagesPerDevice; k++)
            for (var d = 0; d < devices; d++)
            {
                var ts = start + (b * MessagesPerDevice + k) * 60L;
                var points = new TelemetryPoint[]
                {
                    new("temperature", ts, ValueKind.Number, 20 + (b + d) % 7 * 0.1, null),
                    new("humidity", ts, ValueKind.Number, 40 + (b * k + d) % 11, null),
                    new("heating", ts, ValueKind.Boolean, (b + k + d) % 2, null),
                };
                batch[k * devices + d] = new ValidatedTelemetry(new RawTelemetry(fleet[d].Id, TelemetryProtocol.Mqtt, PayloadFormat.Json, default, ts, seq++, null),
                    points, points.Length, null, null);
            }
            return batch;
        }

        for (var b = 0; b < 5; b++) await store.CommitAsync(Batch(b), committed, CancellationToken.None);
        // PostgreSQL's runs are short and measured for CPU, so their batches are made beforehand; SQLite's run long, so
        // theirs are made as they go (making one is a few ms against a commit of a hundred or more).
        var prepared = sqliteFile is null ? Enumerable.Range(5, batches).Select(Batch).ToList() : null;
        var db = new CpuMeter(CpuMeter.PostgresProcesses);
        var hubCpu = new CpuMeter(() => [Environment.ProcessId]);
        db.Start();
        hubCpu.Start();
        var wall = Stopwatch.StartNew();
        var lap = Stopwatch.StartNew();
        var lapWork = TimeSpan.Zero;
        var lapCpu = Process.GetCurrentProcess().TotalProcessorTime;
        var rates = new List<double>();
        for (var i = 0; i < batches; i++)
        {
            var batch = prepared?[i] ?? Batch(5 + i);
            committed.Clear();
            var commit = Stopwatch.StartNew();
            await store.CommitAsync(batch, committed, CancellationToken.None);
            lapWork += commit.Elapsed;
            if (sqliteFile is not null && (i + 1) % report == 0)
            {
                var rate = report * devices * MessagesPerDevice / lapWork.TotalSeconds;
                rates.Add(rate);
                var bytes = new FileInfo(sqliteFile).Length + (File.Exists(sqliteFile + "-wal") ? new FileInfo(sqliteFile + "-wal").Length : 0);
                var cpu = Process.GetCurrentProcess().TotalProcessorTime;
                Console.WriteLine($"  {i + 1,6} batches: {rate,8:N0} msg/s committing ({lapWork.TotalMilliseconds / report,5:0} ms a batch, {(cpu - lapCpu).TotalMilliseconds / report,5:0} ms CPU), database {bytes / 1048576.0,7:N0} MiB, " +
                                  $"{(5 + i + 1) * (double)devices * MessagesPerDevice * 3 / 1e6,6:0.0} M points, {lap.Elapsed.TotalSeconds:0} s");
                lap.Restart();
                lapCpu = cpu;
                lapWork = TimeSpan.Zero;
            }
        }
        wall.Stop();
        var (dbSeconds, storeSeconds) = (db.Seconds(), hubCpu.Seconds());
        var messages = (double)batches * devices * MessagesPerDevice;
        Console.WriteLine($"  {batches} batches in {wall.Elapsed.TotalSeconds:0.0} s ({wall.Elapsed.TotalMilliseconds / batches:0} ms a batch, {messages / wall.Elapsed.TotalSeconds:N0} msg/s)");
        if (sqliteFile is null)
        {
            Console.WriteLine($"PostgreSQL CPU: {dbSeconds * 1e6 / messages:0.00} µs per message, {dbSeconds * 1e6 / (messages * 3):0.00} µs per point; " +
                              $"the store's own CPU in the hub's place: {storeSeconds * 1e6 / messages:0.00} µs per message");
        }
        else
        {
            Console.WriteLine($"SQLite, in this process: {storeSeconds * 1e6 / messages:0.00} µs CPU per message");
            if (rates.Count >= 2)
                Console.WriteLine($"commit rate, last report against the first: {rates[^1]:N0} / {rates[0]:N0} msg/s = {rates[^1] / rates[0]:0.00}x");
        }
    }
}
