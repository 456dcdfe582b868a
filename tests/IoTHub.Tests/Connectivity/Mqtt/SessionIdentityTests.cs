// Issue #15 §1: a session never outlives or crosses its credentials. Every variant the probe found (another device or a
// viewer key connecting with a device's client id, 3.1.1 and 5.0, clean or not, over TCP and WebSocket) is refused with
// "client identifier not valid" and leaves the device's own connection, session and data alone.
using System.Collections.Concurrent;
using System.Net.Http.Json;
using IoTHub.Tests.Infrastructure;
using MQTTnet;
using MQTTnet.Formatter;
using MQTTnet.Protocol;

namespace IoTHub.Tests.Connectivity.Mqtt;

[TestFixture(Store.Sqlite)]
[TestFixture(Store.Postgres)]
public sealed class SessionIdentityTests(Store store) : HubFixture(store)
{
    public enum Transport { Tcp, WebSocket }

    public enum Attacker { OtherDevice, ViewerKey }

    private MqttClientOptions Options(string user, string password, MqttProtocolVersion version, string clientId, Transport transport, bool cleanStart = true, uint sessionExpiry = 0)
    {
        var b = new MqttClientOptionsBuilder().WithProtocolVersion(version).WithClientId(clientId).WithCredentials(user, password)
            .WithCleanStart(cleanStart).WithTimeout(TimeSpan.FromSeconds(10));
        if (version == MqttProtocolVersion.V500 && sessionExpiry > 0) b = b.WithSessionExpiryInterval(sessionExpiry);
        b = transport == Transport.Tcp
            ? b.WithTcpServer("127.0.0.1", Hub.MqttPort)
            : b.WithWebSocketServer(o => o.WithUri($"ws://127.0.0.1:{Hub.BaseAddress.Port}/mqtt"));
        return b.Build();
    }

    [Test]
    public async Task Another_principal_with_a_devices_client_id_is_refused_and_the_device_keeps_its_connection_session_and_data(
        [Values(MqttProtocolVersion.V311, MqttProtocolVersion.V500)] MqttProtocolVersion version,
        [Values] Transport transport,
        [Values] Attacker attacker,
        [Values] bool attackerCleanStart)
    {
        var (victim, victimToken) = await Hub.CreateDeviceAsync();
        // The victim holds a persistent session and is connected, subscribed to its desired state (retained).
        using var device = new MqttClientFactory().CreateMqttClient();
        var received = new ConcurrentQueue<string>();
        device.ApplicationMessageReceivedAsync += e =>
        {
            received.Enqueue(e.ApplicationMessage.Topic);
            return Task.CompletedTask;
        };
        Assert.That((await device.ConnectAsync(Options(victim, victimToken, version, victim, transport, cleanStart: false, sessionExpiry: 300))).ResultCode,
            Is.EqualTo(MqttClientConnectResultCode.Success));
        await device.SubscribeAsync($"devices/{victim}/state/desired", MqttQualityOfServiceLevel.AtLeastOnce);

        var (user, password) = attacker == Attacker.OtherDevice ? await Hub.CreateDeviceAsync() : ("apikey", await Hub.CreateApiKeyAsync("viewer"));
        using var intruder = new MqttClientFactory().CreateMqttClient();
        var result = await intruder.ConnectAsync(Options(user, password, version, victim, transport, attackerCleanStart, sessionExpiry: 300));

        Assert.That(result.ResultCode, Is.EqualTo(MqttClientConnectResultCode.ClientIdentifierNotValid),
            "CONNACK 0x85 on 5.0, 0x02 identifier rejected on 3.1.1");
        Assert.That(intruder.IsConnected, Is.False);
        await Task.Delay(200);
        Assert.That(device.IsConnected, Is.True, "the device's own connection is untouched");
        var ack = await device.PublishAsync(new MqttApplicationMessageBuilder().WithTopic($"devices/{victim}/telemetry")
            .WithPayload("""{"mine": 1}""").WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
        Assert.That(ack.IsSuccess, Is.True, ack.ReasonString);
        using var admin = await Hub.AdminAsync();
        var latest = await admin.GetJsonAsync($"/api/v1/devices/{victim}/telemetry/latest");
        Assert.That(latest["values"]!.AsArray().Select(v => v!["metric"]!.GetValue<string>()), Is.EqualTo(new[] { "mine" }));
    }

    [Test]
    public async Task A_device_may_use_only_its_device_id_or_its_device_id_and_a_suffix_as_client_id(
        [Values(MqttProtocolVersion.V311, MqttProtocolVersion.V500)] MqttProtocolVersion version)
    {
        var (a, tokenA) = await Hub.CreateDeviceAsync();
        var (b, _) = await Hub.CreateDeviceAsync();
        foreach (var (clientId, allowed) in new[] { (a, true), (a + ":second", true), (b, false), (b + ":x", false), ("esp-123", false), (a + "x", false) })
        {
            using var client = new MqttClientFactory().CreateMqttClient();
            var result = await client.ConnectAsync(Options(a, tokenA, version, clientId, Transport.Tcp));
            Assert.That(result.ResultCode, Is.EqualTo(allowed ? MqttClientConnectResultCode.Success : MqttClientConnectResultCode.ClientIdentifierNotValid), clientId);
            if (client.IsConnected) await client.DisconnectAsync();
        }
    }

    [Test]
    public async Task An_app_may_not_use_a_client_id_in_a_devices_namespace_even_while_the_device_is_away()
    {
        var (device, _) = await Hub.CreateDeviceAsync();
        var key = await Hub.CreateApiKeyAsync("operator");
        foreach (var (clientId, allowed) in new[] { (device, false), (device + ":app", false), ("node-red:" + device, true), ("integration-" + Guid.NewGuid().ToString("N")[..6], true) })
        {
            using var client = new MqttClientFactory().CreateMqttClient();
            var result = await client.ConnectAsync(Options("apikey", key, MqttProtocolVersion.V500, clientId, Transport.Tcp));
            Assert.That(result.ResultCode, Is.EqualTo(allowed ? MqttClientConnectResultCode.Success : MqttClientConnectResultCode.ClientIdentifierNotValid), clientId);
        }
    }

    [Test]
    public async Task The_same_device_may_take_over_its_own_session_and_the_old_connection_is_told_why()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        using var first = new MqttClientFactory().CreateMqttClient();
        MqttClientDisconnectReason? reason = null;
        first.DisconnectedAsync += e =>
        {
            reason = e.Reason;
            return Task.CompletedTask;
        };
        await first.ConnectAsync(Options(id, token, MqttProtocolVersion.V500, id, Transport.Tcp));
        using var second = new MqttClientFactory().CreateMqttClient();
        Assert.That((await second.ConnectAsync(Options(id, token, MqttProtocolVersion.V500, id, Transport.Tcp))).ResultCode, Is.EqualTo(MqttClientConnectResultCode.Success));
        await WaitFor.ConditionAsync(() => reason is not null, "the first connection is closed");
        Assert.That(reason, Is.EqualTo(MqttClientDisconnectReason.SessionTakenOver));
    }

    [Test]
    public async Task A_client_id_longer_than_the_limit_is_refused([Values(MqttProtocolVersion.V311, MqttProtocolVersion.V500)] MqttProtocolVersion version)
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        using var client = new MqttClientFactory().CreateMqttClient();
        var result = await client.ConnectAsync(Options(id, token, version, id + ":" + new string('x', 200), Transport.Tcp));
        Assert.That(result.ResultCode, Is.EqualTo(MqttClientConnectResultCode.ClientIdentifierNotValid));
    }

    [Test]
    public async Task An_empty_client_id_without_clean_session_is_refused_on_3_1_1()
    {
        // MQTT-3.1.3-8: with CleanSession = 0 a 3.1.1 client must send an id; the server answers 0x02 identifier rejected.
        var (id, token) = await Hub.CreateDeviceAsync();
        using var tcp = await RawMqtt.OpenAsync(Hub.MqttPort);
        var stream = tcp.GetStream();
        await stream.WriteAsync(RawMqtt.Connect("", id, token, cleanSession: false));
        var connAck = new byte[4];
        await stream.ReadExactlyAsync(connAck);
        Assert.That(connAck[3], Is.EqualTo(0x02));
    }

    [Test]
    public async Task A_revoked_api_key_loses_its_connection_and_its_persistent_session()
    {
        using var admin = await Hub.AdminAsync();
        var created = await (await admin.PostAsJsonAsync("/api/v1/api-keys", new { name = "app", role = "operator" })).ReadJsonAsync();
        var key = created["key"]!.GetValue<string>();
        var keyId = created["id"]!.GetValue<long>();
        var clientId = "app-" + Guid.NewGuid().ToString("N")[..8];
        using var client = new MqttClientFactory().CreateMqttClient();
        await client.ConnectAsync(Options("apikey", key, MqttProtocolVersion.V500, clientId, Transport.Tcp, cleanStart: false, sessionExpiry: 3600));
        Assert.That((await admin.DeleteAsync($"/api/v1/api-keys/{keyId}")).IsSuccessStatusCode, Is.True);
        await WaitFor.ConditionAsync(() => !client.IsConnected, "the revoked key's connection is closed");

        // Its session is gone too: a new key may now use the client id, and finds no session.
        var other = await Hub.CreateApiKeyAsync("operator");
        using var again = new MqttClientFactory().CreateMqttClient();
        var result = await again.ConnectAsync(Options("apikey", other, MqttProtocolVersion.V500, clientId, Transport.Tcp, cleanStart: false, sessionExpiry: 3600));
        Assert.That(result.ResultCode, Is.EqualTo(MqttClientConnectResultCode.Success));
        Assert.That(result.IsSessionPresent, Is.False);
    }

}
