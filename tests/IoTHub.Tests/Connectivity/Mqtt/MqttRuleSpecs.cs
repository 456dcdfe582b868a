// Fast specifications of the broker's pure rules: client id namespaces, shared subscription filters, PUBLISH sizes.
using System.Text;
using IoTHub.Connectivity.Mqtt;
using IoTHub.Connectivity.Mqtt.Connect;
using IoTHub.Connectivity.Mqtt.Flow;
using IoTHub.Connectivity.Mqtt.Subscriptions;
using MQTTnet.Formatter;
using MQTTnet.Packets;
using MQTTnet.Protocol;

namespace IoTHub.Tests.Connectivity.Mqtt;

public sealed class MqttRuleSpecs
{
    [TestCase("pump-7", "pump-7", true)]
    [TestCase("pump-7", "pump-7:telemetry", true)]
    [TestCase("pump-7", "pump-7:", false)]
    [TestCase("pump-7", "pump-70", false)]
    [TestCase("pump-7", "pump-", false)]
    [TestCase("pump-7", "pump-8", false)]
    [TestCase("pump-7", "mosq-123", false)]
    [TestCase("pump-7", "", false)]
    public void A_devices_client_id_is_its_device_id_or_starts_with_it_and_a_colon(string device, string clientId, bool allowed) =>
        Assert.That(ClientIdRules.DeviceRuleBroken(device, clientId) is null, Is.EqualTo(allowed));

    [TestCase("pump-7", "pump-7")]
    [TestCase("pump-7:app", "pump-7")]
    [TestCase("node-red", "node-red")]
    [TestCase("app~1234", null)]
    [TestCase("Home Assistant", null)]
    [TestCase(":x", null)]
    public void A_client_id_is_in_the_namespace_of_the_device_id_before_its_first_colon(string clientId, string? device) =>
        Assert.That(ClientIdRules.DeviceNamespaceOf(clientId), Is.EqualTo(device));

    [Test]
    public void An_assigned_client_id_is_in_the_devices_namespace_or_in_none()
    {
        var forDevice = ClientIdRules.Assign(MqttPrincipal.Device("pump-7"));
        Assert.That(ClientIdRules.DeviceRuleBroken("pump-7", forDevice), Is.Null);
        var forApp = ClientIdRules.Assign(MqttPrincipal.ApiKey(3, "operator"));
        Assert.That(ClientIdRules.DeviceNamespaceOf(forApp), Is.Null, forApp);
        Assert.That(forApp, Is.Not.EqualTo(ClientIdRules.Assign(MqttPrincipal.ApiKey(3, "operator"))));
    }

    [Test]
    public void Principals_are_the_same_by_kind_and_id_whatever_the_role_says()
    {
        Assert.That(MqttPrincipal.ApiKey(3, "operator"), Is.EqualTo(MqttPrincipal.ApiKey(3, "")));
        Assert.That(MqttPrincipal.ApiKey(3, "operator"), Is.Not.EqualTo(MqttPrincipal.ApiKey(4, "operator")));
        Assert.That(MqttPrincipal.Device("3"), Is.Not.EqualTo(MqttPrincipal.ApiKey(3, "operator")));
    }

    [TestCase("$share/workers/devices/+/telemetry", "workers", "devices/+/telemetry")]
    [TestCase("$share/g/#", "g", "#")]
    [TestCase("$iothub-share/g/a/b", "g", "a/b")]
    public void A_shared_filter_has_a_share_name_and_a_filter(string topic, string share, string filter)
    {
        var parsed = SharedFilter.Parse(topic, out var error);
        Assert.That(error, Is.Null);
        Assert.That(parsed, Is.EqualTo(new SharedFilter(share, filter)));
        Assert.That(SharedFilter.Parse(parsed!.Value.Internal, out _), Is.EqualTo(parsed));
    }

    [TestCase("$share/")]
    [TestCase("$share//x")]
    [TestCase("$share/g")]
    [TestCase("$share/g/")]
    [TestCase("$share/g+/x")]
    [TestCase("$share/#/x")]
    public void A_malformed_shared_filter_is_refused_with_a_reason(string topic)
    {
        Assert.That(SharedFilter.Parse(topic, out var error), Is.Null);
        Assert.That(error, Is.Not.Null);
    }

    [Test]
    public void A_plain_filter_is_not_shared()
    {
        Assert.That(SharedFilter.Parse("devices/+/telemetry", out var error).HasValue, Is.False);
        Assert.That(error, Is.Null);
    }

    [TestCase(0, "")]
    [TestCase(1, "x")]
    [TestCase(2, "{\"temperature\": 21.5}")]
    public void The_size_of_a_publish_is_what_mqttnet_encodes(int qos, string payload)
    {
        var packet = new MqttPublishPacket
        {
            Topic = "apps/äöü/events",
            QualityOfServiceLevel = (MqttQualityOfServiceLevel)qos,
            PacketIdentifier = (ushort)(qos > 0 ? 7 : 0),
            Payload = new System.Buffers.ReadOnlySequence<byte>(Encoding.UTF8.GetBytes(payload + new string('p', 200))),
            ContentType = "application/json",
            ResponseTopic = "apps/reply",
            CorrelationData = [1, 2, 3],
            MessageExpiryInterval = 60,
            PayloadFormatIndicator = MqttPayloadFormatIndicator.CharacterData,
            UserProperties = [new MqttUserProperty("k", new ReadOnlyMemory<byte>(Encoding.UTF8.GetBytes("välue")))],
            SubscriptionIdentifiers = [5, 300],
        };
        var encoded = new MqttPacketFormatterAdapter(MqttProtocolVersion.V500, new MQTTnet.Formatter.MqttBufferWriter(4096, 65535)).Encode(packet);
        Assert.That(PacketSize.Of(packet), Is.EqualTo(encoded.Length));
    }

    [Test]
    public void Truncated_text_never_ends_in_half_a_surrogate_pair()
    {
        var s = new string('!', 63) + "😀";
        Assert.That(MqttText.Truncate(s, 64), Is.EqualTo(new string('!', 63)));
        Assert.That(MqttText.Truncate(s, 65), Is.EqualTo(s));
        Assert.That(MqttText.Printable("a\u0000b\nc"), Is.EqualTo("a?b?c"));
    }
}
