// The embedded broker: MQTTnet's server with the hub's jobs wired to its events, one class per job:
//   Connect/ConnectAuthentication   CONNECT: credentials, client id rules, session ownership, Will, terms
//   Flow/MqttConnectionGuard        the wire: packet size and timeout, first packet, connections per address
//   Flow/InboundPackets             flow control, topic aliases, QoS 2 exactly once, protocol errors
//   Flow/OutboundPackets            CONNACK terms, held telemetry PUBACKs, message expiry, redelivery, send quota
//   Publish/PublishHandling         who may publish where, rate limits, routes, Wills
//   Publish/TelemetryIngest         telemetry into the hot path, ack after commit
//   Subscriptions/*                 who may subscribe to what, shared subscriptions, the hub's record of them
//   Sessions/*                      session ownership, lifecycle, expiry, Wills, presence, persistence across restarts
// and the other modules' way to devices (DeliverAsync, CanReceiveCommands, revocation).
using IoTHub.Connectivity.Mqtt.Connect;
using IoTHub.Connectivity.Mqtt.Flow;
using IoTHub.Connectivity.Mqtt.Publish;
using IoTHub.Connectivity.Mqtt.Sessions;
using IoTHub.Connectivity.Mqtt.Subscriptions;
using IoTHub.Contracts;
using Mediator;
using MQTTnet;
using MQTTnet.Protocol;
using MQTTnet.Server;

namespace IoTHub.Connectivity.Mqtt;

internal sealed class MqttBroker(
    ConnectAuthentication connect,
    InboundPackets inbound,
    OutboundPackets outbound,
    PublishHandling publishes,
    SubscriptionHandling subscriptionHandling,
    SharedSubscriptions shared,
    SessionLifecycle sessions,
    ConnectionTracker tracker,
    WillMessages wills,
    ModuleBridge modules,
    ILogger<MqttBroker> log) : IBrokerLink
{
    public const string AppUserName = ConnectAuthentication.AppUserName;

    private MqttServer? _server;

    public MqttServer? Server => _server;

    // MQTTnet's hosted server starts on ApplicationStarted, after Kestrel already accepts connections, and its
    // IsStarted is true before its listeners are wired (retained messages load first). This completes only once they are.
    private readonly TaskCompletionSource _started = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Completes when the broker takes connections.</summary>
    public Task Started => _started.Task;

    public void Attach(MqttServer server)
    {
        _server = server;
        inbound.Attach(server);
        outbound.Attach(server);
        publishes.Attach(server);
        shared.Attach(server);
        tracker.Attach(server);
        sessions.Attach(server);
        wills.Attach(publishes.PublishWillAsync);
        server.StartedAsync += _ =>
        {
            sessions.BrokerStarted();
            _started.TrySetResult();
            return Task.CompletedTask;
        };
        server.ValidatingConnectionAsync += connect.ValidateAsync;
        server.ClientConnectedAsync += sessions.ConnectedAsync;
        server.ClientDisconnectedAsync += sessions.DisconnectedAsync;
        server.SessionDeletedAsync += sessions.SessionDeletedAsync;
        server.InterceptingPublishAsync += publishes.InterceptAsync;
        server.InterceptingInboundPacketAsync += inbound.InterceptAsync;
        server.InterceptingOutboundPacketAsync += outbound.InterceptAsync;
        server.InterceptingSubscriptionAsync += subscriptionHandling.InterceptAsync;
        server.ClientSubscribedTopicAsync += subscriptionHandling.SubscribedAsync;
        server.ClientUnsubscribedTopicAsync += subscriptionHandling.UnsubscribedAsync;
        server.ClientAcknowledgedPublishPacketAsync += AcknowledgedAsync;
        server.LoadingRetainedMessageAsync += LoadRetainedAsync;
        server.InterceptingClientEnqueueAsync += e =>
        {
            // Restored subscriptions are not new: the retained messages MQTTnet queues for them are not sent.
            if (e.SenderClientId.Length == 0 && sessions.IsRestoring(e.ReceiverClientId)) e.AcceptEnqueue = false;
            return Task.CompletedTask;
        };
        server.ApplicationMessageEnqueuedOrDroppedAsync += e =>
        {
            if (e.IsDropped) MqttMetrics.QueueRefused.Add(1);
            return Task.CompletedTask;
        };
    }

    private async Task AcknowledgedAsync(ClientAcknowledgedPublishPacketEventArgs e)
    {
        if (SessionInfo.From(e.SessionItems) is not { DeviceId: { } deviceId } || !e.IsCompleted) return;
        var topic = e.PublishPacket.Topic;
        if (!topic.Contains("/commands/", StringComparison.Ordinal) || DeviceTopic.Parse(topic) is not { Kind: TopicKind.Command } t || t.DeviceId != deviceId) return;
        await modules.PublishAsync(new CommandDelivered(deviceId, DeviceTopic.CommandIdOf(topic)));
    }

    /// <summary>Retained messages live in memory in MQTTnet: at start the desired states and the pending firmware
    /// notifications are loaded back from the database.</summary>
    private async Task LoadRetainedAsync(LoadingRetainedMessagesEventArgs e)
    {
        var states = await modules.SendAsync(new ListDesiredStateMessages()) ?? [];
        var firmware = await modules.SendAsync(new ListPendingFirmware()) ?? [];
        e.LoadedRetainedMessages = states.Select(s => Retained($"devices/{s.DeviceId}/state/desired", s.Payload))
            .Concat(firmware.Select(f => Retained($"devices/{f.DeviceId}/firmware", f.Payload))).ToList();
        log.LogInformation("Loaded {States} desired states and {Firmware} firmware notifications as retained messages", states.Count, firmware.Count);
    }

    private static MqttApplicationMessage Retained(string topic, byte[] payload) => new MqttApplicationMessageBuilder().WithTopic(topic)
        .WithPayload(payload).WithRetainFlag().WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).WithContentType("application/json").Build();

    /// <summary>Can the device receive a command now: connected, and subscribed to its command topics?</summary>
    public ValueTask<bool> CanReceiveCommandsAsync(string deviceId) => ValueTask.FromResult(CanReceiveCommands(deviceId));

    public bool CanReceiveCommands(string deviceId)
    {
        foreach (var c in tracker.Of(deviceId))
            if (subscriptionHandling.HasCommandSubscription(c.ClientId, deviceId)) return true;
        return false;
    }

    /// <summary>Publishes a hub message to a device's downstream topic (QoS 1).</summary>
    public async Task<bool> DeliverAsync(DeliverToDevice d, CancellationToken ct)
    {
        if (_server is null) return false;
        var isCommand = d.Subtopic.StartsWith("commands/", StringComparison.Ordinal);
        if (isCommand && !CanReceiveCommands(d.DeviceId)) return false;
        var builder = new MqttApplicationMessageBuilder().WithTopic($"devices/{d.DeviceId}/{d.Subtopic}").WithPayload(d.Payload.ToArray())
            .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).WithRetainFlag(d.Retain).WithContentType("application/json");
        if (d.ExpiresIn is { } expiry) builder = builder.WithMessageExpiryInterval((uint)Math.Clamp(expiry.TotalSeconds, 1, uint.MaxValue));
        await _server.InjectApplicationMessage(new InjectedMqttApplicationMessage(builder.Build()) { SenderClientId = "iothub" }, ct);
        return isCommand || tracker.Of(d.DeviceId).Count > 0;
    }

    /// <summary>Publishes a hub message for app clients (alarm transitions) at QoS 1.</summary>
    public async Task PublishToAppsAsync(PublishToApps p, CancellationToken ct)
    {
        if (_server is null) return;
        var message = new MqttApplicationMessageBuilder().WithTopic(p.Topic).WithPayload(p.Payload.ToArray())
            .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).WithRetainFlag(p.Retain).WithContentType("application/json").Build();
        await _server.InjectApplicationMessage(new InjectedMqttApplicationMessage(message) { SenderClientId = "iothub" }, ct);
    }

    /// <summary>Drops every live connection of a device (token rotated, disabled); its sessions stay for when it is back.</summary>
    public Task DisconnectDeviceAsync(string deviceId) =>
        sessions.EndSessionsOfAsync(MqttPrincipal.Device(deviceId), deleteSessions: false, "credentials revoked");

    /// <summary>A new device takes back the client ids of its namespace from whoever held them.</summary>
    public Task DeviceCreatedAsync(string deviceId) => sessions.DeviceCreatedAsync(deviceId);

    /// <summary>Ends every session of a principal that no longer exists (device deleted, API key revoked).</summary>
    public Task EndSessionsAsync(MqttPrincipal principal) => sessions.EndSessionsOfAsync(principal, deleteSessions: true, "credentials revoked");
}

internal sealed class DisconnectOnRevoke(IBrokerLink broker)
    : INotificationHandler<DeviceCredentialsRevoked>, INotificationHandler<DeviceDeleted>, INotificationHandler<ApiKeyRevoked>, INotificationHandler<DeviceCreated>
{
    public async ValueTask Handle(DeviceCreated n, CancellationToken ct) => await broker.DeviceCreatedAsync(n.DeviceId);

    public async ValueTask Handle(DeviceCredentialsRevoked n, CancellationToken ct) => await broker.DisconnectDeviceAsync(n.DeviceId);

    public async ValueTask Handle(DeviceDeleted n, CancellationToken ct) => await broker.EndSessionsAsync(MqttPrincipal.Device(n.DeviceId));

    public async ValueTask Handle(ApiKeyRevoked n, CancellationToken ct) => await broker.EndSessionsAsync(MqttPrincipal.ApiKey(n.KeyId, ""));
}

/// <summary>Delivers to a device over whatever it is reached by: its MQTT subscriptions, its CoAP observations.</summary>
internal sealed class DeviceDelivery(IBrokerLink broker, Coap.CoapObservers coap) :
    IRequestHandler<DeliverToDevice, bool>, IRequestHandler<IsDeviceConnected, bool>, IRequestHandler<PublishToApps, Unit>,
    INotificationHandler<DeviceDeleted>, INotificationHandler<DeviceCredentialsRevoked>
{
    public ValueTask Handle(DeviceDeleted n, CancellationToken ct)
    {
        coap.Forget(n.DeviceId);
        return ValueTask.CompletedTask;
    }

    public ValueTask Handle(DeviceCredentialsRevoked n, CancellationToken ct)
    {
        coap.Forget(n.DeviceId);
        return ValueTask.CompletedTask;
    }

    public async ValueTask<Unit> Handle(PublishToApps p, CancellationToken ct)
    {
        await broker.PublishToAppsAsync(p, ct);
        return Unit.Value;
    }

    public async ValueTask<bool> Handle(DeliverToDevice d, CancellationToken ct)
    {
        var overCoap = coap.Deliver(d);
        return await broker.DeliverAsync(d, ct) || overCoap;
    }

    public async ValueTask<bool> Handle(IsDeviceConnected q, CancellationToken ct) =>
        coap.IsObserved(Coap.CoapObservers.Resource(q.DeviceId, "commands")) || await broker.CanReceiveCommandsAsync(q.DeviceId);
}
