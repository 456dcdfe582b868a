// Per-device clock drift: device time minus receive time of each timestamped message, the estimate being the
// median of the last 15 samples, so one replayed or buffered message does not swing it (and a long backfill, which
// does, is not flagged: ClockPolicyRules.IsDrift). Lock-free: samples
// go into a small ring with an interlocked index.
using System.Collections.Concurrent;

namespace IoTHub.Validation;

internal sealed class DeviceClocks
{
    private const int Window = 15;
    private readonly ConcurrentDictionary<string, Samples> _devices = new(StringComparer.Ordinal);

    private sealed class Samples
    {
        public readonly long[] Values = new long[Window];
        public int Next = -1;
        public int Count;
    }

    /// <summary>Records one sample and returns the current estimate.</summary>
    public long Sample(string deviceId, long offsetMs)
    {
        var s = _devices.GetOrAdd(deviceId, static _ => new Samples());
        var i = (int)((uint)Interlocked.Increment(ref s.Next) % Window);
        Volatile.Write(ref s.Values[i], offsetMs);
        if (Volatile.Read(ref s.Count) < Window) Interlocked.Increment(ref s.Count);
        var count = Math.Min(Window, Volatile.Read(ref s.Count));
        Span<long> copy = stackalloc long[Window];
        s.Values.AsSpan(0, count).CopyTo(copy);
        var filled = copy[..count];
        filled.Sort();
        return count % 2 == 1 ? filled[count / 2] : (filled[count / 2 - 1] + filled[count / 2]) / 2;
    }

    public void Forget(string deviceId) => _devices.TryRemove(deviceId, out _);
}
