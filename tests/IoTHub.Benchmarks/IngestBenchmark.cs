// One run, one machine, one load generator and the same payloads for every contender:
//   reference       mosquitto (Debian's) + a minimal subscriber that batch-COPYs each message into PostgreSQL as jsonb (QoS 0)
//   reference-qos1  the same-guarantee reference: devices and the subscriber at QoS 1, one narrow row per value with
//                   IoTHub's primary key, duplicates skipped (ReferenceSubscriber)
//   bare            an MQTTnet server with no processing (the library's ceiling), QoS 1, in its own process (BareServer)
//   IoTHub          on PostgreSQL and on SQLite, QoS 1, every ack after commit; "-cold": measured from the first message
//                   after start, with no warm-up (a ReadyToRun build too when --hub-r2r names one)
//   rabbitmq(-2)    Broker:Mode RabbitMq: a RabbitMQ node in front of one (two) hub nodes on PostgreSQL, MQTT 3.1.1
//                   (only with --only: it needs Debian's rabbitmq-server)
// Throughput is what reached durable storage per second (for bare MQTTnet: acks per second). Server CPU per stored
// message is the CPU time of the server's processes (the hub; or mosquitto and the subscriber; and every PostgreSQL
// process) over the measured window, from /proc, divided by the messages stored in it: on 2 cores shared with the load
// generator it is the figure that holds between runs. For IoTHub, three sampled devices' acked messages are checked
// to be stored.
using System.Buffers;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using IoTHub.Simulator;
using MQTTnet;
using MQTTnet.Protocol;
using Npgsql;

namespace IoTHub.Benchmarks;

internal sealed class IngestBenchmark(int devices, TimeSpan duration, TimeSpan warmup, int inFlight, string postgresAdmin, string[] only, string? r2rDirectory = null)
{
    /// <summary>A contender's figures: its stored rate and the server CPU it took per stored message, in µs (the
    /// contender's own processes, and PostgreSQL's; null where a contender has no database).</summary>
    private sealed record Outcome(string Name, double Rate, LoadResult Load, double AppCpuUs, double? DatabaseCpuUs, string Note)
    {
        public double TotalCpuUs => AppCpuUs + (DatabaseCpuUs ?? 0);
    }

    public async Task<int> RunAsync()
    {
        Console.WriteLine($"machine: {Machine.Describe()}");
        Console.WriteLine($"warm-up: {warmup.TotalSeconds:0} s of the same load per contender, unmeasured");
        Console.WriteLine($"load: {devices} devices, closed loop (each keeps {inFlight} QoS 1 messages unacknowledged, publishing the next as soon as one is acked), {duration.TotalSeconds:0} s, thermostat payloads (3 metrics)");
        var results = new List<Outcome>();
        bool Runs(string name) => only.Length == 0 ? name is not ("postgres-cold" or "postgres-cold-r2r" or "postgres-r2r" or "rabbitmq" or "rabbitmq-2") : only.Contains(name);
        if (Runs("reference")) results.Add(await ReferenceAsync("jsonb"));
        if (Runs("reference-qos1")) results.Add(await ReferenceAsync("narrow"));
        if (Runs("bare")) results.Add(await BareMqttnetAsync());
        if (Runs("postgres")) results.Add(await IoTHubAsync("postgres", "Postgres"));
        if (Runs("sqlite")) results.Add(await IoTHubAsync("sqlite", "Sqlite"));
        if (Runs("postgres-rules")) results.Add(await IoTHubAsync("postgres-rules", "Postgres", AlarmRules));
        if (Runs("sqlite-rules")) results.Add(await IoTHubAsync("sqlite-rules", "Sqlite", AlarmRules));
        if (Runs("postgres-r2r")) results.Add(await IoTHubAsync("postgres-r2r", "Postgres", directory: R2R()));
        if (Runs("postgres-cold")) results.Add(await IoTHubAsync("postgres-cold", "Postgres", cold: true));
        if (Runs("postgres-cold-r2r")) results.Add(await IoTHubAsync("postgres-cold-r2r", "Postgres", cold: true, directory: R2R()));
        if (Runs("rabbitmq")) results.Add(await RabbitMqAsync("rabbitmq", hubNodes: 1));
        if (Runs("rabbitmq-2")) results.Add(await RabbitMqAsync("rabbitmq-2", hubNodes: 2));

        Console.WriteLine();
        Console.WriteLine($"{"contender",-44} {"msg/s",9} {"p50 ms",7} {"p99 ms",7} {"CPU µs/msg",11} {"(app",6} {"+ db)",6}  note");
        foreach (var o in results)
            Console.WriteLine($"{Describe(o.Name),-44} {o.Rate,9:N0} {o.Load.Percentile(50),7:0.0} {o.Load.Percentile(99),7:0.0} {o.TotalCpuUs,11:0.0} {o.AppCpuUs,6:0.0} {(o.DatabaseCpuUs is { } db ? db.ToString("0.0", System.Globalization.CultureInfo.InvariantCulture) : "-"),6}  {o.Note}");
        Console.WriteLine();
        var byName = results.ToDictionary(o => o.Name);
        void Ratio(string a, string b, string what)
        {
            if (byName.TryGetValue(a, out var x) && byName.TryGetValue(b, out var y))
                Console.WriteLine($"ratio {Describe(a)} / {what}: {x.Rate / y.Rate:0.00} (CPU per message {x.TotalCpuUs / y.TotalCpuUs:0.00}×)");
        }
        Ratio("postgres", "reference-qos1", "same-guarantee reference");
        Ratio("sqlite", "reference-qos1", "same-guarantee reference");
        Ratio("postgres", "reference", "QoS 0 reference");
        Ratio("sqlite", "reference", "QoS 0 reference");
        Ratio("postgres", "bare", "bare MQTTnet");
        Ratio("sqlite", "bare", "bare MQTTnet");
        Ratio("postgres-rules", "postgres", $"without rules");
        Ratio("sqlite-rules", "sqlite", $"without rules");
        Ratio("postgres-r2r", "postgres", "JIT build, warm");
        Ratio("postgres-cold", "postgres", "warm");
        Ratio("postgres-cold-r2r", "postgres-cold", "cold JIT build");
        Ratio("rabbitmq", "postgres", "embedded broker");
        Ratio("rabbitmq-2", "rabbitmq", "one hub node");
        return results.Any(o => o.Note.Contains("LOST", StringComparison.Ordinal)) ? 1 : 0;
    }

    private string R2R() => r2rDirectory ?? throw new InvalidOperationException("the -r2r contenders need --hub-r2r DIR: a build published with -p:PublishReadyToRun=true (README, Performance)");

    private static string Describe(string name) => name switch
    {
        "reference" => "reference: mosquitto + COPY jsonb, QoS 0",
        "reference-qos1" => "reference: mosquitto + COPY narrow, QoS 1",
        "bare" => "bare MQTTnet, QoS 1",
        "postgres" => "IoTHub on PostgreSQL",
        "sqlite" => "IoTHub on SQLite",
        "postgres-rules" => $"IoTHub on PostgreSQL, {AlarmRules:N0} alarm rules",
        "sqlite-rules" => $"IoTHub on SQLite, {AlarmRules:N0} alarm rules",
        "postgres-r2r" => "IoTHub on PostgreSQL, ReadyToRun",
        "postgres-cold" => "IoTHub on PostgreSQL, cold (first seconds)",
        "postgres-cold-r2r" => "IoTHub on PostgreSQL, ReadyToRun, cold",
        "rabbitmq" => "IoTHub on RabbitMQ (1 node) + PostgreSQL",
        "rabbitmq-2" => "2 IoTHub nodes on RabbitMQ (1 node) + PostgreSQL",
        _ => name,
    };

    private static double PerMessageUs(double cpuSeconds, double messages) => messages > 0 ? cpuSeconds * 1e6 / messages : double.NaN;

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

    private async Task<Outcome> ReferenceAsync(string shape)
    {
        var qos = shape == "narrow" ? 1 : 0;
        var name = shape == "narrow" ? "reference-qos1" : "reference";
        Console.WriteLine($"{Describe(name)} ...");
        var port = HubProcess.FreePort();
        var conf = Path.Combine(Path.GetTempPath(), $"iothub-bench-mosquitto-{port}.conf");
        // IOTHUB_BENCH_MOSQUITTO_INFLIGHT: mosquitto's max_inflight_messages toward the subscriber (0, unlimited, by default;
        // 20 and 1,000 were tried for the QoS 1 reference: docs/benchmarks.md).
        var inflight = Environment.GetEnvironmentVariable("IOTHUB_BENCH_MOSQUITTO_INFLIGHT") ?? "0";
        await File.WriteAllTextAsync(conf, $"listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 1000000\nmax_inflight_messages {inflight}\nlog_dest none\n");
        // log_dest none: mosquitto logs every connection, and a log nobody reads fills its pipe and stalls the broker
        // (that is what stopped the 1,000-device runs before).
        using var mosquitto = Process.Start(new ProcessStartInfo(File.Exists("/usr/sbin/mosquitto") ? "/usr/sbin/mosquitto" : "mosquitto", $"-c {conf}"))!;
        await WaitForPortAsync(port);
        var database = "iothub_bench_" + name.Replace('-', '_');
        var cs = await HubProcess.CreateDatabaseAsync(postgresAdmin, database);
        await using (var c = new NpgsqlConnection(cs))
        {
            await c.OpenAsync();
            await using var cmd = new NpgsqlCommand(ReferenceSubscriber.CreateTableSql(shape), c);
            await cmd.ExecuteNonQueryAsync();
        }
        await using var subscriber = await ReferenceSubscriber.StartAsync(port, cs, shape);
        var fleet = Enumerable.Range(0, devices).Select(i => new SimDevice($"ref-{i}", "")).ToList();
        var warm = await WarmUpAsync(fleet, "127.0.0.1", port, qos, credentials: false);
        var warmedUp = await DrainedAsync(() => subscriber.Stored, Stopwatch.StartNew(), warmup);
        var app = new CpuMeter(() => [mosquitto.Id, subscriber.Pid]);
        var db = new CpuMeter(CpuMeter.PostgresProcesses);
        var sw = new Stopwatch();
        var load = await LoadGenerator.RunAsync(fleet, Options("127.0.0.1", port, qos, credentials: false) with { Started = () => { app.Start(); db.Start(); sw.Start(); } },
            CancellationToken.None);
        // The rate is what reached PostgreSQL, counted until the subscriber has drained the broker's backlog.
        var (last, lastChange) = await DrainedAsync(() => subscriber.Stored - warmedUp.Count, sw, duration);
        var (appCpu, dbCpu) = (app.Seconds(), db.Seconds());
        var note = $"{last:N0} stored of {load.Sent:N0} sent";
        if (qos == 1)
        {
            await using var c = new NpgsqlConnection(cs);
            await c.OpenAsync();
            note += "; " + await CheckStoredAsync(fleet, warm, load, async id =>
            {
                await using var count = new NpgsqlCommand("SELECT count(*) FROM telemetry WHERE device = $1", c) { Parameters = { new() { Value = id } } };
                return (long)(await count.ExecuteScalarAsync())!;
            });
        }
        mosquitto.Kill();
        Console.WriteLine($"  {load}; {last:N0} messages stored in {lastChange.TotalSeconds:0.0} s ({load.Sent - last:N0} not stored)");
        await HubProcess.QuietAsync(postgresAdmin, database);
        return new Outcome(name, last / lastChange.TotalSeconds, load, PerMessageUs(appCpu, last), PerMessageUs(dbCpu, last), note);
    }

    /// <summary>Every acked message of three devices (the first, middle and last of the fleet) is stored: rows of
    /// each ≥ 3 × its acks over the warm-up and the run (a thermostat message holds 3 values; a message sent but not
    /// acked may be stored too).</summary>
    private static async Task<string> CheckStoredAsync(IReadOnlyList<SimDevice> fleet, LoadResult? warm, LoadResult load, Func<string, Task<long>> rows)
    {
        var parts = new List<string>();
        foreach (var i in new[] { 0, fleet.Count / 2, fleet.Count - 1 }.Distinct())
        {
            var acked = load.AckedByDevice[i] + (warm?.AckedByDevice.ElementAtOrDefault(i) ?? 0);
            var stored = await rows(fleet[i].Id);
            parts.Add(stored >= 3 * acked ? $"{acked:N0}" : $"LOST {3 * acked - stored:N0} values of {acked:N0} acked");
        }
        return "sampled devices' acked messages stored: " + string.Join(", ", parts);
    }

    private async Task<Outcome> BareMqttnetAsync()
    {
        Console.WriteLine("bare MQTTnet server (its own process) ...");
        var port = HubProcess.FreePort();
        await using var server = await BareServer.StartAsync(port);
        var fleet = Enumerable.Range(0, devices).Select(i => new SimDevice($"bare-{i}", "")).ToList();
        await WarmUpAsync(fleet, "127.0.0.1", port, qos: 1, credentials: false);
        var app = new CpuMeter(() => [server.Pid]);
        var load = await LoadGenerator.RunAsync(fleet, Options("127.0.0.1", port, qos: 1, credentials: false) with { Started = app.Start }, CancellationToken.None);
        var cpu = app.Seconds();
        Console.WriteLine($"  {load}; server RSS {Machine.RssMiB(server.Pid):0} MiB");
        return new Outcome("bare", load.AcksPerSecond, load, PerMessageUs(cpu, load.Acked), null, $"server RSS {Machine.RssMiB(server.Pid):0} MiB; nothing stored");
    }

    private async Task<Outcome> IoTHubAsync(string name, string provider, int rules = 0, bool cold = false, string? directory = null)
    {
        Console.WriteLine($"{Describe(name)} ...");
        var database = "iothub_bench_hub";
        var postgres = provider == "Postgres" ? await HubProcess.CreateDatabaseAsync(postgresAdmin, database) : null;
        LoadResult load;
        double rss, appCpu, dbCpu;
        string check, gc;
        await using (var hub = await HubProcess.StartAsync(directory, provider, postgres))
        {
            using var client = new HttpClient { BaseAddress = hub.BaseAddress };
            var bearer = await Provisioning.LoginAsync(client, "admin", HubProcess.Password, CancellationToken.None);
            var fleet = await Provisioning.CreateAsync(client, bearer, "bench", devices, CancellationToken.None);
            if (rules > 0) await CreateRulesAsync(client, bearer, fleet.Select(d => d.Id).ToList(), rules);
            var warm = cold ? null : await WarmUpAsync(fleet, "127.0.0.1", hub.MqttPort, qos: 1, credentials: true);
            var app = new CpuMeter(() => [hub.Pid]);
            var db = new CpuMeter(provider == "Postgres" ? CpuMeter.PostgresProcesses : () => []);
            Task<Dictionary<string, double>>? before = null;
            var jitStart = new Dictionary<string, long>();
            load = await LoadGenerator.RunAsync(fleet, Options("127.0.0.1", hub.MqttPort, qos: 1, credentials: true) with
            {
                Started = () => { app.Start(); db.Start(); before = GcAsync(client); jitStart = CpuMeter.ThreadTicks(hub.Pid, ".NET Tiered"); },
            }, CancellationToken.None);
            (appCpu, dbCpu) = (app.Seconds(), db.Seconds());
            var jit = CpuMeter.TicksSince(jitStart, CpuMeter.ThreadTicks(hub.Pid, ".NET Tiered"));
            var (gcStart, gcEnd) = (await before!, await GcAsync(client));
            gc = $"allocated {(gcEnd["dotnet_gc_allocated_bytes_total"] - gcStart["dotnet_gc_allocated_bytes_total"]) / load.Acked:N0} B/msg, " +
                 $"GC pauses {(gcEnd["dotnet_gc_pause_seconds_total"] - gcStart["dotnet_gc_pause_seconds_total"]) / load.Elapsed.TotalSeconds:P0} of the time, " +
                 $"collections gen0/1/2 {string.Join('/', Enumerable.Range(0, 3).Select(g => gcEnd[$"gen{g}"] - gcStart[$"gen{g}"]))}; " +
                 $"tiered JIT at least {jit:0.0} s of the hub's {appCpu:0.0} s CPU";
            rss = Machine.RssMiB(hub.Pid);
            check = await CheckStoredAsync(fleet, warm, load, id => CountRowsAsync(provider == "Postgres" ? postgres! : null, hub.DataDirectory, id));
        }
        if (postgres is not null) await HubProcess.QuietAsync(postgresAdmin, database);
        Console.WriteLine($"  {load}; hub RSS {rss:0} MiB; {check}; {gc}");
        return new Outcome(name, load.AcksPerSecond, load, PerMessageUs(appCpu, load.Acked), provider == "Postgres" ? PerMessageUs(dbCpu, load.Acked) : null,
            $"hub RSS {rss:0} MiB; {check}");
    }

    /// <summary>Broker:Mode RabbitMq: one RabbitMQ node (deploy/rabbitmq's configuration) in front of one or two hub
    /// nodes on one PostgreSQL database; the devices speak MQTT 3.1.1 to RabbitMQ, whose PUBACK comes once its quorum
    /// queue has the message, so the rate is what the hub nodes committed (iothub_telemetry_messages_total), counted until
    /// the queues have drained. Server CPU: the hub nodes and RabbitMQ's Erlang VM, plus PostgreSQL.</summary>
    private async Task<Outcome> RabbitMqAsync(string name, int hubNodes)
    {
        Console.WriteLine($"{Describe(name)} ...");
        if (IoTHub.Testing.RabbitMqNode.Unavailable() is { } why) throw new InvalidOperationException(why);
        var http = HubProcess.FreePort();
        await using var rabbit = await IoTHub.Testing.RabbitMqNode.StartAsync(http);
        var database = "iothub_bench_hub";
        var postgres = await HubProcess.CreateDatabaseAsync(postgresAdmin, database);
        string[] mode = ["--Broker:Mode=RabbitMq", $"--ConnectionStrings:RabbitMq={rabbit.AmqpUri}"];
        var hubs = new List<HubProcess> { await HubProcess.StartAsync(null, http, "Postgres", postgres, mode) };
        try
        {
            for (var i = 1; i < hubNodes; i++) hubs.Add(await HubProcess.StartAsync(null, "Postgres", postgres, mode));
            using var client = new HttpClient { BaseAddress = hubs[0].BaseAddress };
            var clients = hubs.Select(h => new HttpClient { BaseAddress = h.BaseAddress }).ToList();
            var bearer = await Provisioning.LoginAsync(client, "admin", HubProcess.Password, CancellationToken.None);
            var fleet = await Provisioning.CreateAsync(client, bearer, "bench", devices, CancellationToken.None);
            async Task<long> CommittedAsync()
            {
                long sum = 0;
                foreach (var c in clients)
                    foreach (var line in (await c.GetStringAsync("/metrics")).Split('\n'))
                        if (line.StartsWith("iothub_telemetry_messages_total", StringComparison.Ordinal))
                            sum += (long)double.Parse(line[(line.LastIndexOf(' ') + 1)..], System.Globalization.CultureInfo.InvariantCulture);
                return sum;
            }
            var warm = await WarmUpAsync(fleet, "127.0.0.1", rabbit.MqttPort, qos: 1, credentials: true, MQTTnet.Formatter.MqttProtocolVersion.V311);
            var committed = 0L;
            var poll = Stopwatch.StartNew();
            await DrainedMetricAsync();
            var app = new CpuMeter(() => hubs.Select(h => h.Pid).Concat(CpuMeter.ProcessesNamed("beam.smp")));
            var db = new CpuMeter(CpuMeter.PostgresProcesses);
            var before = committed;
            var sw = new Stopwatch();
            var load = await LoadGenerator.RunAsync(fleet, Options("127.0.0.1", rabbit.MqttPort, qos: 1, credentials: true) with
            {
                MqttVersion = MQTTnet.Formatter.MqttProtocolVersion.V311, Started = () => { app.Start(); db.Start(); sw.Start(); },
            }, CancellationToken.None);
            var (last, lastChange) = await DrainedAsync(() => { committed = CommittedAsync().GetAwaiter().GetResult(); return committed - before; }, sw, duration);
            var (appCpu, dbCpu) = (app.Seconds(), db.Seconds());
            var check = await CheckStoredAsync(fleet, warm, load, id => CountRowsAsync(postgres, "", id));
            var rss = hubs.Sum(h => Machine.RssMiB(h.Pid));
            Console.WriteLine($"  {load}; {last:N0} committed in {lastChange.TotalSeconds:0.0} s; hub RSS {rss:0} MiB; {check}");
            return new Outcome(name, last / lastChange.TotalSeconds, load, PerMessageUs(appCpu, last), PerMessageUs(dbCpu, last), $"hub RSS {rss:0} MiB; {check}");

            async Task DrainedMetricAsync()
            {
                // The warm-up's backlog drains before the measured run starts.
                (committed, _) = await DrainedAsync(() => CommittedAsync().GetAwaiter().GetResult(), poll, warmup);
            }
        }
        finally
        {
            foreach (var h in hubs) await h.DisposeAsync();
            await HubProcess.QuietAsync(postgresAdmin, database);
        }
    }

    /// <summary>The hub's GC counters from its /metrics: bytes allocated, pause seconds, and collections per generation (gen0..gen2).</summary>
    private static async Task<Dictionary<string, double>> GcAsync(HttpClient hub)
    {
        var result = new Dictionary<string, double>();
        foreach (var line in (await hub.GetStringAsync("/metrics")).Split('\n'))
        {
            if (!line.StartsWith("dotnet_gc_", StringComparison.Ordinal)) continue;
            var (name, value) = (line[..line.LastIndexOf(' ')], double.Parse(line[(line.LastIndexOf(' ') + 1)..], System.Globalization.CultureInfo.InvariantCulture));
            result[name.StartsWith("dotnet_gc_collections_total", StringComparison.Ordinal) ? "gen" + name[^3] : name] = value;
        }
        return result;
    }

    /// <summary>Rows stored for a device's series, read from the hub's database while it runs.</summary>
    private static async Task<long> CountRowsAsync(string? postgres, string dataDirectory, string deviceId)
    {
        const string sql = "SELECT count(*) FROM telemetry t JOIN series s ON s.id = t.series_id WHERE s.device_id = ";
        if (postgres is not null)
        {
            await using var c = new NpgsqlConnection(postgres);
            await c.OpenAsync();
            await using var cmd = new NpgsqlCommand(sql + "$1", c) { Parameters = { new() { Value = deviceId } } };
            return (long)(await cmd.ExecuteScalarAsync())!;
        }
        await using var lite = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={Path.Combine(dataDirectory, "iothub.db")};Mode=ReadOnly");
        await lite.OpenAsync();
        await using var q = lite.CreateCommand();
        q.CommandText = sql + "$id";
        q.Parameters.AddWithValue("$id", deviceId);
        return (long)(await q.ExecuteScalarAsync())!;
    }

    private LoadOptions Options(string host, int port, int qos, bool credentials) =>
        new(host, port, null, "mqtt", qos, 0, duration, DeviceModel.Thermostat, credentials, InFlight: inFlight);

    /// <summary>The same load, unmeasured, so that every contender is measured with its code compiled and optimised
    /// and its buffers and pools grown. 20 s by default: `dotnet-counters` on the hub showed its tiered JIT busy for
    /// ~25 s after start under this load (17 s of compile time, a fifth of the hub's CPU in `perf`), so a 5 s warm-up
    /// measured the JIT as much as the hub.</summary>
    private async Task<LoadResult?> WarmUpAsync(IReadOnlyList<SimDevice> fleet, string host, int port, int qos, bool credentials,
        MQTTnet.Formatter.MqttProtocolVersion version = MQTTnet.Formatter.MqttProtocolVersion.V500)
    {
        if (warmup <= TimeSpan.Zero) return null;
        var load = await LoadGenerator.RunAsync(fleet, Options(host, port, qos, credentials) with { Duration = warmup, MqttVersion = version }, CancellationToken.None);
        Console.WriteLine($"  warm-up: {load}");
        return load;
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
