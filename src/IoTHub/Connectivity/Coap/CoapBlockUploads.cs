// Block-wise uploads (RFC 7959 §2.5): a request body in Block1 blocks, assembled in order per endpoint, request URI
// and Request-Tag (RFC 9175 §3: libcoap changes the token from block to block and ties the blocks with a Request-Tag). Each
// block but the last is answered 2.31 Continue; a block that does not follow is 4.08 (§2.9.2); a body past the limit
// is 4.13 with Size1. Bounded: at most Coap:MaxBlockUploads at once, each dropped Coap:BlockUploadTimeout after its
// last block, so a Block1 flood holds a bounded amount of memory.
using System.Collections.Concurrent;
using IoTHub.Contracts;
using Microsoft.Extensions.Options;

namespace IoTHub.Connectivity.Coap;

internal sealed class CoapBlockUploads(IOptions<CoapOptions> options, TimeProvider time)
{
    public enum Outcome { Continue, Complete, Incomplete, TooLarge, Busy }

    public readonly record struct Result(Outcome Outcome, ReadOnlyMemory<byte> Body = default, int SizeExponent = 0);

    private sealed class Upload
    {
        public readonly System.Buffers.ArrayBufferWriter<byte> Body = new();
        public uint Next;
        public int SizeExponent;
        public long LastAt;
    }

    private readonly ConcurrentDictionary<string, Upload> _uploads = new(StringComparer.Ordinal);

    /// <summary>Uploads being assembled now.</summary>
    public int Count => _uploads.Count;

    /// <summary>Adds a block of the body identified by <paramref name="key"/> (endpoint, URI, Request-Tag).</summary>
    public Result Add(string key, CoapBlock block, ReadOnlyMemory<byte> payload, int max)
    {
        var now = time.NowMs();
        Sweep(now);
        if (block.Number == 0)
        {
            if (block.More && _uploads.Count >= options.Value.MaxBlockUploads && !_uploads.ContainsKey(key)) return new(Outcome.Busy);
            if (!block.More)
            {
                _uploads.TryRemove(key, out _);
                return payload.Length > max ? new(Outcome.TooLarge) : new(Outcome.Complete, payload);
            }
            var fresh = new Upload { SizeExponent = block.SizeExponent, LastAt = now };
            _uploads[key] = fresh;
        }
        if (!_uploads.TryGetValue(key, out var upload)) return new(Outcome.Incomplete);
        lock (upload)
        {
            // Blocks of another size than the first are placed by their byte offset (a client may shrink the size, §2.5).
            var expectedOffset = upload.Body.WrittenCount;
            if (block.Offset != expectedOffset)
            {
                if (block.Offset + payload.Length == expectedOffset && block.Number > 0) return new(Outcome.Continue, SizeExponent: block.SizeExponent); // a resent block
                _uploads.TryRemove(key, out _);
                return new(Outcome.Incomplete);
            }
            if (block.More && payload.Length != block.Size)
            {
                _uploads.TryRemove(key, out _);
                return new(Outcome.Incomplete);
            }
            if (upload.Body.WrittenCount + payload.Length > max)
            {
                _uploads.TryRemove(key, out _);
                return new(Outcome.TooLarge);
            }
            System.Buffers.BuffersExtensions.Write(upload.Body, payload.Span);
            upload.LastAt = now;
            upload.Next = block.Number + 1;
            if (block.More) return new(Outcome.Continue, SizeExponent: block.SizeExponent);
            _uploads.TryRemove(key, out _);
            return new(Outcome.Complete, upload.Body.WrittenMemory);
        }
    }

    private long _sweptAt;

    private void Sweep(long now)
    {
        var timeout = (long)options.Value.BlockUploadTimeout.TotalMilliseconds;
        var last = Interlocked.Read(ref _sweptAt);
        if (_uploads.IsEmpty || now - last < 1000 || Interlocked.CompareExchange(ref _sweptAt, now, last) != last) return;
        foreach (var (key, upload) in _uploads)
            if (upload.LastAt + timeout < now) _uploads.TryRemove(key, out _);
    }
}
