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
        switch (e.Packet)
        {
            case MqttPublishPacket publish:
                Publish(e, session, c, publish);
                break;
            case MqttPubRelPacket rel:
                lock (session.AwaitingRelease) session.AwaitingRelease.Remove(rel.PacketIdentifier);
                break;
            case MqttPubAckPacket ack:
                FreeSendQuota(c, ack.PacketIdentifier);
                break;
            case MqttPubCompPacket comp:
                FreeSendQuota(c, comp.PacketIdentifier);
                break;
            case MqttPubRecPacket rec when (int)rec.ReasonCode >= 0x80:
                FreeSendQuota(c, rec.PacketIdentifier);
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
            if (SharedFilter.Parse(filter.Topic, out _) is not { } shared) continue;
            if (filter.NoLocal)
            {
                ProtocolError(e, c, MqttDisconnectReasonCode.ProtocolError, "No Local on a shared subscription [MQTT-3.8.3-4]");
                return;
            }
            filter.Topic = shared.Internal;
        }
        c.SubscriptionIdentifier = subscribe.SubscriptionIdentifier;
    }

    private static void FreeSendQuota(MqttConnection c, ushort packetId)
    {
        if (c.OutboundInFlight.TryRemove(packetId, out _)) c.SendQuota?.Release();
    }

    /// <summary>Drops the packet and closes the connection: DISCONNECT with the reason on 5.0, a plain close on 3.1.1.</summary>
    private void ProtocolError(InterceptingPacketEventArgs e, MqttConnection c, MqttDisconnectReasonCode code, string reason)
    {
        e.ProcessPacket = false;
        MqttMetrics.ProtocolErrors.Add(1);
        lines.Write(log, RefusalLines.ProtocolError, c.ClientId, MqttText.Printable(c.ClientId), reason);
        Disconnect(_server, c, code, reason, log);
    }

    /// <summary>Closes <paramref name="c"/> off the packet loop, and only if it is still the connection of its client id.</summary>
    public static void Disconnect(MqttServer? server, MqttConnection c, MqttDisconnectReasonCode code, string reason, ILogger log)
    {
        if (server is null || c.IsEnded) return;
        _ = Task.Run(async () =>
        {
            try
            {
                // A newer connection may have taken the client id over meanwhile: that one is left alone.
                var session = SessionInfo.From((await server.GetSessionAsync(c.ClientId)).Items);
                if (session?.Connection != c) return;
                await server.DisconnectClientAsync(c.ClientId, new MqttServerClientDisconnectOptions { ReasonCode = code, ReasonString = reason });
            }
            catch (Exception ex)
            {
                log.LogDebug(ex, "Client {ClientId} was already gone", c.ClientId);
            }
        });
    }
}
