// CoAP over DTLS 1.2 with PSK (RFC 7252 §9.1.3.1; CONTRACT.md: PSK identity = device id, key = device token) on one
// UDP socket (Coap:DtlsPort, 5684). The DTLS itself is BouncyCastle's; this file only moves datagrams:
//  - datagrams are told apart by their source address: each address with a session has its own queue;
//  - an address without a session first goes through BouncyCastle's stateless cookie exchange (DtlsVerifier, RFC 6347
//    §4.2.1): until a ClientHello comes back with the cookie, nothing is kept for it and its only answer is a
//    HelloVerifyRequest (60 bytes, smaller than any ClientHello the verifier accepts), so a spoofed source can neither
//    fill memory nor use the hub to amplify traffic;
//  - BouncyCastle's handshake is blocking, so each handshake runs on a thread of its own (at most MaxHandshakes at
//    once), reading its session's queue with the wait limit BouncyCastle passes;
//  - after the handshake nothing blocks: an async loop per session drains its queue through the DtlsTransport and hands
//    each decrypted datagram to the CoAP dispatcher as from the device the PSK identity named.
// Sessions are bounded in number (Coap:MaxDtlsSessions), in time (handshake timeout; Coap:IdleTimeout without a
// datagram) and in queued datagrams (a full queue drops, as the network would). A device's sessions end when its token is
// rotated, it is disabled or deleted; its next handshake asks for the key again.
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using IoTHub.Contracts;
using Mediator;
using Microsoft.Extensions.Options;
using Org.BouncyCastle.Tls;
using Org.BouncyCastle.Tls.Crypto.Impl.BC;

namespace IoTHub.Connectivity.Coap;

internal sealed class DtlsServer(CoapDispatcher dispatcher, IDeviceAuthenticator devices, IOptions<CoapOptions> options, TimeProvider time,
    LogThrottle throttle, ILogger<DtlsServer> log) : IHostedService
{
    /// <summary>Handshakes in progress at once: each holds a thread while BouncyCastle waits for the peer. More
    /// ClientHellos are dropped (the client retransmits).</summary>
    internal const int MaxHandshakes = 128;

    /// <summary>The cookie secret is replaced this often (RFC 6347 §4.2.1 recommends changing it frequently).</summary>
    private static readonly TimeSpan CookieSecretLifetime = TimeSpan.FromMinutes(10);

    private readonly ConcurrentDictionary<EndPoint, DtlsSession> _sessions = new();
    private readonly SemaphoreSlim _handshakes = new(MaxHandshakes);
    private readonly CancellationTokenSource _stop = new();
    private readonly BcTlsCrypto _crypto = new();
    private DtlsVerifier? _verifier;
    private long _verifierSince;
    private Socket? _socket;
    private Task? _loop;
    private Task? _sweeper;

    /// <summary>The bound UDP port (useful when Coap:DtlsPort asked for an ephemeral one); 0 when disabled.</summary>
    public int Port { get; private set; }

    /// <summary>Sessions open or handshaking now.</summary>
    public int Sessions => _sessions.Count;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        var o = options.Value;
        if (o.DtlsPort == 0) return Task.CompletedTask;
        var address = string.IsNullOrEmpty(o.Host) ? IPAddress.IPv6Any : IPAddress.Parse(o.Host);
        var socket = new Socket(address.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        if (address.AddressFamily == AddressFamily.InterNetworkV6) socket.DualMode = true;
        socket.ReceiveBufferSize = 4 << 20;
        try
        {
            socket.Bind(new IPEndPoint(address, o.DtlsPort));
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.AddressAlreadyInUse)
        {
            socket.Dispose();
            var next = PortSuggestion.After(o.DtlsPort, PortSuggestion.Transport.Udp, [o.Port]);
            throw new StartupProblem($"port {o.DtlsPort} (CoAP over DTLS) is already in use by another program; stop that program or give IoTHub's CoAP over DTLS another port with Coap:DtlsPort (e.g. --Coap:DtlsPort={next} or IOTHUB_Coap__DtlsPort={next}), or 0 to disable it.", e);
        }
        _socket = socket;
        Port = ((IPEndPoint)socket.LocalEndPoint!).Port;
        _loop = Task.Run(() => ReceiveAsync(socket, _stop.Token), CancellationToken.None);
        _sweeper = Task.Run(() => SweepAsync(_stop.Token), CancellationToken.None);
        log.LogInformation("CoAP over DTLS listening on UDP port {Port}", Port);
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
                continue;
            }
            catch (ObjectDisposedException)
            {
                return;
            }
            try
            {
                Route(socket, buffer, received.ReceivedBytes, received.RemoteEndPoint);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // One peer's datagram must never stop the loop that serves every other peer.
                log.LogError(e, "A DTLS datagram from {Peer} could not be handled", received.RemoteEndPoint);
            }
        }
    }

    private void Route(Socket socket, byte[] buffer, int length, EndPoint from)
    {
        var clientHello = IsClientHello(buffer, length);
        if (_sessions.TryGetValue(from, out var session))
        {
            // An established session sees a ClientHello (epoch 0) only when the client restarted on the same address and
            // port (RFC 6347 §4.2.8): once it proves the address with a cookie, the new handshake replaces the session.
            if (!clientHello || session.Handshaking)
            {
                session.Enqueue(buffer.AsSpan(0, length).ToArray());
                return;
            }
        }
        if (!clientHello) return; // not a session's and not a handshake's start: nothing to answer
        var request = Verifier().VerifyRequest(ClientId(from), buffer, 0, length, new ReplySender(socket, from));
        if (request is null)
        {
            CoapMetrics.DtlsHelloVerify.Add(1); // answered with a HelloVerifyRequest, or not a valid ClientHello
            return;
        }
        if (session is not null) Close(session, "the client started a new handshake");
        if (_sessions.Count >= options.Value.MaxDtlsSessions)
        {
            throttle.Write(log, DtlsLines.Full, null, options.Value.MaxDtlsSessions);
            return;
        }
        if (!_handshakes.Wait(0)) return; // the client retransmits its ClientHello
        var fresh = new DtlsSession(this, socket, from);
        if (!_sessions.TryAdd(from, fresh))
        {
            _handshakes.Release();
            return;
        }
        // Its own thread: BouncyCastle blocks in Accept until the handshake ends or times out.
        _ = Task.Factory.StartNew(() => Handshake(fresh, request), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
    }

    /// <summary>A DTLS handshake record (22) of epoch 0 carrying a ClientHello (1): the only thing an unknown address may send.</summary>
    internal static bool IsClientHello(byte[] d, int length) => length >= 13 + 12 && d[0] == 22 && d[3] == 0 && d[4] == 0 && d[13] == 1;

    private static byte[] ClientId(EndPoint from) => System.Text.Encoding.UTF8.GetBytes(from.ToString() ?? "");

    private DtlsVerifier Verifier()
    {
        var now = time.GetTimestamp();
        if (_verifier is null || time.GetElapsedTime(_verifierSince, now) > CookieSecretLifetime)
        {
            // A client between its two ClientHellos at the change gets a fresh HelloVerifyRequest and tries again.
            _verifier = new DtlsVerifier(_crypto);
            _verifierSince = now;
        }
        return _verifier;
    }

    private void Handshake(DtlsSession session, DtlsRequest request)
    {
        try
        {
            var server = new PskServer(_crypto, new DeviceKeys(devices, session, _stop.Token), options.Value.DtlsHandshakeTimeout);
            var transport = new DtlsServerProtocol().Accept(server, session, request);
            session.Established(transport);
        }
        catch (Exception e)
        {
            session.Fail();
            CoapMetrics.DtlsHandshakes.Add(1, new KeyValuePair<string, object?>("outcome", "failed"));
            _sessions.TryRemove(new KeyValuePair<EndPoint, DtlsSession>(session.EndPoint, session));
            throttle.Write(log, DtlsLines.HandshakeFailed, "dtls:" + session.EndPoint, session.EndPoint.ToString() ?? "", Reason(e, session));
            return;
        }
        finally
        {
            _handshakes.Release();
        }
        CoapMetrics.DtlsHandshakes.Add(1, new KeyValuePair<string, object?>("outcome", "ok"));
        log.LogDebug("DTLS session with {Peer} established for device {DeviceId}", session.EndPoint, session.DeviceId);
        _ = Task.Run(() => PumpAsync(session), CancellationToken.None);
    }

    private static string Reason(Exception e, DtlsSession session) => e switch
    {
        _ when session.UnknownIdentity =>
            $"no DTLS key for PSK identity '{SafeText.Escaped(session.PresentedIdentity ?? "", 64)}' (unknown or disabled device, or one created before DTLS support: rotate its token)",
        TlsFatalAlert a => AlertDescription.GetText(a.AlertDescription),
        TlsFatalAlertReceived r => "the client sent the alert " + AlertDescription.GetText(r.AlertDescription),
        TlsTimeoutException => "the handshake timed out (a wrong key looks like this: the client's Finished cannot be decrypted)",
        _ when session.Closed => "the session was closed",
        _ => e.GetType().Name + ": " + e.Message,
    };

    /// <summary>Decrypts what the session's queue holds and dispatches each CoAP datagram; ends with the session.</summary>
    private async Task PumpAsync(DtlsSession session)
    {
        var ct = _stop.Token;
        var plain = new byte[session.Transport!.GetReceiveLimit()];
        var peer = new CoapPeer(session.EndPoint, "dtls:" + session.EndPoint, session.DeviceId, session);
        try
        {
            while (await session.WaitAsync(ct))
            {
                while (session.Pending > 0 && !session.Closed)
                {
                    // The queue is not empty, so BouncyCastle's read returns at once (1 ms only bounds a record it drops).
                    for (var n = session.Transport.Receive(plain, 0, plain.Length, 1); n >= 0; n = session.Transport.ReceivePending(plain, 0, plain.Length))
                        _ = dispatcher.HandleAsync(plain.AsSpan(0, n).ToArray(), peer, ct);
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
        catch (IOException e)
        {
            // The peer closed (close_notify or a fatal alert) or sent something BouncyCastle could not accept.
            log.LogDebug(e, "DTLS session with {Peer} ended", session.EndPoint);
        }
        finally
        {
            Close(session, null);
        }
    }

    /// <summary>Ends a session: close_notify to the peer when it got that far, then forgotten.</summary>
    private void Close(DtlsSession session, string? why)
    {
        if (_sessions.TryRemove(new KeyValuePair<EndPoint, DtlsSession>(session.EndPoint, session)) && why is not null)
            log.LogDebug("DTLS session with {Peer} closed: {Reason}", session.EndPoint, why);
        session.Shutdown();
    }

    /// <summary>Ends the sessions of a device whose credentials changed (rotated token, disabled, deleted).</summary>
    public void CloseDevice(string deviceId)
    {
        foreach (var s in _sessions.Values)
            if (s.DeviceId == deviceId || s.PresentedIdentity == deviceId) Close(s, "the device's credentials were revoked");
    }

    private async Task SweepAsync(CancellationToken ct)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1), time);
        try
        {
            while (await timer.WaitForNextTickAsync(ct))
            {
                var idle = options.Value.IdleTimeout;
                var now = time.GetTimestamp();
                foreach (var s in _sessions.Values)
                    if (!s.Handshaking && time.GetElapsedTime(s.LastHeard, now) > idle) Close(s, "idle");
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    internal long Now() => time.GetTimestamp();

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _stop.CancelAsync();
        foreach (var s in _sessions.Values) Close(s, null);
        _socket?.Dispose();
        if (_loop is not null) await _loop.WaitAsync(cancellationToken);
        if (_sweeper is not null) await _sweeper.WaitAsync(cancellationToken);
    }

    /// <summary>Sends the HelloVerifyRequest straight to the address the ClientHello came from.</summary>
    private sealed class ReplySender(Socket socket, EndPoint to) : DatagramSender
    {
        public int GetSendLimit() => DtlsSession.SendLimit;

        public void Send(byte[] buf, int off, int len) => Send(buf.AsSpan(off, len));

        public void Send(ReadOnlySpan<byte> buffer)
        {
            try
            {
                socket.SendTo(buffer, SocketFlags.None, to);
            }
            catch (SocketException)
            {
                // UDP: a lost HelloVerifyRequest is retransmitted by the client's next ClientHello.
            }
            catch (ObjectDisposedException)
            {
            }
        }
    }

    /// <summary>The PSK side of the handshake: DTLS 1.2 only; the cipher suites of RFC 7252 §9.1.3.1 (PSK with AES-CCM-8)
    /// and BouncyCastle's forward-secret ECDHE-PSK ones.</summary>
    private sealed class PskServer(BcTlsCrypto crypto, TlsPskIdentityManager keys, TimeSpan handshakeTimeout) : PskTlsServer(crypto, keys)
    {
        private static readonly int[] Suites =
        [
            CipherSuite.TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256,
            CipherSuite.TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA256,
            CipherSuite.TLS_ECDHE_PSK_WITH_AES_256_CBC_SHA384,
            CipherSuite.TLS_PSK_WITH_AES_128_GCM_SHA256,
            CipherSuite.TLS_PSK_WITH_AES_256_GCM_SHA384,
            CipherSuite.TLS_PSK_WITH_AES_128_CCM,
            CipherSuite.TLS_PSK_WITH_AES_128_CCM_8,
            CipherSuite.TLS_PSK_WITH_AES_128_CBC_SHA256,
        ];

        protected override ProtocolVersion[] GetSupportedVersions() => ProtocolVersion.DTLSv12.Only();

        protected override int[] GetSupportedCipherSuites() => TlsUtilities.GetSupportedCipherSuites(Crypto, Suites);

        public override int GetHandshakeTimeoutMillis() => (int)handshakeTimeout.TotalMilliseconds;

        // RFC 6347 §4.1.2.7: a record that fails to decrypt is dropped, not fatal (else one forged datagram ends a session).
        public override bool IgnoreCorruptDtlsRecords => true;

        // Alerts are reported by the caller from the exception, throttled; BouncyCastle's own lines would go to stderr.
        public override void NotifyAlertRaised(short alertLevel, short alertDescription, string message, Exception cause)
        {
        }
    }

    /// <summary>PSK identity = device id, key = the device's token (IDeviceAuthenticator.PskAsync); no hint. An identity
    /// without a key (no such device, a disabled one, or not UTF-8) gets a random key, so its handshake fails as a wrong
    /// key's does (RFC 4279 §2: the server "MAY continue the protocol as if the PSK identity existed but the key was
    /// incorrect"): answering unknown_psk_identity at once told anyone which device ids exist.</summary>
    private sealed class DeviceKeys(IDeviceAuthenticator devices, DtlsSession session, CancellationToken ct) : TlsPskIdentityManager
    {
        public byte[]? GetHint() => null;

        public byte[]? GetPsk(byte[] identity)
        {
            string id;
            try
            {
                id = new System.Text.UTF8Encoding(false, true).GetString(identity);
            }
            catch (ArgumentException)
            {
                session.PresentedIdentity = Convert.ToHexString(identity);
                session.UnknownIdentity = true;
                return System.Security.Cryptography.RandomNumberGenerator.GetBytes(32);
            }
            session.PresentedIdentity = id;
            // On the handshake's own thread, which may block.
            var key = devices.PskAsync(id, ct).AsTask().GetAwaiter().GetResult();
            if (key is not null)
            {
                session.DeviceId = id;
                return key;
            }
            session.UnknownIdentity = true;
            return System.Security.Cryptography.RandomNumberGenerator.GetBytes(32);
        }
    }
}

/// <summary>The DTLS server's throttled log lines.</summary>
internal static class DtlsLines
{
    public static readonly LogKind<string, string> HandshakeFailed = new(LogLevel.Information, "Failed DTLS handshakes", "DTLS handshake with {Peer} failed: {Reason}");
    public static readonly LogKind<int> Full = new(LogLevel.Warning, "DTLS sessions at their limit",
        "A DTLS handshake was refused: {Max} sessions are open (Coap:MaxDtlsSessions)");
}

/// <summary>Closes the DTLS sessions of a device whose token was rotated, or that was disabled or deleted.</summary>
internal sealed class CloseDtlsOnRevoke(DtlsServer server) : INotificationHandler<DeviceCredentialsRevoked>, INotificationHandler<DeviceDeleted>
{
    public ValueTask Handle(DeviceCredentialsRevoked n, CancellationToken ct)
    {
        server.CloseDevice(n.DeviceId);
        return ValueTask.CompletedTask;
    }

    public ValueTask Handle(DeviceDeleted n, CancellationToken ct)
    {
        server.CloseDevice(n.DeviceId);
        return ValueTask.CompletedTask;
    }
}
