// Failed logins from one address are answered ever more slowly (100 ms doubling up to Connectivity:FailedAuthMaxDelayMilliseconds), which makes
// guessing pointless without locking anyone out: a correct login is never delayed, and failures are forgotten
// after a quiet minute.
using System.Collections.Concurrent;
using System.Net;

namespace IoTHub.Connectivity.Mqtt;

internal sealed class AuthThrottle(TimeProvider time, Microsoft.Extensions.Options.IOptions<ConnectivityOptions> options)
{
    private const long ForgetAfterMs = 60_000;
    private readonly ConcurrentDictionary<IPAddress, (int Failures, long LastMs)> _failures = new();

    public TimeSpan Failed(EndPoint? remote)
    {
        var max = options.Value.FailedAuthMaxDelayMilliseconds;
        if (remote is not IPEndPoint ip) return TimeSpan.FromMilliseconds(Math.Min(100, max));
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        var entry = _failures.AddOrUpdate(ip.Address, _ => (1, now), (_, e) => (now - e.LastMs > ForgetAfterMs ? 1 : e.Failures + 1, now));
        if (_failures.Count > 100_000) Prune(now);
        return TimeSpan.FromMilliseconds(Math.Min(max, 100 * Math.Pow(2, Math.Min(entry.Failures - 1, 10))));
    }

    private void Prune(long now)
    {
        foreach (var (k, v) in _failures)
            if (now - v.LastMs > ForgetAfterMs) _failures.TryRemove(k, out _);
    }
}
