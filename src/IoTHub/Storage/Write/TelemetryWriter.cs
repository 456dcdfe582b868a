// The group-commit stage of the hot path: one loop per store channel (Storage:Writers), each with its own store
// and connection and its own share of the devices. A loop drains its channel into a batch that closes on size or
// after a few milliseconds, commits it in one transaction, and only then completes the messages' tickets,
// which releases the devices' acks. A failing database keeps the batch and retries: acks stall, the bounded
// channels fill, adapters wait, and nothing is dropped. A failure the data causes (StoreErrors) is not retried: the
// batch is split until the messages that cause it stand alone; those are dead-lettered with the database's reason
// and answered as rejected, everything else is committed and acked. A committed batch is queued to the consumers
// downstream of the commit (CommittedFeed) just before its acks are released; the writer never waits for them.
using System.Diagnostics;
using IoTHub.Contracts;
using Microsoft.Extensions.Options;

namespace IoTHub.Storage.Write;

internal interface ITelemetryStore
{
    /// <summary>Stores the points of valid messages and the dead letters of rejected ones, in one transaction.</summary>
    /// <param name="batch">The messages, in arrival order; a resent point (same device, metric and timestamp) is stored once.</param>
    /// <param name="committed">Filled with the numeric points of the batch, with their series ids.</param>
    /// <param name="ct">Cancels the commit; nothing of the batch is then stored.</param>
    Task CommitAsync(IReadOnlyList<ValidatedTelemetry> batch, List<CommittedPoint> committed, CancellationToken ct);

    /// <summary>Forget cached series of a deleted device.</summary>
    void Forget(string deviceId);
}

internal static class WriterMetrics
{
    public static readonly System.Diagnostics.Metrics.Counter<long> Messages = HubMeter.Meter.CreateCounter<long>("iothub_telemetry_messages_total", description: "Telemetry messages committed (stored or dead-lettered)");
    public static readonly System.Diagnostics.Metrics.Counter<long> Points = HubMeter.Meter.CreateCounter<long>("iothub_telemetry_points_total", description: "Telemetry points committed");
    public static readonly System.Diagnostics.Metrics.Counter<long> DeadLetters = HubMeter.Meter.CreateCounter<long>("iothub_dead_letters_total", description: "Messages dead-lettered");
    public static readonly System.Diagnostics.Metrics.Counter<long> Batches = HubMeter.Meter.CreateCounter<long>("iothub_commit_batches_total", description: "Write batches committed");
    public static readonly System.Diagnostics.Metrics.Counter<long> DuplicateRetries = HubMeter.Meter.CreateCounter<long>("iothub_commit_duplicate_retries_total", description: "PostgreSQL batches written again the checked way because a point in them was already stored (a resend)");
    public static readonly System.Diagnostics.Metrics.Counter<long> Failures = HubMeter.Meter.CreateCounter<long>("iothub_commit_failures_total", description: "Failed commit attempts (retried, or split when the data caused them)");
    public static readonly System.Diagnostics.Metrics.Counter<long> Refused = HubMeter.Meter.CreateCounter<long>("iothub_commit_refused_messages_total", description: "Messages the database refused for their data, dead-lettered with its reason");
}

/// <summary>The telemetry stores, one per writer (each with its own connection and series cache).</summary>
internal sealed class TelemetryStores(ITelemetryStore[] stores)
{
    public IReadOnlyList<ITelemetryStore> All => stores;
}

internal sealed class TelemetryWriter(
    IngestChannels channels,
    CommittedFeed committedFeed,
    TelemetryStores stores,
    StoreHealth health,
    IOptions<StorageOptions> options,
    ILogger<TelemetryWriter> log) : IHostedService
{
    private readonly StorageOptions _options = options.Value;
    private Task? _loop;
    private readonly CancellationTokenSource _abort = new();

    public long CommittedMessages => Interlocked.Read(ref _committedMessages);
    public long CommittedBatches => Interlocked.Read(ref _committedBatches);
    private long _committedMessages;
    private long _committedBatches;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (stores.All.Count != channels.Stores.Count) throw new InvalidOperationException("one store per store channel");
        _loop = Task.Run(RunAllAsync, CancellationToken.None);
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        // Validation completes the store channels once it has drained; until then keep committing.
        channels.CompleteStores();
        if (_loop is null) return;
        try
        {
            await _loop.WaitAsync(cancellationToken);
        }
        catch (OperationCanceledException)
        {
            log.LogWarning("Shutdown timed out while the telemetry writer was still draining");
            await _abort.CancelAsync();
        }
    }

    private async Task RunAllAsync()
    {
        try
        {
            await Task.WhenAll(Enumerable.Range(0, stores.All.Count).Select(i =>
                Task.Run(() => RunAsync(channels.Stores[i].Reader, stores.All[i], health.Writer(i, channels.Stores[i].Reader), _abort.Token))));
        }
        finally
        {
            committedFeed.Complete();
        }
    }

    private async Task RunAsync(System.Threading.Channels.ChannelReader<ValidatedTelemetry> reader, ITelemetryStore store, WriterProgress progress, CancellationToken abort)
    {
        var batch = new List<ValidatedTelemetry>(1024);
        var committed = new List<CommittedPoint>(4096);
        try
        {
            while (await reader.WaitToReadAsync(abort))
            {
                await FillAsync(reader, batch, abort);
                progress.Began(batch.Count);
                await CommitIsolatingAsync(store, batch, committed, progress, abort);
                batch.Clear();
                progress.Idle();
            }
        }
        catch (OperationCanceledException) when (abort.IsCancellationRequested)
        {
            // Host shutdown timed out: what is left is unacknowledged, so devices will resend it.
        }
        finally
        {
            foreach (var m in batch) m.Source.Ticket?.TrySetResult(IngestOutcome.Unavailable);
            while (reader.TryRead(out var m)) m.Source.Ticket?.TrySetResult(IngestOutcome.Unavailable);
        }
    }

    private async Task FillAsync(System.Threading.Channels.ChannelReader<ValidatedTelemetry> reader, List<ValidatedTelemetry> batch, CancellationToken abort)
    {
        var points = 0;
        long deadline = 0;
        while (points < _options.BatchMaxPoints)
        {
            if (reader.TryRead(out var item))
            {
                batch.Add(item);
                points += Math.Max(1, item.PointCount);
                continue;
            }
            if (_options.BatchLingerMilliseconds == 0) return;
            if (deadline == 0) deadline = Stopwatch.GetTimestamp() + _options.BatchLingerMilliseconds * Stopwatch.Frequency / 1000;
            var remaining = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), deadline);
            if (remaining <= TimeSpan.Zero) return;
            using var linger = CancellationTokenSource.CreateLinkedTokenSource(abort);
            linger.CancelAfter(remaining);
            try
            {
                if (!await reader.WaitToReadAsync(linger.Token)) return;
            }
            catch (OperationCanceledException) when (!abort.IsCancellationRequested)
            {
                return;
            }
        }
    }

    /// <summary>Commits <paramref name="batch"/> and completes its tickets. When the data makes the commit fail, the batch
    /// is split in halves, each committed the same way (in order, so a device's messages stay in order), down to the
    /// single messages that fail on their own: ~2·log2(n) commits for one such message in a batch of n.</summary>
    private async Task CommitIsolatingAsync(ITelemetryStore store, IReadOnlyList<ValidatedTelemetry> batch, List<CommittedPoint> committed,
        WriterProgress progress, CancellationToken abort)
    {
        if (await TryCommitAsync(store, batch, committed, progress, abort) is not { } refused)
        {
            Complete(batch, committed);
            return;
        }
        if (batch.Count > 1)
        {
            var half = batch.Count / 2;
            await CommitIsolatingAsync(store, Slice(batch, 0, half), committed, progress, abort);
            await CommitIsolatingAsync(store, Slice(batch, half, batch.Count - half), committed, progress, abort);
            return;
        }
        await DeadLetterRefusedAsync(store, batch[0], refused, committed, progress, abort);
    }

    /// <summary>A message the database refused for its data becomes a dead letter with the database's reason (made
    /// storable and cut on a character boundary). Should even that be refused, the dead letter keeps a fixed reason and
    /// the database's text escaped to ASCII; should that fail too, the sender is still answered, and the log says so.</summary>
    private async Task DeadLetterRefusedAsync(ITelemetryStore store, ValidatedTelemetry message, Exception refused, List<CommittedPoint> committed,
        WriterProgress progress, CancellationToken abort)
    {
        WriterMetrics.Refused.Add(1);
        var said = StoreErrors.Describe(refused);
        var reasons = new[]
        {
            (message.RejectReason is { } earlier ? SafeText.Prefix(SafeText.Storable(earlier), 300, "…") + "; then " : "") + "the database refused it: " + said,
            "the database refused this message; its reason, escaped: " + SafeText.Escaped(refused.Message, 300),
        };
        foreach (var reason in reasons)
        {
            var dead = message with { Points = null, PointCount = 0, RejectReason = reason, Errors = message.Errors ?? [new FieldError("", reason)] };
            if (await TryCommitAsync(store, [dead], committed, progress, abort) is not { } again)
            {
                log.LogWarning("The database refused a telemetry message of device {DeviceId}; dead-lettered: {Reason}", message.Source.DeviceId, reason);
                Complete([dead], committed);
                return;
            }
            refused = again;
        }
        log.LogError(refused, "The database refused a telemetry message of device {DeviceId} and then its dead letter; the sender is told it was rejected, nothing is stored",
            message.Source.DeviceId);
        message.Source.Ticket?.TrySetResult(new IngestOutcome(IngestStatus.Rejected, "the database refused this message", [new FieldError("", "the database refused this message")]));
    }

    private static IReadOnlyList<ValidatedTelemetry> Slice(IReadOnlyList<ValidatedTelemetry> batch, int start, int count)
    {
        var part = new ValidatedTelemetry[count];
        for (var i = 0; i < count; i++) part[i] = batch[start + i];
        return part;
    }

    /// <summary>Commits, retrying transient failures with backoff for as long as they last; returns null once committed,
    /// or the failure when the data caused it.</summary>
    private async Task<Exception?> TryCommitAsync(ITelemetryStore store, IReadOnlyList<ValidatedTelemetry> batch, List<CommittedPoint> committed,
        WriterProgress progress, CancellationToken abort)
    {
        var delay = TimeSpan.FromMilliseconds(50);
        while (true)
        {
            try
            {
                committed.Clear();
                await store.CommitAsync(batch, committed, abort);
                health.Succeeded();
                progress.Committed();
                return null;
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !abort.IsCancellationRequested)
            {
                WriterMetrics.Failures.Add(1);
                if (StoreErrors.IsPermanent(ex)) return ex;
                if (health.Failed(ex))
                    log.LogError(ex, "Committing a telemetry batch of {Count} messages failed; holding their acks and retrying", batch.Count);
                await Task.Delay(delay, abort);
                delay = TimeSpan.FromMilliseconds(Math.Min(delay.TotalMilliseconds * 2, 2_000));
            }
        }
    }

    /// <summary>After a commit: hands the batch's numeric points to the consumers downstream (queued without waiting for
    /// any of them), then completes the messages' tickets (which releases their acks), and counts. Queued first, so that
    /// a device or app that has its ack can rely on the batch being in every consumer's queue (an alarm check drained
    /// after a PUBACK has seen that message; when the acks went out first, a reader between the two could drain an
    /// empty queue).</summary>
    private void Complete(IReadOnlyList<ValidatedTelemetry> batch, List<CommittedPoint> committed)
    {
        if (committed.Count > 0) committedFeed.Publish(committed.ToArray());
        foreach (var m in batch)
        {
            m.Source.Ticket?.TrySetResult(m.RejectReason is null
                ? IngestOutcome.Stored
                : new IngestOutcome(IngestStatus.Rejected, m.RejectReason, m.Errors));
        }
        Interlocked.Add(ref _committedMessages, batch.Count);
        long points = 0, dead = 0;
        foreach (var m in batch)
        {
            points += m.PointCount;
            if (m.RejectReason is not null) dead++;
        }
        WriterMetrics.Messages.Add(batch.Count);
        WriterMetrics.Points.Add(points);
        WriterMetrics.DeadLetters.Add(dead);
        WriterMetrics.Batches.Add(1);
        Interlocked.Increment(ref _committedBatches);
    }
}
