// MQTT packets built and read by hand (3.1.1 and 5.0), for the cases no client library will produce: a topic alias of
// 0, a QoS 2 resend before PUBREL, a SUBSCRIBE without filters, flooding past Receive Maximum, a packet that never ends.
using System.Net.Sockets;
using System.Text;

namespace IoTHub.Tests.Infrastructure;

public sealed class RawMqttClient : IDisposable
{
    private readonly TcpClient _tcp;
    private readonly NetworkStream _stream;
    public bool V5 { get; }

    private RawMqttClient(TcpClient tcp, bool v5)
    {
        _tcp = tcp;
        _stream = tcp.GetStream();
        V5 = v5;
    }

    public NetworkStream Stream => _stream;

    public TcpClient Tcp => _tcp;

    /// <summary>Connects and returns the client with the CONNACK's return / reason code.</summary>
    public static async Task<(RawMqttClient Client, byte Code, byte[] ConnAck)> ConnectAsync(int port, string clientId, string user, string password,
        bool v5 = true, bool cleanStart = true, uint sessionExpiry = 0, ushort keepAlive = 60, ushort? receiveMaximum = null,
        string? willTopic = null, string? willPayload = null, uint willDelay = 0)
    {
        var tcp = new TcpClient();
        await tcp.ConnectAsync("127.0.0.1", port);
        var client = new RawMqttClient(tcp, v5);
        var props = new List<byte>();
        if (v5)
        {
            if (sessionExpiry > 0) props.AddRange([0x11, .. BigEndian(sessionExpiry)]);
            if (receiveMaximum is { } rm) props.AddRange([0x21, (byte)(rm >> 8), (byte)rm]);
        }
        var flags = (byte)(0b1100_0000 | (cleanStart ? 0b10 : 0) | (willTopic is null ? 0 : 0b0000_1100)); // will at QoS 1
        List<byte> body = [0, 4, (byte)'M', (byte)'Q', (byte)'T', (byte)'T', v5 ? (byte)5 : (byte)4, flags, (byte)(keepAlive >> 8), (byte)keepAlive];
        if (v5) body.AddRange([.. VarInt(props.Count), .. props]);
        body.AddRange(Str(clientId));
        if (willTopic is not null)
        {
            if (v5)
            {
                byte[] willProps = willDelay > 0 ? [0x18, .. BigEndian(willDelay)] : [];
                body.AddRange([.. VarInt(willProps.Length), .. willProps]);
            }
            body.AddRange([.. Str(willTopic), .. Str(willPayload ?? "")]);
        }
        body.AddRange([.. Str(user), .. Str(password)]);
        await client.SendAsync(0x10, body.ToArray());
        var (type, connAck) = await client.ReadAsync();
        Assert.That(type >> 4, Is.EqualTo(2), "CONNACK");
        return (client, connAck[1], connAck);
    }

    public Task SendAsync(byte type, byte[] body) => _stream.WriteAsync(RawMqtt.Packet(type, body)).AsTask();

    /// <summary>A PUBLISH; on 5.0 with the given topic alias property (or none), on 3.1.1 without properties.</summary>
    public static byte[] Publish(bool v5, string topic, string payload, int qos, ushort packetId = 0, bool dup = false, ushort? topicAlias = null, bool retain = false)
    {
        List<byte> body = [.. Str(topic)];
        if (qos > 0) body.AddRange([(byte)(packetId >> 8), (byte)packetId]);
        if (v5)
        {
            var props = topicAlias is { } a ? new byte[] { 0x23, (byte)(a >> 8), (byte)a } : [];
            body.AddRange([.. VarInt(props.Length), .. props]);
        }
        body.AddRange(Encoding.UTF8.GetBytes(payload));
        var type = (byte)(0x30 | (dup ? 0x08 : 0) | (qos << 1) | (retain ? 1 : 0));
        return RawMqtt.Packet(type, body.ToArray());
    }

    public Task PublishAsync(string topic, string payload, int qos, ushort packetId = 0, bool dup = false, ushort? topicAlias = null) =>
        _stream.WriteAsync(Publish(V5, topic, payload, qos, packetId, dup, topicAlias)).AsTask();

    public Task PubRelAsync(ushort packetId) => SendAsync(0x62, V5 ? [(byte)(packetId >> 8), (byte)packetId, 0] : [(byte)(packetId >> 8), (byte)packetId]);

    /// <summary>Reads one packet: its first byte and its body.</summary>
    public async Task<(byte Type, byte[] Body)> ReadAsync(TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(10));
        var head = new byte[1];
        await _stream.ReadExactlyAsync(head, cts.Token);
        var length = 0;
        for (var shift = 0; ; shift += 7)
        {
            var b = new byte[1];
            await _stream.ReadExactlyAsync(b, cts.Token);
            length |= (b[0] & 0x7F) << shift;
            if ((b[0] & 0x80) == 0) break;
        }
        var body = new byte[length];
        await _stream.ReadExactlyAsync(body, cts.Token);
        return (head[0], body);
    }

    /// <summary>Reads packets until one of type <paramref name="packetType"/> (high nibble) arrives.</summary>
    public async Task<byte[]> ReadUntilAsync(int packetType, TimeSpan? timeout = null)
    {
        while (true)
        {
            var (type, body) = await ReadAsync(timeout);
            if (type >> 4 == packetType) return body;
        }
    }

    /// <summary>Reads until the hub sends DISCONNECT (returns its reason code) or closes the connection (returns null).</summary>
    public async Task<byte?> DisconnectReasonAsync(TimeSpan? timeout = null)
    {
        try
        {
            while (true)
            {
                var (type, body) = await ReadAsync(timeout ?? TimeSpan.FromSeconds(10));
                if (type >> 4 == 14) return body.Length > 0 ? body[0] : (byte)0;
            }
        }
        catch (Exception ex) when (ex is EndOfStreamException or IOException)
        {
            return null;
        }
    }

    public static byte[] Str(string s)
    {
        var b = Encoding.UTF8.GetBytes(s);
        return [(byte)(b.Length >> 8), (byte)b.Length, .. b];
    }

    public static byte[] VarInt(int value)
    {
        var bytes = new List<byte>();
        do
        {
            var digit = (byte)(value % 128);
            value /= 128;
            bytes.Add(value > 0 ? (byte)(digit | 0x80) : digit);
        } while (value > 0);
        return bytes.ToArray();
    }

    private static byte[] BigEndian(uint v) => [(byte)(v >> 24), (byte)(v >> 16), (byte)(v >> 8), (byte)v];

    public void Abort()
    {
        _tcp.Client.LingerState = new LingerOption(true, 0);
        _tcp.Dispose();
    }

    public void Dispose() => _tcp.Dispose();
}
