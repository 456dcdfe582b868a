// CONNECT: who the client is, which client id it may use, and what this connection's session and flow-control terms
// are. Everything a later permission check needs is decided here from the credentials of this connection and stored
// with it, never taken from a session a previous connection left behind.
using IoTHub.Connectivity.Mqtt.Flow;
using IoTHub.Connectivity.Mqtt.Publish;
using IoTHub.Connectivity.Mqtt.Sessions;
using IoTHub.Contracts;
using Microsoft.Extensions.Options;
using MQTTnet;
using MQTTnet.AspNetCore;
using MQTTnet.Formatter;
using MQTTnet.Packets;
using MQTTnet.Protocol;
using MQTTnet.Server;

namespace IoTHub.Connectivity.Mqtt.Connect;

internal sealed class ConnectAuthentication(
    IDeviceAuthenticator devices,
    IAppKeyVerifier appKeys,
    AuthThrottle throttle,
    SessionOwnership owners,
    ConnectingClients connecting,
    StoredSessions stored,
    ModuleBridge modules,
    IOptions<MqttOptions> options,
    LogThrottle lines,
    ILogger<ConnectAuthentication> log)
{
    public const string AppUserName = "apikey";

    public async Task ValidateAsync(ValidatingConnectionEventArgs e)
    {
        var o = options.Value;
        var packet = MqttInternals.ConnectPacket(e);
        var isV5 = e.ProtocolVersion == MqttProtocolVersion.V500;
        var emptyId = string.IsNullOrEmpty(e.ClientId);
        // MQTTnet answers "client identifier not valid" to any CONNECT left without an id, whatever this handler decided;
        // a refused client with an empty id must still hear why it was refused.
        if (emptyId) SetClientId(e, packet, isV5, ClientIdRules.Assign(MqttPrincipal.Anonymous));
        var principal = await AuthenticateAsync(e);
        if (principal is null) return;

        var clientId = e.ClientId;
        if (emptyId)
        {
            if (!isV5 && !packet.CleanSession)
            {
                Refuse(e, MqttConnectReasonCode.ClientIdentifierNotValid, "an empty client id needs clean session [MQTT-3.1.3-8]");
                return;
            }
            clientId = ClientIdRules.Assign(principal);
            SetClientId(e, packet, isV5, clientId);
        }
        else if (clientId.Length > o.MaxClientIdLength)
        {
            Refuse(e, MqttConnectReasonCode.ClientIdentifierNotValid, $"client id longer than {o.MaxClientIdLength} characters");
            return;
        }
        else if (await ClientIdRuleBrokenAsync(principal, clientId, e.CancellationToken) is { } broken)
        {
            Refuse(e, MqttConnectReasonCode.ClientIdentifierNotValid, broken);
            return;
        }

        if (!owners.TryClaim(clientId, principal))
        {
            Refuse(e, MqttConnectReasonCode.ClientIdentifierNotValid, "client id is in use by another principal's session");
            return;
        }

        WillMessage? will = null;
        if (packet.WillFlag)
        {
            if (PublishRules.WhyRefused(principal, packet.WillTopic ?? "", o) is { } why)
            {
                Refuse(e, MqttConnectReasonCode.NotAuthorized, "will: " + why);
                return;
            }
            will = TakeWill(packet, isV5);
        }

        var sessionExpiry = SessionExpiry(packet, isV5, o, out var announceExpiry);
        if (isV5)
        {
            // Server Keep Alive (MQTT 5 §3.2.2.3.14): a client asking for none, or for more than the maximum, is given the
            // maximum, and MQTTnet's keep-alive monitor (which reads the CONNECT packet) enforces it.
            if (o.MaxKeepAliveSeconds > 0 && (packet.KeepAlivePeriod == 0 || packet.KeepAlivePeriod > o.MaxKeepAliveSeconds))
                packet.KeepAlivePeriod = (ushort)o.MaxKeepAliveSeconds;
        }
        var connection = new MqttConnection
        {
            Principal = principal,
            ClientId = clientId,
            IsV5 = isV5,
            CleanStart = packet.CleanSession,
            SessionExpirySeconds = sessionExpiry,
            AnnouncedSessionExpiry = announceExpiry,
            ServerKeepAlive = isV5 ? packet.KeepAlivePeriod : (ushort)0,
            RemoteAddress = e.RemoteEndPoint?.ToString(),
            Will = will,
            SendQuota = isV5 ? new SemaphoreSlim(packet.ReceiveMaximum == 0 ? ushort.MaxValue : packet.ReceiveMaximum) : null,
            ClientMaximumPacketSize = isV5 ? packet.MaximumPacketSize : 0,
            Wire = (e.ChannelAdapter as MqttConnectionContext) is { } channel ? WireState.Of(MqttInternals.Connection(channel)) : null,
            ResumesStoredSession = !packet.CleanSession && stored.Has(clientId, principal),
        };
        // For a new session MQTTnet makes these items the session's; a resumed session keeps its own, and the
        // connection is attached to it when its CONNACK goes out (OutboundPackets).
        new SessionInfo(principal, connection).Store(e.SessionItems);
        MqttConnection.Bind(packet, connection);
        connecting.Add(connection);
    }

    /// <summary>MQTTnet assigns on 5.0 from AssignedClientIdentifier (and tells the client in CONNACK); on 3.1.1 it refuses
    /// an empty id whatever this handler says, so the id goes into the packet itself.</summary>
    private static void SetClientId(ValidatingConnectionEventArgs e, MqttConnectPacket packet, bool isV5, string clientId)
    {
        if (isV5) e.AssignedClientIdentifier = clientId;
        else packet.ClientId = clientId;
    }

    private async Task<MqttPrincipal?> AuthenticateAsync(ValidatingConnectionEventArgs e)
    {
        if (e.UserName == AppUserName)
        {
            if (await appKeys.VerifyAsync(e.Password ?? "", e.CancellationToken) is { } key) return MqttPrincipal.ApiKey(key.KeyId, key.Role);
            await RefuseCredentialsAsync(e, "invalid API key");
            return null;
        }
        if (string.IsNullOrEmpty(e.UserName))
        {
            if (options.Value.AllowAnonymous && string.IsNullOrEmpty(e.Password)) return MqttPrincipal.Anonymous;
            await RefuseCredentialsAsync(e, "no credentials");
            return null;
        }
        // A registered client certificate (MQTT over TLS) identifies the device without its token; otherwise the token does.
        var identity = e.ClientCertificate is { } certificate
            ? await devices.AuthenticateCertificateAsync(e.UserName, certificate.GetCertHashString(System.Security.Cryptography.HashAlgorithmName.SHA256), e.CancellationToken)
            : null;
        identity ??= await devices.AuthenticateAsync(e.UserName, e.Password ?? "", e.CancellationToken);
        if (identity is null)
        {
            await RefuseCredentialsAsync(e, "wrong device id or token");
            return null;
        }
        if (!identity.Enabled)
        {
            e.ReasonCode = MqttConnectReasonCode.NotAuthorized;
            e.ReasonString = "device is disabled";
            lines.Write(log, RefusalLines.DisabledDevice, identity.DeviceId, identity.DeviceId, e.RemoteEndPoint);
            return null;
        }
        return MqttPrincipal.Device(identity.DeviceId);
    }

    private async Task<string?> ClientIdRuleBrokenAsync(MqttPrincipal principal, string clientId, CancellationToken ct)
    {
        if (principal.DeviceId is { } device) return ClientIdRules.DeviceRuleBroken(device, clientId);
        if (ClientIdRules.DeviceNamespaceOf(clientId) is { } ns && await modules.SendAsync(new DeviceExists(ns)))
            return $"client id {clientId} is in device {ns}'s namespace";
        return null;
    }

    private async Task RefuseCredentialsAsync(ValidatingConnectionEventArgs e, string why)
    {
        var delay = throttle.Failed(e.RemoteEndPoint);
        lines.Write(log, RefusalLines.MqttLogin, LogThrottle.AddressOf(e.RemoteEndPoint), MqttText.Printable(e.UserName), e.RemoteEndPoint, why);
        await Task.Delay(delay, e.CancellationToken);
        e.ReasonCode = MqttConnectReasonCode.BadUserNameOrPassword;
    }

    private void Refuse(ValidatingConnectionEventArgs e, MqttConnectReasonCode code, string why)
    {
        e.ReasonCode = code;
        if (e.ProtocolVersion == MqttProtocolVersion.V500) e.ReasonString = why;
        lines.Write(log, RefusalLines.MqttClientId, LogThrottle.AddressOf(e.RemoteEndPoint),
            MqttText.Printable(e.UserName), MqttText.Printable(e.ClientId), e.RemoteEndPoint, why);
    }

    /// <summary>Takes the Will out of the CONNECT packet: MQTTnet would publish it itself, at once, on any unclean end,
    /// but never on takeover and without its delay; the hub publishes it instead (WillMessages).</summary>
    private static WillMessage TakeWill(MqttConnectPacket packet, bool isV5)
    {
        var message = new MqttApplicationMessage
        {
            Topic = packet.WillTopic,
            PayloadSegment = packet.WillMessage ?? [],
            QualityOfServiceLevel = packet.WillQoS,
            Retain = packet.WillRetain,
            ContentType = packet.WillContentType,
            CorrelationData = packet.WillCorrelationData,
            ResponseTopic = packet.WillResponseTopic,
            MessageExpiryInterval = packet.WillMessageExpiryInterval,
            PayloadFormatIndicator = packet.WillPayloadFormatIndicator,
            UserProperties = packet.WillUserProperties,
        };
        var will = new WillMessage(message, isV5 ? packet.WillDelayInterval : 0);
        packet.WillFlag = false;
        return will;
    }

    /// <summary>How long the session outlives the connection, in seconds, capped at Mqtt:MaxSessionExpirySeconds (and
    /// announced to a 5.0 client in CONNACK when capped, MQTT 5 §3.2.2.3.2). 3.1.1 without clean session: the cap.</summary>
    private static uint SessionExpiry(MqttConnectPacket packet, bool isV5, MqttOptions o, out uint? announce)
    {
        announce = null;
        var max = (uint)o.MaxSessionExpirySeconds;
        if (!isV5) return packet.CleanSession ? 0 : max;
        var requested = packet.SessionExpiryInterval;
        if (requested <= max) return requested;
        announce = max;
        packet.SessionExpiryInterval = max;
        return max;
    }
}
