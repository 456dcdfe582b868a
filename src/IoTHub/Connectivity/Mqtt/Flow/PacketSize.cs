using System.Text;
using MQTTnet.Packets;
using MQTTnet.Protocol;

namespace IoTHub.Connectivity.Mqtt.Flow;

/// <summary>The encoded size of an MQTT 5 PUBLISH in bytes (MQTT 5 §3.3), to hold it against a client's Maximum Packet Size.</summary>
internal static class PacketSize
{
    public static long Of(MqttPublishPacket p)
    {
        long properties = 0;
        if (p.PayloadFormatIndicator != MqttPayloadFormatIndicator.Unspecified) properties += 2;
        if (p.MessageExpiryInterval > 0) properties += 5;
        if (p.TopicAlias > 0) properties += 3;
        if (p.ResponseTopic is { } rt) properties += 3 + Encoding.UTF8.GetByteCount(rt);
        if (p.CorrelationData is { } cd) properties += 3 + cd.Length;
        if (p.ContentType is { } ct) properties += 3 + Encoding.UTF8.GetByteCount(ct);
        if (p.UserProperties is { } ups)
            foreach (var up in ups) properties += 5 + Encoding.UTF8.GetByteCount(up.Name) + up.ValueBuffer.Length;
        if (p.SubscriptionIdentifiers is { } ids)
            foreach (var id in ids) properties += 1 + VarIntLength(id);
        var remaining = 2 + Encoding.UTF8.GetByteCount(p.Topic ?? "") + (p.QualityOfServiceLevel > MqttQualityOfServiceLevel.AtMostOnce ? 2 : 0)
            + VarIntLength((uint)properties) + properties + p.Payload.Length;
        return 1 + VarIntLength((uint)remaining) + remaining;
    }

    private static int VarIntLength(uint value) => value < 128 ? 1 : value < 16_384 ? 2 : value < 2_097_152 ? 3 : 4;
}
