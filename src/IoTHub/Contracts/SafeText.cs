// Every cut of text the hub makes (reasons, names in reasons, payload previews, log and protocol strings) goes through
// here, so none ends inside a character: a UTF-16 string is never cut between the two halves of a surrogate pair, a
// UTF-8 preview never inside a code point's bytes. Issue #15: a reason that cut a 64th-character emoji in half held a
// lone surrogate, which Npgsql refuses to encode; the writer retried that forever.
using System.Text;

namespace IoTHub.Contracts;

/// <summary>Cutting and cleaning text without splitting a character.</summary>
public static class SafeText
{
    /// <summary>At most <paramref name="maxChars"/> UTF-16 chars of <paramref name="text"/>, one fewer when the cut
    /// would fall inside a surrogate pair, followed by <paramref name="ellipsis"/> when anything was cut.</summary>
    public static string Prefix(string text, int maxChars, string ellipsis = "")
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxChars);
        if (text.Length <= maxChars) return text;
        var end = maxChars;
        if (end > 0 && char.IsHighSurrogate(text[end - 1]) && char.IsLowSurrogate(text[end])) end--;
        return string.Concat(text.AsSpan(0, end), ellipsis);
    }

    /// <summary>The length of the longest prefix of <paramref name="utf8"/> of at most <paramref name="maxBytes"/> bytes
    /// that does not end inside a UTF-8 sequence (for bytes that are not UTF-8 it may end up to 3 bytes earlier).</summary>
    public static int Utf8PrefixLength(ReadOnlySpan<byte> utf8, int maxBytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxBytes);
        if (utf8.Length <= maxBytes) return utf8.Length;
        var end = maxBytes;
        // utf8[end] is the first byte left out: while it continues a sequence (10xxxxxx), the cut is inside that
        // sequence, so step back to its lead byte (a UTF-8 sequence has at most 3 continuation bytes).
        for (var steps = 0; steps < 3 && end > 0 && (utf8[end] & 0xC0) == 0x80; steps++) end--;
        return end;
    }

    /// <summary>A copy of at most <paramref name="maxBytes"/> bytes of <paramref name="bytes"/>, not ending inside a UTF-8
    /// sequence.</summary>
    public static byte[] Utf8Prefix(ReadOnlyMemory<byte> bytes, int maxBytes) => bytes[..Utf8PrefixLength(bytes.Span, maxBytes)].ToArray();

    /// <summary>Text every store and protocol accepts: a lone surrogate and U+0000 (which PostgreSQL's text cannot hold)
    /// become U+FFFD; anything else is unchanged.</summary>
    public static string Storable(string text)
    {
        var i = 0;
        for (; i < text.Length; i++)
        {
            if (NeedsReplacing(text, i, out var pair)) break;
            if (pair) i++;
        }
        if (i == text.Length) return text;
        var sb = new StringBuilder(text.Length);
        sb.Append(text, 0, i);
        for (; i < text.Length; i++)
        {
            if (NeedsReplacing(text, i, out var pair)) sb.Append('\uFFFD');
            else if (pair) { sb.Append(text, i, 2); i++; }
            else sb.Append(text[i]);
        }
        return sb.ToString();
    }

    private static bool NeedsReplacing(string text, int i, out bool pair)
    {
        pair = false;
        var c = text[i];
        if (c == '\0') return true;
        if (char.IsHighSurrogate(c))
        {
            pair = i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]);
            return !pair;
        }
        return char.IsLowSurrogate(c);
    }

    /// <summary>Printable ASCII only, at most <paramref name="maxChars"/> long: other characters as <c>\uXXXX</c> (never
    /// cut inside one), a cut marked with "..." after the limit. For text whose characters cannot be trusted at all.</summary>
    public static string Escaped(string text, int maxChars)
    {
        var sb = new StringBuilder(Math.Min(text.Length, maxChars) + 1);
        foreach (var c in text)
        {
            var piece = c is >= ' ' and <= '~' ? 1 : 6;
            if (sb.Length + piece > maxChars) return sb.Append("...").ToString();
            if (piece == 1) sb.Append(c);
            else sb.Append("\\u").Append(((int)c).ToString("X4", System.Globalization.CultureInfo.InvariantCulture));
        }
        return sb.ToString();
    }
}
