
namespace IoTHub.Contracts;

/// <summary>The contract's identifier rule (CONTRACT.md, "Identity"): device ids, profile ids, metric names, tags,
/// command names and usernames.</summary>
public static class Identifier
{
    /// <summary>1-64 chars of <c>A-Za-z0-9_.-</c>: device ids and metric names.</summary>
    public static bool IsValid(ReadOnlySpan<char> id)
    {
        if (id.IsEmpty || id.Length > 64) return false;
        foreach (var c in id)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '_' or '.' or '-')) return false;
        }
        return true;
    }

    /// <summary>The same rule on UTF-8 bytes, without decoding them.</summary>
    public static bool IsValidUtf8(ReadOnlySpan<byte> id)
    {
        if (id.IsEmpty || id.Length > 64) return false;
        foreach (var c in id)
        {
            if (!(char.IsAsciiLetterOrDigit((char)c) || c is (byte)'_' or (byte)'.' or (byte)'-')) return false;
        }
        return true;
    }

    /// <summary>The rule in words, for validation messages ("id must be 1-64 characters of ...").</summary>
    public const string Rule = "1-64 characters of A-Z a-z 0-9 _ . -";
}
