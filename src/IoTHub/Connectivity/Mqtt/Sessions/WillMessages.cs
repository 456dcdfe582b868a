// Wills, published by the hub rather than by MQTTnet (which publishes at once on any unclean end, never on takeover,
// and ignores the Will Delay Interval). A connection's Will is published when the connection ends without a normal
// DISCONNECT, including when a new connection with the same client id takes it over [MQTT-3.1.2-8], MQTT 5 §3.1.4;
// a 5.0 DISCONNECT with reason 0x04 asks for it too. With a Will Delay Interval it waits that long, or until the
// session ends if sooner (MQTT 5 §3.1.3.2.2), and is not published at all if a new connection resumes the session
// meanwhile. A hub that is stopping publishes none: its clients did nothing wrong.
using System.Collections.Concurrent;

namespace IoTHub.Connectivity.Mqtt.Sessions;

internal sealed class WillMessages(TimeProvider time, IHostApplicationLifetime lifetime, ILogger<WillMessages> log)
{
    private sealed class Pending(MqttConnection connection)
    {
        public MqttConnection Connection { get; } = connection;
        public ITimer? Timer;
        private int _done;

        public bool TryFinish()
        {
            Timer?.Dispose();
            return Interlocked.Exchange(ref _done, 1) == 0;
        }
    }

    private readonly ConcurrentDictionary<string, Pending> _pending = new(StringComparer.Ordinal);
    private Func<MqttConnection, Task> _publish = _ => Task.CompletedTask;

    public void Attach(Func<MqttConnection, Task> publish) => _publish = publish;

    /// <summary>A connection ended. <paramref name="wanted"/>: the end calls for its Will (not a normal DISCONNECT);
    /// <paramref name="sessionExpirySeconds"/>: how long its session outlives it (the Will waits no longer).</summary>
    public void ConnectionEnded(MqttConnection c, bool wanted, uint sessionExpirySeconds)
    {
        if (c.Will is not { } will || !wanted || lifetime.ApplicationStopping.IsCancellationRequested) return;
        var delay = Math.Min(will.DelaySeconds, sessionExpirySeconds);
        if (delay == 0)
        {
            _ = _publish(c);
            return;
        }
        var pending = new Pending(c);
        if (_pending.TryRemove(c.ClientId, out var earlier) && earlier.TryFinish()) _ = _publish(earlier.Connection);
        _pending[c.ClientId] = pending;
        pending.Timer = time.CreateTimer(_ => Fire(c.ClientId, pending), null, TimeSpan.FromSeconds(delay), Timeout.InfiniteTimeSpan);
        log.LogDebug("Will of client {ClientId} due in {Delay} s", c.ClientId, delay);
    }

    /// <summary>Is a Will of this client id waiting for its delay?</summary>
    public bool IsPending(string clientId) => _pending.ContainsKey(clientId);

    /// <summary>A new connection resumed the session before the delay ran out: its Will is not published.</summary>
    public void SessionResumed(string clientId)
    {
        if (_pending.TryRemove(clientId, out var p)) p.TryFinish();
    }

    /// <summary>The session ended (expired, replaced by a clean start, deleted): a Will still waiting goes now.</summary>
    public void SessionEnded(string clientId)
    {
        if (_pending.TryRemove(clientId, out var p) && p.TryFinish()) _ = _publish(p.Connection);
    }

    private void Fire(string clientId, Pending pending)
    {
        _pending.TryRemove(new KeyValuePair<string, Pending>(clientId, pending));
        if (pending.TryFinish()) _ = _publish(pending.Connection);
    }
}
