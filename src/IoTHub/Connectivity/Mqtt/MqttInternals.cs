// MQTTnet 5.2 keeps private some of what IoTHub must see or change to keep MQTT's promises: the CONNECT packet behind
// the connection events (to assign a 3.1.1 client id, take the Will over, cap the keep-alive, and tie each event to its
// own connection), the session behind a session status (to forget a message it must never send), and the Kestrel
// connection behind an MQTT channel (to reach the wire guard's state). UnsafeAccessor reads those fields without
// reflection. The package version is pinned (Directory.Packages.props); if a field is renamed, every broker test fails
// at its first connect, not silently (docs/adr/0007-mqtt-sessions-over-mqttnet.md).
using System.Runtime.CompilerServices;
using Microsoft.AspNetCore.Connections;
using MQTTnet.AspNetCore;
using MQTTnet.Packets;
using MQTTnet.Server;
using MQTTnet.Server.Internal;

namespace IoTHub.Connectivity.Mqtt;

internal static class MqttInternals
{
    [UnsafeAccessor(UnsafeAccessorKind.Field, Name = "_connectPacket")]
    public static extern ref MqttConnectPacket ConnectPacket(ValidatingConnectionEventArgs e);

    [UnsafeAccessor(UnsafeAccessorKind.Field, Name = "_connectPacket")]
    public static extern ref MqttConnectPacket ConnectPacket(ClientConnectedEventArgs e);

    [UnsafeAccessor(UnsafeAccessorKind.Field, Name = "_connectPacket")]
    public static extern ref MqttConnectPacket ConnectPacket(ClientDisconnectedEventArgs e);

    [UnsafeAccessor(UnsafeAccessorKind.Field, Name = "_session")]
    public static extern ref MqttSession Session(MqttSessionStatus status);

    [UnsafeAccessor(UnsafeAccessorKind.Field, Name = "_clientSessionsManager")]
    public static extern ref MqttClientSessionsManager SessionsManager(MqttServer server);

    [UnsafeAccessor(UnsafeAccessorKind.Field, Name = "_connection")]
    public static extern ref ConnectionContext Connection(MqttConnectionContext channel);
}
