// Fast specifications of the window tracker (no host, no database): when a 1m, 1h or 1d window closes, what it says,
// and when a late point corrects it. The hub's clock is a FakeTimeProvider; the store behind the mediator is a
// dictionary of rollup rows that the test keeps equal to a GROUP BY over the points it "commits", as the writer does.
// Nothing is slept through: a test that needs to know a tick has passed without closing a window makes a witness
// device whose window falls due in that same tick and waits for it.
using System.Collections.Concurrent;
using IoTHub.Aggregation;
using IoTHub.Contracts;
using IoTHub.Tests.Infrastructure;
using Mediator;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace IoTHub.Tests.Aggregation;

[FixtureLifeCycle(LifeCycle.InstancePerTestCase)]
public sealed class WindowTrackerSpecs
{
    private const long Second = 1000, Minute = 60 * Second, Hour = 60 * Minute, Day = 24 * Hour;
    private static readonly TimeSpan Lateness = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan Idle = TimeSpan.FromHours(1);
    private static readonly TimeSpan Tick = TimeSpan.FromMilliseconds(50);

    /// <summary>12:00:30 on 2025-11-30: half a minute into a minute, so the tracker's once-a-minute clean-up never runs.</summary>
    private static readonly long Noon = DateTimeOffset.Parse("2025-11-30T12:00:00Z", System.Globalization.CultureInfo.InvariantCulture).ToUnixTimeMilliseconds();

    private readonly FakeTimeProvider _clock = new(DateTimeOffset.FromUnixTimeMilliseconds(Noon + 30 * Second));
    private readonly CommittedFeed _feed = new();
    private readonly RollupStore _store = new();
    private readonly RecentWindows _recent = new();
    private ServiceProvider _services = null!;
    private WindowTracker _tracker = null!;
    private long _nextSeries;
    private int _witnesses;

    private Task StartAsync()
    {
        _services = new ServiceCollection().AddSingleton<IMediator>(_store).BuildServiceProvider();
        _tracker = new WindowTracker(_feed, _services.GetRequiredService<IServiceScopeFactory>(), _recent,
            Options.Create(new AggregationOptions { AllowedLateness = Lateness, IdleClose = Idle, TickInterval = Tick }), _clock, NullLogger<WindowTracker>.Instance);
        return _tracker.StartAsync(CancellationToken.None);
    }

    [TearDown]
    public async Task StopAsync()
    {
        if (_tracker is not null) await _tracker.DisposeAsync();
        if (_services is not null) await _services.DisposeAsync();
    }

    /// <summary>A series of one device's metric, with its own series id as the store would assign.</summary>
    private (string Device, string Metric, long SeriesId) Series(string device, string metric = "v") => (device, metric, Interlocked.Increment(ref _nextSeries));

    /// <summary>Stores points as the writer does (rollups folded in, a resend of a stored point changes nothing) and
    /// tells the tracker what the batch held.</summary>
    private async Task CommitAsync((string Device, string Metric, long SeriesId) series, params (long Ts, double Value)[] points)
    {
        foreach (var (ts, value) in points) _store.Fold(series.SeriesId, ts, value);
        _feed.Publish(points.Select(p => new CommittedPoint(series.SeriesId, series.Device, series.Metric, p.Ts, p.Value)).ToArray());
        await Task.Yield();
    }

    /// <summary>Moves the hub's clock on tick by tick until the tracker has closed what was due, proven by a witness
    /// device whose 1m window falls due by its own watermark: committed after the test's points, it closes in a pass
    /// that saw them. (The tracker's loop reads the clock on its own thread, so a single step could come before it
    /// has planned its next tick; the extra steps move the hub's clock a few ticks at most.)</summary>
    private async Task TickAsync()
    {
        var witness = Series("witness-" + Interlocked.Increment(ref _witnesses));
        var minute = (_clock.GetUtcNow().ToUnixTimeMilliseconds() - 10 * Minute) / Minute * Minute;
        await CommitAsync(witness, (minute, 1), (minute + 2 * Minute, 1));
        await WaitFor.ConditionAsync(() =>
        {
            if (Closed(witness.Device).Count > 0) return true;
            _clock.Advance(Tick);
            return false;
        }, "the tracker ticked");
    }

    private async Task AdvanceToAsync(long unixMs)
    {
        _clock.Advance(DateTimeOffset.FromUnixTimeMilliseconds(unixMs) - _clock.GetUtcNow());
        await TickAsync();
    }

    private List<WindowAggregate> Closed(string device) =>
        _store.Published.OfType<WindowClosed>().Select(c => c.Window).Where(w => w.DeviceId == device).ToList();

    private List<WindowCorrected> Corrected(string device) =>
        _store.Published.OfType<WindowCorrected>().Where(c => c.Window.DeviceId == device).ToList();

    private static DateTimeOffset At(long unixMs) => DateTimeOffset.FromUnixTimeMilliseconds(unixMs);

    [Test]
    public async Task A_window_closes_once_when_the_devices_watermark_passes_its_end_plus_the_allowed_lateness()
    {
        await StartAsync();
        var pump = Series("pump");
        await CommitAsync(pump, (Noon + 1 * Second, 4), (Noon + 20 * Second, 10), (Noon + 40 * Second, 1));

        await CommitAsync(pump, (Noon + Minute + (long)Lateness.TotalMilliseconds - 1, 7));
        await TickAsync();
        Assert.That(Closed("pump"), Is.Empty, "one millisecond short of end plus lateness");

        await CommitAsync(pump, (Noon + Minute + (long)Lateness.TotalMilliseconds, 8));
        await TickAsync();
        await TickAsync();

        var closed = Closed("pump").Single();
        Assert.That((closed.Metric, closed.Resolution, closed.Start, closed.End), Is.EqualTo(("v", "1m", At(Noon), At(Noon + Minute))));
        Assert.That((closed.Count, closed.Sum, closed.Min, closed.Max, closed.Avg, closed.Last), Is.EqualTo((3L, 15.0, 1.0, 10.0, 5.0, 1.0)),
            "the final values are the stored rollup row's");
        Assert.That(_recent.Latest("pump", 10).Select(e => (e.Kind, e.Window)), Is.EqualTo(new[] { ("closed", closed) }), "and the recent events list it");
        Assert.That(_tracker.WindowsClosed, Is.EqualTo(_witnesses + 1));
    }

    [Test]
    public async Task Another_devices_later_points_do_not_close_this_devices_windows()
    {
        await StartAsync();
        var quiet = Series("quiet");
        var busy = Series("busy");
        await CommitAsync(quiet, (Noon + 5 * Second, 1));
        await CommitAsync(busy, (Noon + 5 * Second, 1), (Noon + 5 * Minute, 2));

        await TickAsync();

        Assert.That(Closed("busy").Select(w => (w.Resolution, w.Start)), Is.EqualTo(new[] { ("1m", At(Noon)) }));
        Assert.That(Closed("quiet"), Is.Empty, "a watermark is per device: event time is the device's own");
    }

    [Test]
    public async Task A_quiet_devices_window_closes_by_the_hubs_clock_at_its_end_plus_lateness_plus_the_idle_grace()
    {
        await StartAsync();
        var quiet = Series("quiet");
        await CommitAsync(quiet, (Noon + 5 * Second, 3));
        var closeAt = Noon + Minute + (long)Lateness.TotalMilliseconds + (long)Idle.TotalMilliseconds;

        await AdvanceToAsync(closeAt - Minute);
        Assert.That(Closed("quiet"), Is.Empty, "a minute before");

        await AdvanceToAsync(closeAt);
        var closed = Closed("quiet").Single();
        Assert.That((closed.Resolution, closed.Start, closed.Count, closed.Last), Is.EqualTo(("1m", At(Noon), 1L, 3.0)));
    }

    [Test]
    public async Task The_minute_the_hour_and_the_day_close_each_when_the_watermark_passes_their_own_end()
    {
        await StartAsync();
        var meter = Series("meter");
        await CommitAsync(meter, (Noon + 5 * Second, 1), (Noon + 30 * Minute, 2));
        await TickAsync();
        Assert.That(Closed("meter").Select(w => (w.Resolution, w.Start)), Is.EqualTo(new[] { ("1m", At(Noon)) }));

        await CommitAsync(meter, (Noon + Hour + 10 * Second, 3));
        await TickAsync();
        Assert.That(Closed("meter").Select(w => (w.Resolution, w.Start)), Is.EquivalentTo(new[] { ("1m", At(Noon)), ("1m", At(Noon + 30 * Minute)), ("1h", At(Noon)) }));
        Assert.That(Closed("meter").Single(w => w.Resolution == "1h").Count, Is.EqualTo(2));

        var midnight = Noon + 12 * Hour;
        await CommitAsync(meter, (midnight + 10 * Second, 4));
        await TickAsync();
        var day = Closed("meter").Single(w => w.Resolution == "1d");
        Assert.That((day.Start, day.End, day.Count, day.Sum), Is.EqualTo((At(midnight - Day), At(midnight), 3L, 6.0)));
    }

    [Test]
    public async Task A_point_in_a_closed_window_corrects_it_once_with_the_previous_count_and_a_resend_corrects_nothing()
    {
        await StartAsync();
        var pump = Series("pump");
        await CommitAsync(pump, (Noon + 1 * Second, 1), (Noon + 2 * Second, 5), (Noon + 2 * Minute, 0));
        await TickAsync();
        Assert.That(Closed("pump").Select(w => (w.Resolution, w.Count)), Is.EqualTo(new[] { ("1m", 2L) }));

        await CommitAsync(pump, (Noon + 2 * Second, 5)); // a resend: the store already holds it, the row is unchanged
        await TickAsync();
        Assert.That(Corrected("pump"), Is.Empty);

        await CommitAsync(pump, (Noon + 59 * Second, 11));
        await TickAsync();
        await CommitAsync(pump, (Noon + 30 * Second, 2));
        await TickAsync();
        await TickAsync();

        var corrections = Corrected("pump");
        Assert.That(corrections.Select(c => (c.Window.Resolution, c.Window.Start, c.PreviousCount, c.Window.Count, c.Window.Last)),
            Is.EqualTo(new[] { ("1m", At(Noon), (long?)2L, 3L, 11.0), ("1m", At(Noon), 3L, 4L, 11.0) }));
        Assert.That(Closed("pump").Count(w => w.Resolution == "1m" && w.Start == At(Noon)), Is.EqualTo(1), "closed once, corrected after");
        Assert.That(_recent.Latest("pump", 10).Select(e => (e.Kind, e.PreviousCount)).Take(2), Is.EqualTo(new[] { ("corrected", (long?)3L), ("corrected", 2L) }));
    }

    [Test]
    public async Task A_window_open_when_the_hub_stopped_is_tracked_again_and_closes_once()
    {
        var pump = Series("pump");
        var minute = new RollupKey(pump.SeriesId, 0, Noon);
        _store.Fold(pump.SeriesId, Noon + 5 * Second, 9);
        _store.Open.Add(new RecentRollup(minute, pump.Device, pump.Metric));

        await StartAsync();
        var now = _clock.GetUtcNow().ToUnixTimeMilliseconds();
        var grace = (long)(Lateness + Idle).TotalMilliseconds;
        Assert.That(_store.AskedSince, Is.EqualTo(new[] { now - Minute - grace, now - Hour - grace, now - Day - grace }),
            "only windows whose close time is still ahead are resumed: one that fell due while the hub was down is not announced");

        await CommitAsync(pump, (Noon + 2 * Minute, 1));
        await TickAsync();
        await TickAsync();
        Assert.That(Closed("pump").Select(w => (w.Resolution, w.Start, w.Count, w.Last)), Is.EqualTo(new[] { ("1m", At(Noon), 1L, 9.0) }));
    }

    [Test]
    public async Task A_window_whose_rows_were_deleted_with_their_device_closes_without_an_event()
    {
        await StartAsync();
        var gone = Series("gone");
        await CommitAsync(gone, (Noon + 5 * Second, 1));
        _store.DeleteSeries(gone.SeriesId);

        await AdvanceToAsync(Noon + Minute + (long)(Lateness + Idle).TotalMilliseconds);
        await TickAsync();

        Assert.That(Closed("gone"), Is.Empty);
        Assert.That(_recent.Latest("gone", 10), Is.Empty);
    }

    /// <summary>The store behind the mediator: rollup rows by key, the windows left open at the last stop, and every
    /// notification published.</summary>
    private sealed class RollupStore : IMediator
    {
        private static readonly long[] Widths = [Minute, Hour, Day];
        private readonly ConcurrentDictionary<RollupKey, RollupRow> _rows = new();
        private readonly ConcurrentDictionary<(long SeriesId, long Ts), double> _points = new();
        public List<RecentRollup> Open { get; } = [];
        public long[]? AskedSince { get; private set; }
        public ConcurrentQueue<object> Published { get; } = new();

        /// <summary>Stores a point unless it is already stored (first write wins), folding it into its three rollups.</summary>
        public void Fold(long seriesId, long ts, double value)
        {
            if (!_points.TryAdd((seriesId, ts), value)) return;
            for (var r = 0; r < 3; r++)
            {
                var key = new RollupKey(seriesId, r, ts - ts % Widths[r]);
                var lastTs = _points.Keys.Where(p => p.SeriesId == seriesId && p.Ts - p.Ts % Widths[r] == key.Bucket).Max(p => p.Ts);
                _rows.AddOrUpdate(key, k => new RollupRow(k, 1, value, value, value, value),
                    (_, row) => row with { Count = row.Count + 1, Sum = row.Sum + value, Min = Math.Min(row.Min, value), Max = Math.Max(row.Max, value), Last = _points[(seriesId, lastTs)] });
            }
        }

        public void DeleteSeries(long seriesId)
        {
            foreach (var key in _rows.Keys.Where(k => k.SeriesId == seriesId)) _rows.TryRemove(key, out _);
        }

        public ValueTask<TResponse> Send<TResponse>(IRequest<TResponse> request, CancellationToken cancellationToken = default)
        {
            object response = request switch
            {
                ReadRollups read => read.Keys.Where(_rows.ContainsKey).Select(k => _rows[k]).ToList(),
                ListRecentRollups list => Resume(list),
                _ => throw new NotSupportedException(request.GetType().Name),
            };
            return ValueTask.FromResult((TResponse)response);
        }

        private List<RecentRollup> Resume(ListRecentRollups list)
        {
            AskedSince = list.SinceByResolution;
            return Open;
        }

        public ValueTask Publish<TNotification>(TNotification notification, CancellationToken cancellationToken = default) where TNotification : INotification
        {
            Published.Enqueue(notification);
            return ValueTask.CompletedTask;
        }

        public ValueTask Publish(object notification, CancellationToken cancellationToken = default)
        {
            Published.Enqueue(notification);
            return ValueTask.CompletedTask;
        }

        public ValueTask<TResponse> Send<TResponse>(ICommand<TResponse> command, CancellationToken cancellationToken = default) => throw new NotSupportedException();
        public ValueTask<TResponse> Send<TResponse>(IQuery<TResponse> query, CancellationToken cancellationToken = default) => throw new NotSupportedException();
        public ValueTask<object?> Send(object message, CancellationToken cancellationToken = default) => throw new NotSupportedException();
        public IAsyncEnumerable<TResponse> CreateStream<TResponse>(IStreamQuery<TResponse> query, CancellationToken cancellationToken = default) => throw new NotSupportedException();
        public IAsyncEnumerable<TResponse> CreateStream<TResponse>(IStreamRequest<TResponse> request, CancellationToken cancellationToken = default) => throw new NotSupportedException();
        public IAsyncEnumerable<TResponse> CreateStream<TResponse>(IStreamCommand<TResponse> command, CancellationToken cancellationToken = default) => throw new NotSupportedException();
        public IAsyncEnumerable<object?> CreateStream(object message, CancellationToken cancellationToken = default) => throw new NotSupportedException();
    }
}
