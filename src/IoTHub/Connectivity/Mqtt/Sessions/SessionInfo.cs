// The hub's part of an MQTT session, kept in MQTTnet's session items: who owns the session (fixed for its life: only
// the same principal may resume it), the connection currently attached to it, and the session state MQTT requires
// to survive reconnects that MQTTnet does not keep (QoS 2 packet ids awaiting PUBREL, first-send packet ids of
// messages to redeliver).
using System.Collections;
using System.Runtime.CompilerServices;
using MQTTnet.Packets;

namespace IoTHub.Connectivity.Mqtt.Sessions;

internal sealed class SessionInfo(MqttPrincipal principal, MqttConnection connection)
{
    private const string Key = "iothub.session";

    public MqttPrincipal Principal { get; } = principal;

    private MqttConnection _connection = connection;

    /// <summary>The connection attached to this session now (or the last one, once it closed).</summary>
    public MqttConnection Connection
    {
        get => Volatile.Read(ref _connection);
        set => Volatile.Write(ref _connection, value);
    }

    public string? DeviceId => Principal.DeviceId;

    public bool IsDevice => Principal.IsDevice;

    public string? AppRole => Principal.Role;

    public bool MayWrite => Principal.MayWrite;

    public bool IsV5 => Connection.IsV5;

    /// <summary>QoS 2 packet identifiers received (PUBREC sent) whose PUBREL has not arrived: a PUBLISH resent with one
    /// of them is acknowledged and never processed again [MQTT-4.3.3-10], also across reconnects of the session.</summary>
    public HashSet<ushort> AwaitingRelease { get; } = new();

    /// <summary>Outbound PUBLISH packets already sent once, with the packet identifier they were first sent with. MQTTnet
    /// gives a redelivered packet a new identifier and no DUP flag; a redelivery must keep the identifier and set DUP
    /// [MQTT-4.4.0-1], [MQTT-3.3.1-1].</summary>
    public ConditionalWeakTable<MqttPublishPacket, StrongBox<ushort>> Sent => _sent ?? LazyInitializer.EnsureInitialized(ref _sent);

    // Made on the first QoS 1/2 PUBLISH to the session: most device sessions never get one, and the table costs ~400 bytes.
    private ConditionalWeakTable<MqttPublishPacket, StrongBox<ushort>>? _sent;

    public void Store(IDictionary items) => items[Key] = this;

    public static SessionInfo? From(IDictionary? items) => items?[Key] as SessionInfo;
}
