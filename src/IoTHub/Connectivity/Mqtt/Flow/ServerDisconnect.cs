// The hub closing one MQTT connection on its own decision: a protocol error, a message it could not take. MQTT 5 says why
// in a DISCONNECT with a reason code (§3.14); 3.1.1 has no server DISCONNECT, so the connection is just closed.
//
// MQTTnet's own stop (DisconnectClientAsync) marks the client stopped *before* it writes that DISCONNECT: a receive loop
// with more packets already buffered (a client flooding past Receive Maximum) then ends the connection under the write,
// and the client saw the connection close without a reason. So the DISCONNECT is written first, through the
// connection's own send path, and only then is the connection stopped (with no second DISCONNECT). ClosingOutput makes
// sure the bytes written before the stop still reach the client.
using IoTHub.Connectivity.Mqtt.Sessions;
using MQTTnet.Packets;
using MQTTnet.Protocol;
using MQTTnet.Server;

namespace IoTHub.Connectivity.Mqtt.Flow;

internal static class ServerDisconnect
{
    /// <summary>How long the DISCONNECT may take to be written before the connection is closed without it.</summary>
    private static readonly TimeSpan SendTimeout = TimeSpan.FromSeconds(10);

    /// <summary>Closes <paramref name="c"/> off the packet loop, once, and only if it is still the connection of its
    /// client id (a newer connection that took the id over is left alone). Later calls for the same connection do
    /// nothing: the first reason is the one the client reads, and nothing it sends after is processed.</summary>
    public static void Close(MqttServer? server, MqttConnection c, MqttDisconnectReasonCode code, string reason, ILogger log)
    {
        if (server is null || c.IsEnded || !c.TryBeginClosing()) return;
        _ = Task.Run(async () =>
        {
            try
            {
                var session = SessionInfo.From((await server.GetSessionAsync(c.ClientId)).Items);
                if (session?.Connection != c) return;
                if (c.Client is not { } client)
                {
                    await server.DisconnectClientAsync(c.ClientId, new MqttServerClientDisconnectOptions { ReasonCode = code, ReasonString = reason });
                    return;
                }
                if (c.IsV5)
                {
                    try
                    {
                        using var timeout = new CancellationTokenSource(SendTimeout);
                        await client.SendPacketAsync(new MqttDisconnectPacket { ReasonCode = code, ReasonString = reason }, timeout.Token);
                    }
                    catch (Exception ex)
                    {
                        log.LogDebug(ex, "DISCONNECT to {ClientId} not sent", MqttText.Printable(c.ClientId));
                    }
                }
                // NormalDisconnection without a reason string: MQTTnet sends no second DISCONNECT, it only closes.
                await client.StopAsync(new MqttServerClientDisconnectOptions { ReasonCode = MqttDisconnectReasonCode.NormalDisconnection });
            }
            catch (Exception ex)
            {
                log.LogDebug(ex, "Client {ClientId} was already gone", MqttText.Printable(c.ClientId));
            }
        });
    }
}
