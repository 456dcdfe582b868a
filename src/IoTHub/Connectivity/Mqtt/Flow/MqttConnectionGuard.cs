// Kestrel connection middleware in front of MQTTnet on the TCP, TLS and WebSocket listeners. It walks the MQTT fixed
// headers as the bytes go by, without copying them, and closes a connection that:
//   - declares a packet above Mqtt:MaxPacketBytes or a malformed length, before any of it is buffered (MQTTnet sets no
//     maximum and buffers a packet until all of its declared length has arrived);
//   - sends a first packet that is not CONNECT;
//   - leaves a packet unfinished for Mqtt:PacketTimeoutSeconds (a byte dripped every few seconds would otherwise hold a
//     connection, and its buffers, open for ever: keep-alive only counts whole packets, and 0 turns it off).
// Its output side delivers a server's last packet (a DISCONNECT with its reason) before the connection closes (ClosingOutput).
// It also caps concurrent connections per IP address, and reads the one thing of MQTT 5 that MQTTnet decodes away:
// a Topic Alias property of 0 in a PUBLISH, a protocol error (MQTT 5 §3.3.2.3.4) that the decoded packet cannot show.
using System.Buffers;
using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.IO.Pipelines;
using System.Net;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Options;

namespace IoTHub.Connectivity.Mqtt.Flow;

internal sealed class MqttConnectionGuard(IOptions<MqttOptions> options, MqttBroker broker, TimeProvider time, IoTHub.Contracts.LogThrottle lines,
    RefusedConnections refused, ILogger<MqttConnectionGuard> log)
{
    private readonly ConcurrentDictionary<IPAddress, int> _perAddress = new();

    public ConnectionDelegate Wrap(ConnectionDelegate next) => async connection =>
    {
        var o = options.Value;
        var address = (connection.RemoteEndPoint as IPEndPoint)?.Address;
        if (address is not null && _perAddress.AddOrUpdate(address, 1, (_, n) => n + 1) > o.MaxConnectionsPerAddress)
        {
            Release(address);
            lines.Write(log, RefusalLines.AddressCap, address.ToString(), address, o.MaxConnectionsPerAddress);
            connection.Abort(new ConnectionAbortedException("too many connections from this address"));
            return;
        }
        try
        {
            if (!broker.Started.IsCompleted)
            {
                // Kestrel listens before the broker has started: a device connecting in that moment (a fleet
                // reconnecting to a restarted hub) waits for it rather than being dropped by MQTTnet half-started.
                try
                {
                    await broker.Started.WaitAsync(TimeSpan.FromSeconds(o.ConnectTimeoutSeconds), connection.ConnectionClosed);
                }
                catch (Exception ex) when (ex is TimeoutException or OperationCanceledException)
                {
                    connection.Abort(new ConnectionAbortedException("the broker is not started"));
                    return;
                }
            }
            var wire = new WireState();
            connection.Items[WireState.Key] = wire;
            var input = new PacketGuard(connection.Transport.Input, connection.Transport.Output, o, wire, connection, lines, refused, log);
            connection.Transport = new GuardedPipe(input, new ClosingOutput(connection.Transport.Output, connection, time, ClosingOutput.DefaultGrace));
            await next(connection);
        }
        finally
        {
            if (address is not null) Release(address);
        }
    };

    /// <summary>Connections from <paramref name="address"/> counted toward its cap now (those being refused for it, briefly).</summary>
    public int ConnectionsFrom(IPAddress address) => _perAddress.TryGetValue(address, out var n) ? n : 0;

    private void Release(IPAddress address)
    {
        if (_perAddress.AddOrUpdate(address, 0, (_, n) => n - 1) <= 0) _perAddress.TryRemove(new KeyValuePair<IPAddress, int>(address, 0));
    }

    private sealed class GuardedPipe(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;
        public PipeWriter Output { get; } = output;
    }

    /// <summary>Passes the transport's bytes through unchanged while walking the MQTT fixed headers in them.</summary>
    private sealed class PacketGuard(PipeReader inner, PipeWriter output, MqttOptions o, WireState wire, ConnectionContext connection, IoTHub.Contracts.LogThrottle lines,
        RefusedConnections refused, ILogger log) : PipeReader
    {
        private readonly int _maxPacketBytes = o.MaxPacketBytes;
        private readonly long _packetTimeoutMs = o.PacketTimeoutSeconds * 1000L;
        private long _bufferStart;   // stream offset of the first byte of the last buffer handed out
        private long _nextHeader;    // stream offset of the next fixed header
        private long _bodyStart = -1, _bodyEnd; // a packet whose body is still arriving (-1: none)
        private byte _bodyType;
        private long _lastStart;     // stream offset of the last packet whose header was read
        private long _unfinishedAt = -1; // stream offset of the packet still arriving (-1: none)
        private long _unfinishedSince;   // Environment.TickCount64 when its first byte arrived
        private ReadOnlySequence<byte> _last;

        public override async ValueTask<ReadResult> ReadAsync(CancellationToken cancellationToken = default)
        {
            ReadResult result;
            if (_unfinishedAt < 0)
            {
                result = await inner.ReadAsync(cancellationToken);
            }
            else
            {
                var left = _unfinishedSince + _packetTimeoutMs - Environment.TickCount64;
                if (left <= 0) Refuse($"a packet it did not finish within {_packetTimeoutMs / 1000} s");
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                timeout.CancelAfter(TimeSpan.FromMilliseconds(left));
                try
                {
                    result = await inner.ReadAsync(timeout.Token);
                }
                catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
                {
                    Refuse($"a packet it did not finish within {_packetTimeoutMs / 1000} s");
                    throw; // not reached
                }
            }
            Inspect(result.Buffer);
            if (_refuseConnect is { } connAck)
            {
                // MQTTnet would close without a CONNACK; the specification wants one that says why.
                // The output is completed, not aborted: an abort resets the socket and the client may never read the CONNACK.
                await output.WriteAsync(connAck, cancellationToken);
                await output.CompleteAsync();
                lines.Write(log, RefusalLines.ConnectRefused, IoTHub.Contracts.LogThrottle.AddressOf(connection.RemoteEndPoint), connection.RemoteEndPoint, _refuseWhy ?? "");
                throw new ConnectionAbortedException("MQTT CONNECT refused: " + _refuseWhy);
            }
            return result;
        }

        private byte[]? _refuseConnect;
        private string? _refuseWhy;

        public override bool TryRead(out ReadResult result)
        {
            if (!inner.TryRead(out result)) return false;
            Inspect(result.Buffer);
            return true;
        }

        private void Inspect(in ReadOnlySequence<byte> buffer)
        {
            _last = buffer;
            var end = _bufferStart + buffer.Length;
            if (_bodyStart >= 0)
            {
                if (end < _bodyEnd)
                {
                    Unfinished(end);
                    return;
                }
                InspectBody(buffer.Slice(_bodyStart - _bufferStart, _bodyEnd - _bodyStart), _bodyType);
                _bodyStart = -1;
            }
            while (true)
            {
                var offset = _nextHeader - _bufferStart;
                if (offset >= buffer.Length) break;
                var reader = new SequenceReader<byte>(buffer.Slice(offset));
                reader.TryRead(out var type); // packet type and flags
                if (_nextHeader == 0 && type >> 4 != 1) Refuse("a first packet that is not CONNECT");
                long remaining = 0;
                var lengthBytes = 0;
                byte b;
                var complete = true;
                do
                {
                    if (!reader.TryRead(out b)) { complete = false; break; } // the rest of the length has not arrived yet
                    remaining |= (long)(b & 0x7F) << (7 * lengthBytes);
                    lengthBytes++;
                    if (lengthBytes > 4) Refuse("a malformed remaining length");
                }
                while ((b & 0x80) != 0);
                if (!complete) break;
                if (remaining > _maxPacketBytes) Refuse($"a {remaining}-byte packet (limit {_maxPacketBytes})");
                _lastStart = _nextHeader;
                var bodyStart = _nextHeader + 1 + lengthBytes;
                _nextHeader = bodyStart + remaining;
                if (!Worth(type)) continue;
                if (_nextHeader <= end) InspectBody(buffer.Slice(bodyStart - _bufferStart, remaining), type);
                else (_bodyStart, _bodyEnd, _bodyType) = (bodyStart, _nextHeader, type);
            }
            Unfinished(end);
        }

        // Only CONNECT (for the protocol level) and 5.0 PUBLISH (for the topic alias) are read past their header.
        private bool Worth(byte type) => type >> 4 == 1 || (type >> 4 == 3 && wire.ProtocolLevel == 5);

        /// <summary>Notes the packet still arriving after this read, if any: it must arrive whole within the timeout,
        /// counted from its first byte (a steady stream that ends each read mid-packet is a new packet each time).</summary>
        private void Unfinished(long end)
        {
            var arriving = end > _nextHeader ? _nextHeader : end < _nextHeader ? _lastStart : -1;
            if (arriving < 0)
            {
                _unfinishedAt = -1;
            }
            else if (arriving != _unfinishedAt)
            {
                _unfinishedAt = arriving;
                _unfinishedSince = Environment.TickCount64;
            }
        }

        private void InspectBody(ReadOnlySequence<byte> body, byte type)
        {
            var reader = new SequenceReader<byte>(body);
            if (type >> 4 == 1)
            {
                // CONNECT: protocol name (length-prefixed), then the protocol level (4 = 3.1.1, 5 = 5.0).
                if (!reader.TryReadBigEndian(out short nameLength) || reader.Remaining <= nameLength) return;
                reader.Advance(nameLength);
                if (!reader.TryRead(out var level) || !reader.TryRead(out var flags) || !reader.TryReadBigEndian(out short _)) return;
                wire.ProtocolLevel = level;
                if (level is not (3 or 4 or 5))
                {
                    // An unsupported protocol level gets CONNACK 0x01 in the 3.1.1 format, which every version reads [MQTT-3.1.2-2].
                    (_refuseConnect, _refuseWhy) = ([0x20, 0x02, 0x00, 0x01], $"protocol level {level}");
                    return;
                }
                // 3.1.1: a zero-byte client id with CleanSession = 0 gets CONNACK 0x02 identifier rejected [MQTT-3.1.3-8].
                if (level == 4 && (flags & 0x02) == 0 && reader.TryReadBigEndian(out short idLength) && idLength == 0)
                    (_refuseConnect, _refuseWhy) = ([0x20, 0x02, 0x00, 0x02], "an empty client id without clean session [MQTT-3.1.3-8]");
                return;
            }
            // 5.0 PUBLISH: topic, packet id when QoS > 0, then the properties.
            if (!reader.TryReadBigEndian(out short topicLength) || reader.Remaining < (ushort)topicLength) return;
            reader.Advance((ushort)topicLength);
            if (((type >> 1) & 3) > 0 && !reader.TryReadBigEndian(out short _)) return;
            if (!TryReadVarInt(ref reader, out var propertiesLength) || reader.Remaining < propertiesLength) return;
            var properties = new SequenceReader<byte>(reader.UnreadSequence.Slice(0, propertiesLength));
            while (properties.TryRead(out var id))
            {
                if (id == 0x23) // Topic Alias, a two byte integer
                {
                    if (!properties.TryReadBigEndian(out short alias)) return;
                    if (alias == 0) wire.Fail(0x94, "topic alias 0 is not allowed (MQTT 5 §3.3.2.3.4)");
                    return;
                }
                if (!Skip(ref properties, id)) return;
            }
        }

        /// <summary>Skips one property's value (MQTT 5 §2.2.2.2); false on an unknown id or a short read.</summary>
        private static bool Skip(ref SequenceReader<byte> r, byte id)
        {
            switch (id)
            {
                case 0x01 or 0x17 or 0x19 or 0x24 or 0x25 or 0x28 or 0x29 or 0x2A: return r.TryRead(out _);
                case 0x13 or 0x21 or 0x22: return r.TryReadBigEndian(out short _);
                case 0x02 or 0x11 or 0x18 or 0x27: return r.TryReadBigEndian(out int _);
                case 0x0B: return TryReadVarInt(ref r, out _);
                case 0x03 or 0x08 or 0x09 or 0x12 or 0x15 or 0x16 or 0x1A or 0x1C or 0x1F: return SkipString(ref r);
                case 0x26: return SkipString(ref r) && SkipString(ref r);
                default: return false;
            }
        }

        private static bool SkipString(ref SequenceReader<byte> r)
        {
            if (!r.TryReadBigEndian(out short length) || r.Remaining < (ushort)length) return false;
            r.Advance((ushort)length);
            return true;
        }

        private static bool TryReadVarInt(ref SequenceReader<byte> r, out int value)
        {
            value = 0;
            for (var shift = 0; shift < 28; shift += 7)
            {
                if (!r.TryRead(out var b)) return false;
                value |= (b & 0x7F) << shift;
                if ((b & 0x80) == 0) return true;
            }
            return false;
        }

        private void Refuse(string what)
        {
            lines.Write(log, RefusalLines.Packet, IoTHub.Contracts.LogThrottle.AddressOf(connection.RemoteEndPoint), connection.RemoteEndPoint, what);
            refused.Refused(connection.RemoteEndPoint, "closed by the hub: " + what);
            connection.Abort(new ConnectionAbortedException("MQTT packet refused: " + what));
            throw new ConnectionAbortedException("MQTT packet refused: " + what);
        }

        public override void AdvanceTo(SequencePosition consumed)
        {
            _bufferStart += _last.Slice(0, consumed).Length;
            inner.AdvanceTo(consumed);
        }

        public override void AdvanceTo(SequencePosition consumed, SequencePosition examined)
        {
            _bufferStart += _last.Slice(0, consumed).Length;
            inner.AdvanceTo(consumed, examined);
        }

        public override void CancelPendingRead() => inner.CancelPendingRead();

        public override void Complete(Exception? exception = null) => inner.Complete(exception);

        public override ValueTask CompleteAsync(Exception? exception = null) => inner.CompleteAsync(exception);
    }
}

/// <summary>What the connection guard learned of one connection's bytes, for the broker's packet interceptors.</summary>
internal sealed class WireState
{
    public const string Key = "iothub.mqtt.wire";

    /// <summary>The CONNECT's protocol level: 4 for MQTT 3.1.1, 5 for MQTT 5.0; 0 before CONNECT.</summary>
    public int ProtocolLevel;

    private string? _error;

    /// <summary>A protocol error seen on the wire that the decoded packets cannot show, with its MQTT 5 reason code.</summary>
    public (byte Code, string Reason)? Error => _error is { } e ? (ErrorCode, e) : null;

    public byte ErrorCode { get; private set; }

    public void Fail(byte code, string reason)
    {
        ErrorCode = code;
        Volatile.Write(ref _error, reason);
    }

    public static WireState? Of(ConnectionContext connection) => connection.Items.TryGetValue(Key, out var w) ? w as WireState : null;
}
