// Connections between CONNECT and CONNACK. MQTTnet resumes an existing session with that session's own items, so the
// new connection's state cannot travel in them; it waits here, by client id, until its CONNACK attaches it.
using System.Collections.Concurrent;

namespace IoTHub.Connectivity.Mqtt.Sessions;

internal sealed class ConnectingClients
{
    private readonly ConcurrentDictionary<string, MqttConnection> _byClientId = new(StringComparer.Ordinal);

    public void Add(MqttConnection connection) => _byClientId[connection.ClientId] = connection;

    /// <summary>The connection validated last for this client id (MQTTnet creates connections of one id one at a time).</summary>
    public MqttConnection? Take(string clientId) => _byClientId.TryRemove(clientId, out var c) ? c : null;
}
