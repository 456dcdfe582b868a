using System.Net;
using System.Net.Sockets;

namespace IoTHub.Contracts;

/// <summary>The port a start-up failure suggests when a port is already in use: the next one up that the hub's other
/// listeners of the same transport do not use (a suggestion that collides with them would only fail the next start:
/// CoAP's default 5683 + 1 is CoAP over DTLS's default 5684) and that nothing on this machine holds right now.</summary>
public static class PortSuggestion
{
    /// <summary>The transport a port belongs to: TCP and UDP ports are separate spaces (RFC 793, RFC 768).</summary>
    public enum Transport
    {
        /// <summary>TCP: HTTP(S), MQTT, MQTT over TLS.</summary>
        Tcp,

        /// <summary>UDP: CoAP, CoAP over DTLS.</summary>
        Udp,
    }

    /// <summary>The first port after <paramref name="busy"/> (wrapping below 65535 to 1024) that is not in
    /// <paramref name="hubPorts"/> and can be bound on all addresses now; <paramref name="busy"/> + 1 when none of the next
    /// hundred can (the sentence still names the setting).</summary>
    /// <param name="busy">The port that is in use.</param>
    /// <param name="transport">TCP (HTTP, MQTT) or UDP (CoAP, DTLS).</param>
    /// <param name="hubPorts">The hub's other configured ports of the same transport (0 = disabled, ignored).</param>
    public static int After(int busy, Transport transport, IEnumerable<int> hubPorts)
    {
        var taken = hubPorts.Where(p => p > 0).Append(busy).ToHashSet();
        var candidate = busy;
        for (var i = 0; i < 100; i++)
        {
            candidate = candidate >= 65535 ? 1024 : candidate + 1;
            if (!taken.Contains(candidate) && IsFree(candidate, transport)) return candidate;
        }
        return busy < 65535 ? busy + 1 : busy - 1;
    }

    private static bool IsFree(int port, Transport transport)
    {
        try
        {
            using var socket = transport == Transport.Tcp
                ? new Socket(AddressFamily.InterNetworkV6, SocketType.Stream, ProtocolType.Tcp)
                : new Socket(AddressFamily.InterNetworkV6, SocketType.Dgram, ProtocolType.Udp);
            socket.DualMode = true;
            socket.Bind(new IPEndPoint(IPAddress.IPv6Any, port));
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }
}
