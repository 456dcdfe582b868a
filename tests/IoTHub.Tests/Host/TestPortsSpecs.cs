// The tests' one port allocator (TestPorts): CI's fourth port race was a RabbitMQ node that chose its ports with an
// allocator of its own and found its MQTT port taken by a hub beside it (eaddrinuse).
using System.Net;
using System.Net.Sockets;
using IoTHub.Testing;

namespace IoTHub.Tests.Host;

public sealed class TestPortsSpecs
{
    [Test]
    public void Ports_asked_for_side_by_side_are_never_the_same_across_tcp_udp_and_runs()
    {
        var ports = new System.Collections.Concurrent.ConcurrentBag<int>();
        Parallel.For(0, 150, new ParallelOptions { MaxDegreeOfParallelism = 8 }, i =>
        {
            switch (i % 3)
            {
                case 0: ports.Add(TestPorts.Tcp()); break;
                case 1: ports.Add(TestPorts.Udp()); break;
                default:
                    var first = TestPorts.TcpRun(3);
                    for (var port = first; port < first + 3; port++) ports.Add(port);
                    break;
            }
        });
        Assert.That(ports, Has.Count.EqualTo(250));
        Assert.That(ports, Is.Unique);
        Assert.That(ports, Has.All.InRange(20_000, 32_767), "below the kernel's ephemeral range, which outgoing connections use");
    }

    [Test]
    public void A_run_is_consecutive_ports_that_are_all_free()
    {
        var first = TestPorts.TcpRun(4);
        var listeners = Enumerable.Range(first, 4).Select(port => new TcpListener(IPAddress.Loopback, port)).ToList();
        try
        {
            Assert.That(() => listeners.ForEach(l => l.Start()), Throws.Nothing);
        }
        finally
        {
            listeners.ForEach(l => l.Dispose());
        }
    }
}
