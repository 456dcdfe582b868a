using System.Diagnostics.Metrics;
using IoTHub.Contracts;

namespace IoTHub.Connectivity.Coap;

/// <summary>The CoAP server's counters on <c>/metrics</c>.</summary>
internal static class CoapMetrics
{
    /// <summary>Requests answered (or taken, for NON), by response code.</summary>
    public static readonly Counter<long> Requests = HubMeter.Meter.CreateCounter<long>("iothub_coap_requests_total",
        description: "CoAP requests handled, by response code (\"none\" for a NON request taken without reply)");

    /// <summary>Requests whose message id was seen within EXCHANGE_LIFETIME: answered from the cache, not processed.</summary>
    public static readonly Counter<long> Duplicates = HubMeter.Meter.CreateCounter<long>("iothub_coap_duplicates_total",
        description: "CoAP requests recognised as retransmissions (same endpoint and message id) and answered from the exchange cache");

    /// <summary>CON messages the hub sent again for lack of an ACK.</summary>
    public static readonly Counter<long> Retransmissions = HubMeter.Meter.CreateCounter<long>("iothub_coap_retransmissions_total",
        description: "CON messages (separate responses, Observe notifications) the hub retransmitted for lack of an ACK");

    /// <summary>Datagrams that are not CoAP messages (RFC 7252 §3 format errors).</summary>
    public static readonly Counter<long> Malformed = HubMeter.Meter.CreateCounter<long>("iothub_coap_malformed_total",
        description: "Datagrams on the CoAP port that are not well-formed CoAP messages");

    /// <summary>DTLS handshakes that ended, by outcome: <c>ok</c> or <c>failed</c>.</summary>
    public static readonly Counter<long> DtlsHandshakes = HubMeter.Meter.CreateCounter<long>("iothub_coap_dtls_handshakes_total",
        description: "DTLS handshakes on the CoAP over DTLS port that ended, by outcome (ok, failed)");

    /// <summary>ClientHellos answered with a HelloVerifyRequest or dropped (no valid cookie yet): cost the hub no state.</summary>
    public static readonly Counter<long> DtlsHelloVerify = HubMeter.Meter.CreateCounter<long>("iothub_coap_dtls_cookie_challenges_total",
        description: "ClientHellos on the CoAP over DTLS port without a valid cookie (answered with a HelloVerifyRequest, no state kept)");
}
