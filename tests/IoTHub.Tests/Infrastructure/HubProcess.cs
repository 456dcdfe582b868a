using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace IoTHub.Tests.Infrastructure;

/// <summary>
/// The ports of a hub run as a child process: every listener the hub can open (HTTP, MQTT, MQTT over TLS, HTTPS, CoAP,
/// CoAP over DTLS) on a port of its own, free when chosen. A listener left on its default port meets the same default in
/// a hub started beside it: CoAP over DTLS binds 5684 even with <c>Coap:Port=0</c>, and two crash fixtures running side
/// by side stopped each other's start that way. Keep one per fixture so that a restarted hub listens where its devices
/// reconnect.
/// </summary>
public sealed record HubPorts(int Http, int Mqtt, int MqttTls, int Https, int Coap, int CoapDtls)
{
    /// <summary>Six ports, each free when chosen and none twice (TCP for HTTP, MQTT, MQTT over TLS and HTTPS; UDP for
    /// CoAP and DTLS).</summary>
    public static HubPorts Free()
    {
        var tcp = Distinct(HubHost.FreeTcpPort, 4);
        var udp = Distinct(HubHost.FreeUdpPort, 2);
        return new(tcp[0], tcp[1], tcp[2], tcp[3], udp[0], udp[1]);

        static int[] Distinct(Func<int> next, int count)
        {
            var ports = new HashSet<int>();
            while (ports.Count < count) ports.Add(next());
            return [.. ports];
        }
    }

    /// <summary>The hub's command-line settings that put each listener on its port, on loopback.</summary>
    public IReadOnlyList<string> Arguments =>
    [
        "--urls", $"http://127.0.0.1:{Http}", "--Mqtt:Host=127.0.0.1", $"--Mqtt:Port={Mqtt}", $"--Mqtt:TlsPort={MqttTls}",
        $"--Tls:HttpsPort={Https}", "--Coap:Host=127.0.0.1", $"--Coap:Port={Coap}", $"--Coap:DtlsPort={CoapDtls}",
    ];

    /// <summary>The hub's HTTP address.</summary>
    public Uri BaseAddress => new($"http://127.0.0.1:{Http.ToString(CultureInfo.InvariantCulture)}");
}

/// <summary>
/// The hub's own binary (<c>dotnet IoTHub.dll</c>) as a child process of the test, for what an in-process host cannot
/// show: a SIGKILL, a restart on the same data. Its output is kept, and a hub that exits while a test waits for it fails
/// the wait with that output at once.
/// </summary>
public sealed class HubProcess : IDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();

    private HubProcess(Process process)
    {
        _process = process;
        _process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (_output) _output.AppendLine(e.Data); };
        _process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (_output) _output.AppendLine(e.Data); };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    /// <summary>Starts the hub with its listeners on <paramref name="ports"/>, then <paramref name="settings"/>
    /// (<c>--Key=value</c>; a later one wins), with <paramref name="environment"/> added to the test's own (e.g. TZ).</summary>
    public static HubProcess Start(HubPorts ports, IEnumerable<string> settings, IReadOnlyDictionary<string, string>? environment = null)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var (name, value) in environment ?? new Dictionary<string, string>()) psi.Environment[name] = value;
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "IoTHub.dll"));
        foreach (var a in ports.Arguments.Concat(settings)) psi.ArgumentList.Add(a);
        return new HubProcess(Process.Start(psi)!) { Ports = ports };
    }

    /// <summary>Where the hub listens.</summary>
    public required HubPorts Ports { get; init; }

    /// <summary>Whether the process has ended.</summary>
    public bool HasExited => _process.HasExited;

    /// <summary>All the hub printed so far, stdout and stderr as they came.</summary>
    public string Output { get { lock (_output) return _output.ToString(); } }

    /// <summary>Waits until <c>/health/ready</c> answers 200 (at most <paramref name="within"/>, 60 s by default) and
    /// returns a client on the hub's address; fails at once, with the hub's output, if the process exits first.</summary>
    public async Task<HttpClient> ReadyAsync(TimeSpan? within = null)
    {
        var http = new HttpClient { BaseAddress = Ports.BaseAddress, Timeout = TimeSpan.FromSeconds(30) };
        var deadline = DateTime.UtcNow + (within ?? TimeSpan.FromSeconds(60));
        var last = "no answer yet";
        while (DateTime.UtcNow < deadline)
        {
            if (_process.HasExited) Assert.Fail($"the hub process exited with {_process.ExitCode} before it was ready:\n{Output}");
            try
            {
                using var answer = await http.GetAsync("/health/ready");
                if (answer.IsSuccessStatusCode) return http;
                last = $"{(int)answer.StatusCode} {await answer.Content.ReadAsStringAsync()}";
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
            {
                last = ex.Message;
            }
            await Task.Delay(50);
        }
        // What it said last, and what it printed: CI once waited 60 s on a hub that never said why.
        Assert.Fail($"the hub process on {Ports.BaseAddress} was not ready in time; /health/ready last answered: {last}\n{Output}");
        return http;
    }

    /// <summary>SIGKILL, as a crash or the OOM killer would, and waits until the process is gone.</summary>
    public async Task KillAsync()
    {
        if (!_process.HasExited) _process.Kill(entireProcessTree: true);
        await _process.WaitForExitAsync();
    }

    /// <summary>Kills the process if it still runs.</summary>
    public void Dispose()
    {
        try
        {
            if (!_process.HasExited) _process.Kill(entireProcessTree: true);
            _process.WaitForExit(10_000);
        }
        catch (InvalidOperationException)
        {
        }
        _process.Dispose();
    }
}
