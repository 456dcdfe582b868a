using System.Net.Http.Json;
using System.Text;
using IoTHub.Tests.Infrastructure;
using MQTTnet;
using MQTTnet.Formatter;
using MQTTnet.Protocol;

namespace IoTHub.Tests.Connectivity;

[TestFixture(Store.Sqlite)]
[TestFixture(Store.Postgres)]
public sealed class MqttTelemetryTests(Store store) : HubFixture(store)
{
    private static MqttApplicationMessage Telemetry(string deviceId, string json, MqttQualityOfServiceLevel qos = MqttQualityOfServiceLevel.AtLeastOnce) =>
        new MqttApplicationMessageBuilder().WithTopic($"devices/{deviceId}/telemetry").WithPayload(json).WithQualityOfServiceLevel(qos).Build();

    [Test]
    public async Task Flat_json_over_mqtt5_is_acked_with_success_and_readable_through_the_api()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        using var client = await Hub.ConnectAsync(id, token);

        var ack = await client.PublishAsync(Telemetry(id, """{"temperature": 21.5, "door": "open", "ok": true}"""));

        Assert.That(ack.ReasonCode, Is.EqualTo(MqttClientPublishReasonCode.Success), ack.ReasonString);
        using var admin = await Hub.AdminAsync();
        var latest = await admin.GetJsonAsync($"/api/v1/devices/{id}/telemetry/latest");
        var values = latest["values"]!.AsArray().ToDictionary(v => v!["metric"]!.GetValue<string>(), v => v!["value"]!.ToJsonString());
        Assert.That(values, Is.EquivalentTo(new Dictionary<string, string> { ["temperature"] = "21.5", ["door"] = "\"open\"", ["ok"] = "true" }));
    }

    [Test]
    public async Task A_batch_with_timestamps_keeps_the_device_times()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        using var client = await Hub.ConnectAsync(id, token);
        var t0 = DateTimeOffset.UtcNow.AddMinutes(-10);
        var t1 = t0.AddSeconds(30);
        var payload = $$$"""[{"ts": {{{t0.ToUnixTimeMilliseconds()}}}, "values": {"temperature": 20.1}}, {"ts": "{{{t1:O}}}", "values": {"temperature": 20.4}}]""";

        var ack = await client.PublishAsync(Telemetry(id, payload));

        Assert.That(ack.ReasonCode, Is.EqualTo(MqttClientPublishReasonCode.Success), ack.ReasonString);
        using var admin = await Hub.AdminAsync();
        var series = await admin.GetJsonAsync($"/api/v1/devices/{id}/telemetry?metric=temperature&resolution=raw&from={Uri.EscapeDataString(t0.AddMinutes(-1).ToString("O"))}");
        var points = series["points"]!.AsArray();
        Assert.That(points.Select(p => p!["value"]!.GetValue<double>()), Is.EqualTo(new[] { 20.1, 20.4 }));
        Assert.That(points[0]!["ts"]!.GetValue<DateTimeOffset>(), Is.EqualTo(DateTimeOffset.FromUnixTimeMilliseconds(t0.ToUnixTimeMilliseconds())));
        Assert.That(points[1]!["ts"]!.GetValue<DateTimeOffset>(), Is.EqualTo(DateTimeOffset.FromUnixTimeMilliseconds(t1.ToUnixTimeMilliseconds())));
    }

    [Test]
    public async Task Mqtt311_device_telemetry_is_stored()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        using var client = await Hub.ConnectAsync(id, token, MqttProtocolVersion.V311);

        await client.PublishAsync(Telemetry(id, """{"humidity": 40}"""));

        using var admin = await Hub.AdminAsync();
        var latest = await admin.GetJsonAsync($"/api/v1/devices/{id}/telemetry/latest");
        Assert.That(latest["values"]!.AsArray().Single()!["value"]!.GetValue<double>(), Is.EqualTo(40));
    }

    [TestCase(MqttProtocolVersion.V500)]
    [TestCase(MqttProtocolVersion.V311)]
    public async Task A_wrong_token_is_refused_with_bad_user_name_or_password(MqttProtocolVersion version)
    {
        var (id, _) = await Hub.CreateDeviceAsync();
        using var client = new MqttClientFactory().CreateMqttClient();

        var result = await MqttConnect.TryAsync(client, Hub.MqttOptions(id, "not-the-token", version));

        Assert.That(result, Is.EqualTo(MqttClientConnectResultCode.BadUserNameOrPassword));
        Assert.That(client.IsConnected, Is.False);
    }

    [Test]
    public async Task An_unknown_device_is_refused()
    {
        using var client = new MqttClientFactory().CreateMqttClient();
        var result = await MqttConnect.TryAsync(client, Hub.MqttOptions("no-such-device", "whatever"));
        Assert.That(result, Is.EqualTo(MqttClientConnectResultCode.BadUserNameOrPassword));
    }

    [Test]
    public async Task Publishing_on_another_devices_topic_is_refused_on_mqtt5_with_not_authorized()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        var (victim, _) = await Hub.CreateDeviceAsync();
        using var client = await Hub.ConnectAsync(id, token);

        var ack = await client.PublishAsync(Telemetry(victim, """{"temperature": 99}"""));

        Assert.That(ack.ReasonCode, Is.EqualTo(MqttClientPublishReasonCode.NotAuthorized));
        using var admin = await Hub.AdminAsync();
        var latest = await admin.GetJsonAsync($"/api/v1/devices/{victim}/telemetry/latest");
        Assert.That(latest["values"]!.AsArray(), Is.Empty);
    }

    [Test]
    public async Task Publishing_on_another_devices_topic_closes_a_mqtt311_connection()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        var (victim, _) = await Hub.CreateDeviceAsync();
        using var client = await Hub.ConnectAsync(id, token, MqttProtocolVersion.V311);

        Assert.CatchAsync(async () => await client.PublishAsync(Telemetry(victim, """{"temperature": 99}""")));

        await WaitFor.ConditionAsync(() => !client.IsConnected, "the broker closes the connection");
        using var admin = await Hub.AdminAsync();
        var latest = await admin.GetJsonAsync($"/api/v1/devices/{victim}/telemetry/latest");
        Assert.That(latest["values"]!.AsArray(), Is.Empty);
    }

    [TestCase("devices/{other}/commands/+")]
    [TestCase("devices/+/telemetry")]
    [TestCase("#")]
    [TestCase("devices/{self}/telemetry")]
    public async Task A_device_may_not_subscribe_outside_its_downstream_topics(string filter)
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        using var client = await Hub.ConnectAsync(id, token);

        var result = await client.SubscribeAsync(filter.Replace("{other}", "someone-else").Replace("{self}", id));

        Assert.That(result.Items.Single().ResultCode, Is.EqualTo(MqttClientSubscribeResultCode.NotAuthorized));
    }

    [Test]
    public async Task A_device_may_subscribe_to_its_own_commands_and_desired_state()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        using var client = await Hub.ConnectAsync(id, token);

        var commands = await client.SubscribeAsync($"devices/{id}/commands/+", MqttQualityOfServiceLevel.AtLeastOnce);
        var desired = await client.SubscribeAsync($"devices/{id}/state/desired", MqttQualityOfServiceLevel.AtLeastOnce);

        Assert.That(commands.Items.Single().ResultCode, Is.EqualTo(MqttClientSubscribeResultCode.GrantedQoS1));
        Assert.That(desired.Items.Single().ResultCode, Is.EqualTo(MqttClientSubscribeResultCode.GrantedQoS1));
    }

    [TestCase("""{"temperature": "banana"}""", "temperature")]
    [TestCase("""{"temperature": NaN}""", "malformed JSON")]
    [TestCase("""{"temperature": 1e999}""", "out of range")]
    [TestCase("""{}""", "no values")]
    [TestCase("""{"temperature": null}""", "null")]
    [TestCase("""{"temperature": {"nested": 1}}""", "not objects")]
    [TestCase("""{"ts": 946684800000, "values": {"temperature": 1}}""", "in the past")]
    [TestCase("""{"ts": "not a date", "values": {"temperature": 1}}""", "ISO 8601")]
    [TestCase("""{"bad name!": 1}""", "metric names")]
    [TestCase("""[1, 2]""", "must be an object")]
    [TestCase("""{"temperature": 1""", "malformed JSON")]
    public async Task Invalid_telemetry_gets_payload_format_invalid_with_the_reason_and_is_dead_lettered(string payload, string reasonPart)
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        using var client = await Hub.ConnectAsync(id, token);
        await client.PublishAsync(Telemetry(id, """{"temperature": 20}"""));

        var ack = await client.PublishAsync(Telemetry(id, payload));

        Assert.That(ack.ReasonCode, Is.EqualTo(MqttClientPublishReasonCode.PayloadFormatInvalid));
        Assert.That(ack.ReasonString, Does.Contain(reasonPart));
        var dead = await DeadLettersAsync(id);
        Assert.That(dead, Has.Count.EqualTo(1));
        Assert.That(dead[0]!["reason"]!.GetValue<string>(), Does.Contain(reasonPart));
        Assert.That(dead[0]!["payload"]!.GetValue<string>(), Is.EqualTo(payload));
        Assert.That(dead[0]!["protocol"]!.GetValue<string>(), Is.EqualTo("mqtt"));
        Assert.That(client.IsConnected, Is.True, "a bad message does not cost the device its connection");
        var latest = await (await Hub.AdminAsync()).GetJsonAsync($"/api/v1/devices/{id}/telemetry/latest");
        Assert.That(latest["values"]!.AsArray().Single()!["value"]!.GetValue<double>(), Is.EqualTo(20), "nothing of the bad message was stored");
    }

    [Test]
    public async Task A_string_longer_than_the_limit_is_rejected()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        using var client = await Hub.ConnectAsync(id, token);

        var ack = await client.PublishAsync(Telemetry(id, $$"""{"note": "{{new string('x', 1025)}}"}"""));

        Assert.That(ack.ReasonCode, Is.EqualTo(MqttClientPublishReasonCode.PayloadFormatInvalid));
        Assert.That(ack.ReasonString, Does.Contain("longer than 1024 bytes"));
    }

    [Test]
    public async Task Banana_from_a_mqtt311_device_is_dead_lettered_acked_and_the_connection_stays_up()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        using var client = await Hub.ConnectAsync(id, token, MqttProtocolVersion.V311);
        await client.PublishAsync(Telemetry(id, """{"temperature": 20}"""));

        await client.PublishAsync(Telemetry(id, """{"temperature": "banana"}"""));
        await client.PublishAsync(Telemetry(id, """{"temperature": 21}"""));

        Assert.That(client.IsConnected, Is.True);
        var dead = await DeadLettersAsync(id);
        Assert.That(dead.Single()!["reason"]!.GetValue<string>(), Does.Contain("expected a number, got a string"));
        var latest = await (await Hub.AdminAsync()).GetJsonAsync($"/api/v1/devices/{id}/telemetry/latest");
        Assert.That(latest["values"]!.AsArray().Single()!["value"]!.GetValue<double>(), Is.EqualTo(21));
    }

    [TestCase(MqttProtocolVersion.V500)]
    [TestCase(MqttProtocolVersion.V311)]
    public async Task Messages_in_flight_together_each_get_their_own_ack_once_committed(MqttProtocolVersion version)
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        using var client = await Hub.ConnectAsync(id, token, version);
        var t0 = DateTimeOffset.UtcNow.AddMinutes(-5).ToUnixTimeMilliseconds();
        bool Broken(int i) => i % 5 == 3;

        // 40 QoS 1 messages on one connection without waiting for acks; every fifth is not JSON.
        var acks = await Task.WhenAll(Enumerable.Range(0, 40).Select(i => client.PublishAsync(Telemetry(id,
            Broken(i) ? $$$"""{"ts": {{{t0 + i}}}, "values": {"temperature": """ : $$$"""{"ts": {{{t0 + i}}}, "values": {"temperature": {{{i}}}}}"""))));

        using var admin = await Hub.AdminAsync();
        // Read at once: an ack means the message is committed, so every acked point is already readable.
        var raw = await admin.GetJsonAsync($"/api/v1/devices/{id}/telemetry?metric=temperature&resolution=raw&from={Uri.EscapeDataString(DateTimeOffset.FromUnixTimeMilliseconds(t0 - 1000).ToString("O"))}");
        var stored = raw["points"]!.AsArray().Select(p => (int)p!["value"]!.GetValue<double>()).ToList();
        Assert.That(stored, Is.EquivalentTo(Enumerable.Range(0, 40).Where(i => !Broken(i))));
        Assert.That(await DeadLettersAsync(id), Has.Count.EqualTo(8));
        for (var i = 0; i < 40; i++)
        {
            var expected = Broken(i) && version == MqttProtocolVersion.V500 ? MqttClientPublishReasonCode.PayloadFormatInvalid : MqttClientPublishReasonCode.Success;
            Assert.That(acks[i].ReasonCode, Is.EqualTo(expected), $"message {i}: {acks[i].ReasonString}");
        }
    }

    [Test]
    public async Task A_resent_point_is_stored_once()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        using var client = await Hub.ConnectAsync(id, token);
        var ts = DateTimeOffset.UtcNow.AddSeconds(-5).ToUnixTimeMilliseconds();
        var message = $$$"""{"ts": {{{ts}}}, "values": {"temperature": 20.5}}""";

        for (var i = 0; i < 3; i++)
        {
            var ack = await client.PublishAsync(Telemetry(id, message));
            Assert.That(ack.ReasonCode, Is.EqualTo(MqttClientPublishReasonCode.Success));
        }

        using var admin = await Hub.AdminAsync();
        var raw = await admin.GetJsonAsync($"/api/v1/devices/{id}/telemetry?metric=temperature&resolution=raw");
        Assert.That(raw["points"]!.AsArray(), Has.Count.EqualTo(1));
        var minute = await admin.GetJsonAsync($"/api/v1/devices/{id}/telemetry?metric=temperature&resolution=1m");
        Assert.That(minute["points"]!.AsArray().Single()!["count"]!.GetValue<long>(), Is.EqualTo(1), "the rollup counts the point once");
    }

    [Test]
    public async Task Connecting_and_disconnecting_updates_presence()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        using var admin = await Hub.AdminAsync();
        Assert.That((await admin.GetJsonAsync($"/api/v1/devices/{id}"))["status"]!.GetValue<string>(), Is.EqualTo("never"));

        using var client = await Hub.ConnectAsync(id, token);
        await WaitFor.ConditionAsync(async () => (await admin.GetJsonAsync($"/api/v1/devices/{id}"))["status"]!.GetValue<string>() == "online", "device shows online");

        await client.DisconnectAsync();
        await WaitFor.ConditionAsync(async () => (await admin.GetJsonAsync($"/api/v1/devices/{id}"))["status"]!.GetValue<string>() == "offline", "device shows offline");
        Assert.That((await admin.GetJsonAsync($"/api/v1/devices/{id}"))["lastSeen"]!.GetValue<DateTimeOffset>(), Is.GreaterThan(DateTimeOffset.UtcNow.AddMinutes(-1)));
    }

    [Test]
    public async Task Qos0_telemetry_is_stored_too()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        using var client = await Hub.ConnectAsync(id, token);

        await client.PublishAsync(Telemetry(id, """{"rpm": 1200}""", MqttQualityOfServiceLevel.AtMostOnce));

        using var admin = await Hub.AdminAsync();
        await WaitFor.ConditionAsync(async () =>
            (await admin.GetJsonAsync($"/api/v1/devices/{id}/telemetry/latest"))["values"]!.AsArray().Count == 1, "the QoS 0 point is stored");
    }

    [Test]
    public async Task Telemetry_over_websocket_is_stored()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        using var client = await ConnectOverWebSocketAsync(id, token);

        var ack = await client.PublishAsync(Telemetry(id, """{"temperature": 19}"""));

        Assert.That(ack.ReasonCode, Is.EqualTo(MqttClientPublishReasonCode.Success), ack.ReasonString);
    }

    [Test]
    public async Task A_200_KB_message_over_websocket_is_acked()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        using var client = await ConnectOverWebSocketAsync(id, token);
        // Valid JSON of ~200 KB (under the 256 KB packet and payload limits): one string metric padded out.
        var json = "{\"note\": \"" + new string('x', 200 * 1024) + "\"}";

        var ack = await client.PublishAsync(Telemetry(id, json)).WaitAsync(TimeSpan.FromSeconds(15));

        Assert.That(ack.ReasonCode, Is.AnyOf(MqttClientPublishReasonCode.Success, MqttClientPublishReasonCode.PayloadFormatInvalid), "acked, stored or dead-lettered");
    }

    [Test]
    public async Task A_string_with_a_nul_character_is_refused_with_its_reason_and_blocks_nothing_after_it()
    {
        // PostgreSQL text cannot hold U+0000: stored as it came, it failed the whole batch, retried forever.
        var (id, token) = await Hub.CreateDeviceAsync();
        using var client = await Hub.ConnectAsync(id, token);

        var bad = await client.PublishAsync(Telemetry(id, """{"note": "a\u0000b", "temperature": 19}""")).WaitAsync(TimeSpan.FromSeconds(15));
        var good = await client.PublishAsync(Telemetry(id, """{"note": "ab", "temperature": 20}""")).WaitAsync(TimeSpan.FromSeconds(15));

        Assert.That(bad.ReasonCode, Is.EqualTo(MqttClientPublishReasonCode.PayloadFormatInvalid), bad.ReasonString);
        Assert.That(bad.ReasonString, Does.Contain("note").And.Contain("U+0000"));
        Assert.That(good.ReasonCode, Is.EqualTo(MqttClientPublishReasonCode.Success), good.ReasonString);
        Assert.That(await DeadLettersAsync(id), Has.Count.EqualTo(1));
    }

    [Test]
    public async Task A_message_just_under_the_256_KB_packet_limit_over_tcp_is_acked()
    {
        // The socket transport buffers at most Mqtt:MaxPacketBytes + 64 KiB unread per connection: a whole packet of the
        // largest allowed size must still fit, or the connection would stall waiting for bytes it refuses to read.
        var (id, token) = await Hub.CreateDeviceAsync();
        using var client = await Hub.ConnectAsync(id, token);
        var json = "{\"note\": \"" + new string('x', 256 * 1024 - 200) + "\"}";

        var ack = await client.PublishAsync(Telemetry(id, json)).WaitAsync(TimeSpan.FromSeconds(15));

        Assert.That(ack.ReasonCode, Is.AnyOf(MqttClientPublishReasonCode.Success, MqttClientPublishReasonCode.PayloadFormatInvalid), "acked, stored or dead-lettered");
        Assert.That(client.IsConnected, Is.True);
    }

    private async Task<IMqttClient> ConnectOverWebSocketAsync(string id, string token)
    {
        var client = new MqttClientFactory().CreateMqttClient();
        await client.ConnectAsync(new MqttClientOptionsBuilder()
            .WithWebSocketServer(o => o.WithUri($"ws://127.0.0.1:{Hub.BaseAddress.Port}/mqtt"))
            .WithCredentials(id, token).WithClientId(id + ":ws").Build());
        return client;
    }

    private async Task<List<System.Text.Json.Nodes.JsonNode?>> DeadLettersAsync(string deviceId)
    {
        using var admin = await Hub.AdminAsync();
        return (await admin.GetJsonAsync($"/api/v1/dead-letters?deviceId={deviceId}"))["items"]!.AsArray().ToList();
    }
}
