// The embedded broker's behaviour: who may connect, publish and subscribe, and what happens to telemetry.
// Telemetry goes to the ingest gate and its PUBACK waits for the commit (MQTTnet awaits this interceptor before
// acking). Telemetry is not dispatched through MQTTnet (ProcessPublish = false), which would walk every session
// per message, unless an app has subscribed to a filter matching it.
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

    public MqttServer? Server => _server;

    public void Attach(MqttServer server)
    {
        _server = server;
        server.ValidatingConnectionAsync += ValidateConnectionAsync;
        server.ClientConnectedAsync += ClientConnectedAsync;
        server.ClientDisconnectedAsync += ClientDisconnectedAsync;
        server.InterceptingPublishAsync += InterceptPublishAsync;
        server.InterceptingSubscriptionAsync += InterceptSubscriptionAsync;
        server.ClientSubscribedTopicAsync += e =>
        {
            var filter = e.TopicFilter.Topic;
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
        var identity = await devices.AuthenticateAsync(e.UserName, e.Password ?? "", e.CancellationToken);
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
        new SessionInfo(identity.DeviceId, null, isV5, clientId).Store(e.SessionItems);
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
        if (SessionInfo.From(e.SessionItems) is not { DeviceId: { } deviceId }) return;
        _clientsByDevice.GetOrAdd(deviceId, _ => new(StringComparer.Ordinal))[e.ClientId] = 0;
        await PublishAsync(new DeviceConnected(deviceId, e.ClientId, e.ProtocolVersion == MqttProtocolVersion.V500 ? "mqtt5" : "mqtt3",
            e.RemoteEndPoint?.ToString(), time.GetUtcNow()));
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
        if (SessionInfo.From(e.SessionItems) is not { DeviceId: { } deviceId }) return;
        if (_clientsByDevice.TryGetValue(deviceId, out var clients)) clients.TryRemove(e.ClientId, out _);
        var reason = e.DisconnectType switch
        {
            MqttClientDisconnectType.Clean => "clean disconnect",
            MqttClientDisconnectType.Takeover => "taken over by a new connection",
            _ => e.ReasonCode is { } rc ? $"connection lost ({rc})" : "connection lost or keep-alive timeout",
        };
        await PublishAsync(new DeviceDisconnected(deviceId, e.ClientId, reason, time.GetUtcNow()));
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
            if (topic.Kind == TopicKind.Telemetry) await IngestAsync(e, session);
            return;
        }
        if (topic.IsDeviceTopic ? topic.IsUpstream || !session.MayWrite : !session.MayWrite)
        {
            Deny(e, session, $"{session.AppRole} app may not publish on {message.Topic}");
        }
    }

    private async Task IngestAsync(InterceptingPublishEventArgs e, SessionInfo session)
    {
        var message = e.ApplicationMessage;
        var payload = message.Payload.IsSingleSegment ? message.Payload.First : message.Payload.ToArray();
        var format = string.Equals(message.ContentType, "application/cbor", StringComparison.OrdinalIgnoreCase) ? PayloadFormat.Cbor : PayloadFormat.Json;
        var acked = message.QualityOfServiceLevel != MqttQualityOfServiceLevel.AtMostOnce;
        var outcome = await gate.SubmitAsync(session.DeviceId!, TelemetryProtocol.Mqtt, format, payload, acked, e.CancellationToken);
        e.ProcessPublish = HasAppSubscriber(message.Topic) && outcome.Status == IngestStatus.Stored;
        switch (outcome.Status)
        {
            case IngestStatus.Stored:
                e.Response.ReasonCode = MqttPubAckReasonCode.Success;
                break;
            case IngestStatus.Rejected when session.IsV5:
                e.Response.ReasonCode = MqttPubAckReasonCode.PayloadFormatInvalid;
                e.Response.ReasonString = Truncate(outcome.Reason ?? "invalid payload", 500);
                break;
            case IngestStatus.Rejected:
                // 3.1.1 has no way to say it: dead-lettered and acked, so the device does not resend it forever.
                break;
            default:
                if (session.IsV5) e.Response.ReasonCode = MqttPubAckReasonCode.UnspecifiedError;
                else e.CloseConnection = true; // no ack: the device resends after reconnecting
                break;
        }
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

    private Task InterceptSubscriptionAsync(InterceptingSubscriptionEventArgs e)
    {
        var session = SessionInfo.From(e.SessionItems);
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
        try
        {
            await using var scope = scopes.CreateAsyncScope();
            await scope.ServiceProvider.GetRequiredService<IPublisher>().Publish(notification);
        }
        catch (Exception ex)
        {
            log.LogError(ex, "Handling {Notification} failed", notification.GetType().Name);
        }
    }

    private static string Truncate(string s, int max) => s.Length <= max ? s : s[..max];

    private static string Printable(string? s) =>
        s is null ? "" : new string(Truncate(s, 128).Select(c => char.IsControl(c) ? '?' : c).ToArray());
}

internal sealed class DisconnectOnRevoke(MqttBroker broker) : INotificationHandler<DeviceCredentialsRevoked>
{
    public async ValueTask Handle(DeviceCredentialsRevoked n, CancellationToken ct) => await broker.DisconnectDeviceAsync(n.DeviceId);
}
