// What happens to a PUBLISH once MQTTnet has decoded it: the permission check (on the principal of this connection,
// never on state carried in a session), the device's rate limit, and the route: telemetry into the hot path, reported
// state and command responses to their modules. Every message MQTTnet goes on to dispatch is stamped with its expiry
// deadline and handed to the shared subscriptions first. Wills are published here too, as their principal.
using System.Buffers;
using IoTHub.Connectivity.Mqtt.Flow;
using IoTHub.Connectivity.Mqtt.Sessions;
using IoTHub.Connectivity.Mqtt.Subscriptions;
using IoTHub.Contracts;
using Microsoft.Extensions.Options;
using MQTTnet;
using MQTTnet.Protocol;
using MQTTnet.Server;

namespace IoTHub.Connectivity.Mqtt.Publish;

internal sealed class PublishHandling(
    TelemetryIngest telemetry,
    DeviceRateLimiter rate,
    ModuleBridge modules,
    SharedSubscriptions shared,
    IOptions<MqttOptions> options,
    TimeProvider time,
    LogThrottle lines,
    ILogger<PublishHandling> log)
{
    /// <summary>PUBACK reason 0x96 "message rate too high", which the contract names (MQTTnet's enum has no member for it).</summary>
    private const MqttPubAckReasonCode MessageRateTooHigh = (MqttPubAckReasonCode)0x96;

    private MqttServer? _server;

    public void Attach(MqttServer server) => _server = server;

    public async Task InterceptAsync(InterceptingPublishEventArgs e)
    {
        var message = e.ApplicationMessage;
        if (SessionInfo.From(e.SessionItems) is not { } session)
        {
            await DispatchingAsync(message); // the hub's own messages (desired state, commands, app Wills)
            return;
        }
        if (session.Connection.InboundIsResend)
        {
            e.ProcessPublish = false; // a QoS 2 resend before PUBREL: PUBREC again, nothing processed twice
            return;
        }
        if (PublishRules.WhyRefused(session.Principal, message.Topic, options.Value) is { } why)
        {
            Deny(e, session, why);
            return;
        }
        if (session.IsDevice) await FromDeviceAsync(e, session);
        else await DispatchingAsync(message);
    }

    private async Task FromDeviceAsync(InterceptingPublishEventArgs e, SessionInfo session)
    {
        var message = e.ApplicationMessage;
        if (!rate.TryAcquire(session.DeviceId!))
        {
            if (session.IsV5)
            {
                e.ProcessPublish = false;
                e.Response.ReasonCode = MessageRateTooHigh;
                e.Response.ReasonString = $"message rate too high: at most {rate.Limit} messages a second";
                return;
            }
            await Task.Delay(rate.UntilNextWindow, e.CancellationToken); // 3.1.1 cannot be told: it is slowed down instead
        }
        var topic = DeviceTopic.Parse(message.Topic);
        switch (topic.Kind)
        {
            case TopicKind.Telemetry:
                if (await telemetry.IngestAsync(e, session)) await DispatchingAsync(message);
                return;
            case TopicKind.StateReported:
                var report = await modules.TrySendAsync(new ReportDeviceState(session.DeviceId!, message.Payload.ToArray()));
                if (Answer(e, session, report.Handled && report.Value is not null, report.Value?.Error)) await DispatchingAsync(message);
                return;
            case TopicKind.CommandResponse:
                var response = await modules.TrySendAsync(new RecordCommandResponse(session.DeviceId!, DeviceTopic.CommandIdOf(message.Topic), message.Payload.ToArray()));
                if (Answer(e, session, response.Handled, response.Value)) await DispatchingAsync(message);
                return;
            case TopicKind.FirmwareProgress:
                var progress = await modules.TrySendAsync(new RecordFirmwareProgress(session.DeviceId!, message.Payload.ToArray()));
                if (Answer(e, session, progress.Handled, progress.Value)) await DispatchingAsync(message);
                return;
            default:
                await DispatchingAsync(message);
                return;
        }
    }

    /// <summary>A message MQTTnet is about to dispatch: its expiry deadline starts now, and each shared group gets it once.</summary>
    private async Task DispatchingAsync(MqttApplicationMessage message)
    {
        MessageExpiry.Stamp(message, time.NowMs());
        if (shared.Any) await shared.DeliverAsync(message);
    }

    /// <summary>Publishes a connection's Will as its principal: a device's through the same route as its messages.</summary>
    public async Task PublishWillAsync(MqttConnection c)
    {
        if (c.Will is not { } will || _server is null) return;
        var message = will.Message;
        try
        {
            if (c.Principal.DeviceId is { } device)
            {
                switch (DeviceTopic.Parse(message.Topic).Kind)
                {
                    case TopicKind.Telemetry:
                        await telemetry.IngestWillAsync(device, message);
                        break;
                    case TopicKind.StateReported:
                        await modules.SendAsync(new ReportDeviceState(device, message.Payload.ToArray()));
                        break;
                    case TopicKind.CommandResponse:
                        await modules.SendAsync(new RecordCommandResponse(device, DeviceTopic.CommandIdOf(message.Topic), message.Payload.ToArray()));
                        break;
                    case TopicKind.FirmwareProgress:
                        await modules.SendAsync(new RecordFirmwareProgress(device, message.Payload.ToArray()));
                        break;
                }
            }
            await _server.InjectApplicationMessage(new InjectedMqttApplicationMessage(message) { SenderClientId = c.ClientId });
            lines.Write(log, RefusalLines.WillPublished, c.ClientId, MqttText.Printable(c.ClientId), MqttText.Printable(message.Topic));
        }
        catch (Exception ex)
        {
            log.LogWarning(ex, "Could not publish the Will of client {ClientId}", MqttText.Printable(c.ClientId));
        }
    }

    /// <summary>Acks a device's state report, command response or progress report. Refused (<paramref name="error"/>):
    /// PUBACK 0x99 with the reason on 5.0; 3.1.1 is acked (resending would be refused again). Not handled (the hub failed,
    /// e.g. its database; logged): 0x80 on 5.0, and a 3.1.1 connection is closed without the PUBACK, so that the device
    /// sends it again (MQTT 3.1.1 §4.4) rather than believe it taken. True when it was taken.</summary>
    private bool Answer(InterceptingPublishEventArgs e, SessionInfo session, bool handled, string? error)
    {
        if (!handled)
        {
            e.ProcessPublish = false;
            lines.Write(log, RefusalLines.DeviceMessage, session.DeviceId, MqttText.Printable(e.ApplicationMessage.Topic), session.DeviceId,
                "the hub could not handle it (see the error above); the device is asked to send it again");
            if (session.IsV5)
            {
                e.Response.ReasonCode = MqttPubAckReasonCode.UnspecifiedError;
                e.Response.ReasonString = "the hub could not handle it; send it again";
            }
            else
            {
                e.CloseConnection = true;
            }
            return false;
        }
        if (error is null) return true;
        e.ProcessPublish = false;
        lines.Write(log, RefusalLines.DeviceMessage, session.DeviceId, MqttText.Printable(e.ApplicationMessage.Topic), session.DeviceId, MqttText.Printable(error));
        if (!session.IsV5) return false;
        e.Response.ReasonCode = MqttPubAckReasonCode.PayloadFormatInvalid;
        e.Response.ReasonString = MqttText.Truncate(error, 500);
        return false;
    }

    private void Deny(InterceptingPublishEventArgs e, SessionInfo session, string why)
    {
        e.ProcessPublish = false;
        lines.Write(log, RefusalLines.Publish, e.ClientId, MqttText.Printable(e.ClientId), MqttText.Printable(why));
        if (session.IsV5)
        {
            e.Response.ReasonCode = MqttPubAckReasonCode.NotAuthorized;
            e.Response.ReasonString = MqttText.Truncate(why, 500);
        }
        else
        {
            e.CloseConnection = true; // 3.1.1 PUBACK carries no reason code; the spec allows closing instead
        }
    }
}
