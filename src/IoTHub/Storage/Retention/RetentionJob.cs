// Applies the retention policy: raw telemetry older than Retention:Raw goes (whole partitions on PostgreSQL,
// bounded batches on SQLite), each rollup resolution by its own policy. Runs periodically by itself; admins
// can run it at once and see what the last run removed.
using IoTHub.Contracts;
using Microsoft.Extensions.Options;

namespace IoTHub.Storage.Retention;

/// <summary>What one run removed: rows per table, and (PostgreSQL) whole raw partitions dropped.</summary>
/// <param name="RanAt">When the run finished (ISO 8601 UTC).</param>
/// <param name="RawRows">Raw rows deleted (SQLite; on PostgreSQL the rows of dropped partitions are not counted).</param>
/// <param name="RawPartitions">Daily raw partitions dropped (PostgreSQL; 0 on SQLite).</param>
/// <param name="OneMinuteRows">1-minute window rows deleted.</param>
/// <param name="OneHourRows">1-hour window rows deleted.</param>
/// <param name="OneDayRows">1-day window rows deleted.</param>
public sealed record RetentionReport(DateTimeOffset RanAt, long RawRows, int RawPartitions, long OneMinuteRows, long OneHourRows, long OneDayRows);

internal sealed class RetentionJob(IStoreMaintenance store, IOptions<RetentionOptions> options, TimeProvider time, IJobLeadership leadership, ILogger<RetentionJob> log)
    : BackgroundService
{
    private static readonly System.Diagnostics.Metrics.Counter<long> RemovedRows =
        HubMeter.Meter.CreateCounter<long>("iothub_retention_removed_rows_total", description: "Rows removed by retention");
    private static readonly System.Diagnostics.Metrics.Counter<long> DroppedPartitions =
        HubMeter.Meter.CreateCounter<long>("iothub_retention_dropped_partitions_total", description: "Raw partitions dropped by retention");
    private readonly SemaphoreSlim _oneAtATime = new(1, 1);
    private long _totalRawRows, _totalRawPartitions, _totalRollupRows;

    public RetentionReport? LastRun { get; private set; }
    public long TotalRawRows => Interlocked.Read(ref _totalRawRows);
    public long TotalRawPartitions => Interlocked.Read(ref _totalRawPartitions);
    public long TotalRollupRows => Interlocked.Read(ref _totalRollupRows);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await Task.Delay(TimeSpan.FromSeconds(30), time, stoppingToken);
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                if (leadership.IsLeader) await RunOnceAsync(stoppingToken); // one node at a time when several share the database
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                log.LogError(ex, "Retention run failed; retrying at the next interval");
            }
            await Task.Delay(options.Value.Interval, time, stoppingToken);
        }
    }

    public async Task<RetentionReport> RunOnceAsync(CancellationToken ct)
    {
        await _oneAtATime.WaitAsync(ct);
        try
        {
            var now = time.NowMs();
            var cutoffs = options.Value.ByResolution.Select(r => r is { } keep ? now - (long)keep.TotalMilliseconds : (long?)null).ToArray();
            var removed = await store.ApplyRetentionAsync(cutoffs, ct);
            var report = new RetentionReport(time.GetUtcNow(), removed.RawRows, removed.RawPartitions, removed.Rollups[0], removed.Rollups[1], removed.Rollups[2]);
            RemovedRows.Add(report.RawRows, new KeyValuePair<string, object?>("resolution", "raw"));
            RemovedRows.Add(report.OneMinuteRows, new KeyValuePair<string, object?>("resolution", "1m"));
            RemovedRows.Add(report.OneHourRows, new KeyValuePair<string, object?>("resolution", "1h"));
            RemovedRows.Add(report.OneDayRows, new KeyValuePair<string, object?>("resolution", "1d"));
            DroppedPartitions.Add(report.RawPartitions);
            Interlocked.Add(ref _totalRawRows, report.RawRows);
            Interlocked.Add(ref _totalRawPartitions, report.RawPartitions);
            Interlocked.Add(ref _totalRollupRows, report.OneMinuteRows + report.OneHourRows + report.OneDayRows);
            LastRun = report;
            if (report.RawRows + report.RawPartitions + report.OneMinuteRows + report.OneHourRows + report.OneDayRows > 0)
                log.LogInformation("Retention removed {RawRows} raw rows and {Partitions} raw partitions, {M} 1m, {H} 1h, {D} 1d rollups",
                    report.RawRows, report.RawPartitions, report.OneMinuteRows, report.OneHourRows, report.OneDayRows);
            return report;
        }
        finally
        {
            _oneAtATime.Release();
        }
    }
}

internal sealed record RetentionRemoved(long RawRows, int RawPartitions, long[] Rollups);
