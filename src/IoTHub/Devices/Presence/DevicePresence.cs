// Presence: online while at least one connection is up; lastSeen advanced by every message. The per-message
// part is lock-free (a volatile write on an existing entry) and reaches the database in a periodic flush.
using System.Collections.Concurrent;
using IoTHub.Contracts;

namespace IoTHub.Devices.Presence;

internal sealed class DevicePresence : IDevicePresence, IDeviceClock
{
    private readonly ConcurrentDictionary<string, Entry> _entries = new(StringComparer.Ordinal);

    internal sealed class Entry
    {
        public long LastSeen;
        public long Flushed;
        public int Connections;
        public long DriftMs;
        public int DriftFlagged = -1; // -1: no estimate yet
        public long DriftFlushedMs = long.MinValue;
    }

    public void Drift(string deviceId, long driftMs, bool flagged)
    {
        var e = _entries.GetOrAdd(deviceId, static _ => new Entry());
        Volatile.Write(ref e.DriftMs, driftMs);
        Volatile.Write(ref e.DriftFlagged, flagged ? 1 : 0);
    }

    public (long DriftMs, bool Flagged)? Clock(string deviceId) =>
        _entries.TryGetValue(deviceId, out var e) && Volatile.Read(ref e.DriftFlagged) >= 0 ? (Volatile.Read(ref e.DriftMs), e.DriftFlagged == 1) : null;

    /// <summary>A flush failed: these devices are written again at the next one.</summary>
    public void Unflush(IEnumerable<(string DeviceId, long LastSeen)> devices)
    {
        foreach (var (id, _) in devices)
            if (_entries.TryGetValue(id, out var e)) e.Flushed = 0;
    }

    /// <summary>A flush failed: these devices' drift is written again at the next one.</summary>
    public void UnflushDrift(IEnumerable<(string DeviceId, long DriftMs, bool Flagged)> devices)
    {
        foreach (var (id, _, _) in devices)
            if (_entries.TryGetValue(id, out var e)) e.DriftFlushedMs = long.MinValue;
    }

    /// <summary>Devices whose drift estimate moved by more than a second since the last flush.</summary>
    public List<(string DeviceId, long DriftMs, bool Flagged)> TakeDriftChanges()
    {
        var list = new List<(string, long, bool)>();
        foreach (var (id, e) in _entries)
        {
            var flagged = Volatile.Read(ref e.DriftFlagged);
            if (flagged < 0) continue;
            var drift = Volatile.Read(ref e.DriftMs);
            if (e.DriftFlushedMs != long.MinValue && Math.Abs(drift - e.DriftFlushedMs) < 1000) continue;
            list.Add((id, drift, flagged == 1));
            e.DriftFlushedMs = drift;
        }
        return list;
    }

    public void Seen(string deviceId, long atMs)
    {
        var e = _entries.GetOrAdd(deviceId, static _ => new Entry());
        if (Volatile.Read(ref e.LastSeen) < atMs) Volatile.Write(ref e.LastSeen, atMs);
    }

    public long? LastSeen(string deviceId) => _entries.TryGetValue(deviceId, out var e) && e.LastSeen > 0 ? e.LastSeen : null;

    /// <summary>Returns the number of live connections after this one.</summary>
    public int Connected(string deviceId, long atMs)
    {
        var e = _entries.GetOrAdd(deviceId, static _ => new Entry());
        Seen(deviceId, atMs);
        // The connect itself writes lastSeen (through the journal): the next flush of this device is a step later, so
        // a fleet connecting over some seconds is flushed spread over those seconds, not all at once.
        if (e.Flushed < atMs) e.Flushed = atMs;
        return Interlocked.Increment(ref e.Connections);
    }

    public int Disconnected(string deviceId, long atMs)
    {
        var e = _entries.GetOrAdd(deviceId, static _ => new Entry());
        Seen(deviceId, atMs);
        var n = Interlocked.Decrement(ref e.Connections);
        if (n < 0) Interlocked.CompareExchange(ref e.Connections, 0, n);
        return Math.Max(n, 0);
    }

    public void Forget(string deviceId) => _entries.TryRemove(deviceId, out _);

    /// <summary>Devices whose lastSeen moved by at least <paramref name="minStepMs"/> since the last flush.</summary>
    public List<(string DeviceId, long LastSeen)> TakeUnflushed(long minStepMs)
    {
        var list = new List<(string, long)>();
        foreach (var (id, e) in _entries)
        {
            var seen = Volatile.Read(ref e.LastSeen);
            if (seen > e.Flushed && seen - e.Flushed >= minStepMs)
            {
                list.Add((id, seen));
                e.Flushed = seen;
            }
        }
        return list;
    }
}
