// How the UI says times, clock drift, addresses and HTTP results to a person: "2 min ago", "−3.3 s", "127.0.0.1:5000",
// "403 Forbidden". Invariant culture throughout, so a page reads the same on every server.
using System.Globalization;
using System.Net;
using Microsoft.AspNetCore.WebUtilities;

namespace IoTHub.Web.Components;

internal static class HumanFormat
{
    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

    /// <summary>"just now", "42 s ago", "2 min ago", "5 h ago", "3 d ago"; beyond 30 days the date.</summary>
    public static string Ago(DateTimeOffset at, DateTimeOffset now)
    {
        var age = now - at;
        if (age < TimeSpan.Zero)
        {
            // The hub's own times are never ahead of it; a device's may be (its clock drifts).
            return age > TimeSpan.FromSeconds(-5) ? "just now" : "in " + Span(-age);
        }
        if (age < TimeSpan.FromSeconds(5)) return "just now";
        if (age >= TimeSpan.FromDays(30)) return at.ToLocalTime().ToString("yyyy-MM-dd", Invariant);
        return Span(age) + " ago";
    }

    /// <summary>Whole units, rounded down: "42 s", "2 min", "5 h", "3 d".</summary>
    private static string Span(TimeSpan span) => span switch
    {
        { TotalSeconds: < 60 } => $"{(int)span.TotalSeconds} s",
        { TotalMinutes: < 60 } => $"{(int)span.TotalMinutes} min",
        { TotalHours: < 24 } => $"{(int)span.TotalHours} h",
        _ => $"{(int)span.TotalDays} d",
    };

    /// <summary>The full local time with its offset, for a title beside a relative time.</summary>
    public static string Absolute(DateTimeOffset at) => at.ToLocalTime().ToString("yyyy-MM-dd HH:mm:ss 'UTC'zzz", Invariant);

    /// <summary>A device's clock drift (device time minus hub time) with its sign: "+850 ms", "−3.3 s", "+12 min", "−2 h".</summary>
    public static string Drift(long ms)
    {
        if (ms == 0) return "0 ms";
        var sign = ms < 0 ? "\u2212" : "+"; // a real minus sign, as typeset
        var a = Math.Abs((double)ms);
        var text = a switch
        {
            < 1_000 => $"{a.ToString("0", Invariant)} ms",
            < 59_950 => $"{(a / 1_000).ToString("0.#", Invariant)} s",
            < 3_597_000 => $"{(a / 60_000).ToString("0.#", Invariant)} min",
            < 86_220_000 => $"{(a / 3_600_000).ToString("0.#", Invariant)} h",
            _ => $"{(a / 86_400_000).ToString("0.#", Invariant)} d",
        };
        return sign + text;
    }

    /// <summary>What a drift means, for its title.</summary>
    public static string DriftMeaning(long ms) => ms switch
    {
        < 0 => $"The device's clock is {Drift(ms)[1..]} behind the hub's.",
        > 0 => $"The device's clock is {Drift(ms)[1..]} ahead of the hub's.",
        _ => "The device's clock agrees with the hub's.",
    };

    /// <summary>
    /// A remote address as a person reads it: an IPv4 client of a dual-stack listener arrives as an IPv4-mapped IPv6
    /// address (<c>[::ffff:127.0.0.1]:5000</c>, RFC 4291 §2.5.5.2) and is shown as the IPv4 address it is
    /// (<c>127.0.0.1:5000</c>). Anything that is not an address is shown as it came.
    /// </summary>
    public static string Address(string? remote)
    {
        if (string.IsNullOrWhiteSpace(remote)) return "–";
        var text = remote.Trim();
        string host = text, port = "";
        if (text.StartsWith('['))
        {
            var close = text.IndexOf(']', StringComparison.Ordinal);
            if (close < 0) return text;
            host = text[1..close];
            port = text[(close + 1)..].TrimStart(':');
        }
        else if (text.Count(c => c == ':') == 1)
        {
            var colon = text.IndexOf(':', StringComparison.Ordinal);
            host = text[..colon];
            port = text[(colon + 1)..];
        }
        if (!IPAddress.TryParse(host, out var ip)) return text;
        if (ip.IsIPv4MappedToIPv6) ip = ip.MapToIPv4();
        var shown = ip.ToString();
        if (port.Length == 0) return shown;
        return ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{shown}]:{port}" : $"{shown}:{port}";
    }

    /// <summary>A size in binary units as people read them: "512 B", "1.5 KiB", "12.3 MiB", "1 GiB".</summary>
    public static string Bytes(long bytes)
    {
        if (bytes < 1024) return $"{bytes.ToString(Invariant)} B";
        string[] units = ["KiB", "MiB", "GiB", "TiB"];
        var value = bytes / 1024.0;
        var unit = 0;
        while (value >= 1023.5 && unit < units.Length - 1) // 1023.6 KiB would round to "1024 KiB"
        {
            value /= 1024;
            unit++;
        }
        return $"{value.ToString(value < 10 ? "0.##" : value < 100 ? "0.#" : "0", Invariant)} {units[unit]}";
    }

    /// <summary>A duration in seconds in its largest whole-ish unit: "0 s", "45 s", "10 min", "1.5 h", "2 d".</summary>
    public static string Seconds(long seconds) => seconds switch
    {
        < 60 => $"{seconds.ToString(Invariant)} s",
        < 3_600 => $"{(seconds / 60.0).ToString("0.#", Invariant)} min",
        < 86_400 => $"{(seconds / 3_600.0).ToString("0.#", Invariant)} h",
        _ => $"{(seconds / 86_400.0).ToString("0.#", Invariant)} d",
    };

    /// <summary>An HTTP status with its reason phrase (RFC 9110 §15): "200 OK", "403 Forbidden".</summary>
    public static string HttpStatus(int status) =>
        ReasonPhrases.GetReasonPhrase(status) is { Length: > 0 } phrase ? $"{status} {phrase}" : status.ToString(Invariant);

    /// <summary>At most <paramref name="max"/> characters, the cut marked with an ellipsis and never inside a character.</summary>
    public static string Shorten(string? text, int max) =>
        text is null ? "" : text.Length <= max ? text : IoTHub.Contracts.SafeText.Prefix(text, max - 1).TrimEnd() + "…";
}
