// The SSRF guard, twice. When an endpoint is created or changed, its URL is checked as written: a literal address or
// "localhost" that is not public is refused there and then (DNS is not asked: its answers change, and a name that is
// public today may point inside tomorrow). At every send the connection itself is checked: the handler's
// ConnectCallback resolves the name and connects only to addresses that pass, so DNS rebinding and names like
// "localhost" or "internal.example.com" cannot reach the hub's network. Proxies are not used: with one, the check
// would see only the proxy's address.
using System.Net;
using System.Net.Sockets;

namespace IoTHub.Webhooks.Network;

/// <summary>The send-time refusal: the name resolved only to addresses the options forbid.</summary>
internal sealed class WebhookTargetRefusedException(string message) : IOException(message);

/// <summary>Checks webhook URLs when they are written and connections when they are made.</summary>
internal static class WebhookTarget
{
    /// <summary>Null when <paramref name="url"/> may be stored; else why not. Absolute http or https only.</summary>
    public static string? CheckUrl(string? url, bool allowPrivateNetworks)
    {
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
            return "url must be an absolute http or https URL";
        if (uri.UserInfo.Length > 0) return "url must not contain credentials";
        if (uri.Fragment.Length > 0) return "url must not contain a fragment";
        if (allowPrivateNetworks) return null;
        var host = uri.IdnHost.TrimEnd('.');
        if (host.Equals("localhost", StringComparison.OrdinalIgnoreCase) || host.EndsWith(".localhost", StringComparison.OrdinalIgnoreCase))
            return "url must not point at localhost (set Webhooks:AllowPrivateNetworks to allow it)";
        if (IPAddress.TryParse(uri.HostNameType == UriHostNameType.IPv6 ? uri.Host.Trim('[', ']') : uri.Host, out var ip)
            && AddressClassifier.IsNonPublic(ip, out var kind))
            return $"url must not point at a {kind} address (set Webhooks:AllowPrivateNetworks to allow it)";
        return null;
    }

    /// <summary>A <see cref="SocketsHttpHandler.ConnectCallback"/> that connects only to addresses the options allow.</summary>
    public static Func<SocketsHttpConnectionContext, CancellationToken, ValueTask<Stream>> Connect(Func<bool> allowPrivateNetworks) => async (context, ct) =>
    {
        var endPoint = context.DnsEndPoint;
        var addresses = IPAddress.TryParse(endPoint.Host, out var literal) ? [literal] : await Dns.GetHostAddressesAsync(endPoint.Host, ct);
        if (!allowPrivateNetworks())
        {
            var refused = addresses.Select(a => (Address: a, NonPublic: AddressClassifier.IsNonPublic(a, out var kind), Kind: kind)).ToList();
            addresses = refused.Where(a => !a.NonPublic).Select(a => a.Address).ToArray();
            if (addresses.Length == 0)
                throw new WebhookTargetRefusedException($"refused: {endPoint.Host} resolves only to non-public addresses ({string.Join(", ", refused.Select(r => $"{r.Address} {r.Kind}"))}); Webhooks:AllowPrivateNetworks is false");
        }
        if (addresses.Length == 0) throw new SocketException((int)SocketError.HostNotFound);
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(addresses, endPoint.Port, ct);
            return new NetworkStream(socket, ownsSocket: true);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    };
}
