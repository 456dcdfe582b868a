// Per-device message rate over every protocol: a one-second window per device, counted with interlocked
// operations on an entry that exists after the device's first message (no lock per message). A device over its rate
// is logged once per LogThrottle interval, with the count of what was refused in a summary line.
using System.Collections.Concurrent;
using IoTHub.Contracts;
using Mediator;
using Microsoft.Extensions.Options;

namespace IoTHub.Connectivity;

internal sealed class DeviceRateLimiter(IOptions<ConnectivityOptions> options, TimeProvider time, LogThrottle lines, ILogger<DeviceRateLimiter> log)
{
    private readonly ConcurrentDictionary<string, Window> _windows = new(StringComparer.Ordinal);

    public int Limit => options.Value.DeviceMessagesPerSecond;

    /// <summary>Counts one message; false when the device is over its rate in the current second.</summary>
    public bool TryAcquire(string deviceId)
    {
        if (!_windows.TryGetValue(deviceId, out var window)) window = _windows.GetOrAdd(deviceId, static _ => new Window());
        var limit = options.Value.DeviceMessagesPerSecond;
        if (window.TryTake(time.GetUtcNow().ToUnixTimeMilliseconds() / 1000, limit)) return true;
        lines.Write(log, RefusalLines.DeviceRate, deviceId, deviceId, limit);
        return false;
    }

    /// <summary>Time left in the current one-second window.</summary>
    public TimeSpan UntilNextWindow => TimeSpan.FromMilliseconds(1000 - time.GetUtcNow().ToUnixTimeMilliseconds() % 1000);

    public void Forget(string deviceId) => _windows.TryRemove(deviceId, out _);

    private sealed class Window
    {
        private long _second;
        private int _count;

        public bool TryTake(long second, int limit)
        {
            var current = Volatile.Read(ref _second);
            if (current != second && Interlocked.CompareExchange(ref _second, second, current) == current) Interlocked.Exchange(ref _count, 0);
            return Interlocked.Increment(ref _count) <= limit;
        }
    }
}

internal sealed class ForgetDeletedDeviceRate(DeviceRateLimiter limiter) : INotificationHandler<DeviceDeleted>
{
    public ValueTask Handle(DeviceDeleted n, CancellationToken ct)
    {
        limiter.Forget(n.DeviceId);
        return ValueTask.CompletedTask;
    }
}
