// One datagram in, at most one answer out (RFC 7252 §4): format errors in a CON are rejected with Reset (§4.2),
// a CoAP ping (an empty CON) gets a Reset (§4.3), ACKs and Resets go to the CON they answer, a retransmitted request is
// answered from the exchange cache (§4.5), an unrecognised critical option is 4.02 (§5.4.1). A CON request's answer
// rides on its ACK when it is ready within Coap:PiggybackWindow, else an empty ACK goes first and the answer follows
// as a CON of its own (§5.2.2). A NON GET is answered with a NON (§5.2.3); any other NON request is taken without reply.
using IoTHub.Contracts;
using Microsoft.Extensions.Options;

namespace IoTHub.Connectivity.Coap;

internal sealed class CoapDispatcher(CoapResources resources, CoapExchanges exchanges, CoapOutbound outbound, IOptions<CoapOptions> options,
    TimeProvider time, LogThrottle throttle, ILogger<CoapDispatcher> log)
{
    private int _inFlight;

    public async Task HandleAsync(ReadOnlyMemory<byte> datagram, CoapPeer peer, CancellationToken ct)
    {
        var error = CoapCodec.TryDecode(datagram, out var m, out var header);
        if (error != CoapFormatError.None || m is null)
        {
            CoapMetrics.Malformed.Add(1);
            throttle.Write(log, CoapLines.Malformed, peer.Key, peer.Key, error.ToString());
            if (header is { Type: CoapType.Confirmable } h)
            {
                // A request whose header and token were readable learns what was wrong with it; anything else is refused.
                // A known critical option with a value out of its range or a repeat of a non-repeatable one is to be
                // treated as an unrecognized critical option (RFC 7252 §5.4.3, §5.4.5): 4.02. A Block option with SZX 7
                // stays 4.00 (RFC 7959 §2.2 says so).
                var badOption = error is CoapFormatError.OptionValueTooLong or CoapFormatError.OptionRepeated;
                if (h.Code.IsRequest)
                    await ReplyAsync(peer, Piggybacked(h, badOption
                        ? CoapResources.Diagnostic(CoapCode.BadOption, Describe(error))
                        : CoapResources.Diagnostic(CoapCode.BadRequest, $"malformed message: {Describe(error)}")), ct);
                else await ReplyAsync(peer, CoapMessage.Empty(CoapType.Reset, h.MessageId), ct);
            }
            return;
        }
        switch (m.Type)
        {
            case CoapType.Acknowledgement:
            case CoapType.Reset:
                outbound.Answered(peer.Key, m.MessageId, m.Type == CoapType.Reset);
                return;
        }
        if (m.Code.IsEmpty)
        {
            if (m.Type == CoapType.Confirmable) await ReplyAsync(peer, CoapMessage.Empty(CoapType.Reset, m.MessageId), ct); // ping (§4.3)
            return;
        }
        if (!m.Code.IsRequest)
        {
            if (m.Type == CoapType.Confirmable) await ReplyAsync(peer, CoapMessage.Empty(CoapType.Reset, m.MessageId), ct);
            return;
        }
        var con = m.Type == CoapType.Confirmable;
        switch (exchanges.Begin(Exchange(peer, m), m.MessageId, out var cached))
        {
            case CoapExchanges.Seen.Answered:
                CoapMetrics.Duplicates.Add(1);
                if (cached is { Length: > 0 }) await peer.Sender.SendAsync(cached, peer.EndPoint, ct);
                return;
            case CoapExchanges.Seen.InProgress:
                CoapMetrics.Duplicates.Add(1);
                return;
        }
        if (Interlocked.Increment(ref _inFlight) > options.Value.MaxConcurrentRequests)
        {
            Interlocked.Decrement(ref _inFlight);
            exchanges.Forget(Exchange(peer, m), m.MessageId);
            if (con)
            {
                var busy = CoapResources.Diagnostic(CoapCode.ServiceUnavailable, "the hub is busy; try again");
                busy.AddOption(CoapOption.UInt(CoapOptionNumber.MaxAge, 1));
                await ReplyAsync(peer, Piggybacked(m, busy), ct);
            }
            return;
        }
        try
        {
            await ProcessAsync(m, peer, con, ct);
        }
        finally
        {
            Interlocked.Decrement(ref _inFlight);
        }
    }

    private async Task ProcessAsync(CoapMessage m, CoapPeer peer, bool con, CancellationToken ct)
    {
        CoapMessage response;
        var separate = false;
        try
        {
            var work = resources.HandleAsync(m, peer, ct);
            if (con && !work.IsCompleted)
            {
                var window = Task.Delay(options.Value.PiggybackWindow, time, ct);
                if (await Task.WhenAny(work, window) != work)
                {
                    // Tell the client to stop retransmitting; the answer follows as a CON of its own with the same token.
                    separate = true;
                    var ack = CoapCodec.Encode(CoapMessage.Empty(CoapType.Acknowledgement, m.MessageId));
                    exchanges.Complete(Exchange(peer, m), m.MessageId, ack);
                    await peer.Sender.SendAsync(ack, peer.EndPoint, ct);
                }
            }
            response = await work;
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            exchanges.Forget(Exchange(peer, m), m.MessageId);
            return;
        }
        catch (Exception ex)
        {
            log.LogError(ex, "CoAP request {Method} {Path} from {Peer} failed", m.Code, string.Join('/', m.UriPath ?? []), peer.Key);
            response = CoapResources.Diagnostic(CoapCode.InternalServerError, "the hub could not handle the request");
        }
        // A NON with an unrecognized critical option is rejected, not answered (RFC 7252 §5.4.1).
        var answerNon = !con && m.Code == CoapCode.Get && response.Code != CoapCode.BadOption;
        CoapMetrics.Requests.Add(1, new KeyValuePair<string, object?>("code", con || answerNon ? response.Code.ToString() : "none"));
        if (!con)
        {
            if (!answerNon)
            {
                exchanges.Complete(Exchange(peer, m), m.MessageId, []);
                return;
            }
            // A GET exists for its answer: a NON one is answered with a NON (RFC 7252 §5.2.3), which a repeat of the
            // request (same message id) gets again from the exchange cache.
            response.Type = CoapType.NonConfirmable;
            response.MessageId = outbound.NextMessageId();
            response.Token = m.Token;
            var non = CoapCodec.Encode(response);
            exchanges.Complete(Exchange(peer, m), m.MessageId, non);
            await peer.Sender.SendAsync(non, peer.EndPoint, ct);
            return;
        }
        if (!separate)
        {
            var bytes = CoapCodec.Encode(Piggybacked(m, response));
            exchanges.Complete(Exchange(peer, m), m.MessageId, bytes);
            await peer.Sender.SendAsync(bytes, peer.EndPoint, ct);
            return;
        }
        response.Token = m.Token;
        if (!await outbound.SendConfirmableAsync(peer, response, ct))
            throttle.Write(log, CoapLines.Unacknowledged, peer.Key, peer.Key, response.Code.ToString());
    }

    /// <summary>Whose exchange a request is, for deduplication: the peer and the request's token. A retransmission repeats
    /// both (RFC 7252 §4.5); another request that reuses a message id from the same address within EXCHANGE_LIFETIME (a
    /// device rebooted onto the same port, another device behind the same NAT mapping) with another token is processed,
    /// not answered with the cached answer meant for the first.</summary>
    private static string Exchange(CoapPeer peer, CoapMessage m) => m.Token.IsEmpty ? peer.Key : peer.Key + "#" + Convert.ToHexString(m.Token.Span);

    /// <summary>The answer on the request's ACK: same message id and token.</summary>
    private static CoapMessage Piggybacked(CoapMessage request, CoapMessage response)
    {
        response.Type = CoapType.Acknowledgement;
        response.MessageId = request.MessageId;
        response.Token = request.Token;
        return response;
    }

    private static async Task ReplyAsync(CoapPeer peer, CoapMessage message, CancellationToken ct) =>
        await peer.Sender.SendAsync(CoapCodec.Encode(message), peer.EndPoint, ct);

    private static string Describe(CoapFormatError e) => e switch
    {
        CoapFormatError.OptionDeltaReserved => "option delta 15 is reserved (RFC 7252 §3.1)",
        CoapFormatError.OptionLengthReserved => "option length 15 is reserved (RFC 7252 §3.1)",
        CoapFormatError.OptionPastEnd => "an option runs past the end of the message",
        CoapFormatError.EmptyPayloadAfterMarker => "a payload marker with no payload (RFC 7252 §3)",
        CoapFormatError.BadBlock => "a Block option is not valid (RFC 7959 §2.2)",
        CoapFormatError.OptionValueTooLong => "a critical option's value is longer or shorter than its format allows (RFC 7252 §5.10, §5.4.3)",
        CoapFormatError.OptionRepeated => "a critical option that may occur once is repeated (RFC 7252 §5.4.5)",
        _ => e.ToString(),
    };
}

/// <summary>The CoAP server's throttled log lines.</summary>
internal static class CoapLines
{
    public static readonly LogKind<string, string> Malformed = new(LogLevel.Debug, "Malformed CoAP datagrams", "Malformed CoAP datagram from {Peer}: {Error}");
    public static readonly LogKind<string, string> Unacknowledged = new(LogLevel.Information, "Unacknowledged CoAP responses",
        "CoAP peer {Peer} never acknowledged a {Code} response");
}
