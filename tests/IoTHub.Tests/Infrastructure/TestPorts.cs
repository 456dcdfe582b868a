// Every port the tests (and the benchmarks, which link this file) hand to a listener: the hub's, a RabbitMQ node's, a
// placeholder nobody listens on. One allocator for all of them, so no two listeners of one test process are ever given
// the same port. It uses no NUnit.
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;

namespace IoTHub.Testing;

/// <summary>
/// Free loopback ports, each handed out once per process. A port is chosen from 20000-31999, below Linux's ephemeral
/// range (32768-60999) from which the kernel picks the local port of every outgoing connection, so a port handed out
/// here stays free until its listener binds it, and a hub restarted on the same port finds it free again.
/// </summary>
/// <remarks>
/// "Free now" is not enough when fixtures run side by side: two picks may return the same port before either binds
/// it. CI met it three times: one host's CoAP and DTLS servers given the same UDP port; two fixtures' hubs; a RabbitMQ
/// node whose MQTT listener found its port taken (<c>eaddrinuse</c>) because the node chose its ports with an allocator
/// of its own.
/// </remarks>
public static class TestPorts
{
    private const int First = 20_000;
    private const int End = 32_000;

    private static readonly ConcurrentDictionary<int, byte> HandedOut = new();

    /// <summary>A TCP port on loopback that is free now and was never handed out before in this process.</summary>
    public static int Tcp() => TcpRun(1);

    /// <summary>A UDP port on loopback that is free now and was never handed out before in this process.</summary>
    public static int Udp() => UdpRun(1);

    /// <summary>The first of <paramref name="count"/> consecutive TCP ports, each free now and never handed out before
    /// (for specs about "the next port up").</summary>
    public static int TcpRun(int count) => Run(count, port =>
    {
        using var l = new TcpListener(IPAddress.Loopback, port);
        l.Start();
    });

    /// <summary>The first of <paramref name="count"/> consecutive UDP ports, each free now and never handed out before.</summary>
    public static int UdpRun(int count) => Run(count, port =>
    {
        using var u = new UdpClient(new IPEndPoint(IPAddress.Loopback, port));
    });

    private static int Run(int count, Action<int> bind)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        for (var attempt = 0; ; attempt++)
        {
            if (attempt == 1000) throw new InvalidOperationException($"no run of {count} free ports in {First}-{End - 1}");
            var first = Random.Shared.Next(First, End - count);
            var taken = new List<int>(count);
            var ok = true;
            for (var port = first; port < first + count && ok; port++)
            {
                if (!HandedOut.TryAdd(port, 0)) { ok = false; break; }
                taken.Add(port);
                try
                {
                    bind(port);
                }
                catch (SocketException)
                {
                    ok = false; // in use by another program: left marked, so it is not tried again
                    taken.Remove(port);
                }
            }
            if (ok) return first;
            foreach (var port in taken) HandedOut.TryRemove(port, out _); // free and never used: may be handed out later
        }
    }
}
