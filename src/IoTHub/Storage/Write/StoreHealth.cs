// What /health/ready says about the telemetry writers: whether the last commit failed (a database outage), and
// whether a writer holding a batch has gone without committing for longer than Storage:CommitStallThreshold (a commit
// that hangs without failing, or a writer stuck behind its consumers). Issue #15: a writer retrying a poison batch
// forever left most devices without acks while readiness still said 200.
using System.Threading.Channels;
using IoTHub.Contracts;
using Microsoft.Extensions.Options;

namespace IoTHub.Storage.Write;

/// <summary>The telemetry writers' health, read by <c>/health/ready</c>.</summary>
internal sealed class StoreHealth(ILogger<StoreHealth> log, TimeProvider time, IOptions<StorageOptions> options)
{
    private readonly List<WriterProgress> _writers = [];
    private volatile string? _error;
    private long _failingSince;

    public string? Error => _error;

    /// <summary>Records a failure; true when this starts an outage (so it is logged once).</summary>
    public bool Failed(Exception ex)
    {
        _error = ex.Message;
        return Interlocked.CompareExchange(ref _failingSince, time.GetTimestamp(), 0) == 0;
    }

    public void Succeeded()
    {
        if (_error is null) return;
        var since = Interlocked.Exchange(ref _failingSince, 0);
        _error = null;
        if (since != 0) log.LogInformation("Telemetry store recovered after {Seconds:F1} s", time.GetElapsedTime(since).TotalSeconds);
    }

    /// <summary>The progress record of writer <paramref name="index"/>, which drains <paramref name="queue"/>.</summary>
    public WriterProgress Writer(int index, ChannelReader<ValidatedTelemetry>? queue)
    {
        var progress = new WriterProgress(index, time, queue);
        lock (_writers) _writers.Add(progress);
        return progress;
    }

    /// <summary>Why a writer counts as stalled, or null when every writer is committing or idle.</summary>
    public string? Stall()
    {
        var threshold = options.Value.CommitStallThreshold;
        lock (_writers)
        {
            foreach (var w in _writers)
            {
                if (w.StalledFor is { } stalled && stalled > threshold)
                    return $"telemetry writer {w.Index} has not committed for {stalled.TotalSeconds:F1} s while holding {w.Messages} messages " +
                           $"({w.Queued} more queued; Storage:CommitStallThreshold is {threshold})";
            }
        }
        return null;
    }
}

/// <summary>When one writer last made progress: set when it takes a batch and at each commit, cleared when it is idle.</summary>
internal sealed class WriterProgress(int index, TimeProvider time, ChannelReader<ValidatedTelemetry>? queue)
{
    private const long IdleMark = -1;
    private long _since = IdleMark;
    private int _messages;

    public int Index => index;

    public int Messages => Volatile.Read(ref _messages);

    public int Queued => queue?.CanCount == true ? queue.Count : 0;

    /// <summary>How long the writer has held work without committing; null when idle.</summary>
    public TimeSpan? StalledFor => Volatile.Read(ref _since) is var since and not IdleMark ? time.GetElapsedTime(since) : null;

    public void Began(int messages)
    {
        Volatile.Write(ref _messages, messages);
        Volatile.Write(ref _since, time.GetTimestamp());
    }

    public void Committed() => Volatile.Write(ref _since, time.GetTimestamp());

    public void Idle()
    {
        Volatile.Write(ref _since, IdleMark);
        Volatile.Write(ref _messages, 0);
    }
}
