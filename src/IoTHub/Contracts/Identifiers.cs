
namespace IoTHub.Contracts;

/// <summary>The contract's identifier rule (CONTRACT.md, "Identity"): device ids, profile ids, metric names, tags,
/// command names and usernames.</summary>
public static class Identifier
{
    /// <summary>1-64 chars of <c>A-Za-z0-9_.-</c>, not only dots: device ids and metric names. An id of dots alone is
    /// refused because ids are path segments of the API and the web UI, where <c>.</c> and <c>..</c> are dot-segments
    /// that every client and server removes (RFC 3986 §5.2.4, also when written <c>%2E</c>): such a device could be
    /// made but never read, disabled, rotated or deleted.</summary>
    public static bool IsValid(ReadOnlySpan<char> id)
    {
        if (id.IsEmpty || id.Length > 64) return false;
        var onlyDots = true;
        foreach (var c in id)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '_' or '.' or '-')) return false;
            onlyDots &= c == '.';
        }
        return !onlyDots;
    }

    /// <summary>The same rule on UTF-8 bytes, without decoding them.</summary>
    public static bool IsValidUtf8(ReadOnlySpan<byte> id)
    {
        if (id.IsEmpty || id.Length > 64) return false;
        var onlyDots = true;
        foreach (var c in id)
        {
            if (!(char.IsAsciiLetterOrDigit((char)c) || c is (byte)'_' or (byte)'.' or (byte)'-')) return false;
            onlyDots &= c == (byte)'.';
        }
        return !onlyDots;
    }

    /// <summary>The rule in words, for validation messages ("id must be 1-64 characters of ...").</summary>
    public const string Rule = "1-64 characters of A-Z a-z 0-9 _ . -, not only dots";
}
