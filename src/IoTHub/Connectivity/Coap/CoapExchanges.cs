// Message deduplication (RFC 7252 §4.5): a request's (endpoint, message id) is remembered for EXCHANGE_LIFETIME with
// the response it got, so a retransmitted CON is answered with the same bytes and never processed twice (telemetry is
// stored once). The cache is bounded in memory: past Coap:ExchangeCacheBytes the oldest exchanges go first, so a flood
// of fresh message ids costs a bounded amount of memory, never all of it.
using System.Collections.Concurrent;
using IoTHub.Contracts;
using Microsoft.Extensions.Options;

namespace IoTHub.Connectivity.Coap;

internal sealed class CoapExchanges(IOptions<CoapOptions> options, TimeProvider time)
{
    /// <summary>What a request's message id says about it.</summary>
    public enum Seen
    {
        /// <summary>First time: process it.</summary>
        New,
        /// <summary>Being processed: drop the retransmission (the answer will come).</summary>
        InProgress,
        /// <summary>Answered: send the cached response again.</summary>
        Answered,
    }

    private sealed class Entry(long expiresAt, int size)
    {
        public long ExpiresAt { get; } = expiresAt;
        public int Size = size;
        public volatile byte[]? Response;
        public volatile bool Done;
    }

    private readonly ConcurrentDictionary<(string Peer, ushort Id), Entry> _entries = new();
    private readonly ConcurrentQueue<((string Peer, ushort Id) Key, Entry Entry)> _order = new();
    private long _bytes;

    /// <summary>Entries held now.</summary>
    public int Count => _entries.Count;

    /// <summary>Bytes accounted to the cache now.</summary>
    public long Bytes => Interlocked.Read(ref _bytes);

    public Seen Begin(string peer, ushort messageId, out byte[]? response)
    {
        response = null;
        var now = time.NowMs();
        Trim(now);
        var key = (peer, messageId);
        var entry = new Entry(now + (long)options.Value.ExchangeLifetime.TotalMilliseconds, 96 + peer.Length * 2);
        while (true)
        {
            if (_entries.TryAdd(key, entry))
            {
                _order.Enqueue((key, entry));
                Interlocked.Add(ref _bytes, entry.Size);
                return Seen.New;
            }
            if (!_entries.TryGetValue(key, out var existing)) continue;
            if (existing.ExpiresAt <= now)
            {
                if (_entries.TryRemove(new KeyValuePair<(string, ushort), Entry>(key, existing))) Interlocked.Add(ref _bytes, -existing.Size);
                continue;
            }
            response = existing.Response;
            return existing.Done ? Seen.Answered : Seen.InProgress;
        }
    }

    /// <summary>The request was answered with <paramref name="response"/> (empty: no reply, a NON).</summary>
    public void Complete(string peer, ushort messageId, byte[] response)
    {
        if (!_entries.TryGetValue((peer, messageId), out var e)) return;
        e.Response = response;
        e.Done = true;
        Interlocked.Add(ref e.Size, response.Length);
        Interlocked.Add(ref _bytes, response.Length);
        Trim(time.NowMs());
    }

    /// <summary>Forgets a request that could not be processed, so that its retransmission is tried again.</summary>
    public void Forget(string peer, ushort messageId)
    {
        if (_entries.TryRemove((peer, messageId), out var e)) Interlocked.Add(ref _bytes, -e.Size);
    }

    private void Trim(long now)
    {
        var cap = options.Value.ExchangeCacheBytes;
        while (_order.TryPeek(out var oldest) && (oldest.Entry.ExpiresAt <= now || Interlocked.Read(ref _bytes) > cap))
        {
            if (!_order.TryDequeue(out oldest)) break;
            if (_entries.TryRemove(new KeyValuePair<(string, ushort), Entry>(oldest.Key, oldest.Entry))) Interlocked.Add(ref _bytes, -oldest.Entry.Size);
        }
    }
}
