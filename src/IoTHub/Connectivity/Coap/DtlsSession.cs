// One DTLS peer (an address and port) on the shared socket: to BouncyCastle, the DatagramTransport it reads and writes;
// to the CoAP dispatcher, the sender of the peer's answers (encrypted through the DtlsTransport).
using System.Net;
using System.Net.Sockets;
using System.Threading.Channels;
using Org.BouncyCastle.Tls;

namespace IoTHub.Connectivity.Coap;

internal sealed class DtlsSession : DatagramTransport, ICoapSender
{
    /// <summary>Datagrams waiting for the session; more are dropped, as a congested network would.</summary>
    internal const int QueueCapacity = 64;

    /// <summary>The largest datagram read: a CoAP message with a 1 KiB block and DTLS overhead fits many times over.</summary>
    internal const int ReceiveLimit = 16_384;

    /// <summary>The largest datagram sent: under the usual 1500-byte MTU with IPv6 and UDP headers, so nothing is fragmented
    /// (BouncyCastle fragments handshake messages to fit).</summary>
    internal const int SendLimit = 1_400;

    private readonly DtlsServer _server;
    private readonly Socket _socket;
    private readonly Channel<byte[]> _inbox = Channel.CreateBounded<byte[]>(new BoundedChannelOptions(QueueCapacity)
    {
        FullMode = BoundedChannelFullMode.DropWrite, SingleReader = true, SingleWriter = true,
    });
    private readonly CancellationTokenSource _closed = new();
    private volatile bool _handshaking = true;
    private long _lastHeard;

    public DtlsSession(DtlsServer server, Socket socket, EndPoint endPoint)
    {
        _server = server;
        _socket = socket;
        EndPoint = endPoint;
        _lastHeard = server.Now();
    }

    public EndPoint EndPoint { get; }

    /// <summary>The device the handshake authenticated (its PSK identity), once the key was found.</summary>
    public string? DeviceId { get; set; }

    /// <summary>The PSK identity the client presented, found or not (for the log).</summary>
    public string? PresentedIdentity { get; set; }

    /// <summary>The presented PSK identity has no key (no such device, or a disabled one): the handshake goes on with a
    /// random key and fails as a wrong key does, and the log says why.</summary>
    public bool UnknownIdentity { get; set; }

    /// <summary>The established session; null while handshaking.</summary>
    public DtlsTransport? Transport { get; private set; }

    public bool Handshaking => _handshaking;

    public bool Closed => _closed.IsCancellationRequested;

    /// <summary>When the peer last sent a datagram (a <see cref="TimeProvider"/> timestamp).</summary>
    public long LastHeard => Interlocked.Read(ref _lastHeard);

    public int Pending => _inbox.Reader.Count;

    public void Enqueue(byte[] datagram)
    {
        Interlocked.Exchange(ref _lastHeard, _server.Now());
        _inbox.Writer.TryWrite(datagram);
    }

    public void Established(DtlsTransport transport)
    {
        Transport = transport;
        _handshaking = false;
    }

    /// <summary>Waits for a datagram; false once the session is closed.</summary>
    public async ValueTask<bool> WaitAsync(CancellationToken ct)
    {
        using var both = CancellationTokenSource.CreateLinkedTokenSource(ct, _closed.Token);
        try
        {
            return await _inbox.Reader.WaitToReadAsync(both.Token);
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    /// <summary>The handshake failed: BouncyCastle already closed what it had; stop reading.</summary>
    public void Fail() => _closed.Cancel();

    /// <summary>Ends the session (the server's side; BouncyCastle's side is <see cref="TlsCloseable.Close"/>).</summary>
    public void Shutdown()
    {
        if (_closed.IsCancellationRequested) return;
        // Sends close_notify after an established session, or user_canceled mid-handshake; BouncyCastle ignores errors.
        try
        {
            Transport?.Close();
        }
        catch (IOException)
        {
        }
        _closed.Cancel();
    }

    // ---- DatagramTransport (BouncyCastle's side) ---------------------------------------------------------------------

    // BouncyCastle closing the record layer (after close_notify or a fatal alert): stop reading.
    void TlsCloseable.Close() => _closed.Cancel();

    public int GetReceiveLimit() => ReceiveLimit;

    public int GetSendLimit() => SendLimit;

    public int Receive(byte[] buf, int off, int len, int waitMillis) => Receive(buf.AsSpan(off, len), waitMillis);

    public int Receive(Span<byte> buffer, int waitMillis)
    {
        while (true)
        {
            if (_closed.IsCancellationRequested) throw new IOException("the DTLS session was closed");
            if (_inbox.Reader.TryRead(out var datagram))
            {
                if (datagram.Length > buffer.Length) continue; // larger than the receive limit: dropped
                datagram.CopyTo(buffer);
                return datagram.Length;
            }
            // Established: the pump calls only with datagrams queued, so an empty queue means "nothing more" (no blocking a
            // pool thread). Handshaking: this is the handshake's own thread, which waits as long as BouncyCastle says
            // (0: without limit, until the session closes).
            if (!_handshaking) return -1;
            var wait = _inbox.Reader.WaitToReadAsync(_closed.Token).AsTask();
            try
            {
                if (!wait.Wait(waitMillis == 0 ? Timeout.Infinite : waitMillis)) return -1;
            }
            catch (AggregateException)
            {
                throw new IOException("the DTLS session was closed");
            }
            if (!wait.Result) throw new IOException("the DTLS session was closed");
        }
    }

    public void Send(byte[] buf, int off, int len) => Send(buf.AsSpan(off, len));

    public void Send(ReadOnlySpan<byte> buffer)
    {
        try
        {
            _socket.SendTo(buffer, SocketFlags.None, EndPoint);
        }
        catch (SocketException)
        {
            // UDP: a lost datagram is the peer's to retransmit for.
        }
        catch (ObjectDisposedException)
        {
        }
    }

    // ---- ICoapSender (the dispatcher's side) -------------------------------------------------------------------------

    public ValueTask SendAsync(ReadOnlyMemory<byte> datagram, EndPoint to, CancellationToken ct)
    {
        if (Transport is not { } dtls || Closed) return ValueTask.CompletedTask;
        try
        {
            // BouncyCastle encrypts and writes under its own lock; sending on UDP does not block.
            dtls.Send(datagram.Span);
        }
        catch (IOException)
        {
            _closed.Cancel(); // the session failed; the pump ends it
        }
        return ValueTask.CompletedTask;
    }
}
