// The port a "port in use" sentence suggests: following it must not fail the next start.
using System.Net;
using System.Net.Sockets;
using IoTHub.Contracts;
using IoTHub.Tests.Infrastructure;

namespace IoTHub.Tests.Contracts;

public sealed class PortSuggestionSpecs
{
    /// <summary>A port whose next <paramref name="count"/> ports are free on both transports now.</summary>
    private static int PortWithFreeNeighbours(int count)
    {
        for (var attempt = 0; attempt < 50; attempt++)
        {
            var port = HubHost.FreeTcpPort();
            if (port > 65000) continue;
            if (Enumerable.Range(port + 1, count).All(p => Free(p, PortSuggestion.Transport.Tcp) && Free(p, PortSuggestion.Transport.Udp))) return port;
        }
        Assert.Inconclusive("no run of free ports found");
        return 0;
    }

    private static bool Free(int port, PortSuggestion.Transport transport)
    {
        try
        {
            if (transport == PortSuggestion.Transport.Tcp)
            {
                var l = new TcpListener(IPAddress.IPv6Any, port);
                l.Server.DualMode = true;
                l.Start();
                l.Stop();
            }
            else
            {
                using var u = new UdpClient(new IPEndPoint(IPAddress.Any, port));
            }
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    [Test]
    public void The_next_free_port_is_suggested()
    {
        var port = PortWithFreeNeighbours(3);
        Assert.That(PortSuggestion.After(port, PortSuggestion.Transport.Tcp, []), Is.EqualTo(port + 1));
    }

    [Test]
    public void A_port_of_the_hubs_own_is_never_suggested()
    {
        // CoAP's default 5683 + 1 is DTLS's default 5684.
        var port = PortWithFreeNeighbours(3);
        Assert.That(PortSuggestion.After(port, PortSuggestion.Transport.Udp, [port + 1]), Is.EqualTo(port + 2));
        Assert.That(PortSuggestion.After(port, PortSuggestion.Transport.Tcp, [0, port + 1, port + 2]), Is.EqualTo(port + 3));
    }

    [Test]
    public void A_tcp_port_another_program_listens_on_is_skipped()
    {
        var port = PortWithFreeNeighbours(3);
        var other = new TcpListener(IPAddress.Loopback, port + 1);
        other.Start();
        try
        {
            Assert.That(PortSuggestion.After(port, PortSuggestion.Transport.Tcp, []), Is.EqualTo(port + 2));
        }
        finally
        {
            other.Stop();
        }
    }

    [Test]
    public void A_udp_port_another_program_holds_is_skipped()
    {
        var port = PortWithFreeNeighbours(3);
        using var other = new UdpClient(new IPEndPoint(IPAddress.Any, port + 1));
        Assert.That(PortSuggestion.After(port, PortSuggestion.Transport.Udp, []), Is.EqualTo(port + 2));
    }

    [Test]
    public void The_last_port_wraps_to_the_first_unprivileged_one_not_below_1024()
    {
        var suggested = PortSuggestion.After(65535, PortSuggestion.Transport.Tcp, []);
        Assert.That(suggested, Is.InRange(1024, 65534));
    }
}
