// Plain CoAP on a UDP socket (Coap:Port, 5683): receive a datagram, hand it to the dispatcher without waiting (a
// request waits for its commit; the next datagram must not), send answers on the same socket. Bound at start, so a
// port in use stops the hub with one sentence; dual-mode IPv6, so IPv4 peers are served too.
using System.Net;
using System.Net.Sockets;
using IoTHub.Contracts;
using Microsoft.Extensions.Options;

namespace IoTHub.Connectivity.Coap;

internal sealed class CoapServer(CoapDispatcher dispatcher, IOptions<CoapOptions> options, ILogger<CoapServer> log) : IHostedService, ICoapSender
{
    private Socket? _socket;
    private Task? _loop;
    private readonly CancellationTokenSource _stop = new();

    /// <summary>The bound UDP port (useful when Coap:Port asked for an ephemeral one); 0 when disabled.</summary>
    public int Port { get; private set; }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        var o = options.Value;
        if (o.Port == 0) return Task.CompletedTask;
        var address = string.IsNullOrEmpty(o.Host) ? IPAddress.IPv6Any : IPAddress.Parse(o.Host);
        var socket = new Socket(address.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        if (address.AddressFamily == AddressFamily.InterNetworkV6) socket.DualMode = true;
        // A datagram queued behind a slow receive is lost by the kernel: a larger buffer rides out bursts.
        socket.ReceiveBufferSize = 4 << 20;
        try
        {
            socket.Bind(new IPEndPoint(address, o.Port));
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.AddressAlreadyInUse)
        {
            socket.Dispose();
            var next = PortSuggestion.After(o.Port, PortSuggestion.Transport.Udp, [o.DtlsPort]);
            throw new StartupProblem($"port {o.Port} (CoAP) is already in use by another program; stop that program or give IoTHub's CoAP another port with Coap:Port (e.g. --Coap:Port={next} or IOTHUB_Coap__Port={next}), or 0 to disable CoAP.", e);
        }
        _socket = socket;
        Port = ((IPEndPoint)socket.LocalEndPoint!).Port;
        _loop = Task.Run(() => ReceiveAsync(socket, _stop.Token), CancellationToken.None);
        log.LogInformation("CoAP listening on UDP port {Port}", Port);
        return Task.CompletedTask;
    }

    private async Task ReceiveAsync(Socket socket, CancellationToken ct)
    {
        var buffer = GC.AllocateUninitializedArray<byte>(65_536);
        EndPoint any = socket.AddressFamily == AddressFamily.InterNetworkV6 ? new IPEndPoint(IPAddress.IPv6Any, 0) : new IPEndPoint(IPAddress.Any, 0);
        while (!ct.IsCancellationRequested)
        {
            SocketReceiveFromResult received;
            try
            {
                received = await socket.ReceiveFromAsync(buffer, SocketFlags.None, any, ct);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionReset or SocketError.MessageSize)
            {
                continue; // an ICMP "port unreachable" for an earlier send, or a datagram larger than the buffer
            }
            catch (ObjectDisposedException)
            {
                return;
            }
            var datagram = buffer.AsSpan(0, received.ReceivedBytes).ToArray();
            var peer = new CoapPeer(received.RemoteEndPoint, "udp:" + received.RemoteEndPoint, null, this);
            _ = dispatcher.HandleAsync(datagram, peer, ct);
        }
    }

    public async ValueTask SendAsync(ReadOnlyMemory<byte> datagram, EndPoint to, CancellationToken ct)
    {
        if (_socket is not { } socket) return;
        try
        {
            await socket.SendToAsync(datagram, SocketFlags.None, to, ct);
        }
        catch (SocketException e)
        {
            log.LogDebug(e, "Could not send a CoAP datagram to {Peer}", to);
        }
        catch (ObjectDisposedException)
        {
        }
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _stop.CancelAsync();
        _socket?.Dispose();
        if (_loop is not null) await _loop.WaitAsync(cancellationToken);
    }
}
