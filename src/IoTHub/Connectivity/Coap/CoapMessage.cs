// One CoAP message (RFC 7252 §3) as the codec reads and writes it, with typed accessors for the options the hub uses
// and the factories for responses and Empty messages.
using System.Text;

namespace IoTHub.Connectivity.Coap;

/// <summary>
/// A CoAP message (RFC 7252 §3): header fields, token, options and payload. A message from
/// <see cref="CoapCodec.TryDecode"/> does not copy: its token, option values and payload are slices of the datagram,
/// valid only while that buffer is not reused (copy what must outlive it). Not thread-safe.
/// </summary>
public sealed class CoapMessage
{
    private ReadOnlyMemory<byte> _token;

    /// <summary>An empty CON 0.00 message with no options.</summary>
    public CoapMessage() => Options = [];

    /// <summary>A message whose option list starts with room for <paramref name="optionCapacity"/> options.</summary>
    /// <param name="optionCapacity">Initial capacity of <see cref="Options"/>.</param>
    public CoapMessage(int optionCapacity) => Options = new List<CoapOption>(optionCapacity);

    /// <summary>T: CON, NON, ACK or RST (RFC 7252 §3, §4).</summary>
    public CoapType Type { get; set; }

    /// <summary>The request method or response code (RFC 7252 §3, §5.8, §5.9); 0.00 for an Empty message (§4.1).</summary>
    public CoapCode Code { get; set; }

    /// <summary>The 16-bit Message ID, for deduplication and to match ACK/RST to CON (RFC 7252 §4.4).</summary>
    public ushort MessageId { get; set; }

    /// <summary>The token, 0 to 8 bytes, matching a response to its request (RFC 7252 §3, §5.3.1).</summary>
    /// <exception cref="ArgumentException">Set to more than 8 bytes.</exception>
    public ReadOnlyMemory<byte> Token
    {
        get => _token;
        set => _token = value.Length <= 8 ? value : throw new ArgumentException($"A token has 0 to 8 bytes (RFC 7252 §3), not {value.Length}.", nameof(value));
    }

    /// <summary>The options. Decoded messages have them in ascending number order as on the wire; the encoder writes
    /// them sorted by number, keeping the list order of repeated options (a stable sort), without changing this list.
    /// The helpers below insert at the sorted place.</summary>
    public List<CoapOption> Options { get; }

    /// <summary>The payload: the bytes after the 0xFF marker, empty when there is none (RFC 7252 §3, §5.5).</summary>
    public ReadOnlyMemory<byte> Payload { get; set; }

    /// <summary>Uri-Path segments in order, one per option (RFC 7252 §5.10.1, §6.4); null when there is none.</summary>
    public IReadOnlyList<string>? UriPath => GetStrings(CoapOptionNumber.UriPath);

    /// <summary>Uri-Query arguments in order, one per option (e.g. "k=v") (RFC 7252 §5.10.1); null when there is none.</summary>
    public IReadOnlyList<string>? UriQuery => GetStrings(CoapOptionNumber.UriQuery);

    /// <summary>Location-Path segments of a 2.01 Created (RFC 7252 §5.10.7); null when there is none.</summary>
    public IReadOnlyList<string>? LocationPath => GetStrings(CoapOptionNumber.LocationPath);

    /// <summary>Uri-Host (RFC 7252 §5.10.1); null when absent or of a bad length.</summary>
    public string? UriHost => GetValid(CoapOptionNumber.UriHost) is { } o ? o.AsString() : null;

    /// <summary>Uri-Port (RFC 7252 §5.10.1); null when absent or of a bad length.</summary>
    public int? UriPort => (int?)GetUInt(CoapOptionNumber.UriPort);

    /// <summary>Content-Format of the payload, 0..65535 (RFC 7252 §5.10.3); null when absent or of a bad length (an
    /// elective option that is treated as unrecognized and ignored, §5.4.3). Setting null removes it.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Set outside 0..65535.</exception>
    public int? ContentFormat
    {
        get => (int?)GetUInt(CoapOptionNumber.ContentFormat);
        set => SetUInt16(CoapOptionNumber.ContentFormat, value);
    }

    /// <summary>Accept: the Content-Format the client wants, 0..65535 (RFC 7252 §5.10.4); null when absent. Setting
    /// null removes it.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Set outside 0..65535.</exception>
    public int? Accept
    {
        get => (int?)GetUInt(CoapOptionNumber.Accept);
        set => SetUInt16(CoapOptionNumber.Accept, value);
    }

    /// <summary>Block1 (RFC 7959 §2.1); null when absent, longer than 3 bytes or with SZX 7. Setting null removes it.</summary>
    /// <exception cref="InvalidOperationException">Set to a block whose NUM or SZX is out of range.</exception>
    public CoapBlock? Block1
    {
        get => GetBlock(CoapOptionNumber.Block1);
        set => SetUInt(CoapOptionNumber.Block1, value?.Encode());
    }

    /// <summary>Block2 (RFC 7959 §2.1); null when absent, longer than 3 bytes or with SZX 7. Setting null removes it.</summary>
    /// <exception cref="InvalidOperationException">Set to a block whose NUM or SZX is out of range.</exception>
    public CoapBlock? Block2
    {
        get => GetBlock(CoapOptionNumber.Block2);
        set => SetUInt(CoapOptionNumber.Block2, value?.Encode());
    }

    /// <summary>Observe (RFC 7641 §2): 0 register, 1 deregister in a request; a 24-bit sequence number in a
    /// notification. Null when absent or longer than 3 bytes. Setting null removes it.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Set to 2^24 or more.</exception>
    public uint? Observe
    {
        get => GetUInt(CoapOptionNumber.Observe);
        set
        {
            if (value > 0xFF_FFFF) throw new ArgumentOutOfRangeException(nameof(value), value, "Observe has 0 to 3 bytes (RFC 7641 §2).");
            SetUInt(CoapOptionNumber.Observe, value);
        }
    }

    /// <summary>Size1: the request body size in bytes, or the largest accepted in a 4.13 (RFC 7252 §5.10.9, RFC 7959
    /// §4); null when absent. Setting null removes it.</summary>
    public uint? Size1
    {
        get => GetUInt(CoapOptionNumber.Size1);
        set => SetUInt(CoapOptionNumber.Size1, value);
    }

    /// <summary>Size2: the response body size in bytes (RFC 7959 §4); null when absent. Setting null removes it.</summary>
    public uint? Size2
    {
        get => GetUInt(CoapOptionNumber.Size2);
        set => SetUInt(CoapOptionNumber.Size2, value);
    }

    /// <summary>Max-Age in seconds (RFC 7252 §5.10.5); null when absent (meaning the default of 60 s). Setting null
    /// removes it.</summary>
    public uint? MaxAge
    {
        get => GetUInt(CoapOptionNumber.MaxAge);
        set => SetUInt(CoapOptionNumber.MaxAge, value);
    }

    /// <summary>No-Response: the bit mask of response classes the client does not want (2 = 2.xx, 8 = 4.xx,
    /// 16 = 5.xx) (RFC 7967 §2.1); null when absent or longer than 1 byte.</summary>
    public uint? NoResponse => GetUInt(CoapOptionNumber.NoResponse);

    /// <summary>The first option with <paramref name="number"/>, or null.</summary>
    /// <param name="number">Option number.</param>
    public CoapOption? GetOption(ushort number)
    {
        foreach (var option in Options)
            if (option.Number == number) return option;
        return null;
    }

    /// <summary>True when at least one option has <paramref name="number"/>.</summary>
    /// <param name="number">Option number.</param>
    public bool HasOption(ushort number) => GetOption(number) is not null;

    /// <summary>The first occurrence's uint value (RFC 7252 §3.2), or null when absent or when its length is outside
    /// the option's range (a later occurrence of a non-repeatable option is ignored, §5.4.5).</summary>
    /// <param name="number">Option number.</param>
    public uint? GetUInt(ushort number) => GetValid(number) is { } o && o.TryAsUInt(out var value) ? value : null;

    /// <summary>The UTF-8 values of every occurrence, in order (RFC 7252 §3.2); null when there is none.</summary>
    /// <param name="number">Option number.</param>
    public IReadOnlyList<string>? GetStrings(ushort number)
    {
        List<string>? values = null;
        foreach (var option in Options)
            if (option.Number == number) (values ??= []).Add(option.AsString());
        return values;
    }

    /// <summary>Replaces every occurrence of the option by one with <paramref name="value"/>, inserted at its sorted place.</summary>
    /// <param name="number">Option number.</param>
    /// <param name="value">Raw value bytes (kept, not copied).</param>
    public void SetOption(ushort number, ReadOnlyMemory<byte> value)
    {
        RemoveOption(number);
        AddOption(new CoapOption(number, value));
    }

    /// <summary>Adds an occurrence of the option after those with a number not above it (repeated options keep the
    /// order they are added in).</summary>
    /// <param name="number">Option number.</param>
    /// <param name="value">Raw value bytes (kept, not copied).</param>
    public void AddOption(ushort number, ReadOnlyMemory<byte> value) => AddOption(new CoapOption(number, value));

    /// <summary>Adds <paramref name="option"/> after the options with a number not above its own.</summary>
    /// <param name="option">The option.</param>
    public void AddOption(CoapOption option)
    {
        var at = Options.Count;
        while (at > 0 && Options[at - 1].Number > option.Number) at--;
        Options.Insert(at, option);
    }

    /// <summary>Replaces every occurrence by one uint value in the shortest form (RFC 7252 §3.2).</summary>
    /// <param name="number">Option number.</param>
    /// <param name="value">The value.</param>
    public void SetUIntOption(ushort number, uint value)
    {
        RemoveOption(number);
        AddOption(CoapOption.UInt(number, value));
    }

    /// <summary>Adds an occurrence with a uint value in the shortest form (RFC 7252 §3.2).</summary>
    /// <param name="number">Option number.</param>
    /// <param name="value">The value.</param>
    public void AddUIntOption(ushort number, uint value) => AddOption(CoapOption.UInt(number, value));

    /// <summary>Replaces every occurrence by one UTF-8 string value (RFC 7252 §3.2).</summary>
    /// <param name="number">Option number.</param>
    /// <param name="value">The text.</param>
    public void SetStringOption(ushort number, string value)
    {
        RemoveOption(number);
        AddOption(CoapOption.String(number, value));
    }

    /// <summary>Adds an occurrence with a UTF-8 string value (RFC 7252 §3.2).</summary>
    /// <param name="number">Option number.</param>
    /// <param name="value">The text.</param>
    public void AddStringOption(ushort number, string value) => AddOption(CoapOption.String(number, value));

    /// <summary>Removes every occurrence of the option.</summary>
    /// <param name="number">Option number.</param>
    /// <returns>How many were removed.</returns>
    public int RemoveOption(ushort number) => Options.RemoveAll(o => o.Number == number);

    /// <summary>Replaces the Uri-Path options by the segments of <paramref name="path"/> split at '/' (RFC 7252 §6.4
    /// step 8): "/devices/p-7/telemetry" gives three; a leading '/' is skipped; "" and "/" give none.</summary>
    /// <param name="path">The path, not percent-encoded.</param>
    public void SetUriPath(string path) => SetSegments(CoapOptionNumber.UriPath, path);

    /// <summary>Replaces the Location-Path options by the segments of <paramref name="path"/>, as <see cref="SetUriPath"/>
    /// does (RFC 7252 §5.10.7).</summary>
    /// <param name="path">The path, not percent-encoded.</param>
    public void SetLocationPath(string path) => SetSegments(CoapOptionNumber.LocationPath, path);

    /// <summary>
    /// The number of the first option, in <see cref="Options"/> order, that RFC 7252 says to treat like an unrecognized
    /// option although its number is known: a value length outside the range of §5.10 table 4 (§5.4.3), a Block1/Block2
    /// with SZX 7 (RFC 7959 §2.2), or a second occurrence of a non-repeatable option (§5.4.5). Null when there is none.
    /// <see cref="CoapCodec.TryDecode"/> already fails for such a critical option (OptionValueTooLong, BadBlock,
    /// OptionRepeated); an elective one is left in the message, ignored by the accessors, and reported here for logs.
    /// </summary>
    public ushort? FirstBadOption()
    {
        var seen = 0;
        foreach (var option in Options)
        {
            if (!CoapOptionNumber.IsValidLength(option.Number, option.Value.Length)) return option.Number;
            if (option.Number is CoapOptionNumber.Block1 or CoapOptionNumber.Block2 && !CoapBlock.TryParse(option.AsUInt(), out _)) return option.Number;
            var bit = NonRepeatableBit(option.Number);
            if (bit == 0) continue;
            if ((seen & bit) != 0) return option.Number;
            seen |= bit;
        }
        return null;
    }

    /// <summary>The number of the first critical option (odd number, RFC 7252 §5.4.6) that is not recognized: not
    /// known to <see cref="CoapOptionNumber.IsKnown"/>, or refused by <paramref name="recognized"/> when given (a
    /// server that does not implement, say, If-Match). A CON request with one is answered 4.02 Bad Option; any other
    /// message with one is rejected (§5.4.1). Null when there is none.</summary>
    /// <param name="recognized">Which numbers the caller implements; null means every known number.</param>
    public ushort? FirstUnrecognizedCriticalOption(Func<int, bool>? recognized = null)
    {
        foreach (var option in Options)
            if (CoapOptionNumber.IsCritical(option.Number) && !(recognized ?? CoapOptionNumber.IsKnown)(option.Number)) return option.Number;
        return null;
    }

    /// <summary>
    /// A response to <paramref name="request"/> carrying a copy of its token (RFC 7252 §5.3.2). As a piggybacked
    /// response (type ACK) it takes the request's Message ID (§5.2.1); as a CON or NON (separate response §5.2.2, or
    /// the answer to a NON request §5.2.3) the Message ID is left 0 for the caller to set to a fresh one.
    /// </summary>
    /// <param name="request">The request answered.</param>
    /// <param name="type">ACK, CON or NON.</param>
    /// <param name="code">A response code (class 2, 4 or 5).</param>
    /// <exception cref="ArgumentException">The type is RST (always Empty, use <see cref="Empty"/>) or the code is not
    /// a response code (an Empty ACK is made by <see cref="Empty"/>).</exception>
    public static CoapMessage Response(CoapMessage request, CoapType type, CoapCode code)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (type == CoapType.Reset) throw new ArgumentException("A Reset is always Empty (RFC 7252 §4.2): use CoapMessage.Empty.", nameof(type));
        if (!code.IsResponse) throw new ArgumentException($"{code} is not a response code (RFC 7252 §5.9); an Empty ACK is CoapMessage.Empty.", nameof(code));
        return new CoapMessage
        {
            Type = type,
            Code = code,
            MessageId = type == CoapType.Acknowledgement ? request.MessageId : (ushort)0,
            Token = request.Token.IsEmpty ? ReadOnlyMemory<byte>.Empty : request.Token.ToArray(),
        };
    }

    /// <summary>An Empty message (code 0.00, no token, options or payload, RFC 7252 §4.1): an ACK or RST of the
    /// message <paramref name="messageId"/> (§4.2), or a CON "ping" (§4.3).</summary>
    /// <param name="type">ACK, RST or CON.</param>
    /// <param name="messageId">For ACK and RST the Message ID of the message answered.</param>
    /// <exception cref="ArgumentException">The type is NON, which is never Empty (§4.3).</exception>
    public static CoapMessage Empty(CoapType type, ushort messageId)
    {
        if (type is not (CoapType.Acknowledgement or CoapType.Reset or CoapType.Confirmable))
            throw new ArgumentException($"An Empty message is an ACK, a RST or a CON ping (RFC 7252 §4.1, §4.3), not {type}.", nameof(type));
        return new CoapMessage(0) { Type = type, Code = CoapCode.Empty, MessageId = messageId };
    }

    /// <summary>A one-line summary for logs: type, code, Message ID, token in hex, path, query, payload size,
    /// e.g. "CON 0.02 mid=4660 token=0A0B /devices/p-7/telemetry?k=v 12 B".</summary>
    public override string ToString()
    {
        var text = new StringBuilder();
        text.Append(Type switch { CoapType.Confirmable => "CON", CoapType.NonConfirmable => "NON", CoapType.Acknowledgement => "ACK", CoapType.Reset => "RST", _ => "?" });
        text.Append(' ').Append(Code).Append(" mid=").Append(MessageId);
        if (!Token.IsEmpty) text.Append(" token=").Append(Convert.ToHexString(Token.Span));
        if (UriPath is { } path) text.Append(' ').Append('/').AppendJoin('/', path);
        if (UriQuery is { } query) text.Append('?').AppendJoin('&', query);
        if (!Payload.IsEmpty) text.Append(' ').Append(Payload.Length).Append(" B");
        return text.ToString();
    }

    private CoapOption? GetValid(ushort number) =>
        GetOption(number) is { } o && CoapOptionNumber.IsValidLength(number, o.Value.Length) ? o : null;

    private CoapBlock? GetBlock(ushort number) =>
        GetUInt(number) is { } value && CoapBlock.TryParse(value, out var block) ? block : null;

    private void SetUInt(ushort number, uint? value)
    {
        if (value is { } v) SetUIntOption(number, v);
        else RemoveOption(number);
    }

    private void SetUInt16(ushort number, int? value)
    {
        if (value is < 0 or > ushort.MaxValue) throw new ArgumentOutOfRangeException(nameof(value), value, $"Option {number} holds 0..65535 (2 bytes, RFC 7252 §5.10).");
        SetUInt(number, (uint?)value);
    }

    private void SetSegments(ushort number, string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        RemoveOption(number);
        var rest = path.StartsWith('/') ? path[1..] : path;
        if (rest.Length == 0) return;
        foreach (var segment in rest.Split('/')) AddStringOption(number, segment);
    }

    /// <summary>A bit per known non-repeatable option, 0 for the repeatable and the unknown ones.</summary>
    private static int NonRepeatableBit(ushort number) => number switch
    {
        CoapOptionNumber.UriHost => 1 << 0,
        CoapOptionNumber.IfNoneMatch => 1 << 1,
        CoapOptionNumber.Observe => 1 << 2,
        CoapOptionNumber.UriPort => 1 << 3,
        CoapOptionNumber.ContentFormat => 1 << 4,
        CoapOptionNumber.MaxAge => 1 << 5,
        CoapOptionNumber.Accept => 1 << 6,
        CoapOptionNumber.Block2 => 1 << 7,
        CoapOptionNumber.Block1 => 1 << 8,
        CoapOptionNumber.Size2 => 1 << 9,
        CoapOptionNumber.ProxyUri => 1 << 10,
        CoapOptionNumber.ProxyScheme => 1 << 11,
        CoapOptionNumber.Size1 => 1 << 12,
        CoapOptionNumber.NoResponse => 1 << 13,
        _ => 0,
    };
}
