// Which devices have which connections open, the source of presence. Each connection reports "connected" at most once
// and "disconnected" once after it, in that order, through an ordered queue to the Devices module (16 queues, a device
// always on the same one, so a reconnect storm is handled 16 at a time and each device's events in order): MQTTnet can report
// a connection taken over before it reports it connected (the takeover runs on the new connection's thread while the
// old one is still sending its CONNACK), and two handlers racing for one device left it "online" for ever; and a
// takeover between the open mark and the queueing of "connected" must still queue "disconnected" after it. Every
// 30 seconds the tracker also checks itself against the broker's real connections, and closes what is gone.
using System.Collections.Concurrent;
using System.Threading.Channels;
using IoTHub.Contracts;
using MQTTnet.Server;

namespace IoTHub.Connectivity.Mqtt.Sessions;

internal sealed class ConnectionTracker(ModuleBridge modules, TimeProvider time, ILogger<ConnectionTracker> log) : IHostedService
{
    public static readonly TimeSpan ReconcileInterval = TimeSpan.FromSeconds(30);

    private readonly ConcurrentDictionary<string, ConcurrentDictionary<long, MqttConnection>> _byDevice = new(StringComparer.Ordinal);
    private const int Lanes = 16;
    private readonly Channel<Mediator.INotification>[] _lanes = Enumerable.Range(0, Lanes).Select(_ =>
        Channel.CreateBounded<Mediator.INotification>(new BoundedChannelOptions(10_000) { FullMode = BoundedChannelFullMode.Wait, SingleReader = true })).ToArray();
    private MqttServer? _server;
    private Task? _pump;
    private ITimer? _reconcile;

    public void Attach(MqttServer server) => _server = server;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _pump = Task.WhenAll(_lanes.Select(lane => Task.Run(() => PumpAsync(lane), CancellationToken.None)));
        _reconcile = time.CreateTimer(_ => _ = ReconcileAsync(), null, ReconcileInterval, ReconcileInterval);
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        _reconcile?.Dispose();
        foreach (var lane in _lanes) lane.Writer.TryComplete();
        if (_pump is not null) await _pump.WaitAsync(cancellationToken);
    }

    /// <summary>The connection is up (MQTTnet reported it connected, and it had not ended before that).</summary>
    public async ValueTask OpenedAsync(MqttConnection c)
    {
        if (!c.TryOpen()) return;
        try
        {
            if (c.Principal.DeviceId is not { } device) return;
            _byDevice.GetOrAdd(device, _ => new(concurrencyLevel: 1, capacity: 3))[c.Id] = c; // a device has one connection, rarely two
            await EmitAsync(device, new DeviceConnected(device, c.ClientId, c.Protocol, c.RemoteAddress, time.GetUtcNow()));
        }
        finally
        {
            c.AnnouncedOpen();
        }
    }

    /// <summary>The connection is gone; reported once, and only when its "connected" was.</summary>
    public async ValueTask ClosedAsync(MqttConnection c, string reason, bool sessionKept)
    {
        if (!c.TryEnd() || c.Principal.DeviceId is not { } device) return;
        // It was open: its "connected" may still be on its way (a takeover ends a connection on the new one's thread).
        await c.OpenAnnounced;
        // Queued before the connection leaves the set: a stopping hub waits for the set to empty, then closes the queues.
        await EmitAsync(device, new DeviceDisconnected(device, c.ClientId, reason, time.GetUtcNow(), sessionKept));
        if (_byDevice.TryGetValue(device, out var live))
        {
            live.TryRemove(c.Id, out _);
            if (live.IsEmpty) _byDevice.TryRemove(new KeyValuePair<string, ConcurrentDictionary<long, MqttConnection>>(device, live));
        }
    }

    /// <summary>Completes once no device connection is open any more, or after <paramref name="timeout"/>.</summary>
    public async Task WhenNoneOpenAsync(TimeSpan timeout, CancellationToken ct)
    {
        var deadline = Environment.TickCount64 + (long)timeout.TotalMilliseconds;
        while (!_byDevice.IsEmpty && Environment.TickCount64 < deadline && !ct.IsCancellationRequested)
            await Task.Delay(20, CancellationToken.None);
    }

    /// <summary>The device's open connections.</summary>
    public IReadOnlyCollection<MqttConnection> Of(string deviceId) =>
        _byDevice.TryGetValue(deviceId, out var live) ? live.Values.ToList() : [];

    private async ValueTask EmitAsync(string deviceId, Mediator.INotification n)
    {
        var lane = _lanes[(uint)string.GetHashCode(deviceId, StringComparison.Ordinal) % Lanes].Writer;
        try
        {
            if (!lane.TryWrite(n)) await lane.WriteAsync(n);
        }
        catch (ChannelClosedException)
        {
            // The hub is stopping: the next start marks every device offline anyway.
        }
    }

    private async Task PumpAsync(Channel<Mediator.INotification> lane)
    {
        await foreach (var n in lane.Reader.ReadAllAsync()) await modules.PublishAsync(n);
    }

    /// <summary>Closes every tracked connection that is no longer the live connection of a client in the broker.</summary>
    public async Task ReconcileAsync()
    {
        if (_server is null || !_server.IsStarted) return;
        try
        {
            // Only connections tracked before the broker is asked: MQTTnet lists a client before it reports it connected.
            var tracked = _byDevice.Values.SelectMany(v => v.Values).ToList();
            var live = new HashSet<long>();
            foreach (var client in await _server.GetClientsAsync())
                if (SessionInfo.From(client.Session.Items) is { } s) live.Add(s.Connection.Id);
            foreach (var c in tracked)
                    if (!live.Contains(c.Id))
                    {
                        log.LogWarning("Connection {ClientId} of device {DeviceId} is gone from the broker; marking it closed", c.ClientId, c.Principal.DeviceId);
                        await ClosedAsync(c, "connection lost", sessionKept: false);
                    }
        }
        catch (Exception ex)
        {
            log.LogWarning(ex, "Reconciling presence with the broker's connections failed");
        }
    }
}
