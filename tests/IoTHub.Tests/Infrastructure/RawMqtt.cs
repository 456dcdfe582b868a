// MQTT 3.1.1 packets built by hand, for tests that need full control of the socket: wills, silence, garbage,
// and connections from another loopback address.
using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Text;

namespace IoTHub.Tests.Infrastructure;

public static class RawMqtt
{
    public static byte[] Connect(string clientId, string user, string password, ushort keepAliveSeconds = 60, string? willTopic = null, string? willPayload = null,
        bool cleanSession = true)
    {
        var flags = (byte)(0b1100_0000 | (cleanSession ? 0b10 : 0) | (willTopic is null ? 0 : 0b0000_1100)); // user, password, clean session (+ will, QoS 1)
        var payload = Str(clientId).Concat(willTopic is null ? [] : Str(willTopic).Concat(Str(willPayload ?? ""))).Concat(Str(user)).Concat(Str(password));
        return Packet(0x10, [0, 4, (byte)'M', (byte)'Q', (byte)'T', (byte)'T', 4, flags, (byte)(keepAliveSeconds >> 8), (byte)keepAliveSeconds, .. payload]);
    }

    /// <summary>PUBLISH at QoS 1 with packet id 1.</summary>
    public static byte[] PublishQos1(string topic, string payload) => Packet(0x32, [.. Str(topic), 0, 1, .. Encoding.UTF8.GetBytes(payload)]);

    public static byte[] Packet(byte type, byte[] body)
    {
        var header = new List<byte> { type };
        var remaining = body.Length;
        do
        {
            var digit = (byte)(remaining % 128);
            remaining /= 128;
            header.Add(remaining > 0 ? (byte)(digit | 0x80) : digit);
        } while (remaining > 0);
        return [.. header, .. body];
    }

    private static byte[] Str(string s)
    {
        var b = Encoding.UTF8.GetBytes(s);
        return [(byte)(b.Length >> 8), (byte)b.Length, .. b];
    }

    /// <summary>A TCP connection to the broker, optionally from another loopback address (127.0.0.x).</summary>
    public static async Task<TcpClient> OpenAsync(int port, string from = "127.0.0.1")
    {
        var tcp = new TcpClient(new IPEndPoint(IPAddress.Parse(from), 0));
        await tcp.ConnectAsync(IPAddress.Loopback, port);
        return tcp;
    }

    /// <summary>A raw WebSocket to the hub's MQTT-over-WebSocket endpoint (subprotocol <c>mqtt</c>).</summary>
    public static async Task<ClientWebSocket> OpenWebSocketAsync(Uri hub, string path = "/mqtt")
    {
        var ws = new ClientWebSocket();
        ws.Options.AddSubProtocol("mqtt");
        await ws.ConnectAsync(new Uri($"ws://{hub.Host}:{hub.Port}{path}"), CancellationToken.None);
        return ws;
    }

    /// <summary>True when the peer closed (or reset) the WebSocket within the timeout.</summary>
    public static async Task<bool> ClosedByPeerAsync(ClientWebSocket ws, TimeSpan timeout)
    {
        var buffer = new byte[1024];
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            while (true)
            {
                if ((await ws.ReceiveAsync(buffer, cts.Token)).MessageType == WebSocketMessageType.Close) return true;
            }
        }
        catch (OperationCanceledException)
        {
            return false;
        }
        catch (WebSocketException)
        {
            return true;
        }
    }

    /// <summary>True when the peer closed (or reset) the connection within the timeout.</summary>
    public static async Task<bool> ClosedByPeerAsync(TcpClient tcp, TimeSpan timeout)
    {
        var buffer = new byte[1024];
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            while (true)
            {
                if (await tcp.GetStream().ReadAsync(buffer, cts.Token) == 0) return true;
            }
        }
        catch (OperationCanceledException)
        {
            return false;
        }
        catch (IOException)
        {
            return true;
        }
    }
}
