// No principal can fill the hub with sessions or subscriptions, or keep a device out of its own client id.
using IoTHub.Tests.Infrastructure;
using MQTTnet;
using MQTTnet.Formatter;
using MQTTnet.Protocol;

namespace IoTHub.Tests.Connectivity.Mqtt;

[TestFixture(Store.Sqlite)]
[TestFixture(Store.Postgres)]
public sealed class SessionLimitTests(Store store) : HubFixture(store)
{
    [Test]
    public async Task A_device_may_hold_at_most_its_quota_of_sessions([Values(MqttProtocolVersion.V311, MqttProtocolVersion.V500)] MqttProtocolVersion version)
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        for (var i = 0; i < 8; i++)
        {
            var (raw, code, _) = await RawMqttClient.ConnectAsync(Hub.MqttPort, $"{id}:s{i}", id, token, v5: version == MqttProtocolVersion.V500, cleanStart: false, sessionExpiry: 600);
            raw.Dispose();
            Assert.That(code, Is.Zero, $"session {i}");
        }
        var (ninth, refused, _) = await RawMqttClient.ConnectAsync(Hub.MqttPort, $"{id}:s8", id, token, v5: version == MqttProtocolVersion.V500, cleanStart: false, sessionExpiry: 600);
        ninth.Dispose();
        Assert.That(refused, Is.EqualTo(version == MqttProtocolVersion.V500 ? 0x97 : 0x03), "quota exceeded (3.1.1: server unavailable)");
        // An existing one may still be resumed.
        var (again, code2, connAck) = await RawMqttClient.ConnectAsync(Hub.MqttPort, $"{id}:s3", id, token, v5: version == MqttProtocolVersion.V500, cleanStart: false, sessionExpiry: 600);
        again.Dispose();
        Assert.That(code2, Is.Zero);
        Assert.That(connAck[0] & 1, Is.EqualTo(1));
    }

    [Test]
    public async Task A_session_may_hold_at_most_its_quota_of_subscriptions()
    {
        var key = await Hub.CreateApiKeyAsync("viewer");
        using var client = await Hub.ConnectAsync("apikey", key);
        var prefix = Guid.NewGuid().ToString("N")[..8];
        var first = new MqttClientSubscribeOptionsBuilder();
        for (var i = 0; i < 100; i++) first = first.WithTopicFilter($"apps/{prefix}/{i}", MqttQualityOfServiceLevel.AtLeastOnce);
        var granted = await client.SubscribeAsync(first.Build());
        Assert.That(granted.Items.All(i => i.ResultCode == MqttClientSubscribeResultCode.GrantedQoS1), Is.True);
        var more = await client.SubscribeAsync($"apps/{prefix}/one-too-many", MqttQualityOfServiceLevel.AtLeastOnce);
        Assert.That(more.Items.Single().ResultCode, Is.EqualTo(MqttClientSubscribeResultCode.QuotaExceeded));
        var again = await client.SubscribeAsync($"apps/{prefix}/7", MqttQualityOfServiceLevel.AtMostOnce);
        Assert.That(again.Items.Single().ResultCode, Is.EqualTo(MqttClientSubscribeResultCode.GrantedQoS0), "changing an existing one is no new subscription");
    }

    [Test]
    public async Task A_device_created_after_an_app_took_its_id_gets_the_id_back([Values(MqttProtocolVersion.V311, MqttProtocolVersion.V500)] MqttProtocolVersion version)
    {
        var id = "pump-" + Guid.NewGuid().ToString("N")[..8];
        var key = await Hub.CreateApiKeyAsync("viewer");
        using var squatter = new MqttClientFactory().CreateMqttClient();
        var options = new MqttClientOptionsBuilder().WithTcpServer("127.0.0.1", Hub.MqttPort).WithProtocolVersion(version).WithClientId(id)
            .WithCredentials("apikey", key).WithCleanStart(false).WithSessionExpiryInterval(3600).Build();
        Assert.That((await squatter.ConnectAsync(options)).ResultCode, Is.EqualTo(MqttClientConnectResultCode.Success), "no such device yet");

        var (_, token) = await Hub.CreateDeviceAsync(id);
        await WaitFor.ConditionAsync(() => !squatter.IsConnected, "the app's session in the device's namespace ends");
        using var device = new MqttClientFactory().CreateMqttClient();
        var result = await device.ConnectAsync(Hub.MqttOptions(id, token, version, clientId: id));
        Assert.That(result.ResultCode, Is.EqualTo(MqttClientConnectResultCode.Success));
        Assert.That(result.IsSessionPresent, Is.False, "the app's session is gone, not lent to the device");
    }
}
