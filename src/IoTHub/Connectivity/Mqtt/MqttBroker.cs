// The embedded broker's behaviour: who may connect, publish and subscribe, and what happens to telemetry.
// QoS 1 telemetry goes to the ingest gate and the publish interceptor returns at once, so the connection's
// receive loop reads the device's next message while this one waits for its batch; the PUBACK itself is held in
// the outbound packet interceptor (the connection's send loop) until the commit (see InterceptOutboundAsync). A device
// with several messages in flight therefore has them all in one batch instead of one per commit. Telemetry is not
// dispatched through MQTTnet (ProcessPublish = false), which would walk every session per message, unless an app
// has subscribed to a filter matching it; then, and for QoS 2, the interceptor itself waits for the commit.
using System.Buffers;
using System.Collections.Concurrent;
using IoTHub.Contracts;
using Mediator;
using Microsoft.Extensions.Options;
using MQTTnet;
using MQTTnet.Formatter;
using MQTTnet.Protocol;
using MQTTnet.Server;

namespace IoTHub.Connectivity.Mqtt;

internal sealed class MqttBroker(
    IDeviceAuthenticator devices,
    IAppKeyVerifier appKeys,
    IngestGate gate,
    AuthThrottle throttle,
    DeviceRateLimiter rate,
    IServiceScopeFactory scopes,
    IOptions<MqttOptions> options,
    TimeProvider time,
    ILogger<MqttBroker> log)
{
    public const string AppUserName = "apikey";
    private MqttServer? _server;
    private readonly ConcurrentDictionary<string, ConcurrentDictionary<string, byte>> _clientsByDevice = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<(string ClientId, string Filter), byte> _appDeviceSubscriptions = new();
    // Copy-on-write snapshot of the filters above, read per telemetry message without a lock or an allocation
    // (ConcurrentDictionary.IsEmpty and .Keys both take every bucket lock).
    private volatile string[] _appFilters = [];
    // Device clients subscribed to their command topics (devices/{id}/commands/+ or /#), kept as long as MQTTnet keeps the session.
    private readonly ConcurrentDictionary<(string ClientId, string Filter), byte> _commandSubscriptions = new();

    // Connection events and device state reports are handled by modules that use the database. Thousands of devices
    // (re)connecting at once must not become thousands of concurrent database connections (PostgreSQL refuses past
    // max_connections): at most this many run at a time, the rest wait their turn.
    private readonly SemaphoreSlim _handlers = new(16);

    public MqttServer? Server => _server;

    // MQTTnet's hosted server starts on ApplicationStarted, after Kestrel already accepts connections, and its
    // IsStarted is true before its listeners are wired (retained messages load first). This completes only once they are.
    private readonly TaskCompletionSource _started = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Completes when the broker takes connections.</summary>
    public Task Started => _started.Task;

    public void Attach(MqttServer server)
    {
        _server = server;
        server.StartedAsync += _ =>
        {
            _started.TrySetResult();
            return Task.CompletedTask;
        };
        server.ValidatingConnectionAsync += ValidateConnectionAsync;
        server.ClientConnectedAsync += ClientConnectedAsync;
        server.ClientDisconnectedAsync += ClientDisconnectedAsync;
        server.InterceptingPublishAsync += InterceptPublishAsync;
        server.InterceptingInboundPacketAsync += e =>
        {
            // The publish interceptor does not see packet identifiers; remember the one being handled.
            if (e.Packet is MQTTnet.Packets.MqttPublishPacket publish && SessionInfo.From(e.SessionItems) is { IsDevice: true } s)
                s.InboundPacketId = publish.PacketIdentifier;
            return Task.CompletedTask;
        };
        server.InterceptingOutboundPacketAsync += InterceptOutboundAsync;
        server.InterceptingSubscriptionAsync += InterceptSubscriptionAsync;
        server.ClientAcknowledgedPublishPacketAsync += AcknowledgedAsync;
        server.LoadingRetainedMessageAsync += LoadRetainedAsync;
        server.ClientSubscribedTopicAsync += e =>
        {
            var filter = e.TopicFilter.Topic;
            if (SessionInfo.From(e.SessionItems) is { DeviceId: { } device } && IsCommandFilter(device, filter))
            {
                _commandSubscriptions[(e.ClientId, filter)] = 0;
                Background(new DeviceReadyForCommands(device));
            }
            var mayMatchDevices = filter.StartsWith("devices/", StringComparison.Ordinal) || filter.StartsWith('+') || filter.StartsWith('#')
                || filter.StartsWith("$share/", StringComparison.Ordinal);
            if (SessionInfo.From(e.SessionItems) is { IsDevice: false } && mayMatchDevices)
            {
                _appDeviceSubscriptions[(e.ClientId, filter)] = 0;
                RefreshAppFilters();
            }
            return Task.CompletedTask;
        };
        server.ClientUnsubscribedTopicAsync += e =>
        {
            _commandSubscriptions.TryRemove((e.ClientId, e.TopicFilter), out _);
            if (_appDeviceSubscriptions.TryRemove((e.ClientId, e.TopicFilter), out _)) RefreshAppFilters();
            return Task.CompletedTask;
        };
    }

    private async Task ValidateConnectionAsync(ValidatingConnectionEventArgs e)
    {
        var isV5 = e.ProtocolVersion == MqttProtocolVersion.V500;
        var clientId = e.ClientId;
        if (string.IsNullOrEmpty(clientId))
        {
            // MQTT 5 lets the server assign an id. MQTTnet 5.2 refuses an empty id on 3.1.1 whatever this handler
            // says (it has no way to assign one there), so 3.1.1 clients must send their own (mosquitto_pub -i ...).
            if (!isV5)
            {
                e.ReasonCode = MqttConnectReasonCode.ClientIdentifierNotValid;
                return;
            }
            clientId = e.AssignedClientIdentifier = (e.UserName ?? "anon") + "-" + Secret.New()[..12];
        }
        if (e.UserName == AppUserName)
        {
            var role = await appKeys.RoleOfAsync(e.Password ?? "", e.CancellationToken);
            if (role is null)
            {
                await RefuseAsync(e, "invalid API key");
                return;
            }
            new SessionInfo(null, role, isV5, clientId).Store(e.SessionItems);
            return;
        }
        if (string.IsNullOrEmpty(e.UserName))
        {
            if (options.Value.AllowAnonymous && string.IsNullOrEmpty(e.Password))
            {
                new SessionInfo(null, Roles.Viewer, isV5, clientId).Store(e.SessionItems);
                return;
            }
            await RefuseAsync(e, "no credentials");
            return;
        }
        // A registered client certificate (MQTT over TLS) identifies the device without its token; otherwise the token does.
        var identity = e.ClientCertificate is { } certificate
            ? await devices.AuthenticateCertificateAsync(e.UserName, certificate.GetCertHashString(System.Security.Cryptography.HashAlgorithmName.SHA256), e.CancellationToken)
            : null;
        identity ??= await devices.AuthenticateAsync(e.UserName, e.Password ?? "", e.CancellationToken);
        if (identity is null)
        {
            await RefuseAsync(e, "wrong device id or token");
            return;
        }
        if (!identity.Enabled)
        {
            e.ReasonCode = MqttConnectReasonCode.NotAuthorized;
            e.ReasonString = "device is disabled";
            log.LogWarning("Refused MQTT connection of disabled device {DeviceId} from {Remote}", identity.DeviceId, e.RemoteEndPoint);
            return;
        }
        var cleanStart = e.CleanSession ?? true;
        var kept = isV5 ? e.SessionExpiryInterval > 0 : !cleanStart;
        new SessionInfo(identity.DeviceId, null, isV5, clientId, kept, cleanStart).Store(e.SessionItems);
    }

    private async Task RefuseAsync(ValidatingConnectionEventArgs e, string why)
    {
        var delay = throttle.Failed(e.RemoteEndPoint);
        log.LogWarning("Refused MQTT connection of {UserName} from {Remote}: {Why}", Printable(e.UserName), e.RemoteEndPoint, why);
        await Task.Delay(delay, e.CancellationToken);
        e.ReasonCode = MqttConnectReasonCode.BadUserNameOrPassword;
    }

    private async Task ClientConnectedAsync(ClientConnectedEventArgs e)
    {
        if (SessionInfo.From(e.SessionItems) is not { DeviceId: { } deviceId } session) return;
        _clientsByDevice.GetOrAdd(deviceId, _ => new(StringComparer.Ordinal))[e.ClientId] = 0;
        await PublishAsync(new DeviceConnected(deviceId, e.ClientId, e.ProtocolVersion == MqttProtocolVersion.V500 ? "mqtt5" : "mqtt3",
            e.RemoteEndPoint?.ToString(), time.GetUtcNow()));
        if (session.CleanStart) ForgetCommandSubscriptions(e.ClientId); // MQTTnet started a fresh session
        else if (HasCommandSubscription(e.ClientId, deviceId)) Background(new DeviceReadyForCommands(deviceId)); // resumed session, no resubscribe
    }

    private async Task ClientDisconnectedAsync(ClientDisconnectedEventArgs e)
    {
        if (_appFilters.Length > 0)
        {
            var removed = false;
            foreach (var key in _appDeviceSubscriptions.Keys)
                if (key.ClientId == e.ClientId) removed |= _appDeviceSubscriptions.TryRemove(key, out _);
            if (removed) RefreshAppFilters();
        }
        if (SessionInfo.From(e.SessionItems) is not { DeviceId: { } deviceId } session) return;
        if (_clientsByDevice.TryGetValue(deviceId, out var clients)) clients.TryRemove(e.ClientId, out _);
        var kept = session.SessionKept && e.DisconnectType != MqttClientDisconnectType.Takeover;
        if (!kept) ForgetCommandSubscriptions(e.ClientId);
        var reason = e.DisconnectType switch
        {
            MqttClientDisconnectType.Clean => "clean disconnect",
            MqttClientDisconnectType.Takeover => "taken over by a new connection",
            _ => e.ReasonCode is { } rc ? $"connection lost ({rc})" : "connection lost or keep-alive timeout",
        };
        await PublishAsync(new DeviceDisconnected(deviceId, e.ClientId, reason, time.GetUtcNow(), kept));
    }

    private async Task InterceptPublishAsync(InterceptingPublishEventArgs e)
    {
        var session = SessionInfo.From(e.SessionItems);
        var message = e.ApplicationMessage;
        var topic = DeviceTopic.Parse(message.Topic);
        if (session is null)
        {
            // Messages the hub injects itself have no session; let them through.
            return;
        }
        if (session.IsDevice)
        {
            if (!DeviceTopic.DeviceMayPublish(session.DeviceId!, topic))
            {
                Deny(e, session, $"device {session.DeviceId} may not publish on {message.Topic}");
                return;
            }
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
            switch (topic.Kind)
            {
                case TopicKind.Telemetry:
                    await IngestAsync(e, session);
                    break;
                case TopicKind.StateReported:
                    var report = await SendAsync(new ReportDeviceState(session.DeviceId!, message.Payload.ToArray()));
                    Answer(e, session, report?.Error ?? (report is null ? "could not record the reported state" : null));
                    break;
                case TopicKind.CommandResponse:
                    var error = await SendAsync(new RecordCommandResponse(session.DeviceId!, DeviceTopic.CommandIdOf(message.Topic), message.Payload.ToArray()));
                    Answer(e, session, error);
                    break;
            }
            return;
        }
        if (topic.IsDeviceTopic ? topic.IsUpstream || !session.MayWrite : !session.MayWrite)
        {
            Deny(e, session, $"{session.AppRole} app may not publish on {message.Topic}");
        }
        else if (TopicLimitBroken(message.Topic) is { } broken)
        {
            Deny(e, session, broken);
        }
    }

    private async Task IngestAsync(InterceptingPublishEventArgs e, SessionInfo session)
    {
        var message = e.ApplicationMessage;
        var payload = message.Payload.IsSingleSegment ? message.Payload.First : message.Payload.ToArray();
        var format = string.Equals(message.ContentType, "application/cbor", StringComparison.OrdinalIgnoreCase) ? PayloadFormat.Cbor : PayloadFormat.Json;
        var qos = message.QualityOfServiceLevel;
        var forward = HasAppSubscriber(message.Topic);
        if (qos == MqttQualityOfServiceLevel.AtLeastOnce && !forward)
        {
            // MQTTnet copies each payload out of the receive buffer, so it stays valid after this returns.
            var ticket = new IngestTicket();
            if (await gate.EnqueueAsync(session.DeviceId!, TelemetryProtocol.Mqtt, format, payload, ticket, e.CancellationToken))
            {
                session.PendingAcks.Enqueue(new PendingAck(session.InboundPacketId, ticket));
                e.ProcessPublish = false;
                return;
            }
            ApplyOutcome(e, session, IngestOutcome.Unavailable);
            return;
        }
        var outcome = await gate.SubmitAsync(session.DeviceId!, TelemetryProtocol.Mqtt, format, payload, qos != MqttQualityOfServiceLevel.AtMostOnce, e.CancellationToken);
        e.ProcessPublish = forward && outcome.Status == IngestStatus.Stored;
        ApplyOutcome(e, session, outcome);
    }

    /// <summary>What a telemetry PUBACK says for an outcome. 3.1.1 has no reason codes: a rejected message is
    /// dead-lettered and acked (so the device does not resend it forever); when the hub cannot take it there is no
    /// ack and the connection closes, so the device resends after reconnecting.</summary>
    private static (MqttPubAckReasonCode Code, string? Reason, bool Close) AckFor(IngestOutcome outcome, bool isV5) => outcome.Status switch
    {
        IngestStatus.Stored => (MqttPubAckReasonCode.Success, null, false),
        IngestStatus.Rejected => (isV5 ? MqttPubAckReasonCode.PayloadFormatInvalid : MqttPubAckReasonCode.Success,
            isV5 ? Truncate(outcome.Reason ?? "invalid payload", 500) : null, false),
        _ => (MqttPubAckReasonCode.UnspecifiedError, null, !isV5),
    };

    private static void ApplyOutcome(InterceptingPublishEventArgs e, SessionInfo session, IngestOutcome outcome)
    {
        var (code, reason, close) = AckFor(outcome, session.IsV5);
        if (outcome.Status == IngestStatus.Unavailable) e.ProcessPublish = false;
        e.Response.ReasonCode = code;
        if (reason is not null) e.Response.ReasonString = reason;
        e.CloseConnection = close;
    }

    /// <summary>Holds each telemetry PUBACK in the connection's send loop until its message is committed, then
    /// sets its reason code from the outcome. PUBACKs leave in the order their messages arrived, and batches commit
    /// in that order too, so waiting here delays no ack behind a later one.</summary>
    private Task InterceptOutboundAsync(InterceptingPacketEventArgs e)
    {
        if (e.Packet is MQTTnet.Packets.MqttConnAckPacket connAck)
        {
            // MQTTnet's CONNACK leaves Maximum Packet Size unset; a 5.0 client told the limit does not send past it
            // (the connection guard closes any connection that does). 3.1.1 has no such field and ignores it.
            connAck.MaximumPacketSize = (uint)options.Value.MaxPacketBytes;
            return Task.CompletedTask;
        }
        if (e.Packet is not MQTTnet.Packets.MqttPubAckPacket ack || SessionInfo.From(e.SessionItems) is not { IsDevice: true } session)
            return Task.CompletedTask;
        if (!session.PendingAcks.TryPeek(out var head) || head.PacketId != ack.PacketIdentifier) return Task.CompletedTask;
        session.PendingAcks.TryDequeue(out _);
        return ReleaseAsync(e, ack, session, head.Ticket);
    }

    private async Task ReleaseAsync(InterceptingPacketEventArgs e, MQTTnet.Packets.MqttPubAckPacket ack, SessionInfo session, IngestTicket ticket)
    {
        var (code, reason, close) = AckFor(await ticket.Task.WaitAsync(e.CancellationToken), session.IsV5);
        if (!close)
        {
            ack.ReasonCode = code;
            if (reason is not null) ack.ReasonString = reason;
            return;
        }
        e.ProcessPacket = false;
        var clientId = e.ClientId;
        _ = Task.Run(async () =>
        {
            try { await _server!.DisconnectClientAsync(clientId, new MqttServerClientDisconnectOptions { ReasonCode = MqttDisconnectReasonCode.UnspecifiedError }); }
            catch (Exception ex) { log.LogDebug(ex, "Client {ClientId} was already gone", clientId); }
        });
    }

    /// <summary>Acks a device's state report or command response: PUBACK 0x99 with the reason on 5.0; 3.1.1 is acked either way.</summary>
    private void Answer(InterceptingPublishEventArgs e, SessionInfo session, string? error)
    {
        if (error is null) return;
        e.ProcessPublish = false;
        log.LogWarning("Refused {Topic} from device {DeviceId}: {Why}", Printable(e.ApplicationMessage.Topic), session.DeviceId, Printable(error));
        if (!session.IsV5) return;
        e.Response.ReasonCode = MqttPubAckReasonCode.PayloadFormatInvalid;
        e.Response.ReasonString = Truncate(error, 500);
    }

    private async Task AcknowledgedAsync(ClientAcknowledgedPublishPacketEventArgs e)
    {
        if (SessionInfo.From(e.SessionItems) is not { DeviceId: { } deviceId } || !e.IsCompleted) return;
        var topic = e.PublishPacket.Topic;
        if (!topic.Contains("/commands/", StringComparison.Ordinal) || DeviceTopic.Parse(topic) is not { Kind: TopicKind.Command } t || t.DeviceId != deviceId) return;
        await PublishAsync(new CommandDelivered(deviceId, DeviceTopic.CommandIdOf(topic)));
    }

    /// <summary>Retained messages live in memory in MQTTnet: at start the desired states are loaded back from the database.</summary>
    private async Task LoadRetainedAsync(LoadingRetainedMessagesEventArgs e)
    {
        var states = await SendAsync(new ListDesiredStateMessages()) ?? [];
        e.LoadedRetainedMessages = states.Select(s => new MqttApplicationMessageBuilder().WithTopic($"devices/{s.DeviceId}/state/desired")
            .WithPayload(s.Payload).WithRetainFlag().WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build()).ToList();
        log.LogInformation("Loaded {Count} desired states as retained messages", e.LoadedRetainedMessages.Count);
    }

    private static bool IsCommandFilter(string deviceId, string filter) =>
        filter.Length == "devices/".Length + deviceId.Length + "/commands/+".Length && filter.StartsWith("devices/", StringComparison.Ordinal)
        && filter.AsSpan("devices/".Length, deviceId.Length).SequenceEqual(deviceId) && filter.AsSpan("devices/".Length + deviceId.Length) is "/commands/+" or "/commands/#";

    private bool HasCommandSubscription(string clientId, string deviceId) =>
        _commandSubscriptions.ContainsKey((clientId, $"devices/{deviceId}/commands/+")) || _commandSubscriptions.ContainsKey((clientId, $"devices/{deviceId}/commands/#"));

    private void ForgetCommandSubscriptions(string clientId)
    {
        foreach (var key in _commandSubscriptions.Keys)
            if (key.ClientId == clientId) _commandSubscriptions.TryRemove(key, out _);
    }

    /// <summary>Can the device receive a command now: connected, and subscribed to its command topics?</summary>
    public bool CanReceiveCommands(string deviceId)
    {
        if (!_clientsByDevice.TryGetValue(deviceId, out var clients)) return false;
        foreach (var clientId in clients.Keys)
            if (HasCommandSubscription(clientId, deviceId)) return true;
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
        return isCommand || _clientsByDevice.TryGetValue(d.DeviceId, out var c) && !c.IsEmpty;
    }

    private bool HasAppSubscriber(string topic)
    {
        foreach (var filter in _appFilters)
        {
            var f = filter.StartsWith("$share/", StringComparison.Ordinal) ? filter[(filter.IndexOf('/', 7) + 1)..] : filter;
            if (MqttTopicFilterComparer.Compare(topic, f) == MqttTopicFilterCompareResult.IsMatch) return true;
        }
        return false;
    }

    private void RefreshAppFilters()
    {
        lock (_appDeviceSubscriptions)
        {
            _appFilters = _appDeviceSubscriptions.Keys.Select(k => k.Filter).Distinct().ToArray();
        }
    }

    /// <summary>PUBACK reason 0x96 "message rate too high", which the contract names (MQTTnet's enum has no member for it).</summary>
    private const MqttPubAckReasonCode MessageRateTooHigh = (MqttPubAckReasonCode)0x96;

    private string? TopicLimitBroken(string topic)
    {
        var o = options.Value;
        if (topic.Length > o.MaxTopicLength) return $"topic longer than {o.MaxTopicLength} characters";
        if (topic.AsSpan().Count('/') + 1 > o.MaxTopicLevels) return $"topic deeper than {o.MaxTopicLevels} levels";
        return null;
    }

    private Task InterceptSubscriptionAsync(InterceptingSubscriptionEventArgs e)
    {
        var session = SessionInfo.From(e.SessionItems);
        if (TopicLimitBroken(e.TopicFilter.Topic) is { } broken)
        {
            e.ProcessSubscription = false;
            e.Response.ReasonCode = MqttSubscribeReasonCode.TopicFilterInvalid;
            e.Response.ReasonString = broken;
            log.LogWarning("Refused subscription of client {ClientId}: {Why}", e.ClientId, broken);
            return Task.CompletedTask;
        }
        if (session is { IsDevice: true } && !DeviceTopic.DeviceMaySubscribe(session.DeviceId!, e.TopicFilter.Topic))
        {
            e.ProcessSubscription = false;
            e.Response.ReasonCode = MqttSubscribeReasonCode.NotAuthorized;
            e.Response.ReasonString = $"device may subscribe only to its own downstream topics (devices/{session.DeviceId}/...)";
            log.LogWarning("Refused subscription of device {DeviceId} to {Filter}", session.DeviceId, Printable(e.TopicFilter.Topic));
        }
        return Task.CompletedTask;
    }

    private void Deny(InterceptingPublishEventArgs e, SessionInfo session, string why)
    {
        e.ProcessPublish = false;
        log.LogWarning("Refused publish of client {ClientId}: {Why}", e.ClientId, Printable(why));
        if (session.IsV5)
        {
            e.Response.ReasonCode = MqttPubAckReasonCode.NotAuthorized;
            e.Response.ReasonString = why;
        }
        else
        {
            e.CloseConnection = true; // 3.1.1 PUBACK carries no reason code; the spec allows closing instead
        }
    }

    /// <summary>Drops every live connection of a device (token rotated, disabled or deleted).</summary>
    public async Task DisconnectDeviceAsync(string deviceId)
    {
        if (_server is null || !_clientsByDevice.TryGetValue(deviceId, out var clients)) return;
        foreach (var clientId in clients.Keys)
        {
            try
            {
                await _server.DisconnectClientAsync(clientId, new MqttServerClientDisconnectOptions
                {
                    ReasonCode = MqttDisconnectReasonCode.NotAuthorized,
                    ReasonString = "credentials revoked",
                });
            }
            catch (Exception ex)
            {
                log.LogDebug(ex, "Client {ClientId} of device {DeviceId} was already gone", clientId, deviceId);
            }
        }
    }

    private async Task PublishAsync(INotification notification)
    {
        await _handlers.WaitAsync();
        try
        {
            await using var scope = scopes.CreateAsyncScope();
            await scope.ServiceProvider.GetRequiredService<IPublisher>().Publish(notification);
        }
        catch (Exception ex)
        {
            log.LogError(ex, "Handling {Notification} failed", notification.GetType().Name);
        }
        finally
        {
            _handlers.Release();
        }
    }

    private async Task<T?> SendAsync<T>(IRequest<T> request)
    {
        await _handlers.WaitAsync();
        try
        {
            await using var scope = scopes.CreateAsyncScope();
            return await scope.ServiceProvider.GetRequiredService<IMediator>().Send(request);
        }
        catch (Exception ex)
        {
            log.LogError(ex, "Handling {Request} failed", request.GetType().Name);
            return default;
        }
        finally
        {
            _handlers.Release();
        }
    }

    /// <summary>Runs a notification off the broker's event thread (e.g. delivering queued commands right after SUBACK).</summary>
    private void Background(INotification notification) => _ = Task.Run(() => PublishAsync(notification));

    private static string Truncate(string s, int max) => s.Length <= max ? s : s[..max];

    private static string Printable(string? s) =>
        s is null ? "" : new string(Truncate(s, 128).Select(c => char.IsControl(c) ? '?' : c).ToArray());
}

internal sealed class DisconnectOnRevoke(MqttBroker broker) : INotificationHandler<DeviceCredentialsRevoked>
{
    public async ValueTask Handle(DeviceCredentialsRevoked n, CancellationToken ct) => await broker.DisconnectDeviceAsync(n.DeviceId);
}

internal sealed class DeviceDelivery(MqttBroker broker) : IRequestHandler<DeliverToDevice, bool>, IRequestHandler<IsDeviceConnected, bool>
{
    public async ValueTask<bool> Handle(DeliverToDevice d, CancellationToken ct) => await broker.DeliverAsync(d, ct);

    public ValueTask<bool> Handle(IsDeviceConnected q, CancellationToken ct) => ValueTask.FromResult(broker.CanReceiveCommands(q.DeviceId));
}
