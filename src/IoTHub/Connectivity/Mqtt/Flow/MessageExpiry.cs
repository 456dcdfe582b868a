// MQTT 5 Message Expiry (§3.3.2.3.3). MQTTnet passes the interval through unchanged, however long a message waited in a
// session's queue. The hub stamps each message with an expiry deadline when it enters the broker; when a copy is about
// to be sent, the send loop drops it if the deadline has passed [MQTT-3.3.2-5] or sets the interval to what is left
// [MQTT-3.3.2-6]. MQTTnet copies a message's UserProperties list by reference into every subscriber's PUBLISH packet
// (and keeps the message itself as the retained one), so the deadline is keyed by that list instance: it reaches every
// copy, costs nothing for messages without expiry, and is collected with the message.
using System.Runtime.CompilerServices;
using MQTTnet;
using MQTTnet.Packets;

namespace IoTHub.Connectivity.Mqtt.Flow;

internal static class MessageExpiry
{
    private static readonly ConditionalWeakTable<List<MqttUserProperty>, StrongBox<long>> Deadlines = new();

    /// <summary>Stamps <paramref name="message"/>'s deadline (Unix ms) if it has a Message Expiry Interval.</summary>
    public static void Stamp(MqttApplicationMessage message, long nowMs)
    {
        if (message.MessageExpiryInterval == 0) return;
        if (message.UserProperties is { } existing && Deadlines.TryGetValue(existing, out _)) return; // stamped already
        var list = new List<MqttUserProperty>(message.UserProperties ?? []);
        message.UserProperties = list;
        Deadlines.AddOrUpdate(list, new StrongBox<long>(nowMs + message.MessageExpiryInterval * 1000L));
    }

    /// <summary>The deadline of the message this packet carries, in Unix ms; null when it does not expire.</summary>
    public static long? DeadlineOf(MqttPublishPacket packet) =>
        packet.UserProperties is { } list && Deadlines.TryGetValue(list, out var d) ? d.Value : null;
}
