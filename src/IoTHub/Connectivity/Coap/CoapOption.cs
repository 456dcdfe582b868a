// CoAP options (RFC 7252 §3.1, §5.4, §5.10): the registered numbers with their value length ranges and
// repeatability, the Content-Format numbers the hub uses, one option (number and raw value) and the Block1/Block2
// value (RFC 7959 §2.2).
using System.Buffers.Binary;
using System.Text;

namespace IoTHub.Connectivity.Coap;

/// <summary>
/// Registered option numbers (RFC 7252 §5.10 and §12.2, Observe RFC 7641 §2, Block1/Block2/Size2 RFC 7959 §2.1 and
/// §4, No-Response RFC 7967 §2), whether a number is critical (§5.4.6), and the value length range and repeatability
/// the codec checks for the known ones (§5.4.3, §5.4.5).
/// </summary>
public static class CoapOptionNumber
{
    /// <summary>If-Match (1): opaque, 0-8 bytes, repeatable, critical (RFC 7252 §5.10.8.1).</summary>
    public const ushort IfMatch = 1;

    /// <summary>Uri-Host (3): string, 1-255 bytes, critical (RFC 7252 §5.10.1).</summary>
    public const ushort UriHost = 3;

    /// <summary>ETag (4): opaque, 1-8 bytes, repeatable in requests, elective (RFC 7252 §5.10.6).</summary>
    public const ushort ETag = 4;

    /// <summary>If-None-Match (5): empty (0 bytes), critical (RFC 7252 §5.10.8.2).</summary>
    public const ushort IfNoneMatch = 5;

    /// <summary>Observe (6): uint, 0-3 bytes, elective (RFC 7641 §2).</summary>
    public const ushort Observe = 6;

    /// <summary>Uri-Port (7): uint, 0-2 bytes, critical (RFC 7252 §5.10.1).</summary>
    public const ushort UriPort = 7;

    /// <summary>Location-Path (8): string, 0-255 bytes, repeatable, elective (RFC 7252 §5.10.7).</summary>
    public const ushort LocationPath = 8;

    /// <summary>Uri-Path (11): string, 0-255 bytes, one per path segment (repeatable), critical (RFC 7252 §5.10.1).</summary>
    public const ushort UriPath = 11;

    /// <summary>Content-Format (12): uint, 0-2 bytes, elective (RFC 7252 §5.10.3).</summary>
    public const ushort ContentFormat = 12;

    /// <summary>Max-Age (14): uint seconds, 0-4 bytes, default 60, elective (RFC 7252 §5.10.5).</summary>
    public const ushort MaxAge = 14;

    /// <summary>Uri-Query (15): string, 0-255 bytes, one per query argument (repeatable), critical (RFC 7252 §5.10.1).</summary>
    public const ushort UriQuery = 15;

    /// <summary>Accept (17): uint, 0-2 bytes, critical (RFC 7252 §5.10.4).</summary>
    public const ushort Accept = 17;

    /// <summary>Location-Query (20): string, 0-255 bytes, repeatable, elective (RFC 7252 §5.10.7).</summary>
    public const ushort LocationQuery = 20;

    /// <summary>Block2 (23): uint, 0-3 bytes, critical (RFC 7959 §2.1).</summary>
    public const ushort Block2 = 23;

    /// <summary>Block1 (27): uint, 0-3 bytes, critical (RFC 7959 §2.1).</summary>
    public const ushort Block1 = 27;

    /// <summary>Size2 (28): uint bytes, 0-4 bytes, elective (RFC 7959 §4).</summary>
    public const ushort Size2 = 28;

    /// <summary>Proxy-Uri (35): string, 1-1034 bytes, critical (RFC 7252 §5.10.2).</summary>
    public const ushort ProxyUri = 35;

    /// <summary>Proxy-Scheme (39): string, 1-255 bytes, critical (RFC 7252 §5.10.2).</summary>
    public const ushort ProxyScheme = 39;

    /// <summary>Size1 (60): uint bytes, 0-4 bytes, elective (RFC 7252 §5.10.9, RFC 7959 §4).</summary>
    public const ushort Size1 = 60;

    /// <summary>No-Response (258): uint bit mask of suppressed response classes, 0-1 bytes, elective (RFC 7967 §2).</summary>
    public const ushort NoResponse = 258;

    /// <summary>True for a critical option: an odd number (RFC 7252 §5.4.6). An unrecognized critical option in a CON
    /// request is answered 4.02 Bad Option; in any other message it makes the message rejected (§5.4.1).</summary>
    /// <param name="number">Option number, 0..65535.</param>
    public static bool IsCritical(int number) => (number & 1) == 1;

    /// <summary>True for the option numbers listed on this class (the ones the codec knows the value length of).</summary>
    /// <param name="number">Option number, 0..65535.</param>
    public static bool IsKnown(int number) => TryGetValueLength(number, out _, out _);

    /// <summary>The value length range, in bytes, of a known option (RFC 7252 §5.10 table 4, RFC 7641 §2, RFC 7959
    /// §2.1 and §4, RFC 7967 §2). A value outside it makes the option be treated like an unrecognized one (§5.4.3).</summary>
    /// <param name="number">Option number.</param>
    /// <param name="min">Smallest allowed value length in bytes (0 when the number is unknown).</param>
    /// <param name="max">Largest allowed value length in bytes (0 when the number is unknown).</param>
    /// <returns>False when the number is not one of the known options.</returns>
    public static bool TryGetValueLength(int number, out int min, out int max)
    {
        (min, max) = number switch
        {
            IfMatch => (0, 8),
            UriHost => (1, 255),
            ETag => (1, 8),
            IfNoneMatch => (0, 0),
            Observe => (0, 3),
            UriPort => (0, 2),
            LocationPath => (0, 255),
            UriPath => (0, 255),
            ContentFormat => (0, 2),
            MaxAge => (0, 4),
            UriQuery => (0, 255),
            Accept => (0, 2),
            LocationQuery => (0, 255),
            Block2 => (0, 3),
            Block1 => (0, 3),
            Size2 => (0, 4),
            ProxyUri => (1, 1034),
            ProxyScheme => (1, 255),
            Size1 => (0, 4),
            NoResponse => (0, 1),
            _ => (-1, -1),
        };
        if (min >= 0) return true;
        (min, max) = (0, 0);
        return false;
    }

    /// <summary>True when the option may occur more than once in a message: If-Match, ETag, Location-Path, Uri-Path,
    /// Uri-Query, Location-Query (RFC 7252 §5.10 table 4, column R), and every unknown number (the codec cannot tell).
    /// A repeat of a non-repeatable option is treated like an unrecognized option (§5.4.5).</summary>
    /// <param name="number">Option number.</param>
    public static bool IsRepeatable(int number) => number is IfMatch or ETag or LocationPath or UriPath or UriQuery or LocationQuery || !IsKnown(number);

    /// <summary>True when <paramref name="length"/> bytes is a valid value length for the option; always true for an
    /// unknown number.</summary>
    /// <param name="number">Option number.</param>
    /// <param name="length">Value length in bytes.</param>
    public static bool IsValidLength(int number, int length) => !TryGetValueLength(number, out var min, out var max) || length >= min && length <= max;
}

/// <summary>Content-Format numbers the hub uses (RFC 7252 §12.3; CBOR RFC 7049 §7.4).</summary>
public static class CoapContentFormat
{
    /// <summary>text/plain; charset=utf-8 (0).</summary>
    public const int TextPlain = 0;

    /// <summary>application/link-format (40, RFC 6690).</summary>
    public const int LinkFormat = 40;

    /// <summary>application/octet-stream (42).</summary>
    public const int OctetStream = 42;

    /// <summary>application/json (50).</summary>
    public const int Json = 50;

    /// <summary>application/cbor (60).</summary>
    public const int Cbor = 60;
}

/// <summary>
/// One option of a message: its number and its raw value (RFC 7252 §3.1, §5.4). Equality compares the value bytes, not
/// the memory they live in. A decoded option's value is a slice of the datagram it came from (no copy).
/// </summary>
/// <param name="Number">Option number, 0..65535 (§5.4.6, registry §12.2).</param>
/// <param name="Value">Value bytes, 0..65804 of them on the wire (§3.1); the formats are empty, opaque, uint, string (§3.2).</param>
public readonly record struct CoapOption(ushort Number, ReadOnlyMemory<byte> Value)
{
    /// <summary>The value as a uint option value (RFC 7252 §3.2): big-endian, 0-4 bytes, empty meaning 0; leading zero
    /// bytes are tolerated.</summary>
    /// <exception cref="FormatException">The value is longer than 4 bytes.</exception>
    public uint AsUInt() => TryAsUInt(out var value) ? value : throw new FormatException($"Option {Number} has a {Value.Length}-byte value; a uint value has 0 to 4 bytes (RFC 7252 §3.2).");

    /// <summary>Reads the value as a uint (RFC 7252 §3.2).</summary>
    /// <param name="value">The value, 0 when the option is empty or longer than 4 bytes.</param>
    /// <returns>False when the value is longer than 4 bytes.</returns>
    public bool TryAsUInt(out uint value)
    {
        var bytes = Value.Span;
        value = 0;
        if (bytes.Length > 4) return false;
        foreach (var b in bytes) value = value << 8 | b;
        return true;
    }

    /// <summary>The value as a string option value: UTF-8 (RFC 7252 §3.2); invalid sequences become U+FFFD.</summary>
    public string AsString() => Encoding.UTF8.GetString(Value.Span);

    /// <summary>A uint option in the shortest form (RFC 7252 §3.2): 0 is the empty value, then 1 to 4 big-endian bytes
    /// without leading zeros.</summary>
    /// <param name="number">Option number.</param>
    /// <param name="value">The value.</param>
    public static CoapOption UInt(ushort number, uint value)
    {
        var length = UIntLength(value);
        if (length == 0) return new CoapOption(number, ReadOnlyMemory<byte>.Empty);
        var bytes = new byte[length];
        Span<byte> all = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(all, value);
        all[(4 - length)..].CopyTo(bytes);
        return new CoapOption(number, bytes);
    }

    /// <summary>A string option: the UTF-8 bytes of <paramref name="value"/> (RFC 7252 §3.2).</summary>
    /// <param name="number">Option number.</param>
    /// <param name="value">The text; the caller keeps it within the option's length range (255 bytes for Uri-Path).</param>
    public static CoapOption String(ushort number, string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        return new CoapOption(number, value.Length == 0 ? ReadOnlyMemory<byte>.Empty : Encoding.UTF8.GetBytes(value));
    }

    /// <summary>The number of bytes of the shortest uint encoding of <paramref name="value"/>, 0..4 (RFC 7252 §3.2).</summary>
    /// <param name="value">The value.</param>
    public static int UIntLength(uint value) => value == 0 ? 0 : 4 - System.Numerics.BitOperations.LeadingZeroCount(value) / 8;

    /// <summary>Same number and the same value bytes.</summary>
    /// <param name="other">The other option.</param>
    public bool Equals(CoapOption other) => Number == other.Number && Value.Span.SequenceEqual(other.Value.Span);

    /// <summary>A hash of the number and the value bytes.</summary>
    public override int GetHashCode()
    {
        var hash = new HashCode();
        hash.Add(Number);
        hash.AddBytes(Value.Span);
        return hash.ToHashCode();
    }

    /// <summary>"number=HEX", e.g. "11=74656D70" (for logs and test failures).</summary>
    public override string ToString() => $"{Number}={Convert.ToHexString(Value.Span)}";
}

/// <summary>
/// A Block1 or Block2 option value (RFC 7959 §2.2): the block number NUM (0 up to 2^20 − 1), the More flag M, and the
/// size exponent SZX 0..6 giving a block size of 2^(SZX+4) bytes (16..1024). SZX 7 is reserved: it is a decoding
/// error, answered 4.00 Bad Request in a request (§2.2).
/// </summary>
/// <param name="Number">NUM: the block's index, 0..1,048,575.</param>
/// <param name="More">M: more blocks follow (Block1 in a request, Block2 in a response) (§2.2).</param>
/// <param name="SizeExponent">SZX, 0..6.</param>
public readonly record struct CoapBlock(uint Number, bool More, int SizeExponent)
{
    /// <summary>Largest block number: NUM has up to 20 bits (RFC 7959 §2.2).</summary>
    public const uint MaxNumber = (1u << 20) - 1;

    /// <summary>The block size in bytes: 2^(SZX+4), 16..1024.</summary>
    public int Size => 1 << (SizeExponent + 4);

    /// <summary>The byte offset of the block in the body: NUM × size.</summary>
    public int Offset => (int)(Number * Size);

    /// <summary>Reads a Block option's uint value: NUM = value &gt;&gt; 4, M = bit 3, SZX = the low 3 bits (RFC 7959 §2.2).</summary>
    /// <param name="value">The option value as a uint (at most 3 bytes, so below 2^24).</param>
    /// <param name="block">The block, default when the value is invalid.</param>
    /// <returns>False for SZX 7 (reserved) or a value of 2^24 or more (longer than the 3 bytes a Block value has).</returns>
    public static bool TryParse(uint value, out CoapBlock block)
    {
        block = default;
        if (value > 0xFF_FFFF || (value & 7) == 7) return false;
        block = new CoapBlock(value >> 4, (value & 8) != 0, (int)(value & 7));
        return true;
    }

    /// <summary>The option value: NUM &lt;&lt; 4 | M &lt;&lt; 3 | SZX (RFC 7959 §2.2); put it on the wire with
    /// <see cref="CoapOption.UInt"/> (0 to 3 bytes).</summary>
    /// <exception cref="InvalidOperationException">NUM is above 2^20 − 1 or SZX is outside 0..6.</exception>
    public uint Encode()
    {
        if (Number > MaxNumber) throw new InvalidOperationException($"Block number {Number} does not fit the 20 bits of NUM (RFC 7959 §2.2).");
        if (SizeExponent is < 0 or > 6) throw new InvalidOperationException($"Block SZX {SizeExponent} is outside 0..6 (RFC 7959 §2.2: 7 is reserved).");
        return Number << 4 | (More ? 8u : 0u) | (uint)SizeExponent;
    }

    /// <summary>The SZX of a block size (RFC 7959 §2.2).</summary>
    /// <param name="size">A power of two from 16 to 1024.</param>
    /// <exception cref="ArgumentOutOfRangeException">The size is not a power of two from 16 to 1024.</exception>
    public static int SizeExponentOf(int size) =>
        size is >= 16 and <= 1024 && System.Numerics.BitOperations.IsPow2(size)
            ? System.Numerics.BitOperations.Log2((uint)size) - 4
            : throw new ArgumentOutOfRangeException(nameof(size), size, "A block size is a power of two from 16 to 1024 (RFC 7959 §2.2).");
}
