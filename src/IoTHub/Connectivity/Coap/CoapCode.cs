// The two small header fields of a CoAP message (RFC 7252 §3): the message type and the code (class.detail).
namespace IoTHub.Connectivity.Coap;

/// <summary>The 2-bit message type T of the CoAP header (RFC 7252 §3, §4.2, §4.3).</summary>
public enum CoapType : byte
{
    /// <summary>CON: needs an Acknowledgement or a Reset; retransmitted until one arrives (RFC 7252 §4.2).</summary>
    Confirmable = 0,

    /// <summary>NON: no acknowledgement; carries a request or a response, never Empty (RFC 7252 §4.3).</summary>
    NonConfirmable = 1,

    /// <summary>ACK: echoes the Message ID of a CON; Empty or a piggybacked response (RFC 7252 §4.2, §5.2.1).</summary>
    Acknowledgement = 2,

    /// <summary>RST: echoes the Message ID of a message that could not be processed; always Empty (RFC 7252 §4.2).</summary>
    Reset = 3,
}

/// <summary>
/// The 8-bit Code of the CoAP header, written <c>c.dd</c>: a 3-bit class (0 request, 2 success, 4 client error,
/// 5 server error; 1, 6 and 7 are reserved) and a 5-bit detail (RFC 7252 §3, §5.8, §5.9, registry §12.1).
/// 0.00 is the Empty message (§4.1).
/// </summary>
/// <param name="Value">The raw byte: class in the top 3 bits, detail in the low 5 bits.</param>
public readonly record struct CoapCode(byte Value)
{
    /// <summary>The class, 0..7 (the top 3 bits).</summary>
    public int Class => Value >> 5;

    /// <summary>The detail, 0..31 (the low 5 bits).</summary>
    public int Detail => Value & 0x1F;

    /// <summary>True for a method code 0.01..0.31 (RFC 7252 §5.8, §12.1.1).</summary>
    public bool IsRequest => Class == 0 && Detail != 0;

    /// <summary>True for 0.00, the code of an Empty message (RFC 7252 §4.1).</summary>
    public bool IsEmpty => Value == 0;

    /// <summary>True for a response code: class 2 (success), 4 (client error) or 5 (server error) (RFC 7252 §5.9).</summary>
    public bool IsResponse => Class is 2 or 4 or 5;

    /// <summary>True for class 2 (success, RFC 7252 §5.9.1).</summary>
    public bool IsSuccess => Class == 2;

    /// <summary>True for the reserved classes 1, 6 and 7 (RFC 7252 §3, §12.1); a message with one is not a request
    /// and not a response.</summary>
    public bool IsReservedClass => Class is 1 or 6 or 7;

    /// <summary>The code <paramref name="cls"/>.<paramref name="detail"/>.</summary>
    /// <param name="cls">Class, 0..7.</param>
    /// <param name="detail">Detail, 0..31.</param>
    /// <exception cref="ArgumentOutOfRangeException">The class or the detail is out of its range.</exception>
    public static CoapCode Of(int cls, int detail)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(cls);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(cls, 7);
        ArgumentOutOfRangeException.ThrowIfNegative(detail);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(detail, 31);
        return new CoapCode((byte)(cls << 5 | detail));
    }

    /// <summary>The code as RFC 7252 writes it: class, dot, two-digit detail ("2.04", "0.00", "4.15").</summary>
    public override string ToString() => $"{Class}.{Detail:D2}";

    /// <summary>0.00: the Empty message (RFC 7252 §4.1).</summary>
    public static CoapCode Empty { get; } = new(0x00);

    /// <summary>0.01 GET (RFC 7252 §5.8.1).</summary>
    public static CoapCode Get { get; } = new(0x01);

    /// <summary>0.02 POST (RFC 7252 §5.8.2).</summary>
    public static CoapCode Post { get; } = new(0x02);

    /// <summary>0.03 PUT (RFC 7252 §5.8.3).</summary>
    public static CoapCode Put { get; } = new(0x03);

    /// <summary>0.04 DELETE (RFC 7252 §5.8.4).</summary>
    public static CoapCode Delete { get; } = new(0x04);

    /// <summary>2.01 Created (RFC 7252 §5.9.1.1).</summary>
    public static CoapCode Created { get; } = new(2 << 5 | 1);

    /// <summary>2.02 Deleted (RFC 7252 §5.9.1.2).</summary>
    public static CoapCode Deleted { get; } = new(2 << 5 | 2);

    /// <summary>2.03 Valid (RFC 7252 §5.9.1.3).</summary>
    public static CoapCode Valid { get; } = new(2 << 5 | 3);

    /// <summary>2.04 Changed (RFC 7252 §5.9.1.4).</summary>
    public static CoapCode Changed { get; } = new(2 << 5 | 4);

    /// <summary>2.05 Content (RFC 7252 §5.9.1.5).</summary>
    public static CoapCode Content { get; } = new(2 << 5 | 5);

    /// <summary>2.31 Continue: a Block1 block was received, send the next (RFC 7959 §2.9.1).</summary>
    public static CoapCode Continue { get; } = new(2 << 5 | 31);

    /// <summary>4.00 Bad Request (RFC 7252 §5.9.2.1).</summary>
    public static CoapCode BadRequest { get; } = new(4 << 5 | 0);

    /// <summary>4.01 Unauthorized (RFC 7252 §5.9.2.2).</summary>
    public static CoapCode Unauthorized { get; } = new(4 << 5 | 1);

    /// <summary>4.02 Bad Option: an unrecognized or malformed critical option (RFC 7252 §5.9.2.3, §5.4.1).</summary>
    public static CoapCode BadOption { get; } = new(4 << 5 | 2);

    /// <summary>4.03 Forbidden (RFC 7252 §5.9.2.4).</summary>
    public static CoapCode Forbidden { get; } = new(4 << 5 | 3);

    /// <summary>4.04 Not Found (RFC 7252 §5.9.2.5).</summary>
    public static CoapCode NotFound { get; } = new(4 << 5 | 4);

    /// <summary>4.05 Method Not Allowed (RFC 7252 §5.9.2.6).</summary>
    public static CoapCode MethodNotAllowed { get; } = new(4 << 5 | 5);

    /// <summary>4.06 Not Acceptable (RFC 7252 §5.9.2.7).</summary>
    public static CoapCode NotAcceptable { get; } = new(4 << 5 | 6);

    /// <summary>4.08 Request Entity Incomplete: a Block1 block out of sequence (RFC 7959 §2.9.2).</summary>
    public static CoapCode RequestEntityIncomplete { get; } = new(4 << 5 | 8);

    /// <summary>4.12 Precondition Failed (RFC 7252 §5.9.2.8).</summary>
    public static CoapCode PreconditionFailed { get; } = new(4 << 5 | 12);

    /// <summary>4.13 Request Entity Too Large (RFC 7252 §5.9.2.9, RFC 7959 §2.9.3).</summary>
    public static CoapCode RequestEntityTooLarge { get; } = new(4 << 5 | 13);

    /// <summary>4.15 Unsupported Content-Format (RFC 7252 §5.9.2.10).</summary>
    public static CoapCode UnsupportedContentFormat { get; } = new(4 << 5 | 15);

    /// <summary>4.29 Too Many Requests (RFC 8516 §3).</summary>
    public static CoapCode TooManyRequests { get; } = new(4 << 5 | 29);

    /// <summary>5.00 Internal Server Error (RFC 7252 §5.9.3.1).</summary>
    public static CoapCode InternalServerError { get; } = new(5 << 5 | 0);

    /// <summary>5.01 Not Implemented (RFC 7252 §5.9.3.2).</summary>
    public static CoapCode NotImplemented { get; } = new(5 << 5 | 1);

    /// <summary>5.02 Bad Gateway (RFC 7252 §5.9.3.3).</summary>
    public static CoapCode BadGateway { get; } = new(5 << 5 | 2);

    /// <summary>5.03 Service Unavailable (RFC 7252 §5.9.3.4).</summary>
    public static CoapCode ServiceUnavailable { get; } = new(5 << 5 | 3);

    /// <summary>5.04 Gateway Timeout (RFC 7252 §5.9.3.5).</summary>
    public static CoapCode GatewayTimeout { get; } = new(5 << 5 | 4);

    /// <summary>5.05 Proxying Not Supported: the answer to a Proxy-Uri or Proxy-Scheme the server does not serve
    /// (RFC 7252 §5.9.3.6, §5.7.2).</summary>
    public static CoapCode ProxyingNotSupported { get; } = new(5 << 5 | 5);
}
