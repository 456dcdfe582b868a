// The CoAP message codec (RFC 7252 §3): datagram bytes to CoapMessage and back. Pure and allocation-conscious:
// decoding slices the datagram instead of copying (one message, one option list); encoding writes into a caller's
// span, sorting the options only when they are out of order (into a pooled array).
using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace IoTHub.Connectivity.Coap;

/// <summary>Why a datagram is not a well-formed CoAP message (RFC 7252 §3, §4.1, §5.4).</summary>
public enum CoapFormatError
{
    /// <summary>Well formed.</summary>
    None,

    /// <summary>Under the 4-byte header (no header then), or too short for the token its TKL announces (RFC 7252 §3).</summary>
    TooShort,

    /// <summary>Ver is not 1; such a message is silently ignored (RFC 7252 §3). No header.</summary>
    UnknownVersion,

    /// <summary>TKL is 9..15, reserved (RFC 7252 §3); the header has no token.</summary>
    TokenLengthReserved,

    /// <summary>An option's delta nibble is 15 in a byte that is not the 0xFF payload marker (RFC 7252 §3.1).</summary>
    OptionDeltaReserved,

    /// <summary>An option's length nibble is 15 (RFC 7252 §3.1).</summary>
    OptionLengthReserved,

    /// <summary>An option's extended delta, extended length or value runs past the end of the datagram (RFC 7252 §3.1).</summary>
    OptionPastEnd,

    /// <summary>The 0xFF payload marker ends the datagram: a zero-length payload (RFC 7252 §3).</summary>
    EmptyPayloadAfterMarker,

    /// <summary>Code 0.00 with a token, options or a payload: bytes after the Message ID (RFC 7252 §4.1). The header
    /// has no token.</summary>
    EmptyMessageNotEmpty,

    /// <summary>A known critical option whose value length is outside its range in RFC 7252 §5.10 table 4 (too long or
    /// too short): treated like an unrecognized critical option (§5.4.3, §5.4.1), so a CON request gets 4.02 Bad
    /// Option and any other message is rejected. A known elective option of a bad length does not fail decoding: it is
    /// ignored by the accessors and named by <see cref="CoapMessage.FirstBadOption"/>.</summary>
    OptionValueTooLong,

    /// <summary>A Block1 or Block2 option longer than 3 bytes or with SZX 7 (RFC 7959 §2.2: 4.00 Bad Request in a request).</summary>
    BadBlock,

    /// <summary>The option deltas add up past 65535, the largest option number (RFC 7252 §3.1, §5.4.6).</summary>
    OptionNumberTooLarge,

    /// <summary>A known critical option that is not repeatable occurs twice (Uri-Host, If-None-Match, Uri-Port, Accept,
    /// Block1, Block2, Proxy-Uri, Proxy-Scheme): the second is treated like an unrecognized critical option (RFC 7252
    /// §5.4.5, §5.4.1), so a CON request gets 4.02 Bad Option and any other message is rejected.</summary>
    OptionRepeated,
}

/// <summary>Reads and writes CoAP messages in the UDP binding's format (RFC 7252 §3).</summary>
public static class CoapCodec
{
    /// <summary>The largest option delta or value length the format can express: 65535 + 269 (RFC 7252 §3.1).</summary>
    public const int MaxOptionValueLength = 65535 + 269;

    private const byte PayloadMarker = 0xFF;

    /// <summary>
    /// Decodes one datagram (RFC 7252 §3). Returns <see cref="CoapFormatError.None"/> with the message (then
    /// <paramref name="header"/> is the same object), or the first error found. Errors of the layout (§3, §3.1, §4.1)
    /// are found before errors of option values (§5.4.3, §5.4.5, RFC 7959 §2.2), so a value error means the rest of the
    /// message is well formed.
    /// <para>When the 4 header bytes had version 1, <paramref name="header"/> carries Type, Code and Message ID — and the
    /// Token when it was readable (not for TokenLengthReserved, EmptyMessageNotEmpty, or TooShort with a cut token) — and
    /// no options or payload, so the server can reject a CON with RST (§4.2) or answer 4.02/4.00 where it chooses. It is
    /// null for under 4 bytes and for an unknown version (silently ignored, §3).</para>
    /// <para>Nothing is copied: the message's token, option values and payload are slices of <paramref name="datagram"/>.</para>
    /// </summary>
    /// <param name="datagram">One UDP payload, any length.</param>
    /// <param name="message">The message when the result is None, else null.</param>
    /// <param name="header">See above.</param>
    /// <returns>None, or the reason the datagram is not a valid message. Never throws.</returns>
    public static CoapFormatError TryDecode(ReadOnlyMemory<byte> datagram, out CoapMessage? message, out CoapMessage? header)
    {
        message = null;
        header = null;
        var bytes = datagram.Span;
        if (bytes.Length < 4) return CoapFormatError.TooShort;
        var first = bytes[0];
        if (first >> 6 != 1) return CoapFormatError.UnknownVersion;
        var type = (CoapType)(first >> 4 & 3);
        var tokenLength = first & 0x0F;
        var code = new CoapCode(bytes[1]);
        var messageId = BinaryPrimitives.ReadUInt16BigEndian(bytes[2..]);
        if (tokenLength > 8)
        {
            header = Header(type, code, messageId, default);
            return CoapFormatError.TokenLengthReserved;
        }
        if (code.IsEmpty && (tokenLength != 0 || bytes.Length > 4))
        {
            header = Header(type, code, messageId, default);
            return CoapFormatError.EmptyMessageNotEmpty;
        }
        if (bytes.Length < 4 + tokenLength)
        {
            header = Header(type, code, messageId, default);
            return CoapFormatError.TooShort;
        }
        var token = datagram.Slice(4, tokenLength);

        // First pass: the layout, and how many options there are (the list is then allocated once, at its size).
        var optionsStart = 4 + tokenLength;
        var error = Scan(bytes, optionsStart, out var count, out var payloadStart);
        if (error != CoapFormatError.None)
        {
            header = Header(type, code, messageId, token);
            return error;
        }

        // Second pass: the options, checking the values of the known ones.
        var decoded = new CoapMessage(count) { Type = type, Code = code, MessageId = messageId, Token = token };
        var end = payloadStart < 0 ? bytes.Length : payloadStart - 1;
        var position = optionsStart;
        var number = 0;
        var previous = -1;
        while (position < end)
        {
            ReadOptionHeader(bytes, ref position, out var delta, out var length);
            number += delta;
            var option = new CoapOption((ushort)number, datagram.Slice(position, length));
            position += length;
            error = CheckValue(option, previous);
            if (error != CoapFormatError.None)
            {
                header = Header(type, code, messageId, token);
                return error;
            }
            decoded.Options.Add(option);
            previous = number;
        }
        if (payloadStart >= 0) decoded.Payload = datagram[payloadStart..];
        message = decoded;
        header = decoded;
        return CoapFormatError.None;
    }

    /// <summary>Encodes <paramref name="message"/> into a new array of exactly <see cref="EncodedLength"/> bytes.</summary>
    /// <param name="message">The message; not changed.</param>
    /// <exception cref="ArgumentException">The message cannot be encoded (see <see cref="EncodedLength"/>).</exception>
    public static byte[] Encode(CoapMessage message)
    {
        var bytes = new byte[EncodedLength(message)];
        Encode(message, bytes);
        return bytes;
    }

    /// <summary>
    /// Encodes <paramref name="message"/> into <paramref name="destination"/> (RFC 7252 §3): the header with Ver 1, the
    /// token, the options sorted by number (stable: repeated options keep their list order) with delta and length in
    /// the shortest form (§3.1), then 0xFF and the payload when there is one. Option values are written as given: the
    /// encoder does not check them against §5.10.
    /// </summary>
    /// <param name="message">The message; not changed.</param>
    /// <param name="destination">Where to write; at least <see cref="EncodedLength"/> bytes.</param>
    /// <returns>The number of bytes written.</returns>
    /// <exception cref="ArgumentException">The message cannot be encoded (see <see cref="EncodedLength"/>), or
    /// <paramref name="destination"/> is too small (nothing is then written).</exception>
    public static int Encode(CoapMessage message, Span<byte> destination)
    {
        var length = EncodedLength(message);
        if (destination.Length < length)
            throw new ArgumentException($"The message needs {length} bytes; the destination has {destination.Length}.", nameof(destination));

        var token = message.Token.Span;
        destination[0] = (byte)(1 << 6 | (int)message.Type << 4 | token.Length);
        destination[1] = message.Code.Value;
        BinaryPrimitives.WriteUInt16BigEndian(destination[2..], message.MessageId);
        token.CopyTo(destination[4..]);
        var position = 4 + token.Length;

        var options = SortedOptions(message.Options, out var rented);
        try
        {
            var number = 0;
            foreach (var option in options)
            {
                var delta = option.Number - number;
                var value = option.Value.Span;
                var head = position++;
                var deltaNibble = WriteExtended(destination, ref position, delta);
                var lengthNibble = WriteExtended(destination, ref position, value.Length);
                destination[head] = (byte)(deltaNibble << 4 | lengthNibble);
                value.CopyTo(destination[position..]);
                position += value.Length;
                number = option.Number;
            }
        }
        finally
        {
            if (rented is not null) ArrayPool<CoapOption>.Shared.Return(rented, clearArray: true);
        }

        if (!message.Payload.IsEmpty)
        {
            destination[position++] = PayloadMarker;
            message.Payload.Span.CopyTo(destination[position..]);
            position += message.Payload.Length;
        }
        return position;
    }

    /// <summary>The number of bytes <see cref="Encode(CoapMessage, Span{byte})"/> writes for <paramref name="message"/>.</summary>
    /// <param name="message">The message.</param>
    /// <exception cref="ArgumentException">The type is not 0..3; the token is longer than 8 bytes (RFC 7252 §3); an
    /// option value is longer than 65804 bytes (§3.1); or the code is 0.00 with a token, options or payload (§4.1).
    /// The message names the problem.</exception>
    public static int EncodedLength(CoapMessage message)
    {
        ArgumentNullException.ThrowIfNull(message);
        if ((uint)message.Type > 3) throw new ArgumentException($"Message type {(int)message.Type} is not CON, NON, ACK or RST (RFC 7252 §3).", nameof(message));
        if (message.Token.Length > 8) throw new ArgumentException($"The token has {message.Token.Length} bytes; at most 8 (RFC 7252 §3).", nameof(message));
        if (message.Code.IsEmpty && (!message.Token.IsEmpty || message.Options.Count > 0 || !message.Payload.IsEmpty))
            throw new ArgumentException("An Empty message (code 0.00) has no token, options or payload (RFC 7252 §4.1).", nameof(message));

        var length = 4 + message.Token.Length;
        var sorted = true;
        var previous = 0;
        foreach (var option in message.Options)
        {
            if (option.Value.Length > MaxOptionValueLength)
                throw new ArgumentException($"Option {option.Number} has a {option.Value.Length}-byte value; at most {MaxOptionValueLength} (RFC 7252 §3.1).", nameof(message));
            sorted &= option.Number >= previous;
            previous = option.Number;
            length += 1 + ExtendedLength(option.Value.Length) + option.Value.Length;
        }
        if (sorted)
        {
            var number = 0;
            foreach (var option in message.Options)
            {
                length += ExtendedLength(option.Number - number);
                number = option.Number;
            }
        }
        else
        {
            var options = SortedOptions(message.Options, out var rented);
            var number = 0;
            foreach (var option in options)
            {
                length += ExtendedLength(option.Number - number);
                number = option.Number;
            }
            if (rented is not null) ArrayPool<CoapOption>.Shared.Return(rented, clearArray: true);
        }
        if (!message.Payload.IsEmpty) length += 1 + message.Payload.Length;
        return length;
    }

    /// <summary>Walks the options and the payload marker from <paramref name="start"/>: checks the layout (§3, §3.1)
    /// and counts the options. <paramref name="payloadStart"/> is the first payload byte, or −1 without a payload.</summary>
    private static CoapFormatError Scan(ReadOnlySpan<byte> bytes, int start, out int count, out int payloadStart)
    {
        count = 0;
        payloadStart = -1;
        var position = start;
        var number = 0;
        while (position < bytes.Length)
        {
            var head = bytes[position];
            if (head == PayloadMarker)
            {
                if (position + 1 == bytes.Length) return CoapFormatError.EmptyPayloadAfterMarker;
                payloadStart = position + 1;
                return CoapFormatError.None;
            }
            if (head >> 4 == 15) return CoapFormatError.OptionDeltaReserved;
            if ((head & 0x0F) == 15) return CoapFormatError.OptionLengthReserved;
            position++;
            if (!TryReadExtended(bytes, ref position, head >> 4, out var delta) || !TryReadExtended(bytes, ref position, head & 0x0F, out var length))
                return CoapFormatError.OptionPastEnd;
            number += delta;
            if (number > ushort.MaxValue) return CoapFormatError.OptionNumberTooLarge;
            if (length > bytes.Length - position) return CoapFormatError.OptionPastEnd;
            position += length;
            count++;
        }
        return CoapFormatError.None;
    }

    /// <summary>Reads an option's first byte and extended delta and length; the layout was checked by <see cref="Scan"/>.</summary>
    private static void ReadOptionHeader(ReadOnlySpan<byte> bytes, ref int position, out int delta, out int length)
    {
        var head = bytes[position++];
        TryReadExtended(bytes, ref position, head >> 4, out delta);
        TryReadExtended(bytes, ref position, head & 0x0F, out length);
    }

    /// <summary>A nibble 0..12 is the value; 13 adds one byte (+13), 14 two bytes (+269) (RFC 7252 §3.1).</summary>
    private static bool TryReadExtended(ReadOnlySpan<byte> bytes, ref int position, int nibble, out int value)
    {
        switch (nibble)
        {
            case 13:
                if (position + 1 > bytes.Length) { value = 0; return false; }
                value = bytes[position++] + 13;
                return true;
            case 14:
                if (position + 2 > bytes.Length) { value = 0; return false; }
                value = BinaryPrimitives.ReadUInt16BigEndian(bytes[position..]) + 269;
                position += 2;
                return true;
            default:
                value = nibble;
                return true;
        }
    }

    /// <summary>Writes the extended bytes of a delta or length and returns its nibble (RFC 7252 §3.1).</summary>
    private static int WriteExtended(Span<byte> destination, ref int position, int value)
    {
        if (value < 13) return value;
        if (value < 269)
        {
            destination[position++] = (byte)(value - 13);
            return 13;
        }
        BinaryPrimitives.WriteUInt16BigEndian(destination[position..], (ushort)(value - 269));
        position += 2;
        return 14;
    }

    private static int ExtendedLength(int value) => value < 13 ? 0 : value < 269 ? 1 : 2;

    /// <summary>Value checks of the known options: §5.10 lengths (§5.4.3), Block SZX (RFC 7959 §2.2), repeats
    /// (§5.4.5). Only critical options fail decoding; elective ones are ignored later.</summary>
    private static CoapFormatError CheckValue(CoapOption option, int previous)
    {
        var number = option.Number;
        if (!CoapOptionNumber.IsCritical(number) || !CoapOptionNumber.TryGetValueLength(number, out var min, out var max)) return CoapFormatError.None;
        var isBlock = number is CoapOptionNumber.Block1 or CoapOptionNumber.Block2;
        var length = option.Value.Length;
        if (length < min || length > max) return isBlock ? CoapFormatError.BadBlock : CoapFormatError.OptionValueTooLong;
        if (isBlock && !CoapBlock.TryParse(option.AsUInt(), out _)) return CoapFormatError.BadBlock;
        if (number == previous && !CoapOptionNumber.IsRepeatable(number)) return CoapFormatError.OptionRepeated;
        return CoapFormatError.None;
    }

    /// <summary>The options in ascending number order, stable for equal numbers: the list itself when it is already
    /// sorted, else a pooled copy sorted by insertion (<paramref name="rented"/>, to return to the pool).</summary>
    private static ReadOnlySpan<CoapOption> SortedOptions(List<CoapOption> list, out CoapOption[]? rented)
    {
        var options = CollectionsMarshal.AsSpan(list);
        rented = null;
        var sorted = true;
        for (var i = 1; i < options.Length && sorted; i++) sorted = options[i - 1].Number <= options[i].Number;
        if (sorted) return options;

        rented = ArrayPool<CoapOption>.Shared.Rent(options.Length);
        var copy = rented.AsSpan(0, options.Length);
        if (copy.Length <= 16)
        {
            options.CopyTo(copy);
            for (var i = 1; i < copy.Length; i++)
            {
                var item = copy[i];
                var j = i - 1;
                while (j >= 0 && copy[j].Number > item.Number)
                {
                    copy[j + 1] = copy[j];
                    j--;
                }
                copy[j + 1] = item;
            }
            return copy;
        }

        // Many options: sort (number, list index) keys, which makes the unstable sort stable.
        var keys = ArrayPool<long>.Shared.Rent(options.Length);
        try
        {
            for (var i = 0; i < options.Length; i++) keys[i] = (long)options[i].Number << 32 | (uint)i;
            Array.Sort(keys, 0, options.Length);
            for (var i = 0; i < options.Length; i++) copy[i] = options[(int)(keys[i] & 0xFFFF_FFFF)];
        }
        finally
        {
            ArrayPool<long>.Shared.Return(keys);
        }
        return copy;
    }

    private static CoapMessage Header(CoapType type, CoapCode code, ushort messageId, ReadOnlyMemory<byte> token) =>
        new(0) { Type = type, Code = code, MessageId = messageId, Token = token };
}
