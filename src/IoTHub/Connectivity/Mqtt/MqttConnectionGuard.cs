// Kestrel connection middleware in front of MQTTnet on the TCP and TLS listeners. MQTTnet sets no maximum packet
// size and buffers a packet until all of its declared length has arrived; this guard reads each fixed header as
// the bytes go by and closes a connection that declares a packet above Mqtt:MaxPacketBytes (or a malformed
// length) before any of it is buffered, and one whose first packet is not CONNECT. It also caps concurrent
// connections per IP address.
using System.Buffers;
using System.Collections.Concurrent;
using System.IO.Pipelines;
using System.Net;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Options;

namespace IoTHub.Connectivity.Mqtt;

internal sealed class MqttConnectionGuard(IOptions<MqttOptions> options, MqttBroker broker, ILogger<MqttConnectionGuard> log)
{
    private readonly ConcurrentDictionary<IPAddress, int> _perAddress = new();

    public ConnectionDelegate Wrap(ConnectionDelegate next) => async connection =>
    {
        var o = options.Value;
        var address = (connection.RemoteEndPoint as IPEndPoint)?.Address;
        if (address is not null && _perAddress.AddOrUpdate(address, 1, (_, n) => n + 1) > o.MaxConnectionsPerAddress)
        {
            Release(address);
            log.LogWarning("Refused an MQTT connection from {Remote}: more than {Max} connections from that address", address, o.MaxConnectionsPerAddress);
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
            var input = new PacketSizeGuard(connection.Transport.Input, o.MaxPacketBytes, connection, log);
            connection.Transport = new GuardedPipe(input, connection.Transport.Output);
            await next(connection);
        }
        finally
        {
            if (address is not null) Release(address);
        }
    };

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
    private sealed class PacketSizeGuard(PipeReader inner, int maxPacketBytes, ConnectionContext connection, ILogger log) : PipeReader
    {
        private long _bufferStart;   // stream offset of the first byte of the last buffer handed out
        private long _nextHeader;    // stream offset of the next fixed header
        private ReadOnlySequence<byte> _last;

        public override async ValueTask<ReadResult> ReadAsync(CancellationToken cancellationToken = default)
        {
            var result = await inner.ReadAsync(cancellationToken);
            Inspect(result.Buffer);
            return result;
        }

        public override bool TryRead(out ReadResult result)
        {
            if (!inner.TryRead(out result)) return false;
            Inspect(result.Buffer);
            return true;
        }

        private void Inspect(in ReadOnlySequence<byte> buffer)
        {
            _last = buffer;
            while (true)
            {
                var offset = _nextHeader - _bufferStart;
                if (offset >= buffer.Length) return;
                var reader = new SequenceReader<byte>(buffer.Slice(offset));
                if (!reader.TryRead(out var type)) return; // packet type and flags
                if (_nextHeader == 0 && type >> 4 != 1) Refuse("a first packet that is not CONNECT");
                long remaining = 0;
                var lengthBytes = 0;
                byte b;
                do
                {
                    if (!reader.TryRead(out b)) return; // the rest of the length has not arrived yet
                    remaining |= (long)(b & 0x7F) << (7 * lengthBytes);
                    lengthBytes++;
                    if (lengthBytes > 4) Refuse("a malformed remaining length");
                }
                while ((b & 0x80) != 0);
                if (remaining > maxPacketBytes) Refuse($"a {remaining}-byte packet (limit {maxPacketBytes})");
                _nextHeader += 1 + lengthBytes + remaining;
            }
        }

        private void Refuse(string what)
        {
            log.LogWarning("Closed the MQTT connection from {Remote}: it declared {What}", connection.RemoteEndPoint, what);
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
