// Starts the real IoTHub host in-process on real sockets (Kestrel HTTP on a free port, the MQTT broker on
// another), on SQLite in a temporary folder or on a fresh PostgreSQL database. Restartable on the same data.
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.Sockets;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using MQTTnet;
using MQTTnet.Formatter;

namespace IoTHub.Tests.Infrastructure;

public sealed class HubHost : IAsyncDisposable
{
    public const string AdminPassword = "correct-horse-battery-staple";

    private readonly Dictionary<string, string?> _settings;
    private WebApplication? _app;
    private string? _adminToken;

    public Store Store { get; }
    public string DataDirectory { get; }
    public string? PostgresConnectionString { get; }
    public int MqttPort { get; }

    /// <summary>Where test devices connect over MQTT (<see cref="MqttOptions"/>): the embedded broker's port, unless a test
    /// puts the devices on another broker (RabbitMQ's MQTT listener in Broker:Mode RabbitMq).</summary>
    public int DeviceMqttPort { get => _deviceMqttPort ?? MqttPort; set => _deviceMqttPort = value; }

    private int? _deviceMqttPort;

    /// <summary>The UDP port of the hub's CoAP server (a free one per host, unless the fixture set Coap:Port).</summary>
    public int CoapPort => int.Parse(_settings["Coap:Port"]!, System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>The UDP port of the hub's CoAP over DTLS server (a free one per host, unless the fixture set Coap:DtlsPort).</summary>
    public int CoapDtlsPort => int.Parse(_settings["Coap:DtlsPort"]!, System.Globalization.CultureInfo.InvariantCulture);
    public Uri BaseAddress { get; private set; } = null!;
    public IServiceProvider Services => _app!.Services;

    private readonly Action<WebApplicationBuilder>? _configure;

    private HubHost(Store store, string dataDirectory, string? postgres, int mqttPort, Dictionary<string, string?> settings, Action<WebApplicationBuilder>? configure)
    {
        _configure = configure;
        Store = store;
        DataDirectory = dataDirectory;
        PostgresConnectionString = postgres;
        MqttPort = mqttPort;
        _settings = settings;
    }

    public static async Task<HubHost> StartAsync(Store store, IDictionary<string, string?>? settings = null, Action<WebApplicationBuilder>? configure = null)
    {
        var data = Path.Combine(Path.GetTempPath(), "iothub-tests", Guid.NewGuid().ToString("N")[..12]);
        // Private, as the hub makes its data directory (else every start would warn that it made it so).
        if (OperatingSystem.IsWindows()) Directory.CreateDirectory(data);
        else Directory.CreateDirectory(data, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var postgres = store == Store.Postgres ? await TestPostgres.CreateDatabaseAsync() : null;
        var all = new Dictionary<string, string?>
        {
            ["DataDirectory"] = data,
            ["Storage:Provider"] = store.ToString(),
            ["ConnectionStrings:Postgres"] = postgres,
            ["Bootstrap:AdminPassword"] = AdminPassword,
            ["Mqtt:Host"] = "127.0.0.1",
            ["Coap:Host"] = "127.0.0.1",
            ["Coap:Port"] = FreeUdpPort().ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Coap:DtlsPort"] = FreeUdpPort().ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Logging:LogLevel:Default"] = Environment.GetEnvironmentVariable("IOTHUB_TEST_LOGLEVEL") ?? "Warning",
            // Tests drive single devices far faster than a real one would; the limits' own tests set them low again.
            ["Connectivity:DeviceMessagesPerSecond"] = "1000000",
            ["Connectivity:FailedAuthMaxDelayMilliseconds"] = "50",
            ["RateLimits:FailedLoginDelayMilliseconds"] = "10",
            ["RateLimits:FailedLoginMaxDelayMilliseconds"] = "50",
            ["RateLimits:ApiKeyRequestsPerSecond"] = "100000",
            ["RateLimits:UserRequestsPerSecond"] = "100000",
            ["RateLimits:AnonymousRequestsPerSecond"] = "100000",
        };
        foreach (var (k, v) in settings ?? new Dictionary<string, string?>()) all[k] = v;
        var host = new HubHost(store, data, postgres, FreeTcpPort(), all, configure);
        await host.StartAppAsync();
        return host;
    }

    private async Task StartAppAsync()
    {
        var args = new List<string> { "--urls", "http://127.0.0.1:0", $"--Mqtt:Port={MqttPort}" };
        args.AddRange(_settings.Where(kv => kv.Value is not null).Select(kv => $"--{kv.Key}={kv.Value}"));
        _app = HubApp.Build(args.ToArray(), _configure);
        await _app.StartAsync();
        var address = _app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses
            .First(a => a.StartsWith("http://127.0.0.1", StringComparison.Ordinal));
        BaseAddress = new Uri(address);
        _adminToken = null;
        await WaitUntilReadyAsync();
    }

    private async Task WaitUntilReadyAsync()
    {
        using var http = Anonymous();
        for (var i = 0; i < 100; i++)
        {
            if ((await http.GetAsync("/health/ready")).IsSuccessStatusCode) return;
            await Task.Delay(100);
        }
        Assert.Fail("the hub did not become ready within 10 s");
    }

    /// <summary>Stops gracefully (drains the pipeline) and starts again on the same data, with <paramref name="changes"/>
    /// applied to its settings from now on (as an admin who edits the configuration and restarts).</summary>
    public async Task RestartAsync(IDictionary<string, string?>? changes = null)
    {
        await StopAppAsync();
        foreach (var (k, v) in changes ?? new Dictionary<string, string?>()) _settings[k] = v;
        await StartAppAsync();
    }

    public async Task StopAppAsync()
    {
        if (_app is null) return;
        await _app.StopAsync();
        await _app.DisposeAsync();
        _app = null;
    }

    public HttpClient Anonymous() => new() { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(30) };

    public async Task<HttpClient> AdminAsync()
    {
        _adminToken ??= await TokenAsync("admin", AdminPassword);
        return WithBearer(_adminToken);
    }

    public HttpClient WithBearer(string token)
    {
        var http = Anonymous();
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return http;
    }

    public HttpClient WithApiKey(string key)
    {
        var http = Anonymous();
        http.DefaultRequestHeaders.Add("X-Api-Key", key);
        return http;
    }

    public async Task<string> TokenAsync(string username, string password)
    {
        using var http = Anonymous();
        var response = await http.PostAsJsonAsync("/api/v1/auth/token", new { username, password });
        for (var retry = 0; retry < 3 && response.StatusCode == HttpStatusCode.TooManyRequests; retry++)
        {
            // As a real client does: the rate limits' own tests spend the anonymous budget of this address.
            await Task.Delay(response.Headers.RetryAfter?.Delta ?? TimeSpan.FromSeconds(1));
            response = await http.PostAsJsonAsync("/api/v1/auth/token", new { username, password });
        }
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), await response.Content.ReadAsStringAsync());
        return (await response.Content.ReadFromJsonAsync<TokenResponse>())!.Token;
    }

    public async Task<(string Id, string Token)> CreateDeviceAsync(string? id = null)
    {
        using var admin = await AdminAsync();
        var response = await admin.PostAsJsonAsync("/api/v1/devices", new { id = id ?? "dev-" + Guid.NewGuid().ToString("N")[..10] });
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Created), await response.Content.ReadAsStringAsync());
        var created = (await response.Content.ReadFromJsonAsync<CreatedDeviceResponse>())!;
        return (created.Id, created.Token);
    }

    /// <summary>A new API key with this role (the only time the key is shown).</summary>
    public async Task<string> CreateApiKeyAsync(string role)
    {
        using var admin = await AdminAsync();
        var response = await admin.PostAsJsonAsync("/api/v1/api-keys", new { name = role + "-" + Guid.NewGuid().ToString("N")[..6], role });
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Created), await response.Content.ReadAsStringAsync());
        return (await response.Content.ReadFromJsonAsync<CreatedKeyResponse>())!.Key;
    }

    /// <summary>How many raw points of a device's metric the API returns between two times (Unix ms, up to 10,000).</summary>
    public async Task<int> RawPointCountAsync(string deviceId, string metric, long fromMs, long toMs)
    {
        static string At(long ms) => Uri.EscapeDataString(DateTimeOffset.FromUnixTimeMilliseconds(ms).ToString("O"));
        using var admin = await AdminAsync();
        var page = await admin.GetJsonAsync($"/api/v1/devices/{deviceId}/telemetry?metric={metric}&resolution=raw&maxPoints=10000&from={At(fromMs)}&to={At(toMs)}");
        return page["points"]!.AsArray().Count;
    }

    public MqttClientOptions MqttOptions(string? user, string? password, MqttProtocolVersion version = MqttProtocolVersion.V500, string? clientId = null)
    {
        var b = new MqttClientOptionsBuilder()
            .WithTcpServer("127.0.0.1", DeviceMqttPort)
            .WithProtocolVersion(version)
            // A device's client id is its device id, or starts with it and ':' (README, "Client identifiers").
            .WithClientId(clientId ?? (user is null or "apikey" ? "test-" : user + ":") + Guid.NewGuid().ToString("N")[..10])
            .WithTimeout(TimeSpan.FromSeconds(20));
        if (user is not null) b = b.WithCredentials(user, password);
        return b.Build();
    }

    public async Task<IMqttClient> ConnectAsync(string user, string password, MqttProtocolVersion version = MqttProtocolVersion.V500, string? clientId = null)
    {
        var client = new MqttClientFactory().CreateMqttClient();
        var result = await client.ConnectAsync(MqttOptions(user, password, version, clientId));
        Assert.That(result.ResultCode, Is.EqualTo(MqttClientConnectResultCode.Success));
        return client;
    }

    /// <summary>A TCP port on loopback that is free now and was never handed out before in this process
    /// (<see cref="IoTHub.Testing.TestPorts"/>).</summary>
    public static int FreeTcpPort() => IoTHub.Testing.TestPorts.Tcp();

    /// <summary>A UDP port on loopback that is free now and was never handed out before in this process
    /// (<see cref="IoTHub.Testing.TestPorts"/>).</summary>
    public static int FreeUdpPort() => IoTHub.Testing.TestPorts.Udp();

    public async ValueTask DisposeAsync()
    {
        await StopAppAsync();
        if (PostgresConnectionString is not null) await TestPostgres.DropDatabaseAsync(PostgresConnectionString);
        try { Directory.Delete(DataDirectory, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    public sealed record TokenResponse(string Token, DateTimeOffset ExpiresAt);
    public sealed record CreatedDeviceResponse(string Id, string Token);
    public sealed record CreatedKeyResponse(long Id, string Key);
}
