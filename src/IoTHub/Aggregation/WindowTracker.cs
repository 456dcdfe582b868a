// Tumbling windows (1m, 1h, 1d) on event time. The writer tells this module which numeric points each committed
// batch held; per device the latest event time is the watermark. A window closes when the watermark passes its
// end plus the allowed lateness (or, for a quiet device, when the hub's clock does, plus an idle grace); its
// final values are the stored rollup row, which the writer keeps equal to a GROUP BY over the raw rows. A point
// that lands in a closed window corrects that row, and the change is published as WindowCorrected.
// Single-threaded: one loop owns all state, so there is no lock anywhere.
using IoTHub.Contracts;
using Mediator;
using Microsoft.Extensions.Options;

namespace IoTHub.Aggregation;

internal sealed class WindowTracker(
    CommittedFeed committed,
    IServiceScopeFactory scopes,
    RecentWindows recent,
    IOptions<AggregationOptions> options,
    TimeProvider time,
    ILogger<WindowTracker> log) : CommittedFeedStage, IAsyncDisposable
{
    private readonly CancellationTokenSource _disposed = new();

    /// <summary>This module's own queue of committed batches (subscribed at construction, before the writer starts).</summary>
    private readonly System.Threading.Channels.ChannelReader<CommittedPoint[]> _committed = committed.Subscribe("windows", 1024);

    /// <inheritdoc/>
    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        await ResumeOpenWindowsAsync(cancellationToken);
        Run(() => RunAsync(_disposed.Token));
    }

    /// <summary>
    /// Windows that were still open when the hub stopped (their close time is still ahead) are tracked again, so a
    /// restart does not skip their WindowClosed. Windows that fell due while the hub was down are not announced.
    /// </summary>
    private async Task ResumeOpenWindowsAsync(CancellationToken ct)
    {
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        var since = Widths.Select(w => now - (w + _lateness + _idle)).ToArray();
        await using var scope = scopes.CreateAsyncScope();
        var open = await scope.ServiceProvider.GetRequiredService<IMediator>().Send(new ListRecentRollups(since), ct);
        foreach (var r in open) _open[r.Key] = (r.DeviceId, r.Metric);
        if (open.Count > 0) log.LogInformation("Resumed {Count} open windows", open.Count);
    }

    public async ValueTask DisposeAsync()
    {
        // Registered both as itself and as a hosted service, so the container may dispose it twice.
        if (Interlocked.Exchange(ref _disposeCount, 1) == 1) return;
        await _disposed.CancelAsync();
        await WaitForLoopAsync(TimeSpan.FromSeconds(5));
        _disposed.Dispose();
    }

    private int _disposeCount;

    private static readonly long[] Widths = WindowResolution.WidthsMs;
    private static readonly string[] Names = WindowResolution.Names;

    private readonly Dictionary<string, long> _watermarks = new(StringComparer.Ordinal);
    private readonly Dictionary<RollupKey, (string DeviceId, string Metric)> _open = new();
    private readonly Dictionary<RollupKey, Closed> _closed = new();
    private readonly Dictionary<RollupKey, (string DeviceId, string Metric)> _corrections = new();
    private readonly long _lateness = (long)options.Value.AllowedLateness.TotalMilliseconds;
    private readonly long _idle = (long)options.Value.IdleClose.TotalMilliseconds;

    private sealed record Closed(string DeviceId, string Metric, long Count, long ForgetAtMs);

    public long WindowsClosed { get; private set; }
    public long WindowsCorrected { get; private set; }

    private async Task RunAsync(CancellationToken stoppingToken)
    {
        var reader = _committed;
        var tick = options.Value.TickInterval;
        var next = time.GetUtcNow() + tick;
        while (true)
        {
            while (reader.TryRead(out var points)) Track(points);
            if (time.GetUtcNow() >= next)
            {
                try
                {
                    await CloseDueAsync(stoppingToken);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    log.LogWarning(ex, "Closing windows failed; retrying at the next tick");
                }
                next = time.GetUtcNow() + tick;
            }
            using var wait = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
            wait.CancelAfter(next - time.GetUtcNow() is { } d && d > TimeSpan.Zero ? d : TimeSpan.Zero);
            try
            {
                if (!await reader.WaitToReadAsync(wait.Token)) return; // the writer has stopped
            }
            catch (OperationCanceledException) when (!stoppingToken.IsCancellationRequested)
            {
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private void Track(CommittedPoint[] points)
    {
        foreach (var p in points)
        {
            if (!_watermarks.TryGetValue(p.DeviceId, out var wm) || p.TimestampMs > wm) _watermarks[p.DeviceId] = p.TimestampMs;
            for (var r = 0; r < 3; r++)
            {
                var key = new RollupKey(p.SeriesId, r, WindowResolution.BucketOf(p.TimestampMs, r));
                if (_open.ContainsKey(key)) continue;
                if (_closed.ContainsKey(key)) _corrections[key] = (p.DeviceId, p.Metric);
                else _open[key] = (p.DeviceId, p.Metric);
            }
        }
    }

    private async Task CloseDueAsync(CancellationToken ct)
    {
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        var due = new List<RollupKey>();
        foreach (var (key, (device, _)) in _open)
        {
            var closeAt = key.Bucket + Widths[key.Resolution] + _lateness;
            if (_watermarks.GetValueOrDefault(device) >= closeAt || now >= closeAt + _idle) due.Add(key);
        }
        var corrections = _corrections.Keys.ToList();
        if (due.Count > 0 || corrections.Count > 0)
        {
            await using var scope = scopes.CreateAsyncScope();
            var mediator = scope.ServiceProvider.GetRequiredService<IMediator>();
            var rows = (await mediator.Send(new ReadRollups(due.Concat(corrections).ToList()), ct)).ToDictionary(r => r.Key);
            foreach (var key in due)
            {
                var (device, metric) = _open[key];
                _open.Remove(key);
                if (!rows.TryGetValue(key, out var row)) continue; // deleted with its device meanwhile
                var window = View(device, metric, row);
                _closed[key] = new Closed(device, metric, row.Count, now + Widths[key.Resolution] + _lateness + 300_000);
                WindowsClosed++;
                recent.Add(new WindowEvent("closed", window, null));
                await mediator.Publish(new WindowClosed(window), ct);
            }
            foreach (var key in corrections)
            {
                var (device, metric) = _corrections[key];
                _corrections.Remove(key);
                if (!rows.TryGetValue(key, out var row) || !_closed.TryGetValue(key, out var closed) || closed.Count == row.Count) continue;
                _closed[key] = closed with { Count = row.Count };
                var window = View(device, metric, row);
                WindowsCorrected++;
                recent.Add(new WindowEvent("corrected", window, closed.Count));
                await mediator.Publish(new WindowCorrected(window, closed.Count), ct);
            }
        }
        if (_closed.Count > 0 && now % 60_000 < options.Value.TickInterval.TotalMilliseconds * 2)
        {
            foreach (var (key, c) in _closed)
                if (c.ForgetAtMs < now) _closed.Remove(key);
        }
    }

    private static WindowAggregate View(string device, string metric, RollupRow row) => new(device, metric, Names[row.Key.Resolution],
        UnixTime.ToDateTime(row.Key.Bucket), UnixTime.ToDateTime(row.Key.Bucket + Widths[row.Key.Resolution]),
        row.Count, FiniteAggregates.Finite(row.Sum), FiniteAggregates.Finite(row.Min), FiniteAggregates.Finite(row.Max),
        FiniteAggregates.Average(row.Sum, row.Count, row.Min, row.Max), FiniteAggregates.Finite(row.Last));
}

/// <summary>A window that closed or was corrected: an item of <c>GET /api/v1/windows/recent</c> (the latest 2,000 events
/// are kept, in memory only).</summary>
/// <param name="Kind"><c>closed</c>: its final values, once the device's watermark passed its end plus the allowed
/// lateness; <c>corrected</c>: a late point changed a window already closed.</param>
/// <param name="Window">The window's aggregate as stored now.</param>
/// <param name="PreviousCount">For <c>corrected</c>, the point count it had when last announced; null for <c>closed</c>.</param>
public sealed record WindowEvent(string Kind, WindowAggregate Window, long? PreviousCount);

/// <summary>The last window events, newest first, for the API and the UI.</summary>
internal sealed class RecentWindows
{
    private const int Capacity = 2_000;
    private readonly WindowEvent?[] _ring = new WindowEvent?[Capacity];
    private long _next;

    public void Add(WindowEvent e) => _ring[Interlocked.Increment(ref _next) % Capacity] = e;

    public IReadOnlyList<WindowEvent> Latest(string? deviceId, int limit)
    {
        var list = new List<WindowEvent>();
        var end = Interlocked.Read(ref _next);
        for (var i = end; i > end - Capacity && i > 0 && list.Count < limit; i--)
        {
            if (_ring[i % Capacity] is { } e && (deviceId is null || e.Window.DeviceId == deviceId)) list.Add(e);
        }
        return list;
    }
}
