// What each committed telemetry batch held, for the consumers downstream of the commit (window tracking now; alarm
// rules and webhooks next). The writer hands a batch here once it has committed, just before it releases the batch's
// acknowledgements, and never waits: each consumer has its own bounded queue, so a slow consumer can neither slow a device's PUBACK nor
// grow the hub's memory. A consumer that falls a whole queue behind loses the oldest batches it had not read, counted
// in iothub_committed_feed_dropped_total; its backlog is the gauge iothub_committed_feed_lag (both labelled with the
// consumer). The stored rows are the truth: a consumer that must see every point reads the store, not only this feed.
using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Threading.Channels;

namespace IoTHub.Contracts;

/// <summary>Fans committed batches out to the consumers downstream of the commit, each through its own bounded queue;
/// the writer never waits on it (see the file's header).</summary>
public sealed class CommittedFeed
{
    private static readonly Counter<long> Dropped = HubMeter.Meter.CreateCounter<long>("iothub_committed_feed_dropped_total",
        description: "Committed batches a downstream consumer lost because its queue was full (it fell behind)");

    private readonly ConcurrentDictionary<string, Channel<CommittedPoint[]>> _consumers = new(StringComparer.Ordinal);
    private volatile Channel<CommittedPoint[]>[] _all = [];
    private readonly Lock _change = new();

    /// <summary>Creates the feed and its lag gauge, <c>iothub_committed_feed_lag{consumer}</c> (batches waiting).</summary>
    public CommittedFeed() =>
        HubMeter.Meter.CreateObservableGauge("iothub_committed_feed_lag", () => _consumers.Select(kv =>
            new Measurement<long>(kv.Value.Reader.Count, new KeyValuePair<string, object?>("consumer", kv.Key))),
            description: "Committed batches waiting in a downstream consumer's queue");

    /// <summary>A consumer's own queue of committed batches, holding at most <paramref name="capacity"/> batches.</summary>
    /// <param name="name">The consumer's name, as its metrics are labelled (e.g. <c>windows</c>); unique.</param>
    /// <param name="capacity">Batches the queue holds; when full, the oldest is dropped and counted.</param>
    /// <exception cref="InvalidOperationException">A consumer with this name is subscribed already.</exception>
    public ChannelReader<CommittedPoint[]> Subscribe(string name, int capacity)
    {
        var channel = Channel.CreateBounded<CommittedPoint[]>(new BoundedChannelOptions(capacity)
        {
            FullMode = BoundedChannelFullMode.DropOldest,
            SingleReader = true,
            SingleWriter = false,
        }, _ => Dropped.Add(1, new KeyValuePair<string, object?>("consumer", name)));
        lock (_change)
        {
            if (!_consumers.TryAdd(name, channel)) throw new InvalidOperationException($"a consumer named {name} is subscribed already");
            _all = _consumers.Values.ToArray();
        }
        return channel.Reader;
    }

    /// <summary>Hands a committed batch to every consumer without waiting (called after the commit, before its acks are
    /// released).</summary>
    public void Publish(CommittedPoint[] batch)
    {
        foreach (var c in _all) c.Writer.TryWrite(batch);
    }

    /// <summary>No more batches: the writer has stopped.</summary>
    public void Complete()
    {
        foreach (var c in _all) c.Writer.TryComplete();
    }
}
