// Which addresses a webhook may not reach unless Webhooks:AllowPrivateNetworks is true: everything that is not the
// public internet. A webhook URL is chosen by an admin, but an SSRF door would let anyone who can set one probe the
// hub's own network (the database, cloud metadata at 169.254.169.254, admin interfaces on localhost).
using System.Net;
using System.Net.Sockets;

namespace IoTHub.Webhooks.Network;

/// <summary>Tells public addresses from loopback, link-local, private, CGNAT, unspecified, multicast and broadcast ones.</summary>
internal static class AddressClassifier
{
    /// <summary>True for an address a webhook must not reach by default, with a word on what it is in <paramref name="kind"/>.</summary>
    public static bool IsNonPublic(IPAddress address, out string kind)
    {
        if (address.IsIPv4MappedToIPv6) address = address.MapToIPv4();
        kind = "";
        if (address.AddressFamily == AddressFamily.InterNetwork)
        {
            Span<byte> b = stackalloc byte[4];
            address.TryWriteBytes(b, out _);
            kind = b[0] switch
            {
                0 => "unspecified (0.0.0.0/8)",
                10 => "private (10.0.0.0/8)",
                127 => "loopback",
                100 when (b[1] & 0xC0) == 64 => "shared address space (100.64.0.0/10, CGNAT)",
                169 when b[1] == 254 => "link-local (169.254.0.0/16)",
                172 when (b[1] & 0xF0) == 16 => "private (172.16.0.0/12)",
                192 when b[1] == 168 => "private (192.168.0.0/16)",
                192 when b[1] == 0 && b[2] == 0 => "IETF protocol assignments (192.0.0.0/24)",
                198 when (b[1] & 0xFE) == 18 => "benchmarking (198.18.0.0/15)",
                >= 224 and <= 239 => "multicast",
                >= 240 => "reserved (240.0.0.0/4, broadcast)",
                _ => "",
            };
            return kind.Length > 0;
        }
        if (address.AddressFamily == AddressFamily.InterNetworkV6)
        {
            Span<byte> b = stackalloc byte[16];
            address.TryWriteBytes(b, out _);
            if (address.Equals(IPAddress.IPv6Loopback)) kind = "loopback";
            else if (address.Equals(IPAddress.IPv6None)) kind = "unspecified";
            else if (address.IsIPv6Multicast) kind = "multicast";
            else if (address.IsIPv6LinkLocal) kind = "link-local (fe80::/10)";
            else if (address.IsIPv6SiteLocal) kind = "site-local (fec0::/10)";
            else if ((b[0] & 0xFE) == 0xFC) kind = "unique local (fc00::/7)";
            else if (IsEmbeddedIPv4(b, out var v4) && IsNonPublic(v4, out var inner)) kind = "IPv4-embedded " + inner;
            return kind.Length > 0;
        }
        kind = "not an IP address";
        return true;
    }

    /// <summary>IPv4-compatible (::a.b.c.d), NAT64 (64:ff9b::/96) and 6to4 (2002::/16) addresses carry an IPv4 address
    /// that routes may lead to; it is judged as that address.</summary>
    private static bool IsEmbeddedIPv4(ReadOnlySpan<byte> b, out IPAddress v4)
    {
        v4 = IPAddress.None;
        if (b[..12].IndexOfAnyExcept((byte)0) < 0) { v4 = new IPAddress(b[12..]); return true; }
        if (b[0] == 0 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b && b[4..12].IndexOfAnyExcept((byte)0) < 0) { v4 = new IPAddress(b[12..]); return true; }
        if (b[0] == 0x20 && b[1] == 0x02) { v4 = new IPAddress(b[2..6]); return true; }
        return false;
    }
}
