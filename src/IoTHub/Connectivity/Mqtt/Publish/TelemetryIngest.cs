// Device telemetry into the hot path. QoS 1 telemetry goes to the ingest gate and the publish interceptor returns at
// once, so the connection's receive loop reads the device's next message while this one waits for its batch; the
// PUBACK itself is held in the send loop until the commit (OutboundPackets). A device with several messages in
// flight therefore has them all in one batch instead of one per commit. Telemetry is not dispatched through MQTTnet
// (ProcessPublish = false), which would walk every session per message, unless an app subscribed to a matching
// filter; then, and for QoS 2, the interceptor itself waits for the commit, and forwards only what was stored.
using System.Buffers;
using IoTHub.Connectivity.Mqtt.Sessions;
using IoTHub.Connectivity.Mqtt.Subscriptions;
using IoTHub.Contracts;
using MQTTnet.Protocol;
using MQTTnet.Server;

namespace IoTHub.Connectivity.Mqtt.Publish;

internal sealed class TelemetryIngest(IngestGate gate, SessionSubscriptions subscriptions, SharedSubscriptions shared)
{
    /// <summary>Takes a device's telemetry PUBLISH; the PUBACK (QoS 1) or PUBREC (QoS 2) says what became of it.</summary>
    /// <returns>True when the message was stored and must also reach app subscribers.</returns>
    public async Task<bool> IngestAsync(InterceptingPublishEventArgs e, SessionInfo session)
    {
        var message = e.ApplicationMessage;
        var c = session.Connection;
        var payload = message.Payload.IsSingleSegment ? message.Payload.First : message.Payload.ToArray();
        var format = string.Equals(message.ContentType, "application/cbor", StringComparison.OrdinalIgnoreCase) ? PayloadFormat.Cbor : PayloadFormat.Json;
        var qos = message.QualityOfServiceLevel;
        var plain = subscriptions.HasAppSubscriber(message.Topic);
        var forward = plain || shared.Matches(message.Topic);
        if (qos == MqttQualityOfServiceLevel.AtLeastOnce && !forward)
        {
            // MQTTnet copies each payload out of the receive buffer, so it stays valid after this returns.
            var ticket = new IngestTicket();
            if (await gate.EnqueueAsync(session.DeviceId!, TelemetryProtocol.Mqtt, format, payload, ticket, e.CancellationToken))
            {
                c.PendingAcks.Enqueue(new PendingAck(c.InboundPacketId, ticket));
                e.ProcessPublish = false;
                return false;
            }
            Apply(e, c, IngestOutcome.Unavailable);
            return false;
        }
        var outcome = await gate.SubmitAsync(session.DeviceId!, TelemetryProtocol.Mqtt, format, payload, qos != MqttQualityOfServiceLevel.AtMostOnce, e.CancellationToken);
        Apply(e, c, outcome);
        e.ProcessPublish = plain && outcome.Status == IngestStatus.Stored;
        return forward && outcome.Status == IngestStatus.Stored;
    }

    /// <summary>Telemetry a device left as its Will: stored like any other, no one to acknowledge.</summary>
    public async Task IngestWillAsync(string deviceId, MQTTnet.MqttApplicationMessage will)
    {
        var format = string.Equals(will.ContentType, "application/cbor", StringComparison.OrdinalIgnoreCase) ? PayloadFormat.Cbor : PayloadFormat.Json;
        await gate.SubmitAsync(deviceId, TelemetryProtocol.Mqtt, format, will.Payload.ToArray(), awaitCommit: false, CancellationToken.None);
    }

    /// <summary>What a telemetry PUBACK says for an outcome. 3.1.1 has no reason codes: a rejected message is
    /// dead-lettered and acked (so the device does not resend it forever); when the hub cannot take it there is no
    /// ack and the connection closes, so the device resends after reconnecting.</summary>
    public static (MqttPubAckReasonCode Code, string? Reason, bool Close) AckFor(IngestOutcome outcome, bool isV5) => outcome.Status switch
    {
        IngestStatus.Stored => (MqttPubAckReasonCode.Success, null, false),
        IngestStatus.Rejected => (isV5 ? MqttPubAckReasonCode.PayloadFormatInvalid : MqttPubAckReasonCode.Success,
            isV5 ? MqttText.Truncate(outcome.Reason ?? "invalid payload", 500) : null, false),
        _ => (MqttPubAckReasonCode.UnspecifiedError, null, !isV5),
    };

    private static void Apply(InterceptingPublishEventArgs e, MqttConnection c, IngestOutcome outcome)
    {
        var (code, reason, close) = AckFor(outcome, c.IsV5);
        if (outcome.Status != IngestStatus.Stored) e.ProcessPublish = false;
        e.Response.ReasonCode = code;
        if (reason is not null) e.Response.ReasonString = reason;
        e.CloseConnection = close;
    }
}
