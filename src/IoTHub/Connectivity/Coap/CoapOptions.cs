using System.ComponentModel.DataAnnotations;

namespace IoTHub.Connectivity.Coap;

/// <summary>Section <c>Coap</c>: the CoAP server (RFC 7252) and its transmission parameters (§4.8).</summary>
public sealed class CoapOptions
{
    /// <summary>The configuration section: <c>Coap</c>.</summary>
    public const string SectionName = "Coap";

    /// <summary>UDP port of plain CoAP; 0 disables it. Default 5683 (RFC 7252 §6.1).</summary>
    [Range(0, 65535)]
    public int Port { get; set; } = 5683;

    /// <summary>UDP port of CoAP over DTLS 1.2 with PSK (identity: the device id; key: its token); 0 disables it. Default
    /// 5684 (RFC 7252 §6.2).</summary>
    [Range(0, 65535)]
    public int DtlsPort { get; set; } = 5684;

    /// <summary>DTLS sessions open (or handshaking) at once; a new client past it is not answered. Default 10,000.</summary>
    [Range(1, 1_000_000)]
    public int MaxDtlsSessions { get; set; } = 10_000;

    /// <summary>A DTLS handshake not finished in this time is abandoned. Default 30 s.</summary>
    public TimeSpan DtlsHandshakeTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Address to bind; empty: every address, IPv4 and IPv6.</summary>
    public string Host { get; set; } = "";

    /// <summary>How long a CON request may take before the hub sends an empty ACK and answers later in a separate CON
    /// response (§5.2.2). Default 1 s, below the client's ACK_TIMEOUT (2 s) so that it does not retransmit.</summary>
    public TimeSpan PiggybackWindow { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>ACK_TIMEOUT (§4.8): the first wait for the ACK of a CON the hub sends (separate responses, Observe
    /// notifications); it doubles with each of <see cref="MaxRetransmit"/> retransmissions. Default 2 s.</summary>
    public TimeSpan AckTimeout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>MAX_RETRANSMIT (§4.8). Default 4 (0 to 10).</summary>
    [Range(0, 10)]
    public int MaxRetransmit { get; set; } = 4;

    /// <summary>EXCHANGE_LIFETIME (§4.8.2): how long a request's message id is remembered, so that a retransmission is
    /// answered from the exchange cache and not processed again. Default 247 s.</summary>
    public TimeSpan ExchangeLifetime { get; set; } = TimeSpan.FromSeconds(247);

    /// <summary>Memory the exchange cache may hold (responses and keys), bytes; past it the oldest exchanges are forgotten
    /// first. Default 32 MiB (1 MiB to 4 GiB).</summary>
    [Range(1L << 20, 4L << 30)]
    public long ExchangeCacheBytes { get; set; } = 32L << 20;

    /// <summary>Requests being processed at once; more get <c>5.03</c> with Max-Age 1. Default 10,000.</summary>
    [Range(1, 1_000_000)]
    public int MaxConcurrentRequests { get; set; } = 10_000;

    /// <summary>Block1 uploads being assembled at once (RFC 7959); more get <c>5.03</c>. Default 1,000.</summary>
    [Range(1, 1_000_000)]
    public int MaxBlockUploads { get; set; } = 1_000;

    /// <summary>An unfinished Block1 upload is dropped this long after its last block. Default 60 s.</summary>
    public TimeSpan BlockUploadTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>A CoAP device that neither sends nor observes for this long is offline, and a DTLS session that receives
    /// nothing for this long is closed. Default 5 minutes.</summary>
    public TimeSpan IdleTimeout { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Observations (RFC 7641) held at once; more are answered without the Observe option (not registered).
    /// Default 100,000.</summary>
    [Range(1, 10_000_000)]
    public int MaxObservers { get; set; } = 100_000;
}
