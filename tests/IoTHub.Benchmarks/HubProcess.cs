using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Npgsql;

namespace IoTHub.Benchmarks;

/// <summary>IoTHub's published Release build, started as its own process for a benchmark.</summary>
internal sealed class HubProcess : IAsyncDisposable
{
    public const string Password = "benchmark-password";
    private readonly Process _process;
    private readonly string _data;

    public Uri BaseAddress { get; }
    public int MqttPort { get; }

    /// <summary>The hub's CoAP (UDP) port.</summary>
    public int CoapPort { get; private init; }
    public int Pid => _process.Id;

    /// <summary>The hub's data directory (its SQLite database is <c>iothub.db</c> in it).</summary>
    public string DataDirectory => _data;

    /// <summary>The directory of the hub's build that benchmarks start: the Release build's output, or the directory of
    /// a published build given with <c>--hub-dir</c> (e.g. one published ReadyToRun).</summary>
    public static string BuildDirectory { get; set; } = Path.Combine(FindRoot(), "src/IoTHub/bin/Release/net10.0");

    private HubProcess(Process process, string data, Uri baseAddress, int mqttPort)
    {
        _process = process;
        _data = data;
        BaseAddress = baseAddress;
        MqttPort = mqttPort;
    }

    public static Task<HubProcess> StartAsync(string provider, string? postgres, params string[] extra) => StartAsync(null, provider, postgres, extra);

    /// <summary>Starts the hub of <paramref name="directory"/> (null: <see cref="BuildDirectory"/>) and waits until it is ready.</summary>
    public static Task<HubProcess> StartAsync(string? directory, string provider, string? postgres, params string[] extra) =>
        StartAsync(directory, FreePort(), provider, postgres, extra);

    /// <summary>As above, with the HTTP API on <paramref name="http"/> (RabbitMQ must know it before the hub starts).</summary>
    public static async Task<HubProcess> StartAsync(string? directory, int http, string provider, string? postgres, params string[] extra)
    {
        var mqtt = FreePort();
        var coap = FreePort();
        var data = Path.Combine(Path.GetTempPath(), "iothub-bench-" + Guid.NewGuid().ToString("N")[..8]);
        var dll = Path.Combine(directory ?? BuildDirectory, "IoTHub.dll");
        if (!File.Exists(dll)) throw new InvalidOperationException($"{dll} is missing: run `dotnet build -c Release IoTHub.sln` first");
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[]
                 {
                     dll, "--urls", $"http://127.0.0.1:{http}", $"--Mqtt:Port={mqtt}", "--Mqtt:Host=127.0.0.1", $"--Coap:Port={coap}", $"--Coap:DtlsPort={FreePort()}", "--Coap:Host=127.0.0.1", $"--DataDirectory={data}",
                     $"--Bootstrap:AdminPassword={Password}", $"--Storage:Provider={provider}", $"--ConnectionStrings:Postgres={postgres}",
                     "--Logging:LogLevel:Default=Warning",
                     // The whole fleet comes from one address and provisions in a burst: lift the per-device, per-address and per-user limits.
                     "--Connectivity:DeviceMessagesPerSecond=1000000", "--Mqtt:MaxConnectionsPerAddress=1000000", "--RateLimits:UserRequestsPerSecond=100000",
                 }.Concat(extra))
            psi.ArgumentList.Add(a);
        // IOTHUB_BENCH_HUB_ENV="K=V;K=V": environment for the hub process only (e.g. GC settings to compare).
        foreach (var kv in (Environment.GetEnvironmentVariable("IOTHUB_BENCH_HUB_ENV") ?? "").Split(';', StringSplitOptions.RemoveEmptyEntries))
            psi.Environment[kv.Split('=', 2)[0]] = kv.Split('=', 2)[1];
        var p = Process.Start(psi)!;
        // IOTHUB_BENCH_HUB_LOG=1: show the hub's own log (warnings and errors; the level is Warning) as well.
        var showLog = Environment.GetEnvironmentVariable("IOTHUB_BENCH_HUB_LOG") is "1" or "true";
        p.OutputDataReceived += (_, e) => { if (showLog && e.Data is { Length: > 0 } line) Console.Error.WriteLine("  hub: " + line); };
        p.ErrorDataReceived += (_, e) => { if (e.Data is { Length: > 0 } line) Console.Error.WriteLine("  hub: " + line); };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        var hub = new HubProcess(p, data, new Uri($"http://127.0.0.1:{http}"), mqtt) { CoapPort = coap };
        using var client = new HttpClient { BaseAddress = hub.BaseAddress };
        for (var i = 0; i < 300; i++)
        {
            try { if ((await client.GetAsync("/health/ready")).IsSuccessStatusCode) return hub; } catch (HttpRequestException) { }
            await Task.Delay(100);
        }
        await hub.DisposeAsync();
        throw new InvalidOperationException("the hub did not become ready");
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited) _process.Kill(entireProcessTree: true);
        await _process.WaitForExitAsync();
        _process.Dispose();
        if (Directory.Exists(_data)) Directory.Delete(_data, true);
    }

    public static async Task<string> CreateDatabaseAsync(string admin, string name)
    {
        await using (var c = new NpgsqlConnection(admin))
        {
            await c.OpenAsync();
            await using var drop = new NpgsqlCommand($"DROP DATABASE IF EXISTS {name} WITH (FORCE)", c);
            await drop.ExecuteNonQueryAsync();
            await using var create = new NpgsqlCommand($"CREATE DATABASE {name}", c);
            await create.ExecuteNonQueryAsync();
        }
        return new NpgsqlConnectionStringBuilder(admin) { Database = name }.ConnectionString;
    }

    /// <summary>Drops a contender's database and checkpoints, so that the next contender does not share the server with
    /// the last one's aftermath: millions of fresh rows make PostgreSQL autovacuum and flush them for minutes (a PostgreSQL
    /// run right after the reference measured 16,400 msg/s, and 28,200 alone).</summary>
    public static async Task QuietAsync(string admin, string name)
    {
        NpgsqlConnection.ClearAllPools(); // the benchmark's own pooled connections to it die with it
        await using var c = new NpgsqlConnection(admin);
        await c.OpenAsync();
        await using (var drop = new NpgsqlCommand($"DROP DATABASE IF EXISTS {name} WITH (FORCE)", c)) await drop.ExecuteNonQueryAsync();
        await using (var checkpoint = new NpgsqlCommand("CHECKPOINT", c) { CommandTimeout = 300 }) await checkpoint.ExecuteNonQueryAsync();
    }

    public static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    private static readonly string Root = FindRoot();

    private static string FindRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "IoTHub.sln"))) dir = dir.Parent;
        return dir?.FullName ?? Directory.GetCurrentDirectory();
    }
}
