// Issue #15 §4 and §5: limits that protect the hub from one connection: the Receive Maximum it advertises, and a packet
// that never finishes arriving (a byte dripped every few seconds, with keep-alive off).
using IoTHub.Tests.Infrastructure;

namespace IoTHub.Tests.Connectivity.Mqtt;

[TestFixture(Store.Sqlite)]
[TestFixture(Store.Postgres)]
public sealed class ProtocolLimitTests(Store store) : HubFixture(store)
{
    protected override IDictionary<string, string?> Settings => new Dictionary<string, string?>
    {
        ["Mqtt:ReceiveMaximum"] = "3",
        ["Mqtt:PacketTimeoutSeconds"] = "1",
    };

    [Test]
    public async Task More_qos1_messages_unacknowledged_than_the_receive_maximum_close_the_connection_with_0x93()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        var (raw, _, _) = await RawMqttClient.ConnectAsync(Hub.MqttPort, id, id, token);
        using var _ = raw;
        // Six telemetry messages in one write: their PUBACKs wait for the commit, so the fourth is one too many.
        var burst = Enumerable.Range(1, 6).SelectMany(i => RawMqttClient.Publish(true, $"devices/{id}/telemetry", $$"""{"n": {{i}}}""", 1, (ushort)i)).ToArray();
        await raw.Stream.WriteAsync(burst);
        Assert.That(await raw.DisconnectReasonAsync(), Is.EqualTo(0x93), "DISCONNECT Receive Maximum exceeded (MQTT 5 §4.9)");
    }

    [Test]
    public async Task Every_connection_flooding_past_the_receive_maximum_reads_its_0x93_before_the_close()
    {
        // MQTTnet marked a stopping connection stopped before writing its DISCONNECT, and a receive loop with more packets
        // buffered closed the socket under the write: about 1 flood in 150 ended without a reason. 100 in a row, none may.
        var missed = new List<string>();
        for (var i = 0; i < 100; i++)
        {
            var (id, token) = await Hub.CreateDeviceAsync();
            var (raw, _, _) = await RawMqttClient.ConnectAsync(Hub.MqttPort, id, id, token);
            using var _ = raw;
            var flood = Enumerable.Range(1, 30).SelectMany(n => RawMqttClient.Publish(true, $"devices/{id}/telemetry", $$"""{"n": {{n}}}""", 1, (ushort)n)).ToArray();
            await raw.Stream.WriteAsync(flood);
            if (await raw.DisconnectReasonAsync() is var reason && reason != 0x93) missed.Add($"flood {i}: {reason?.ToString("x2") ?? "closed without DISCONNECT"}");
        }
        Assert.That(missed, Is.Empty);
    }

    [Test]
    public async Task Messages_within_the_receive_maximum_are_all_acknowledged()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        var (raw, _, _) = await RawMqttClient.ConnectAsync(Hub.MqttPort, id, id, token);
        using var _ = raw;
        for (var round = 0; round < 3; round++)
        {
            var burst = Enumerable.Range(1, 3).SelectMany(i => RawMqttClient.Publish(true, $"devices/{id}/telemetry", $$"""{"n": {{i}}}""", 1, (ushort)(round * 3 + i))).ToArray();
            await raw.Stream.WriteAsync(burst);
            for (var i = 0; i < 3; i++) await raw.ReadUntilAsync(4);
        }
    }

    [Test]
    public async Task A_packet_that_does_not_arrive_whole_within_the_packet_timeout_closes_the_connection([Values] bool v5)
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        var (raw, code, _) = await RawMqttClient.ConnectAsync(Hub.MqttPort, id, id, token, v5: v5, keepAlive: 0);
        using var _ = raw;
        Assert.That(code, Is.Zero);
        // An idle connection with keep-alive 0 may stay...
        Assert.That(await RawMqtt.ClosedByPeerAsync(raw.Tcp, TimeSpan.FromSeconds(1.5)), Is.False, "an idle connection without keep-alive stays");
        // ...but a packet begun must end: the first two bytes of a 32-byte PUBLISH, then a byte now and then.
        await raw.Stream.WriteAsync(new byte[] { 0x30, 0x20 });
        await Task.Delay(400);
        await raw.Stream.WriteAsync(new byte[] { 0x00 });
        Assert.That(await RawMqtt.ClosedByPeerAsync(raw.Tcp, TimeSpan.FromSeconds(5)), Is.True, "closed once the packet is 1 s late (Mqtt:PacketTimeoutSeconds)");
    }

}
