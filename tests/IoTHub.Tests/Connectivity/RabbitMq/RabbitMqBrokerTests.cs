// Broker:Mode RabbitMq end to end: a real RabbitMQ node (Debian's rabbitmq-server, with its MQTT plugin and the HTTP
// auth backend pointed at the hub), the hub on PostgreSQL consuming the shard queues, and devices that are real MQTT
// clients nobody here wrote (mosquitto_pub) or MQTTnet, connected to RabbitMQ, not to the hub.
using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using IoTHub.Testing;
using IoTHub.Tests.Infrastructure;
using MQTTnet;
using MQTTnet.Formatter;
using MQTTnet.Protocol;

namespace IoTHub.Tests.Connectivity.RabbitMq;

public sealed class RabbitMqBrokerTests
{
    private RabbitMqNode _rabbit = null!;
    private HubHost _hub = null!;

    [OneTimeSetUp]
    public async Task Start()
    {
        TestRabbitMq.RequireInstalled();
        TestPostgres.RequireAvailable();
        var port = HubHost.FreeTcpPort();
        _rabbit = await RabbitMqNode.StartAsync(port);
        _hub = await HubHost.StartAsync(Store.Postgres, new Dictionary<string, string?>
        {
            ["urls"] = $"http://127.0.0.1:{port}",
            ["Broker:Mode"] = "RabbitMq",
            ["ConnectionStrings:RabbitMq"] = _rabbit.AmqpUri,
            ["RabbitMq:ManagementUri"] = _rabbit.ManagementUri,
            ["RabbitMq:Shards"] = "4",
        });
        _hub.DeviceMqttPort = _rabbit.MqttPort;
    }

    [OneTimeTearDown]
    public async Task Stop()
    {
        if (_hub is not null) await _hub.DisposeAsync();
        if (_rabbit is not null) await _rabbit.DisposeAsync();
    }

    private Task<(int Code, string Output)> PublishAsync(string user, string password, string topic, string lines) =>
        ExternalTool.RunWithInputAsync("mosquitto_pub", lines, "-h", "127.0.0.1", "-p", _rabbit.MqttPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "-V", "mqttv311", "-q", "1", "-i", user, "-u", user, "-P", password, "-t", topic, "-l");

    private static string Point(long ts, int v) => new JsonObject { ["ts"] = ts, ["values"] = new JsonObject { ["v"] = v } }.ToJsonString();

    private Task<int> RawCountAsync(string deviceId, long from, long to) => _hub.RawPointCountAsync(deviceId, "v", from, to);

    [Test]
    public async Task Twenty_devices_publishing_qos1_through_rabbitmq_have_every_acked_message_stored_once()
    {
        var devices = new List<(string Id, string Token)>();
        for (var i = 0; i < 20; i++) devices.Add(await _hub.CreateDeviceAsync());
        var start = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() - 60_000;
        const int perDevice = 25;
        var lines = string.Join('\n', Enumerable.Range(0, perDevice).Select(k => Point(start + k * 1000, k))) + "\n";

        var runs = await Task.WhenAll(devices.Select(d => PublishAsync(d.Id, d.Token, $"devices/{d.Id}/telemetry", lines)));

        Assert.That(runs.Select(r => r.Code), Is.All.EqualTo(0), string.Join('\n', runs.Select(r => r.Output)));
        // RabbitMQ's PUBACK means its quorum queue has the message; the hub stores it from there.
        foreach (var (id, _) in devices)
            await WaitFor.ConditionAsync(async () => await RawCountAsync(id, start, start + perDevice * 1000) >= perDevice, $"{id}'s messages are stored");
        // Every message of one device again, as a device does after a lost PUBACK, then a new one behind them (one
        // device's messages stay in order in one shard): once that is stored, the resent ones were handled.
        var (first, firstToken) = devices[0];
        var marker = Point(start + perDevice * 1000, -1);
        Assert.That((await PublishAsync(first, firstToken, $"devices/{first}/telemetry", lines + marker + "\n")).Code, Is.EqualTo(0));
        await WaitFor.ConditionAsync(async () => await RawCountAsync(first, start, start + perDevice * 1000 + 1) == perDevice + 1, "the message after the resent ones is stored");
        foreach (var (id, _) in devices) Assert.That(await RawCountAsync(id, start, start + perDevice * 1000 - 1), Is.EqualTo(perDevice), id);
    }

    [Test]
    public async Task A_wrong_token_is_refused_at_connect()
    {
        var (id, _) = await _hub.CreateDeviceAsync();
        var (code, output) = await PublishAsync(id, "wrong-token", $"devices/{id}/telemetry", """{"v": 1}""" + "\n");
        Assert.That(code, Is.Not.EqualTo(0));
        Assert.That(output, Does.Contain("bad user name or password").IgnoreCase);
    }

    [Test]
    public async Task A_device_cannot_publish_on_another_devices_topic()
    {
        var (mine, token) = await _hub.CreateDeviceAsync();
        var (other, _) = await _hub.CreateDeviceAsync();
        var at = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() - 5000;
        using (var client = new MqttClientFactory().CreateMqttClient())
        {
            await client.ConnectAsync(_hub.MqttOptions(mine, token, MqttProtocolVersion.V311));
            var publish = client.PublishAsync(new MqttApplicationMessageBuilder().WithTopic($"devices/{other}/telemetry").WithPayload(Point(at, 1))
                .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
            Assert.That(async () => await publish.WaitAsync(TimeSpan.FromSeconds(15)), Throws.Exception, "no PUBACK: RabbitMQ closes the connection when the hub says deny");
            await WaitFor.ConditionAsync(() => !client.IsConnected, "the connection is closed");
        }
        // What the device may do still works, and the other device has nothing.
        var (ok, output) = await PublishAsync(mine, token, $"devices/{mine}/telemetry", Point(at, 2) + "\n");
        Assert.That(ok, Is.EqualTo(0), output);
        await WaitFor.ConditionAsync(async () => await RawCountAsync(mine, at - 1, at + 1) == 1, "its own message is stored");
        Assert.That(await RawCountAsync(other, at - 1, at + 1), Is.Zero);
    }

    [Test]
    public async Task A_disabled_device_is_dropped_and_refused()
    {
        var (id, token) = await _hub.CreateDeviceAsync();
        await using var device = await TestDevice.ConnectAsync(_hub, id, token, MqttProtocolVersion.V311);
        using var admin = await _hub.AdminAsync();

        await admin.PatchAsJsonAsync($"/api/v1/devices/{id}", new { enabled = false });

        await WaitFor.ConditionAsync(() => !device.Client.IsConnected, "RabbitMQ closed the live connection (management API)");
        using var again = new MqttClientFactory().CreateMqttClient();
        Assert.That(await MqttConnect.TryAsync(again, _hub.MqttOptions(id, token, MqttProtocolVersion.V311)), Is.Not.EqualTo(MqttClientConnectResultCode.Success));
    }

    [Test]
    public async Task A_rotated_token_is_refused_at_once()
    {
        var (id, token) = await _hub.CreateDeviceAsync();
        var (ok, output) = await PublishAsync(id, token, $"devices/{id}/telemetry", """{"v": 1}""" + "\n");
        Assert.That(ok, Is.EqualTo(0), output);
        using var admin = await _hub.AdminAsync();
        var rotated = await admin.PostAsync($"/api/v1/devices/{id}/rotate-token", null);
        Assert.That(rotated.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        var fresh = (await rotated.ReadJsonAsync())["token"]!.GetValue<string>();

        var (code, refused) = await PublishAsync(id, token, $"devices/{id}/telemetry", """{"v": 2}""" + "\n");
        Assert.That(code, Is.Not.EqualTo(0), refused);
        Assert.That((await PublishAsync(id, fresh, $"devices/{id}/telemetry", """{"v": 3}""" + "\n")).Code, Is.EqualTo(0));
    }

    [Test]
    public async Task A_command_from_the_api_reaches_the_device_on_rabbitmq_and_its_response_comes_back()
    {
        var (id, token) = await _hub.CreateDeviceAsync();
        await using var device = await TestDevice.ConnectAsync(_hub, id, token, MqttProtocolVersion.V311,
            answer: body => new JsonObject { ["status"] = "ok", ["result"] = new JsonObject { ["echo"] = body["name"]!.GetValue<string>() } });
        using var admin = await _hub.AdminAsync();
        // Through RabbitMQ a device is online once its connection event is recorded (every hub node reads it).
        await WaitFor.ConditionAsync(async () => (await admin.GetJsonAsync($"/api/v1/devices/{id}"))["status"]!.GetValue<string>() == "online", "online");

        var response = await admin.PostAsJsonAsync($"/api/v1/devices/{id}/commands", new { name = "reboot", timeoutSeconds = 15 });

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), await response.Content.ReadAsStringAsync());
        var command = await response.ReadJsonAsync();
        Assert.That(command["response"]!["result"]!["echo"]!.GetValue<string>(), Is.EqualTo("reboot"));
    }

    [Test]
    public async Task A_command_to_a_device_that_is_not_subscribed_fails_as_offline()
    {
        var (id, _) = await _hub.CreateDeviceAsync();
        using var admin = await _hub.AdminAsync();
        var response = await admin.PostAsJsonAsync($"/api/v1/devices/{id}/commands", new { name = "reboot", timeoutSeconds = 5 });
        var body = await response.Content.ReadAsStringAsync();
        Assert.That(body, Does.Contain("offline"), "RabbitMQ returned the mandatory message: no subscription took it");
    }

    [Test]
    public async Task A_command_for_an_offline_device_waits_for_the_device_even_while_an_app_listens_to_its_commands()
    {
        var (id, token) = await _hub.CreateDeviceAsync();
        var key = await _hub.CreateApiKeyAsync("viewer");
        using var app = new MqttClientFactory().CreateMqttClient();
        await app.ConnectAsync(_hub.MqttOptions("apikey", key, MqttProtocolVersion.V311));
        var seenByApp = 0;
        app.ApplicationMessageReceivedAsync += _ => { Interlocked.Increment(ref seenByApp); return Task.CompletedTask; };
        await app.SubscribeAsync($"devices/{id}/commands/+", MqttQualityOfServiceLevel.AtLeastOnce);
        using var admin = await _hub.AdminAsync();

        var queued = await admin.PostAsJsonAsync($"/api/v1/devices/{id}/commands", new { name = "unlock", deliverWhenOnline = true, expiresInSeconds = 600 });

        Assert.That(queued.StatusCode, Is.EqualTo(HttpStatusCode.Accepted), "queued: the app's subscription does not make the device online");
        var commandId = (await queued.ReadJsonAsync())["id"]!.GetValue<string>();
        Assert.That((await admin.GetJsonAsync($"/api/v1/devices/{id}/commands/{commandId}"))["state"]!.GetValue<string>(), Is.EqualTo("queued"));
        await using var device = await TestDevice.ConnectAsync(_hub, id, token, MqttProtocolVersion.V311);
        await WaitFor.ConditionAsync(() => !device.Commands.IsEmpty, "the device gets it once it subscribes to its commands");
        Assert.That(device.Commands.Single().Body["name"]!.GetValue<string>(), Is.EqualTo("unlock"));
    }

    [Test]
    public async Task Presence_and_desired_state_follow_the_device_on_rabbitmq()
    {
        var (id, token) = await _hub.CreateDeviceAsync();
        using var admin = await _hub.AdminAsync();
        var put = await admin.PutAsJsonAsync($"/api/v1/devices/{id}/state", new { desired = new { interval = 30 } });
        Assert.That(put.IsSuccessStatusCode, Is.True, await put.Content.ReadAsStringAsync());

        await using (var device = await TestDevice.ConnectAsync(_hub, id, token, MqttProtocolVersion.V311))
        {
            await WaitFor.ConditionAsync(() => !device.DesiredStates.IsEmpty, "the desired state set while it was away arrives when it subscribes");
            Assert.That(device.DesiredStates.First()["state"]!["interval"]!.GetValue<int>(), Is.EqualTo(30));
            await WaitFor.ConditionAsync(async () => (await admin.GetJsonAsync($"/api/v1/devices/{id}"))["status"]!.GetValue<string>() == "online", "online");
        }
        await WaitFor.ConditionAsync(async () => (await admin.GetJsonAsync($"/api/v1/devices/{id}"))["status"]!.GetValue<string>() == "offline", "offline");
    }
}
