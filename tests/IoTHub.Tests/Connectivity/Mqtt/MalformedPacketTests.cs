// What a hostile or broken client sends that MQTT calls malformed or a protocol error: the hub closes the connection
// (5.0 with the DISCONNECT reason; 3.1.1 without a word, as it has none) or answers with the specified code, and keeps
// serving everyone else. Each case was found by a probe of the broker.
using System.Text;
using IoTHub.Connectivity.Mqtt.Sessions;
using IoTHub.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace IoTHub.Tests.Connectivity.Mqtt;

[TestFixture(Store.Sqlite)]
[TestFixture(Store.Postgres)]
public sealed class MalformedPacketTests(Store store) : HubFixture(store)
{
    [Test]
    public async Task A_publish_on_a_topic_with_wildcards_closes_the_connection([Values] bool v5)
    {
        var key = await Hub.CreateApiKeyAsync("operator");
        var (raw, _, _) = await RawMqttClient.ConnectAsync(Hub.MqttPort, "w-" + Guid.NewGuid().ToString("N")[..8], "apikey", key, v5: v5);
        using var _ = raw;
        await raw.PublishAsync("apps/+/x", "{}", qos: 1, packetId: 1);
        Assert.That(await raw.DisconnectReasonAsync(), v5 ? Is.EqualTo(0x90) : Is.Null, "[MQTT-3.3.2-2]");
    }

    [Test]
    public async Task A_topic_with_U0000_or_invalid_utf8_closes_the_connection()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        foreach (var topic in new[] { $"devices/{id}/telemetry\0", $"devices/{id}/\uFFFD" })
        {
            var (raw, _, _) = await RawMqttClient.ConnectAsync(Hub.MqttPort, id, id, token);
            using var _ = raw;
            await raw.PublishAsync(topic, "{}", qos: 1, packetId: 1);
            Assert.That(await raw.DisconnectReasonAsync(), Is.EqualTo(0x81), "Malformed Packet [MQTT-1.5.4-1], [MQTT-1.5.4-2]");
        }
    }

    [Test]
    public async Task A_message_sent_right_after_a_protocol_error_is_neither_stored_nor_acknowledged([Values] bool v5)
    {
        // One write: a PUBLISH on a topic with U+0000, then a valid telemetry message. The connection is closing from the
        // first; the second must not be processed [MQTT-4.13.1-1] (the client, unanswered, sends it again elsewhere).
        var (id, token) = await Hub.CreateDeviceAsync();
        var ts = DateTimeOffset.UtcNow.AddSeconds(-5).ToUnixTimeMilliseconds();
        var (raw, _, _) = await RawMqttClient.ConnectAsync(Hub.MqttPort, id, id, token, v5: v5);
        using (raw)
        {
            await raw.Stream.WriteAsync((byte[])[
                .. RawMqttClient.Publish(v5, $"devices/{id}/telemetry\0", "{}", 1, 1),
                .. RawMqttClient.Publish(v5, $"devices/{id}/telemetry", $$$"""{"ts": {{{ts}}}, "values": {"after_error": 1}}""", 1, 2)]);
            var received = new List<int>();
            try
            {
                while (true)
                {
                    var (type, body) = await raw.ReadAsync();
                    received.Add(type >> 4);
                    if (type >> 4 == 14) break;
                }
            }
            catch (Exception ex) when (ex is EndOfStreamException or IOException) { }
            Assert.That(received, Is.EqualTo(v5 ? new[] { 14 } : Array.Empty<int>()), "no PUBACK; on 5.0 only the DISCONNECT");
        }

        // A later message of the same device acked means every earlier batch has committed (they commit in order).
        var (again, _, _) = await RawMqttClient.ConnectAsync(Hub.MqttPort, id, id, token, v5: v5);
        using (again)
        {
            await again.PublishAsync($"devices/{id}/telemetry", $$$"""{"ts": {{{ts}}}, "values": {"marker": 1}}""", qos: 1, packetId: 1);
            await again.ReadUntilAsync(4);
        }
        using var admin = await Hub.AdminAsync();
        Assert.That((await admin.GetJsonAsync($"/api/v1/devices/{id}/telemetry?metric=marker&resolution=raw"))["points"]!.AsArray(), Has.Count.EqualTo(1));
        Assert.That((await admin.GetJsonAsync($"/api/v1/devices/{id}/telemetry?metric=after_error&resolution=raw"))["points"]!.AsArray(), Is.Empty);
    }

    [Test]
    public async Task A_qos1_publish_with_packet_id_0_closes_the_connection()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        var (raw, _, _) = await RawMqttClient.ConnectAsync(Hub.MqttPort, id, id, token);
        using var _ = raw;
        await raw.PublishAsync($"devices/{id}/telemetry", """{"t": 1}""", qos: 1, packetId: 0);
        Assert.That(await raw.DisconnectReasonAsync(), Is.EqualTo(0x82), "[MQTT-2.2.1-3]");
    }

    [Test]
    public async Task A_subscribe_asking_for_qos_3_closes_the_connection()
    {
        var key = await Hub.CreateApiKeyAsync("viewer");
        var (raw, _, _) = await RawMqttClient.ConnectAsync(Hub.MqttPort, "q3-" + Guid.NewGuid().ToString("N")[..8], "apikey", key);
        using var _ = raw;
        await raw.SendAsync(0x82, [0, 1, 0, .. RawMqttClient.Str("apps/x"), 3]);
        Assert.That(await raw.DisconnectReasonAsync(), Is.EqualTo(0x81));
    }

    [TestCase("apps/#/x")]
    [TestCase("apps/x#")]
    [TestCase("apps/a+/b")]
    [TestCase("$share/g/")]
    [TestCase("$share/g")]
    [TestCase("$share/g+/x")]
    public async Task An_invalid_topic_filter_is_refused_in_suback_and_the_connection_stays(string filter)
    {
        var key = await Hub.CreateApiKeyAsync("viewer");
        var (raw, _, _) = await RawMqttClient.ConnectAsync(Hub.MqttPort, "f-" + Guid.NewGuid().ToString("N")[..8], "apikey", key);
        using var _ = raw;
        await raw.SendAsync(0x82, [0, 1, 0, .. RawMqttClient.Str(filter), 1]);
        var subAck = await raw.ReadUntilAsync(9);
        Assert.That(subAck[^1], Is.EqualTo(0x8F), "Topic Filter invalid [MQTT-4.7.1-1]");
        await raw.SendAsync(0xC0, []); // PINGREQ: still connected
        Assert.That((await raw.ReadAsync()).Type >> 4, Is.EqualTo(13));
    }

    [Test]
    public async Task A_pubrel_for_an_unknown_packet_id_is_answered_with_0x92()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        var (raw, _, _) = await RawMqttClient.ConnectAsync(Hub.MqttPort, id, id, token);
        using var _ = raw;
        await raw.PubRelAsync(4242);
        var pubComp = await raw.ReadUntilAsync(7);
        Assert.That(pubComp[2], Is.EqualTo(0x92), "Packet Identifier not found");
    }

    [Test]
    public async Task A_connect_with_an_unknown_protocol_level_gets_connack_0x01()
    {
        using var tcp = await RawMqtt.OpenAsync(Hub.MqttPort);
        var stream = tcp.GetStream();
        await stream.WriteAsync(RawMqtt.Packet(0x10, [0, 4, (byte)'M', (byte)'Q', (byte)'T', (byte)'T', 6, 0x02, 0, 60, 0, .. RawMqttClient.Str("c")]));
        var connAck = new byte[4];
        await stream.ReadExactlyAsync(connAck);
        Assert.That(connAck, Is.EqualTo(new byte[] { 0x20, 0x02, 0x00, 0x01 }), "unacceptable protocol version [MQTT-3.1.2-2]");
    }

    [Test]
    public async Task A_client_id_with_U0000_or_a_control_character_is_refused([Values] bool v5)
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        foreach (var clientId in new[] { id + ":\0x", id + ":\u0007", id + ":\uFFFD" })
        {
            var (raw, code, _) = await RawMqttClient.ConnectAsync(Hub.MqttPort, clientId, id, token, v5: v5, cleanStart: false, sessionExpiry: 60);
            raw.Dispose();
            Assert.That(code, Is.EqualTo(v5 ? 0x85 : 0x02), Encoding.UTF8.GetBytes(clientId).Length.ToString());
        }
    }

    [Test]
    public async Task A_session_row_the_database_refuses_does_not_hold_back_the_others()
    {
        // Fault injection: a row PostgreSQL cannot store (U+0000) next to a good one. The good one must be stored, and the
        // bad one must not be retried for ever.
        var stored = Hub.Services.GetRequiredService<StoredSessions>();
        var good = "good-" + Guid.NewGuid().ToString("N")[..8];
        stored.Save("bad\0" + good, IoTHub.Connectivity.Mqtt.MqttPrincipal.ApiKey(1, "operator"), 600, 0, []);
        stored.Save(good, IoTHub.Connectivity.Mqtt.MqttPrincipal.ApiKey(1, "operator"), 600, 0, []);
        await WaitFor.ConditionAsync(async () => await StoredRowsAsync(good) == 1, "the good session is stored");
    }

    private Task<int> StoredRowsAsync(string clientId)
    {
        using var scope = Hub.Services.CreateScope();
        var db = scope.ServiceProvider.GetRequiredService<IoTHub.Storage.HubDb>();
        return Task.FromResult(db.Set<MqttSessionRow>().Count(r => r.ClientId == clientId));
    }
}
