// Every packet the broker sends, in the connection's send loop, just before it goes out:
//   - CONNACK: attaches the new connection to its session (new or resumed) and states the hub's terms: Maximum Packet
//     Size, Receive Maximum, Topic Alias Maximum, shared subscriptions available, Server Keep Alive, a capped Session
//     Expiry Interval, and Session Present for a session restored from the database.
//   - PUBACK of telemetry: held until its message is committed (TelemetryIngest), then given the outcome's reason code.
//   - PUBACK, PUBCOMP, PUBREC with an error: the client's QoS 1/2 message is answered; it no longer counts against
//     the hub's Receive Maximum.
//   - PUBLISH: dropped if its Message Expiry has passed or it exceeds the client's Maximum Packet Size; a redelivery
//     keeps its first packet identifier and sets DUP; a QoS 1/2 PUBLISH waits while the client's Receive Maximum of
//     unacknowledged messages is reached.
using IoTHub.Connectivity.Mqtt.Publish;
using IoTHub.Connectivity.Mqtt.Sessions;
using IoTHub.Connectivity.Mqtt.Subscriptions;
using IoTHub.Contracts;
using Microsoft.Extensions.Options;
using MQTTnet.Packets;
using MQTTnet.Protocol;
using MQTTnet.Server;

namespace IoTHub.Connectivity.Mqtt.Flow;

internal sealed class OutboundPackets(
    ConnectingClients connecting,
    SessionOwnership owners,
    SessionSubscriptions subscriptions,
    SharedSubscriptions shared,
    SessionLifecycle lifecycle,
    IOptions<MqttOptions> options,
    TimeProvider time,
    ILogger<OutboundPackets> log)
{
    private MqttServer? _server;

    public void Attach(MqttServer server) => _server = server;

    public Task InterceptAsync(InterceptingPacketEventArgs e)
    {
        switch (e.Packet)
        {
            case MqttConnAckPacket connAck:
                return ConnAckAsync(e, connAck);
            case MqttPublishPacket publish:
                return PublishAsync(e, publish);
        }
        if (SessionInfo.From(e.SessionItems) is not { } session) return Task.CompletedTask;
        var c = session.Connection;
        switch (e.Packet)
        {
            case MqttPubAckPacket ack:
                if (c.TryTakeAck(ack.PacketIdentifier, out var held)) return ReleaseTelemetryAckAsync(e, ack, c, held.Ticket);
                Answered(c);
                break;
            case MqttPubCompPacket comp:
                Answered(c);
                if (c.IsV5)
                    lock (c.UnknownReleases)
                        if (c.UnknownReleases.Remove(comp.PacketIdentifier)) comp.ReasonCode = MqttPubCompReasonCode.PacketIdentifierNotFound;
                break;
            case MqttPubRecPacket rec when (int)rec.ReasonCode >= 0x80:
                Answered(c);
                // The exchange ends here: the packet id is free for a new message [MQTT 5 §4.3.3], not a resend to skip.
                lock (session.AwaitingRelease) session.AwaitingRelease.Remove(rec.PacketIdentifier);
                break;
        }
        ProblemInformation(e.Packet, c);
        return Task.CompletedTask;
    }

    private async Task ConnAckAsync(InterceptingPacketEventArgs e, MqttConnAckPacket ack)
    {
        var o = options.Value;
        // MQTTnet's CONNACK leaves Maximum Packet Size unset; a 5.0 client told the limit does not send past it (the
        // connection guard closes any connection that does). 3.1.1 has no such field and ignores it.
        ack.MaximumPacketSize = (uint)o.MaxPacketBytes;
        ack.ReceiveMaximum = (ushort)o.ReceiveMaximum;
        ack.TopicAliasMaximum = (ushort)o.TopicAliasMaximum;
        ack.SharedSubscriptionAvailable = true;
        if (ack.ReasonCode != MqttConnectReasonCode.Success)
        {
            ack.AssignedClientIdentifier = null; // a refused client was assigned nothing
            return;
        }
        if (SessionInfo.From(e.SessionItems) is not { } session) return;
        if (connecting.Take(e.ClientId) is not { } c) return;
        if (session.Principal != c.Principal)
        {
            // Cannot happen (SessionOwnership refused it at CONNECT); if it ever did, no right of the session's owner is lent.
            log.LogError("Refused client {ClientId}: its session belongs to {Owner}, not {Principal}", MqttText.Printable(e.ClientId), session.Principal, c.Principal);
            e.ProcessPacket = false;
            ServerDisconnect.Close(_server, session.Connection, MqttDisconnectReasonCode.NotAuthorized, "client id owned by another principal", log);
            return;
        }
        session.Connection = c;
        owners.Attach(c.ClientId, session);
        if (c.ResumesStoredSession && !c.CleanStart) ack.IsSessionPresent = true;
        c.SessionPresent = ack.IsSessionPresent;
        // A CONNACK that says Session Present promises the session's subscriptions: a session restored from the
        // database gets them back before it leaves, or a message published the moment the client reads it is lost.
        await lifecycle.TakeStoredAsync(c);
        if (!ack.IsSessionPresent)
        {
            // A new session: whatever an earlier session of this client id was subscribed to is gone with it.
            subscriptions.Forget(c.ClientId);
            shared.Forget(c.ClientId);
        }
        if (c.ServerKeepAlive > 0) ack.ServerKeepAlive = c.ServerKeepAlive;
        if (c.AnnouncedSessionExpiry is { } expiry) ack.SessionExpiryInterval = expiry;
    }

    /// <summary>Holds a telemetry PUBACK in the connection's send loop until its message is committed, then sets its
    /// reason code from the outcome. PUBACKs leave in the order their messages arrived, and batches commit in that order
    /// too, so waiting here delays no ack behind a later one.</summary>
    private async Task ReleaseTelemetryAckAsync(InterceptingPacketEventArgs e, MqttPubAckPacket ack, MqttConnection c, IngestTicket ticket)
    {
        var (code, reason, close) = TelemetryIngest.AckFor(await ticket.Task.WaitAsync(e.CancellationToken), c.IsV5);
        if (!close)
        {
            ack.ReasonCode = code;
            if (reason is not null) ack.ReasonString = reason;
            Answered(c);
            ProblemInformation(ack, c);
            return;
        }
        e.ProcessPacket = false;
        ServerDisconnect.Close(_server, c, MqttDisconnectReasonCode.UnspecifiedError, "the hub could not take the message", log);
    }

    /// <summary>A Reason String and User Properties are left out of an acknowledgement when the client asked for no problem
    /// information [MQTT-3.1.2-29], or when they would make it larger than the client's Maximum Packet Size [MQTT-3.1.2-25].</summary>
    private static void ProblemInformation(MqttPacket packet, MqttConnection c)
    {
        if (!c.IsV5) return;
        var (reason, properties) = packet switch
        {
            MqttPubAckPacket p => (p.ReasonString, p.UserProperties),
            MqttPubRecPacket p => (p.ReasonString, p.UserProperties),
            MqttPubCompPacket p => (p.ReasonString, p.UserProperties),
            MqttSubAckPacket p => (p.ReasonString, p.UserProperties),
            MqttUnsubAckPacket p => (p.ReasonString, p.UserProperties),
            _ => (null, null),
        };
        if (reason is null && properties is not { Count: > 0 }) return;
        var size = 16 + System.Text.Encoding.UTF8.GetByteCount(reason ?? "") + (properties?.Sum(u => 5 + System.Text.Encoding.UTF8.GetByteCount(u.Name) + u.ValueBuffer.Length) ?? 0)
            + (packet is MqttSubAckPacket s ? s.ReasonCodes?.Count ?? 0 : packet is MqttUnsubAckPacket u2 ? u2.ReasonCodes?.Count ?? 0 : 0);
        if (c.RequestProblemInformation && (c.ClientMaximumPacketSize == 0 || size <= c.ClientMaximumPacketSize)) return;
        switch (packet)
        {
            case MqttPubAckPacket p: p.ReasonString = null; p.UserProperties = null; break;
            case MqttPubRecPacket p: p.ReasonString = null; p.UserProperties = null; break;
            case MqttPubCompPacket p: p.ReasonString = null; p.UserProperties = null; break;
            case MqttSubAckPacket p: p.ReasonString = null; p.UserProperties = null; break;
            case MqttUnsubAckPacket p: p.ReasonString = null; p.UserProperties = null; break;
        }
    }

    private static void Answered(MqttConnection c)
    {
        if (!c.IsV5) return;
        if (Interlocked.Decrement(ref c.InboundInFlight) < 0) Interlocked.Exchange(ref c.InboundInFlight, 0);
    }

    private async Task PublishAsync(InterceptingPacketEventArgs e, MqttPublishPacket publish)
    {
        if (SessionInfo.From(e.SessionItems) is not { } session) return;
        var c = session.Connection;
        if (MessageExpiry.DeadlineOf(publish) is { } deadline)
        {
            var left = deadline - time.NowMs();
            if (left <= 0)
            {
                await DiscardAsync(e, c, publish, "expired");
                return;
            }
            publish.MessageExpiryInterval = (uint)((left + 999) / 1000);
        }
        if (c.ClientMaximumPacketSize > 0 && PacketSize.Of(publish) > c.ClientMaximumPacketSize)
        {
            await DiscardAsync(e, c, publish, "larger than the client's maximum packet size");
            return;
        }
        if (publish.QualityOfServiceLevel == MqttQualityOfServiceLevel.AtMostOnce) return;
        if (!SendQuota.TryTake(c, publish))
        {
            e.ProcessPacket = false; // held back until the client acknowledges one (SendQuota)
            return;
        }
        if (session.Sent.TryGetValue(publish, out var first))
        {
            publish.Dup = true;
            publish.PacketIdentifier = first.Value;
        }
        else
        {
            session.Sent.AddOrUpdate(publish, new System.Runtime.CompilerServices.StrongBox<ushort>(publish.PacketIdentifier));
        }
        if (c.SendQuota >= 0) c.OutboundInFlight.TryAdd(publish.PacketIdentifier, 0);
    }

    /// <summary>Does not send <paramref name="publish"/>, and takes it out of MQTTnet's unacknowledged messages (which
    /// would resend it on every reconnect) [MQTT-3.3.2-5], [MQTT-3.1.2-25].</summary>
    private async Task DiscardAsync(InterceptingPacketEventArgs e, MqttConnection c, MqttPublishPacket publish, string why)
    {
        e.ProcessPacket = false;
        SendQuota.Discarded(c, publish);
        MqttMetrics.Discarded.Add(1);
        log.LogDebug("Discarded a message on {Topic} for client {ClientId}: {Why}", publish.Topic, e.ClientId, why);
        if (publish.QualityOfServiceLevel == MqttQualityOfServiceLevel.AtMostOnce || _server is null) return;
        try
        {
            MqttInternals.Session(await _server.GetSessionAsync(e.ClientId)).AcknowledgePublishPacket(publish.PacketIdentifier);
        }
        catch (InvalidOperationException)
        {
            // the session is gone, and the message with it
        }
    }
}
