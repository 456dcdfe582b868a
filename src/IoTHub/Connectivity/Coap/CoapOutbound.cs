// The CON messages the hub sends (separate responses, Observe notifications): each waits for its ACK, retransmitted
// after ACK_TIMEOUT × a random factor in [1, 1.5), doubling, at most MAX_RETRANSMIT times (RFC 7252 §4.2). A Reset or
// no ACK at all means the peer is gone (an observer is then dropped, RFC 7641 §4.5).
using System.Collections.Concurrent;
using Microsoft.Extensions.Options;

namespace IoTHub.Connectivity.Coap;

/// <summary>Sends datagrams to a CoAP peer: the UDP socket, or a DTLS session.</summary>
internal interface ICoapSender
{
    ValueTask SendAsync(ReadOnlyMemory<byte> datagram, System.Net.EndPoint to, CancellationToken ct);
}

/// <summary>Who sent a request: the address, a key naming it in caches (<c>udp:</c> or <c>dtls:</c> and the address), the
/// device a DTLS session authenticated (its PSK identity), and how to answer.</summary>
internal sealed record CoapPeer(System.Net.EndPoint EndPoint, string Key, string? AuthenticatedDevice, ICoapSender Sender)
{
    public string Address => EndPoint is System.Net.IPEndPoint ip ? (ip.Address.IsIPv4MappedToIPv6 ? ip.Address.MapToIPv4() : ip.Address).ToString() : EndPoint.ToString() ?? "";
}

internal sealed class CoapOutbound(IOptions<CoapOptions> options, TimeProvider time)
{
    private readonly ConcurrentDictionary<(string Peer, ushort Id), TaskCompletionSource<bool>> _pending = new();
    private int _nextId = Random.Shared.Next(ushort.MaxValue);

    /// <summary>A fresh message id for a message the hub originates.</summary>
    public ushort NextMessageId() => (ushort)Interlocked.Increment(ref _nextId);

    /// <summary>Sends <paramref name="message"/> as a CON and waits for its ACK; false on Reset or when every
    /// retransmission went unanswered.</summary>
    public async Task<bool> SendConfirmableAsync(CoapPeer peer, CoapMessage message, CancellationToken ct)
    {
        message.Type = CoapType.Confirmable;
        message.MessageId = NextMessageId();
        var bytes = CoapCodec.Encode(message);
        var key = (peer.Key, message.MessageId);
        var answered = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        _pending[key] = answered;
        try
        {
            var o = options.Value;
            var timeout = o.AckTimeout * (1 + Random.Shared.NextDouble() * 0.5);
            for (var attempt = 0; ; attempt++)
            {
                await peer.Sender.SendAsync(bytes, peer.EndPoint, ct);
                if (attempt > 0) CoapMetrics.Retransmissions.Add(1);
                using var wait = CancellationTokenSource.CreateLinkedTokenSource(ct);
                var delay = Task.Delay(timeout, time, wait.Token);
                if (await Task.WhenAny(answered.Task, delay) == answered.Task)
                {
                    await wait.CancelAsync();
                    return await answered.Task; // completed: WhenAny chose it
                }
                if (attempt >= o.MaxRetransmit) return false;
                timeout *= 2;
            }
        }
        finally
        {
            _pending.TryRemove(key, out _);
        }
    }

    /// <summary>An ACK (or a Reset) for a CON the hub sent.</summary>
    public void Answered(string peer, ushort messageId, bool reset)
    {
        if (_pending.TryRemove((peer, messageId), out var waiting)) waiting.TrySetResult(!reset);
    }
}
