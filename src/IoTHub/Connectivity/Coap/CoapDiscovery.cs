// CoAP resource discovery (RFC 7252 §7.2, RFC 6690): GET /.well-known/core answers the resources of the device asking, in
// CoRE Link Format (Content-Format 40). Every IoTHub resource is under a device id, and a device may only reach its own,
// so the answer names the device the request is authenticated as: the DTLS session's PSK identity, or the device of the
// ?token= query (an IoTHub addition; RFC 6690 leaves who sees which links to the server). Links whose URI holds a value
// the device learns later (a command id, a firmware artifact id) are not listed; the notifications name them.
using System.Text;

namespace IoTHub.Connectivity.Coap;

/// <summary>The links of one device's resources and the RFC 6690 §4.1 query filter over them.</summary>
public static class CoapDiscovery
{
    /// <summary>One link: its path (without the leading slash) and its attributes as written in link-format, value-less
    /// attributes (<c>obs</c>) with a null value.</summary>
    public sealed record Link(string Path, IReadOnlyList<(string Name, string? Value)> Attributes);

    /// <summary>The resource types (<c>rt</c>, RFC 6690 §3.1) IoTHub gives its resources.</summary>
    public static class ResourceTypes
    {
        /// <summary>POST readings: JSON or CBOR telemetry.</summary>
        public const string Telemetry = "iothub.telemetry";
        /// <summary>GET (Observe) the desired state.</summary>
        public const string DesiredState = "iothub.state.desired";
        /// <summary>POST a JSON merge patch of the reported state.</summary>
        public const string ReportedState = "iothub.state.reported";
        /// <summary>GET (Observe) commands sent to the device.</summary>
        public const string Commands = "iothub.commands";
        /// <summary>GET (Observe) the firmware update the device should install.</summary>
        public const string PendingFirmware = "iothub.firmware.pending";
        /// <summary>POST firmware update progress.</summary>
        public const string FirmwareProgress = "iothub.firmware.progress";
    }

    /// <summary>The links of <paramref name="deviceId"/>'s resources (an id of <c>A-Za-z0-9_.-</c>, which needs no
    /// percent-encoding in a path), as the CoAP device API serves them.</summary>
    public static IReadOnlyList<Link> LinksOf(string deviceId)
    {
        var json = CoapContentFormat.Json.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var jsonOrCbor = $"\"{json} {CoapContentFormat.Cbor}\"";
        Link Of(string resource, string rt, string ct, bool observable) =>
            new($"devices/{deviceId}/{resource}", observable
                ? [("rt", $"\"{rt}\""), ("ct", ct), ("obs", null)]
                : [("rt", $"\"{rt}\""), ("ct", ct)]);
        return
        [
            Of("telemetry", ResourceTypes.Telemetry, jsonOrCbor, false),
            Of("state/desired", ResourceTypes.DesiredState, json, true),
            Of("state/reported", ResourceTypes.ReportedState, json, false),
            Of("commands", ResourceTypes.Commands, json, true),
            Of("firmware/pending", ResourceTypes.PendingFirmware, json, true),
            Of("firmware/progress", ResourceTypes.FirmwareProgress, json, false),
        ];
    }

    /// <summary>The links that pass every filter (RFC 6690 §4.1: <c>name=pattern</c>, a pattern ending in <c>*</c> matches
    /// by prefix; <c>href</c> matches the link's URI, with or without its leading slash; <c>rt</c>, <c>if</c> and
    /// <c>rel</c>, and a quoted <c>ct</c>, hold space-separated values, any one of which may match; an attribute without a
    /// value, as <c>obs</c>, matches an empty pattern). Several filters must all match. A filter of a name the links do not
    /// carry matches nothing.</summary>
    public static IEnumerable<Link> Filter(IEnumerable<Link> links, IReadOnlyList<(string Name, string Pattern)> filters) =>
        links.Where(link => filters.All(f => Matches(link, f.Name, f.Pattern)));

    private static bool Matches(Link link, string name, string pattern)
    {
        var prefix = pattern.EndsWith('*');
        if (prefix) pattern = pattern[..^1];
        if (name == "href") return Match("/" + link.Path, pattern.StartsWith('/') ? pattern : "/" + pattern, prefix);
        foreach (var (attribute, value) in link.Attributes)
        {
            if (attribute != name) continue;
            if (value is null) return pattern.Length == 0;
            var quoted = value.Length >= 2 && value[0] == '"' && value[^1] == '"';
            var text = quoted ? value[1..^1] : value;
            if (quoted ? text.Split(' ').Any(v => Match(v, pattern, prefix)) : Match(text, pattern, prefix)) return true;
        }
        return false;
    }

    private static bool Match(string text, string pattern, bool prefix) =>
        prefix ? text.StartsWith(pattern, StringComparison.Ordinal) : text.Equals(pattern, StringComparison.Ordinal);

    /// <summary>The links in link-format (RFC 6690 §2): <c>&lt;/path&gt;;name=value;…</c>, separated by commas, UTF-8.</summary>
    public static byte[] Format(IEnumerable<Link> links)
    {
        var text = new StringBuilder();
        foreach (var link in links)
        {
            if (text.Length > 0) text.Append(',');
            text.Append("</").Append(link.Path).Append('>');
            foreach (var (name, value) in link.Attributes)
            {
                text.Append(';').Append(name);
                if (value is not null) text.Append('=').Append(value);
            }
        }
        return Encoding.UTF8.GetBytes(text.ToString());
    }

    /// <summary>The filters of a discovery request's Uri-Query options (<c>name=pattern</c>; an option without <c>=</c>
    /// is a name with an empty pattern), leaving out <paramref name="except"/> (the <c>token</c> a device authenticates
    /// with).</summary>
    public static IReadOnlyList<(string Name, string Pattern)> FiltersOf(IReadOnlyList<string>? query, string except)
    {
        var filters = new List<(string, string)>();
        foreach (var q in query ?? [])
        {
            var eq = q.IndexOf('=');
            var (name, pattern) = eq < 0 ? (q, "") : (q[..eq], q[(eq + 1)..]);
            if (name != except) filters.Add((name, pattern));
        }
        return filters;
    }
}
