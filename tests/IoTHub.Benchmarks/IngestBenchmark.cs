// One run, one machine, one load generator and the same payloads for every contender:
//   reference  mosquitto (Debian's) + a minimal subscriber that batch-COPYs each message into PostgreSQL (QoS 0)
//   bare       an MQTTnet server with no processing (the library's ceiling), QoS 1, in its own process (BareServer)
//   IoTHub     on PostgreSQL and on SQLite, QoS 1, every ack after commit
// Throughput is what reached durable storage per second (for bare MQTTnet: acks per second).
using System.Buffers;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Threading.Channels;
using IoTHub.Simulator;
using MQTTnet;
using MQTTnet.Protocol;
using Npgsql;
using NpgsqlTypes;

namespace IoTHub.Benchmarks;

internal sealed class IngestBenchmark(int devices, TimeSpan duration, TimeSpan warmup, int inFlight, string postgresAdmin, string[] only)
{
    public async Task<int> RunAsync()
    {
        Console.WriteLine($"machine: {Machine.Describe()}");
        Console.WriteLine($"warm-up: {warmup.TotalSeconds:0} s of the same load per contender, unmeasured");
        Console.WriteLine($"load: {devices} devices, closed loop (each keeps {inFlight} QoS 1 messages unacknowledged, publishing the next as soon as one is acked), {duration.TotalSeconds:0} s, thermostat payloads (3 metrics)");
        var results = new List<(string Name, double Rate, LoadResult Load, string Note)>();

        bool Runs(string name) => only.Length == 0 || only.Contains(name);
        ReferenceResult? reference = null;
        LoadResult? bare = null, pg = null, sqlite = null, pgRules = null, sqliteRules = null;
        if (Runs("reference"))
        {
            reference = await ReferenceAsync();
            results.Add(("reference: mosquitto + COPY subscriber, QoS 0", reference.StoredPerSecond, reference.Load, $"{reference.Stored:N0} rows stored of {reference.Load.Sent:N0} sent"));
        }
        if (Runs("bare"))
        {
            bare = await BareMqttnetAsync();
            results.Add(("bare MQTTnet, QoS 1", bare.AcksPerSecond, bare, ""));
        }
        if (Runs("postgres"))
        {
            (pg, var pgRss) = await IoTHubAsync("Postgres");
            results.Add(("IoTHub on PostgreSQL, QoS 1 ack-after-commit", pg.AcksPerSecond, pg, $"hub RSS {pgRss:0} MiB"));
        }
        if (Runs("sqlite"))
        {
            (sqlite, var sqliteRss) = await IoTHubAsync("Sqlite");
            results.Add(("IoTHub on SQLite, QoS 1 ack-after-commit", sqlite.AcksPerSecond, sqlite, $"hub RSS {sqliteRss:0} MiB"));
        }

        if (Runs("postgres-rules"))
        {
            (pgRules, var rss) = await IoTHubAsync("Postgres", AlarmRules);
            results.Add(($"IoTHub on PostgreSQL, {AlarmRules:N0} alarm rules", pgRules.AcksPerSecond, pgRules, $"hub RSS {rss:0} MiB"));
        }
        if (Runs("sqlite-rules"))
        {
            (sqliteRules, var rss) = await IoTHubAsync("Sqlite", AlarmRules);
            results.Add(($"IoTHub on SQLite, {AlarmRules:N0} alarm rules", sqliteRules.AcksPerSecond, sqliteRules, $"hub RSS {rss:0} MiB"));
        }

        Console.WriteLine();
        Console.WriteLine($"{"contender",-48} {"msg/s",10} {"p50 ms",8} {"p99 ms",8}  note");
        foreach (var (name, rate, load, note) in results)
            Console.WriteLine($"{name,-48} {rate,10:N0} {load.Percentile(50),8:0.0} {load.Percentile(99),8:0.0}  {note}");
        Console.WriteLine();
        if (reference is not null && pg is not null) Console.WriteLine($"ratio IoTHub(PostgreSQL) / reference: {pg.AcksPerSecond / reference.StoredPerSecond:0.00}");
        if (reference is not null && sqlite is not null) Console.WriteLine($"ratio IoTHub(SQLite) / reference:     {sqlite.AcksPerSecond / reference.StoredPerSecond:0.00}");
        if (bare is not null && pg is not null) Console.WriteLine($"ratio IoTHub(PostgreSQL) / bare:      {pg.AcksPerSecond / bare.AcksPerSecond:0.00}");
        if (bare is not null && sqlite is not null) Console.WriteLine($"ratio IoTHub(SQLite) / bare:          {sqlite.AcksPerSecond / bare.AcksPerSecond:0.00}");
        if (pg is not null && pgRules is not null) Console.WriteLine($"ratio IoTHub(PostgreSQL) with / without {AlarmRules:N0} rules: {pgRules.AcksPerSecond / pg.AcksPerSecond:0.00}");
        if (sqlite is not null && sqliteRules is not null) Console.WriteLine($"ratio IoTHub(SQLite) with / without {AlarmRules:N0} rules:     {sqliteRules.AcksPerSecond / sqlite.AcksPerSecond:0.00}");
        return 0;
    }

    /// <summary>Rules of the "-rules" contenders: each device's temperature watched by rules scoped to it (a duration
    /// rule with hysteresis, never raised by the thermostat's 19-25 °C), spread evenly over the fleet.</summary>
    private const int AlarmRules = 1000;

    private static async Task CreateRulesAsync(HttpClient client, string bearer, IReadOnlyList<string> deviceIds, int count)
    {
        client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", bearer);
        for (var i = 0; i < count; i++)
        {
            var body = $$$"""{"name": "hot {{{i}}}", "scope": {"deviceId": "{{{deviceIds[i % deviceIds.Count]}}}"}, "metric": "temperature", "raise": [{"severity": "major", "operator": ">", "value": {{{60 + i % 20}}}, "forSeconds": 600}], "clear": {"operator": "<", "value": 55}}""";
            (await client.PostAsync("/api/v1/alarm-rules", new StringContent(body, System.Text.Encoding.UTF8, "application/json"))).EnsureSuccessStatusCode();
        }
    }

    private sealed record ReferenceResult(LoadResult Load, long Stored, double StoredPerSecond);

    private async Task<ReferenceResult> ReferenceAsync()
    {
        Console.WriteLine("reference: mosquitto + subscriber batch-COPYing into PostgreSQL ...");
        var port = HubProcess.FreePort();
        var conf = Path.Combine(Path.GetTempPath(), $"iothub-bench-mosquitto-{port}.conf");
        await File.WriteAllTextAsync(conf, $"listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 1000000\nmax_inflight_messages 0\nlog_dest none\n");
        // log_dest none: mosquitto logs every connection, and a log nobody reads fills its pipe and stalls the broker
        // (that is what stopped the 1,000-device runs before).
        using var mosquitto = Process.Start(new ProcessStartInfo(File.Exists("/usr/sbin/mosquitto") ? "/usr/sbin/mosquitto" : "mosquitto", $"-c {conf}"))!;
        await WaitForPortAsync(port);
        var cs = await HubProcess.CreateDatabaseAsync(postgresAdmin, "iothub_bench_reference");
        await using (var c = new NpgsqlConnection(cs))
        {
            await c.OpenAsync();
            await using var cmd = new NpgsqlCommand("CREATE TABLE telemetry (device text NOT NULL, received_at timestamptz NOT NULL, payload jsonb NOT NULL)", c);
            await cmd.ExecuteNonQueryAsync();
        }

        // The minimal subscriber a user would hand-build: subscribe to everything, buffer, COPY every 1,000 messages or 5 ms.
        var buffer = Channel.CreateUnbounded<(string Device, DateTime At, byte[] Payload)>();
        long stored = 0;
        using var subscriber = new MqttClientFactory().CreateMqttClient();
        subscriber.ApplicationMessageReceivedAsync += e =>
        {
            var topic = e.ApplicationMessage.Topic;
            var device = topic.Split('/')[1];
            buffer.Writer.TryWrite((device, DateTime.UtcNow, e.ApplicationMessage.Payload.ToArray()));
            return Task.CompletedTask;
        };
        // A keep-alive longer than the run: under a flood mosquitto queues its PINGRESP behind the backlog, the client would give up and
        // every message still queued would be lost (QoS 0), which measured the subscriber's timeout, not the pipeline.
        await subscriber.ConnectAsync(new MqttClientOptionsBuilder().WithTcpServer("127.0.0.1", port).WithClientId("copy-subscriber")
            .WithKeepAlivePeriod(TimeSpan.FromMinutes(30)).WithTimeout(TimeSpan.FromMinutes(5)).Build());
        await subscriber.SubscribeAsync("devices/+/telemetry", MqttQualityOfServiceLevel.AtMostOnce);
        using var stopWriter = new CancellationTokenSource();
        var writer = Task.Run(async () =>
        {
            await using var c = new NpgsqlConnection(cs);
            await c.OpenAsync();
            var batch = new List<(string, DateTime, byte[])>(1000);
            while (await buffer.Reader.WaitToReadAsync())
            {
                var deadline = DateTime.UtcNow.AddMilliseconds(5);
                while (batch.Count < 1000 && DateTime.UtcNow < deadline)
                {
                    if (buffer.Reader.TryRead(out var m)) batch.Add(m);
                    else await Task.Delay(1);
                }
                await using (var copy = await c.BeginBinaryImportAsync("COPY telemetry (device, received_at, payload) FROM STDIN (FORMAT BINARY)"))
                {
                    foreach (var (d, at, p) in batch)
                    {
                        copy.StartRow();
                        copy.Write(d, NpgsqlDbType.Text);
                        copy.Write(at, NpgsqlDbType.TimestampTz);
                        copy.Write(System.Text.Encoding.UTF8.GetString(p), NpgsqlDbType.Jsonb);
                    }
                    await copy.CompleteAsync();
                }
                Interlocked.Add(ref stored, batch.Count);
                batch.Clear();
            }
        });

        var fleet = Enumerable.Range(0, devices).Select(i => new SimDevice($"ref-{i}", "")).ToList();
        await WarmUpAsync(fleet, "127.0.0.1", port, qos: 0, credentials: false);
        var warmedUp = await DrainedAsync(() => Interlocked.Read(ref stored), Stopwatch.StartNew(), warmup);
        var sw = Stopwatch.StartNew();
        var load = await LoadGenerator.RunAsync(fleet, Options("127.0.0.1", port, qos: 0, credentials: false), CancellationToken.None);
        // QoS 0 gives no acks: the rate is what reached PostgreSQL, counted until the subscriber has drained the backlog.
        var (last, lastChange) = await DrainedAsync(() => Interlocked.Read(ref stored) - warmedUp.Count, sw, duration);
        buffer.Writer.TryComplete();
        await writer;
        mosquitto.Kill();
        Console.WriteLine($"  {load}; {last:N0} rows stored in {lastChange.TotalSeconds:0.0} s ({load.Sent - last:N0} lost)");
        await HubProcess.QuietAsync(postgresAdmin, "iothub_bench_reference");
        return new ReferenceResult(load, last, last / lastChange.TotalSeconds);
    }

    private async Task<LoadResult> BareMqttnetAsync()
    {
        Console.WriteLine("bare MQTTnet server (its own process) ...");
        var port = HubProcess.FreePort();
        await using var server = await BareServer.StartAsync(port);
        var fleet = Enumerable.Range(0, devices).Select(i => new SimDevice($"bare-{i}", "")).ToList();
        await WarmUpAsync(fleet, "127.0.0.1", port, qos: 1, credentials: false);
        var load = await LoadGenerator.RunAsync(fleet, Options("127.0.0.1", port, qos: 1, credentials: false), CancellationToken.None);
        Console.WriteLine($"  {load}; server RSS {Machine.RssMiB(server.Pid):0} MiB");
        return load;
    }

    private async Task<(LoadResult Load, double RssMiB)> IoTHubAsync(string provider, int rules = 0)
    {
        Console.WriteLine($"IoTHub on {provider}{(rules > 0 ? $" with {rules} alarm rules" : "")} ...");
        var postgres = provider == "Postgres" ? await HubProcess.CreateDatabaseAsync(postgresAdmin, "iothub_bench_hub") : null;
        LoadResult load;
        double rss;
        await using (var hub = await HubProcess.StartAsync(provider, postgres))
        {
            using var client = new HttpClient { BaseAddress = hub.BaseAddress };
            var bearer = await Provisioning.LoginAsync(client, "admin", HubProcess.Password, CancellationToken.None);
            var fleet = await Provisioning.CreateAsync(client, bearer, "bench", devices, CancellationToken.None);
            if (rules > 0) await CreateRulesAsync(client, bearer, fleet.Select(d => d.Id).ToList(), rules);
            await WarmUpAsync(fleet, "127.0.0.1", hub.MqttPort, qos: 1, credentials: true);
            load = await LoadGenerator.RunAsync(fleet, Options("127.0.0.1", hub.MqttPort, qos: 1, credentials: true), CancellationToken.None);
            rss = Machine.RssMiB(hub.Pid);
        }
        if (postgres is not null) await HubProcess.QuietAsync(postgresAdmin, "iothub_bench_hub");
        Console.WriteLine($"  {load}; hub RSS {rss:0} MiB");
        return (load, rss);
    }

    private LoadOptions Options(string host, int port, int qos, bool credentials) =>
        new(host, port, null, "mqtt", qos, 0, duration, DeviceModel.Thermostat, credentials, InFlight: inFlight);

    /// <summary>The same load, unmeasured, so that every contender is measured with its code compiled and optimised
    /// and its buffers and pools grown. 20 s by default: `dotnet-counters` on the hub showed its tiered JIT busy for
    /// ~25 s after start under this load (17 s of compile time, a fifth of the hub's CPU in `perf`), so a 5 s warm-up
    /// measured the JIT as much as the hub.</summary>
    private async Task WarmUpAsync(IReadOnlyList<SimDevice> fleet, string host, int port, int qos, bool credentials)
    {
        if (warmup <= TimeSpan.Zero) return;
        var load = await LoadGenerator.RunAsync(fleet, Options(host, port, qos, credentials) with { Duration = warmup }, CancellationToken.None);
        Console.WriteLine($"  warm-up: {load}");
    }

    /// <summary>Waits until <paramref name="count"/> has not moved for a second; returns it and when it last moved.
    /// Bounded by four times the load's <paramref name="length"/> (plus 10 s): QoS 0 has no backpressure, so the
    /// broker's backlog can take longer to drain than the load took to send.</summary>
    private static async Task<(long Count, TimeSpan LastChange)> DrainedAsync(Func<long> count, Stopwatch sw, TimeSpan length)
    {
        var last = count();
        var lastChange = sw.Elapsed;
        while (sw.Elapsed - lastChange < TimeSpan.FromSeconds(1) && sw.Elapsed < length * 4 + TimeSpan.FromSeconds(10))
        {
            await Task.Delay(100);
            var now = count();
            if (now != last) { last = now; lastChange = sw.Elapsed; }
        }
        return (last, lastChange);
    }

    private static async Task WaitForPortAsync(int port)
    {
        for (var i = 0; i < 100; i++)
        {
            try
            {
                using var c = new TcpClient();
                await c.ConnectAsync(IPAddress.Loopback, port);
                return;
            }
            catch (SocketException)
            {
                await Task.Delay(50);
            }
        }
        throw new InvalidOperationException($"nothing listens on {port}");
    }

}
