// Devices that send telemetry over CoAP (RFC 7252): each a CON POST to devices/{id}/telemetry?token=..., one at a time,
// waiting for its 2.04 (piggybacked, or an empty ACK and then a separate CON response, which it acknowledges), with
// the RFC's retransmission (ACK_TIMEOUT 2 s × [1, 1.5), doubling, 4 times) under the same message id, so that the hub
// stores a retransmitted message once. All devices share one UDP socket; answers are matched by message id and token.
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace IoTHub.Simulator;

internal static class CoapLoad
{
    private sealed class Exchange(ushort messageId, uint token)
    {
        public ushort MessageId { get; } = messageId;
        public uint Token { get; } = token;
        public readonly TaskCompletionSource<int> Done = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public volatile bool Acked;
    }

    public static async Task<LoadResult> RunAsync(IReadOnlyList<SimDevice> devices, LoadOptions o, LoadResult result, CancellationToken ct)
    {
        var addresses = await Dns.GetHostAddressesAsync(o.CoapHost ?? o.HttpBase?.Host ?? "localhost", ct);
        var hub = new IPEndPoint(addresses.OrderBy(a => a.AddressFamily == AddressFamily.InterNetwork ? 0 : 1).First(), o.CoapPort);
        using var socket = new Socket(hub.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        socket.Bind(new IPEndPoint(hub.AddressFamily == AddressFamily.InterNetwork ? IPAddress.Any : IPAddress.IPv6Any, 0));
        var byId = new ConcurrentDictionary<ushort, Exchange>();
        var byToken = new ConcurrentDictionary<uint, Exchange>();
        var stopwatch = Stopwatch.StartNew();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        stop.CancelAfter(o.Duration);
        o.Started?.Invoke();
        var receiving = ReceiveAsync(socket, hub, byId, byToken, stop.Token);
        var reporting = LoadGenerator.ReportProgressAsync(o, result, stopwatch, null, devices.Count, () => 0, stop.Token);
        var nextId = Random.Shared.Next(ushort.MaxValue);
        var nextToken = (uint)Random.Shared.Next();
        var perDevice = new List<double>[devices.Count];
        var tasks = Enumerable.Range(0, devices.Count).Select(i => Task.Run(async () =>
        {
            var latencies = perDevice[i] = new List<double>(256);
            var payloads = new PayloadFactory(o.Model, i, o.Fault);
            var interval = o.RatePerDevice > 0 ? TimeSpan.FromSeconds(1 / o.RatePerDevice) : TimeSpan.Zero;
            while (!stop.IsCancellationRequested)
            {
                var exchange = new Exchange((ushort)Interlocked.Increment(ref nextId), Interlocked.Increment(ref nextToken));
                byId[exchange.MessageId] = exchange;
                byToken[exchange.Token] = exchange;
                var datagram = Post(exchange, devices[i], payloads.Next(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()));
                var started = Stopwatch.GetTimestamp();
                Interlocked.Increment(ref result.Sent);
                var code = await SendAsync(socket, hub, datagram, exchange, stop.Token);
                byId.TryRemove(exchange.MessageId, out _);
                byToken.TryRemove(exchange.Token, out _);
                if (code < 0 && stop.IsCancellationRequested) break; // the run ended while it waited: neither acked nor failed
                if (code == 0x44) // 2.04
                {
                    result.CountAck(i);
                    latencies.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
                }
                else Interlocked.Increment(ref result.Failed);
                if (interval > TimeSpan.Zero)
                {
                    try { await Task.Delay(interval, stop.Token); } catch (OperationCanceledException) { break; }
                }
            }
        }, CancellationToken.None)).ToArray();
        await Task.WhenAll(tasks);
        result.Elapsed = stopwatch.Elapsed;
        await reporting;
        try { await receiving; } catch (OperationCanceledException) { }
        foreach (var l in perDevice) if (l is not null) result.LatenciesMs.AddRange(l);
        return result;
    }

    /// <summary>Sends the CON and retransmits it until it is answered; the response code, or -1.</summary>
    private static async Task<int> SendAsync(Socket socket, EndPoint hub, byte[] datagram, Exchange exchange, CancellationToken ct)
    {
        var timeout = TimeSpan.FromSeconds(2 * (1 + Random.Shared.NextDouble() * 0.5));
        for (var attempt = 0; attempt <= 4; attempt++)
        {
            if (!exchange.Acked) await socket.SendToAsync(datagram, SocketFlags.None, hub, ct);
            try
            {
                return await exchange.Done.Task.WaitAsync(exchange.Acked ? TimeSpan.FromSeconds(60) : timeout, ct);
            }
            catch (TimeoutException)
            {
                if (exchange.Acked) return -1;
                timeout *= 2;
            }
            catch (OperationCanceledException)
            {
                return -1;
            }
        }
        return -1;
    }

    private static async Task ReceiveAsync(Socket socket, EndPoint hub, ConcurrentDictionary<ushort, Exchange> byId, ConcurrentDictionary<uint, Exchange> byToken,
        CancellationToken ct)
    {
        var buffer = new byte[2048];
        while (!ct.IsCancellationRequested)
        {
            SocketReceiveFromResult r;
            try { r = await socket.ReceiveFromAsync(buffer, SocketFlags.None, hub, ct); }
            catch (OperationCanceledException) { return; }
            catch (SocketException) { continue; }
            if (r.ReceivedBytes < 4) continue;
            var type = (buffer[0] >> 4) & 3;
            var tokenLength = buffer[0] & 0x0F;
            var code = buffer[1];
            var id = (ushort)((buffer[2] << 8) | buffer[3]);
            var token = tokenLength == 4 && r.ReceivedBytes >= 8 ? (uint)((buffer[4] << 24) | (buffer[5] << 16) | (buffer[6] << 8) | buffer[7]) : 0;
            if (type == 2 && byId.TryGetValue(id, out var e)) // ACK: piggybacked answer, or empty (the answer follows)
            {
                if (code == 0) e.Acked = true;
                else e.Done.TrySetResult(code);
            }
            else if (type == 0 && code != 0) // a separate response as a CON: acknowledge it, then take it
            {
                await socket.SendToAsync(new byte[] { 0x60, 0x00, buffer[2], buffer[3] }, SocketFlags.None, r.RemoteEndPoint, ct);
                if (byToken.TryGetValue(token, out var separate)) separate.Done.TrySetResult(code);
            }
            else if (type == 3 && byId.TryGetValue(id, out var reset)) reset.Done.TrySetResult(-1);
        }
    }

    /// <summary>A CON POST devices/{id}/telemetry?token=... with Content-Format 50 (JSON) and a 4-byte token (RFC 7252 §3).</summary>
    internal static byte[] Post(ushort messageId, uint token, string deviceId, string deviceToken, byte[] payload) =>
        Post(new Exchange(messageId, token), new SimDevice(deviceId, deviceToken), payload);

    private static byte[] Post(Exchange e, SimDevice device, byte[] payload)
    {
        var m = new List<byte>(64 + payload.Length)
        {
            0x44, 0x02, (byte)(e.MessageId >> 8), (byte)e.MessageId,
            (byte)(e.Token >> 24), (byte)(e.Token >> 16), (byte)(e.Token >> 8), (byte)e.Token,
        };
        var last = 0;
        void Option(int number, byte[] value)
        {
            var delta = number - last;
            last = number;
            var (dn, dx) = Nibble(delta);
            var (ln, lx) = Nibble(value.Length);
            m.Add((byte)((dn << 4) | ln));
            m.AddRange(dx);
            m.AddRange(lx);
            m.AddRange(value);
        }
        Option(11, "devices"u8.ToArray());
        Option(11, Encoding.UTF8.GetBytes(device.Id));
        Option(11, "telemetry"u8.ToArray());
        Option(12, [50]);
        Option(15, Encoding.UTF8.GetBytes("token=" + device.Token));
        m.Add(0xFF);
        m.AddRange(payload);
        return m.ToArray();

        static (int, byte[]) Nibble(int v) => v < 13 ? (v, []) : v < 269 ? (13, [(byte)(v - 13)]) : (14, [(byte)((v - 269) >> 8), (byte)(v - 269)]);
    }
}
