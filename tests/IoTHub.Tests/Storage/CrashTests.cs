using System.Collections.Concurrent;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using IoTHub.Tests.Infrastructure;
using MQTTnet;
using MQTTnet.Protocol;

namespace IoTHub.Tests.Storage;

/// <summary>
/// The hub as a separate process, killed with SIGKILL while 20 devices publish at QoS 1: after a restart every
/// acknowledged message is stored exactly once, and the rollups equal the raw rows.
/// </summary>
[TestFixture(Store.Sqlite)]
[TestFixture(Store.Postgres)]
[RunsAlone("kills a hub process mid-load and times its recovery")]
public sealed class CrashTests(Store store)
{
    private string _data = null!;
    private string? _postgres;
    private HubPorts _ports = null!;

    [OneTimeSetUp]
    public async Task Prepare()
    {
        _data = Path.Combine(Path.GetTempPath(), "iothub-crash-" + Guid.NewGuid().ToString("N")[..8]);
        if (store == Store.Postgres) _postgres = await TestPostgres.CreateDatabaseAsync();
        _ports = HubPorts.Free();
    }

    [OneTimeTearDown]
    public async Task CleanUp()
    {
        if (_postgres is not null) await TestPostgres.DropDatabaseAsync(_postgres);
        if (Directory.Exists(_data)) Directory.Delete(_data, true);
    }

    private HubProcess StartHub() => HubProcess.Start(_ports,
    [
        $"--DataDirectory={_data}", $"--Bootstrap:AdminPassword={HubHost.AdminPassword}", $"--Storage:Provider={store}",
        $"--ConnectionStrings:Postgres={_postgres}", "--Logging:LogLevel:Default=Warning", "--Connectivity:DeviceMessagesPerSecond=1000000",
    ]);

    private static async Task<string> BearerAsync(HttpClient http)
    {
        var r = await http.PostAsJsonAsync("/api/v1/auth/token", new { username = "admin", password = HubHost.AdminPassword });
        return (await r.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("token").GetString()!;
    }

    [Test]
    public async Task Every_acknowledged_message_survives_a_sigkill_exactly_once()
    {
        using var hub = StartHub();
        var devices = new List<(string Id, string Token)>();
        var acked = new ConcurrentBag<(string Device, long Ts)>();
        try
        {
            using var http = await hub.ReadyAsync();
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", await BearerAsync(http));
            for (var i = 0; i < 20; i++)
            {
                var r = await http.PostAsJsonAsync("/api/v1/devices", new { id = $"crash-{i}" });
                var body = await r.Content.ReadFromJsonAsync<JsonElement>();
                devices.Add((body.GetProperty("id").GetString()!, body.GetProperty("token").GetString()!));
            }

            using var stop = new CancellationTokenSource();
            var baseTs = DateTimeOffset.UtcNow.AddMinutes(-10).ToUnixTimeMilliseconds();
            // Each device keeps four messages in flight on its one connection, so acks are released per commit
            // out of the connection's send loop while its receive loop goes on reading.
            const int lanes = 4;
            var publishers = devices.Select((d, n) => Task.Run(async () =>
            {
                using var client = new MqttClientFactory().CreateMqttClient();
                await client.ConnectAsync(new MqttClientOptionsBuilder().WithTcpServer("127.0.0.1", _ports.Mqtt).WithClientId(d.Id)
                    .WithCredentials(d.Id, d.Token).WithTimeout(TimeSpan.FromSeconds(5)).Build());
                await Task.WhenAll(Enumerable.Range(0, lanes).Select(async lane =>
                {
                    for (var i = 0; !stop.IsCancellationRequested; i++)
                    {
                        var ts = baseTs + (i * lanes + lane) * 10 + n % 10; // unique per device
                        try
                        {
                            var ack = await client.PublishAsync(new MqttApplicationMessageBuilder().WithTopic($"devices/{d.Id}/telemetry")
                                .WithPayload($$$"""{"ts": {{{ts}}}, "values": {"v": {{{i}}}}}""").WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
                            if (ack.ReasonCode == MqttClientPublishReasonCode.Success) acked.Add((d.Id, ts));
                        }
                        catch (Exception)
                        {
                            return; // the hub died mid-flight: this message was never acked
                        }
                    }
                }));
            })).ToList();

            await Task.Delay(TimeSpan.FromSeconds(2));
            await hub.KillAsync(); // SIGKILL: no drain, no flush
            await stop.CancelAsync();
            await Task.WhenAll(publishers);
        }
        finally
        {
            await hub.KillAsync();
        }
        Assert.That(acked, Is.Not.Empty, "some messages were acknowledged before the kill");

        using var restarted = StartHub();
        try
        {
            using var http = await restarted.ReadyAsync();
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", await BearerAsync(http));
            var from = Uri.EscapeDataString(DateTimeOffset.UtcNow.AddHours(-1).ToString("O"));
            foreach (var (id, _) in devices)
            {
                var expected = acked.Where(a => a.Device == id).Select(a => a.Ts).ToHashSet();
                var raw = await http.GetFromJsonAsync<JsonElement>($"/api/v1/devices/{id}/telemetry?metric=v&resolution=raw&from={from}&maxPoints=10000");
                var stored = raw.GetProperty("points").EnumerateArray().Select(p => p.GetProperty("ts").GetDateTimeOffset().ToUnixTimeMilliseconds()).ToList();
                Assert.That(stored, Is.Unique, $"{id}: stored once");
                Assert.That(expected.Except(stored), Is.Empty, $"{id}: every acknowledged message is stored");
                var minutes = await http.GetFromJsonAsync<JsonElement>($"/api/v1/devices/{id}/telemetry?metric=v&resolution=1m&from={from}&maxPoints=10000");
                var counted = minutes.GetProperty("points").EnumerateArray().Sum(p => p.GetProperty("count").GetInt64());
                Assert.That(counted, Is.EqualTo(stored.Count), $"{id}: rollups equal the raw rows");
            }
        }
        finally
        {
            await restarted.KillAsync();
        }
    }

    [Test]
    public async Task Every_point_answered_2_04_over_CoAP_survives_a_sigkill_exactly_once()
    {
        using var hub = StartHub();
        var devices = new List<(string Id, string Token)>();
        var acked = new ConcurrentBag<(string Device, long Ts)>();
        try
        {
            using var http = await hub.ReadyAsync();
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", await BearerAsync(http));
            for (var i = 0; i < 20; i++)
            {
                var r = await http.PostAsJsonAsync("/api/v1/devices", new { id = $"coap-crash-{i}" });
                var body = await r.Content.ReadFromJsonAsync<JsonElement>();
                devices.Add((body.GetProperty("id").GetString()!, body.GetProperty("token").GetString()!));
            }
            using var stop = new CancellationTokenSource();
            var baseTs = DateTimeOffset.UtcNow.AddMinutes(-10).ToUnixTimeMilliseconds();
            var target = new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, _ports.Coap);
            var senders = devices.Select((d, n) => Task.Run(async () =>
            {
                // One CON at a time per device, retransmitted under the same message id as RFC 7252 §4.2 says.
                using var udp = new System.Net.Sockets.UdpClient(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, 0));
                for (var i = 0; !stop.IsCancellationRequested; i++)
                {
                    var ts = baseTs + i * 10 + n % 10;
                    var id = (ushort)(n * 3000 + i);
                    var request = Connectivity.Coap.CoapClientTests.Datagram(true, id, [(byte)n, (byte)(i >> 8), (byte)i], ["devices", d.Id, "telemetry"],
                        $"token={d.Token}", System.Text.Encoding.UTF8.GetBytes($$$"""{"ts": {{{ts}}}, "values": {"v": {{{i}}}}}"""));
                    var answered = false;
                    // Retransmitted (same message id) until answered or the run ends: a slow first commit is no reason to give up.
                    while (!answered && !stop.IsCancellationRequested)
                    {
                        await udp.SendAsync(request, target);
                        using var wait = CancellationTokenSource.CreateLinkedTokenSource(stop.Token);
                        wait.CancelAfter(TimeSpan.FromSeconds(2));
                        try
                        {
                            while (true)
                            {
                                var answer = (await udp.ReceiveAsync(wait.Token)).Buffer;
                                if (answer.Length < 4 || answer[2] != (byte)(id >> 8) || answer[3] != (byte)id) continue;
                                if (answer[1] == 0x44) acked.Add((d.Id, ts)); // 2.04 Changed, piggybacked
                                answered = true;
                                break;
                            }
                        }
                        catch (OperationCanceledException)
                        {
                        }
                    }
                    if (!answered) return; // the run ended
                }
            })).ToList();

            // Killed under load: once the devices are well under way, not at a fixed time a slow machine may not reach.
            await WaitFor.ConditionAsync(() => acked.Count >= 100, "the CoAP devices get answers", TimeSpan.FromSeconds(60));
            await Task.Delay(TimeSpan.FromMilliseconds(500));
            await hub.KillAsync(); // SIGKILL: no drain, no flush
            await stop.CancelAsync();
            await Task.WhenAll(senders);
        }
        finally
        {
            await hub.KillAsync();
        }
        Assert.That(acked, Is.Not.Empty, "some CoAP messages were answered 2.04 before the kill");

        using var restarted = StartHub();
        try
        {
            using var http = await restarted.ReadyAsync();
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", await BearerAsync(http));
            var from = Uri.EscapeDataString(DateTimeOffset.UtcNow.AddHours(-1).ToString("O"));
            foreach (var (id, _) in devices)
            {
                var expected = acked.Where(a => a.Device == id).Select(a => a.Ts).ToHashSet();
                var raw = await http.GetFromJsonAsync<JsonElement>($"/api/v1/devices/{id}/telemetry?metric=v&resolution=raw&from={from}&maxPoints=10000");
                var stored = raw.GetProperty("points").EnumerateArray().Select(p => p.GetProperty("ts").GetDateTimeOffset().ToUnixTimeMilliseconds()).ToList();
                Assert.That(stored, Is.Unique, $"{id}: stored once");
                Assert.That(expected.Except(stored), Is.Empty, $"{id}: every point answered 2.04 is stored");
            }
        }
        finally
        {
            await restarted.KillAsync();
        }
    }
}
