// The PostgreSQL store alone, without brokers or load generator: the same batches committed the way the hub's writer
// commits them (PostgresTelemetryStore, in this process), and the CPU time every PostgreSQL process spent on them, per
// stored point and per 3-point message. Each batch holds 10 messages of each of 1,000 devices (30,000 points, as the
// hub's default Storage:BatchMaxPoints), 2 numeric metrics and a boolean, timestamps 60 ms apart as at ~17 msg/s a
// device: the shape `ingest` gives the store. Deterministic work, so a change to the store can be measured on a noisy
// machine where end-to-end throughput swings by 2x between runs.
using System.Diagnostics;
using IoTHub.Contracts;
using IoTHub.Simulator;
using IoTHub.Storage.Write;

namespace IoTHub.Benchmarks;

internal sealed class StoreBenchmark(string postgresAdmin, int batches, int devices)
{
    private const int MessagesPerDevice = 10;

    public async Task<int> RunAsync()
    {
        Console.WriteLine($"machine: {Machine.Describe()}");
        Console.WriteLine($"store: {batches} batches of {devices * MessagesPerDevice:N0} messages ({devices * MessagesPerDevice * 3:N0} points) committed by IoTHub's PostgreSQL store, after 5 unmeasured");
        const string database = "iothub_bench_store";
        var cs = await HubProcess.CreateDatabaseAsync(postgresAdmin, database);
        List<SimDevice> fleet;
        await using (var hub = await HubProcess.StartAsync("Postgres", cs)) // the schema, and the devices the series belong to
        {
            using var http = new HttpClient { BaseAddress = hub.BaseAddress };
            fleet = await Provisioning.CreateAsync(http, await Provisioning.LoginAsync(http, "admin", HubProcess.Password, CancellationToken.None), "store", devices, CancellationToken.None);
        }

        await using var store = new PostgresTelemetryStore(cs, 1024);
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
        var prepared = Enumerable.Range(5, batches).Select(Batch).ToList();
        var db = new CpuMeter(CpuMeter.PostgresProcesses);
        var hubCpu = new CpuMeter(() => [Environment.ProcessId]);
        db.Start();
        hubCpu.Start();
        var wall = Stopwatch.StartNew();
        foreach (var batch in prepared)
        {
            committed.Clear();
            await store.CommitAsync(batch, committed, CancellationToken.None);
        }
        wall.Stop();
        var (dbSeconds, storeSeconds) = (db.Seconds(), hubCpu.Seconds());
        var messages = (double)batches * devices * MessagesPerDevice;
        Console.WriteLine($"  {batches} batches in {wall.Elapsed.TotalSeconds:0.0} s ({wall.Elapsed.TotalMilliseconds / batches:0} ms a batch, {messages / wall.Elapsed.TotalSeconds:N0} msg/s)");
        Console.WriteLine($"PostgreSQL CPU: {dbSeconds * 1e6 / messages:0.00} µs per message, {dbSeconds * 1e6 / (messages * 3):0.00} µs per point; " +
                          $"the store's own CPU in the hub's place: {storeSeconds * 1e6 / messages:0.00} µs per message");
        await HubProcess.QuietAsync(postgresAdmin, database);
        return 0;
    }
}
