// Text from clients, made safe for logs and reason strings: cut on a character boundary (never inside a surrogate
// pair, which would make the text unencodable) and with control characters replaced.
namespace IoTHub.Connectivity.Mqtt;

internal static class MqttText
{
    /// <summary>At most <paramref name="max"/> UTF-16 code units of <paramref name="s"/>, never ending in half a surrogate pair.</summary>
    public static string Truncate(string s, int max)
    {
        if (s.Length <= max) return s;
        var cut = max;
        if (cut > 0 && char.IsHighSurrogate(s[cut - 1])) cut--;
        return s[..cut];
    }

    /// <summary>A client-supplied string for a log line: at most 128 characters, control characters as '?'.</summary>
    public static string Printable(string? s) =>
        s is null ? "" : string.Create(Truncate(s, 128).Length, Truncate(s, 128), static (span, t) =>
        {
            for (var i = 0; i < t.Length; i++) span[i] = char.IsControl(t[i]) ? '?' : t[i];
        });
}
