// CoAP has no connection, so a CoAP device is online while it talks or observes: its first request after a quiet spell
// "connects" it (DeviceConnected, protocol "coap"), and Coap:IdleTimeout without a request or an observation
// "disconnects" it (reason "idle"); when the hub stops, every CoAP device online goes offline ("server shutting down").
// The events go out in order through one queue, off the request's path.
using System.Collections.Concurrent;
using System.Threading.Channels;
using IoTHub.Contracts;
using Mediator;
using Microsoft.Extensions.Options;

namespace IoTHub.Connectivity.Coap;

internal sealed class CoapPresence(IServiceScopeFactory scopes, CoapObservers observers, IOptions<CoapOptions> options, TimeProvider time,
    ILogger<CoapPresence> log) : BackgroundService
{
    private sealed class Active(string clientId, long at)
    {
        public string ClientId { get; } = clientId;
        public long LastAt = at;
    }

    private readonly ConcurrentDictionary<string, Active> _active = new(StringComparer.Ordinal);
    private readonly Channel<INotification> _events = Channel.CreateBounded<INotification>(new BoundedChannelOptions(100_000)
        { SingleReader = true, FullMode = BoundedChannelFullMode.DropOldest });

    /// <summary>Devices counted online over CoAP now.</summary>
    public int Count => _active.Count;

    /// <summary>The device made a request: lock-free on the way of every request.</summary>
    public void Seen(string deviceId, CoapPeer peer)
    {
        var now = time.NowMs();
        if (_active.TryGetValue(deviceId, out var a))
        {
            Volatile.Write(ref a.LastAt, now);
            return;
        }
        var fresh = new Active("coap:" + peer.Key, now);
        if (_active.TryAdd(deviceId, fresh))
            _events.Writer.TryWrite(new DeviceConnected(deviceId, fresh.ClientId, "coap", peer.Address, time.GetUtcNow()));
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // The events are published without the stop's token: one cancelled half-way was lost, and the device stayed
        // online in the database until the next start closed it as "hub stopped".
        var pump = PumpAsync();
        await SweepAsync(stoppingToken); // until the hub stops
        // The CoAP listeners stopped before this service: every device still counted online goes offline now, as an
        // MQTT device's connection does when the broker stops.
        var now = time.GetUtcNow();
        foreach (var (device, a) in _active)
            if (_active.TryRemove(new KeyValuePair<string, Active>(device, a)))
                _events.Writer.TryWrite(new DeviceDisconnected(device, a.ClientId, "server shutting down", now));
        _events.Writer.TryComplete();
        await pump;
    }

    private async Task PumpAsync()
    {
        await foreach (var n in _events.Reader.ReadAllAsync().ConfigureAwait(false))
        {
            try
            {
                await using var scope = scopes.CreateAsyncScope();
                await scope.ServiceProvider.GetRequiredService<IMediator>().Publish(n, CancellationToken.None);
            }
            catch (Exception ex)
            {
                log.LogWarning(ex, "Recording the presence of a CoAP device failed");
            }
        }
    }

    private async Task SweepAsync(CancellationToken ct)
    {
        var idle = options.Value.IdleTimeout;
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(Math.Clamp(idle.TotalMilliseconds / 10, 100, 10_000)), time);
        try
        {
            while (await timer.WaitForNextTickAsync(ct))
            {
                var now = time.NowMs();
                foreach (var (device, a) in _active)
                {
                    if (now - Volatile.Read(ref a.LastAt) < idle.TotalMilliseconds || observers.Observes(device)) continue;
                    if (_active.TryRemove(new KeyValuePair<string, Active>(device, a)))
                        _events.Writer.TryWrite(new DeviceDisconnected(device, a.ClientId, "idle", time.GetUtcNow()));
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>Forgets a deleted device (no "disconnected" for it).</summary>
    public void Forget(string deviceId) => _active.TryRemove(deviceId, out _);
}
