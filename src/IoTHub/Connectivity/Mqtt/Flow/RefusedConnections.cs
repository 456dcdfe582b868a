// Why the hub closed a connection at the wire (MqttConnectionGuard: a packet above Mqtt:MaxPacketBytes, a malformed
// length, a packet left unfinished), for the connection history: MQTTnet only sees the socket end and reported such a
// close as "connection lost or keep-alive timeout", so a device sending 300 KB looked like one with a bad network.
using System.Collections.Concurrent;

namespace IoTHub.Connectivity.Mqtt.Flow;

/// <summary>The reasons of connections the hub closed itself, by remote endpoint, until the session's end reads them.</summary>
internal sealed class RefusedConnections(TimeProvider time)
{
    private readonly ConcurrentDictionary<string, (string Why, long At)> _reasons = new(StringComparer.Ordinal);

    /// <summary>Connections refused before a session existed never have theirs read: kept at most this long.</summary>
    private static readonly TimeSpan Keep = TimeSpan.FromMinutes(1);

    /// <summary>Notes that the connection from <paramref name="endpoint"/> is closed by the hub for <paramref name="why"/>.</summary>
    public void Refused(System.Net.EndPoint? endpoint, string why)
    {
        if (endpoint?.ToString() is not { } key) return;
        var now = time.GetTimestamp();
        if (_reasons.Count >= 1024)
            foreach (var (k, v) in _reasons)
                if (time.GetElapsedTime(v.At, now) > Keep) _reasons.TryRemove(k, out _);
        _reasons[key] = (why, now);
    }

    /// <summary>The reason the hub closed the connection from <paramref name="remoteAddress"/>, taken out; null when it
    /// did not close it.</summary>
    public string? Take(string? remoteAddress) =>
        remoteAddress is not null && !_reasons.IsEmpty && _reasons.TryRemove(remoteAddress, out var r) ? r.Why : null;
}
