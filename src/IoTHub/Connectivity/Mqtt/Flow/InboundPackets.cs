// Every packet a client sends, before MQTTnet handles it: the MQTT rules MQTTnet does not enforce.
//   - 5.0 Receive Maximum (§4.9): more QoS 1/2 PUBLISHes unanswered than the hub advertised → DISCONNECT 0x93.
//   - 5.0 Topic Alias (§3.3.2.3.4): 0, above the advertised maximum, or unknown → DISCONNECT 0x94; an empty topic
//     without an alias → 0x82.
//   - QoS 2 exactly once (§4.3.3): a PUBLISH resent with a packet id that awaits PUBREL is acknowledged, not processed.
//   - SUBSCRIBE or UNSUBSCRIBE without a topic filter [MQTT-3.8.3-3], [MQTT-3.10.3-2], a shared subscription with
//     No Local [MQTT-3.8.3-4] → protocol error: DISCONNECT 0x82 on 5.0, the connection closed on 3.1.1.
//   - Shared subscription filters are rewritten to their internal form (SharedSubscriptions).
//   - PUBACK, PUBREC (error) and PUBCOMP from the client free its Receive Maximum quota for the hub's sends.
using IoTHub.Connectivity.Mqtt.Sessions;
using IoTHub.Connectivity.Mqtt.Subscriptions;
using Microsoft.Extensions.Options;
using MQTTnet.Packets;
using MQTTnet.Protocol;
using MQTTnet.Server;

namespace IoTHub.Connectivity.Mqtt.Flow;

internal sealed class InboundPackets(IOptions<MqttOptions> options, IoTHub.Contracts.LogThrottle lines, ILogger<InboundPackets> log)
{
    private MqttServer? _server;

    public void Attach(MqttServer server) => _server = server;

    public Task InterceptAsync(InterceptingPacketEventArgs e)
    {
        if (SessionInfo.From(e.SessionItems) is not { } session) return Task.CompletedTask;
        var c = session.Connection;
        if (c.IsClosing)
        {
            // After a protocol error the connection is closing: a packet that was already on its way is not processed.
            e.ProcessPacket = false;
            return Task.CompletedTask;
        }
        switch (e.Packet)
        {
            case MqttPublishPacket publish:
                Publish(e, session, c, publish);
                break;
            case MqttPubRelPacket rel:
                bool known;
                lock (session.AwaitingRelease) known = session.AwaitingRelease.Remove(rel.PacketIdentifier);
                if (!known && c.IsV5) lock (c.UnknownReleases) c.UnknownReleases.Add(rel.PacketIdentifier); // PUBCOMP 0x92
                break;
            case MqttPubAckPacket ack:
                SendQuota.Acknowledged(c, ack.PacketIdentifier, log);
                break;
            case MqttPubCompPacket comp:
                SendQuota.Acknowledged(c, comp.PacketIdentifier, log);
                break;
            case MqttPubRecPacket rec when (int)rec.ReasonCode >= 0x80:
                SendQuota.Acknowledged(c, rec.PacketIdentifier, log);
                break;
            case MqttSubscribePacket subscribe:
                Subscribe(e, c, subscribe);
                break;
            case MqttUnsubscribePacket unsubscribe:
                if (unsubscribe.TopicFilters.Count == 0)
                {
                    ProtocolError(e, c, MqttDisconnectReasonCode.ProtocolError, "UNSUBSCRIBE without a topic filter [MQTT-3.10.3-2]");
                    break;
                }
                for (var i = 0; i < unsubscribe.TopicFilters.Count; i++)
                    if (SharedFilter.Parse(unsubscribe.TopicFilters[i], out _) is { } shared) unsubscribe.TopicFilters[i] = shared.Internal;
                break;
        }
        return Task.CompletedTask;
    }

    private void Publish(InterceptingPacketEventArgs e, SessionInfo session, MqttConnection c, MqttPublishPacket publish)
    {
        var o = options.Value;
        if (c.Wire?.Error is { } wireError)
        {
            ProtocolError(e, c, (MqttDisconnectReasonCode)wireError.Code, wireError.Reason);
            return;
        }
        if (publish.TopicAlias > 0)
        {
            if (!c.IsV5 || publish.TopicAlias > o.TopicAliasMaximum)
            {
                ProtocolError(e, c, MqttDisconnectReasonCode.TopicAliasInvalid, $"topic alias {publish.TopicAlias} is above the maximum {o.TopicAliasMaximum}");
                return;
            }
            if (!string.IsNullOrEmpty(publish.Topic)) c.TopicAliases[publish.TopicAlias] = publish.Topic;
            else if (!c.TopicAliases.ContainsKey(publish.TopicAlias))
            {
                ProtocolError(e, c, MqttDisconnectReasonCode.ProtocolError, $"topic alias {publish.TopicAlias} was never set on this connection");
                return;
            }
        }
        else if (string.IsNullOrEmpty(publish.Topic))
        {
            ProtocolError(e, c, MqttDisconnectReasonCode.ProtocolError, "a PUBLISH without a topic name or topic alias");
            return;
        }
        var topic = string.IsNullOrEmpty(publish.Topic) ? c.TopicAliases[publish.TopicAlias] : publish.Topic;
        if (topic.AsSpan().IndexOfAny('+', '#') >= 0)
        {
            ProtocolError(e, c, MqttDisconnectReasonCode.TopicNameInvalid, "a topic name may not contain wildcards [MQTT-3.3.2-2]");
            return;
        }
        if (topic.AsSpan().IndexOfAny('\0', '\uFFFD') >= 0)
        {
            ProtocolError(e, c, MqttDisconnectReasonCode.MalformedPacket, "a topic name with U+0000 or invalid UTF-8 [MQTT-1.5.4-1], [MQTT-1.5.4-2]");
            return;
        }
        if (publish.QualityOfServiceLevel > MqttQualityOfServiceLevel.AtMostOnce && publish.PacketIdentifier == 0)
        {
            ProtocolError(e, c, MqttDisconnectReasonCode.ProtocolError, "a QoS 1 or 2 PUBLISH needs a non-zero packet identifier [MQTT-2.2.1-3]");
            return;
        }

        c.InboundPacketId = publish.PacketIdentifier;
        c.InboundIsResend = false;
        if (publish.QualityOfServiceLevel == MqttQualityOfServiceLevel.ExactlyOnce)
        {
            lock (session.AwaitingRelease) c.InboundIsResend = !session.AwaitingRelease.Add(publish.PacketIdentifier);
        }
        if (publish.QualityOfServiceLevel > MqttQualityOfServiceLevel.AtMostOnce && !c.InboundIsResend && c.IsV5
            && Interlocked.Increment(ref c.InboundInFlight) > o.ReceiveMaximum)
        {
            ProtocolError(e, c, MqttDisconnectReasonCode.ReceiveMaximumExceeded, $"more than {o.ReceiveMaximum} QoS 1 and 2 messages unacknowledged (Receive Maximum)");
        }
    }

    private void Subscribe(InterceptingPacketEventArgs e, MqttConnection c, MqttSubscribePacket subscribe)
    {
        if (subscribe.TopicFilters.Count == 0)
        {
            ProtocolError(e, c, MqttDisconnectReasonCode.ProtocolError, "SUBSCRIBE without a topic filter [MQTT-3.8.3-3]");
            return;
        }
        foreach (var filter in subscribe.TopicFilters)
        {
            if (filter.QualityOfServiceLevel > MqttQualityOfServiceLevel.ExactlyOnce)
            {
                ProtocolError(e, c, MqttDisconnectReasonCode.MalformedPacket, "a SUBSCRIBE asking for QoS 3 [MQTT-3-8.3-4]");
                return;
            }
            if (!filter.Topic.StartsWith(SharedFilter.Prefix, StringComparison.Ordinal)) continue;
            if (filter.NoLocal)
            {
                ProtocolError(e, c, MqttDisconnectReasonCode.ProtocolError, "No Local on a shared subscription [MQTT-3.8.3-4]");
                return;
            }
            // Valid or not: MQTTnet refuses every $share filter as "not supported"; in the internal form the hub's own
            // subscription check sees it, and refuses a malformed one as an invalid filter.
            filter.Topic = SharedFilter.InternalPrefix + filter.Topic[SharedFilter.Prefix.Length..];
        }
        c.SubscriptionIdentifier = subscribe.SubscriptionIdentifier;
    }

    /// <summary>Drops the packet and closes the connection: DISCONNECT with the reason on 5.0, a plain close on 3.1.1.</summary>
    private void ProtocolError(InterceptingPacketEventArgs e, MqttConnection c, MqttDisconnectReasonCode code, string reason)
    {
        e.ProcessPacket = false;
        MqttMetrics.ProtocolErrors.Add(1);
        lines.Write(log, RefusalLines.ProtocolError, c.ClientId, MqttText.Printable(c.ClientId), reason);
        ServerDisconnect.Close(_server, c, code, reason, log);
    }
}
