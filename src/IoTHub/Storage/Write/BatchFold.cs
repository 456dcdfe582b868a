using IoTHub.Contracts;

namespace IoTHub.Storage.Write;

/// <summary>One batch's new points folded in memory: per resolution a rollup per (series, bucket) for numbers, and
/// each series' latest point of any kind. Used for the rows a store knows it has really inserted, so that the
/// rollups it upserts from this stay equal to a GROUP BY over the raw rows.</summary>
internal sealed class BatchFold
{
    public Dictionary<(long Series, long Bucket), RollupAccumulator>[] Rollups { get; } = [new(), new(), new()];
    public Dictionary<long, TelemetryPoint> Latest { get; } = new();

    public void Clear()
    {
        foreach (var r in Rollups) r.Clear();
        Latest.Clear();
    }

    public void Add(long seriesId, in TelemetryPoint p)
    {
        if (!Latest.TryGetValue(seriesId, out var latest) || ArrivalOrder.AtOrAfter(p.TimestampMs, p.Sequence, latest.TimestampMs, latest.Sequence))
            Latest[seriesId] = p;
        if (p.Kind != ValueKind.Number) return;
        for (var r = 0; r < Rollups.Length; r++)
        {
            ref var acc = ref System.Runtime.InteropServices.CollectionsMarshal.GetValueRefOrAddDefault(Rollups[r], (seriesId, WindowResolution.BucketOf(p.TimestampMs, r)), out _);
            acc.Add(p.TimestampMs, p.Sequence, p.Number);
        }
    }
}

/// <summary>(device, metric) → series id, owned by the single writer; ids from a failed transaction are dropped.</summary>
internal sealed class SeriesCache
{
    private readonly Dictionary<(string, string), long> _committed = new();
    private readonly Dictionary<(string, string), long> _pending = new();
    private readonly System.Collections.Concurrent.ConcurrentQueue<string> _forget = new();

    public bool TryGet(string device, string metric, out long id)
    {
        while (_forget.TryDequeue(out var gone))
        {
            foreach (var key in _committed.Keys.Where(k => k.Item1 == gone).ToList()) _committed.Remove(key);
        }
        return _committed.TryGetValue((device, metric), out id) || _pending.TryGetValue((device, metric), out id);
    }

    public void AddPending(string device, string metric, long id) => _pending[(device, metric)] = id;

    public void Commit()
    {
        foreach (var (key, id) in _pending) _committed[key] = id;
        _pending.Clear();
        if (_committed.Count > 1_000_000) _committed.Clear();
    }

    public void Rollback() => _pending.Clear();

    public void Forget(string device) => _forget.Enqueue(device);
}

internal static class DeadLetterPayload
{
    /// <summary>At most <paramref name="limit"/> bytes of a rejected payload: enough to diagnose, bounded in size, and
    /// for text not cut inside a UTF-8 character (the API then shows it as text, not base64).</summary>
    public static byte[] Cap(ReadOnlyMemory<byte> payload, int limit) => SafeText.Utf8Prefix(payload, limit);
}
