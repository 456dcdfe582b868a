// A log line that someone outside can make the hub write again and again (a refused login, a connection over the
// per-address cap, a forbidden publish) is written once per interval and key; its repeats are only counted, and one
// summary line per interval gives their number. Before this, a flood of refused connections wrote 37,741 warnings in
// 30 s. Memory stays bounded under a flood of distinct keys: each kind tracks at most LogThrottle:MaxKeys keys in an
// interval, and the repeats under any further key are counted together under "other keys".
using System.Collections.Concurrent;
using System.ComponentModel.DataAnnotations;
using System.Net;
using Microsoft.Extensions.Options;

namespace IoTHub.Contracts;

/// <summary>Section <c>LogThrottle</c>: how repeated log lines are summed up.</summary>
public sealed class LogThrottleOptions
{
    /// <summary>The configuration section.</summary>
    public const string SectionName = "LogThrottle";

    /// <summary>Length of one interval: the first line of a kind and key in it is written, its repeats are counted and
    /// written as one summary line when the interval ends.</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "01:00:00")]
    public TimeSpan Interval { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Most keys (addresses, devices, clients) tracked per kind of line in one interval; lines under further
    /// keys are counted together, under "other keys".</summary>
    [Range(1, 100_000)]
    public int MaxKeys { get; set; } = 100;
}

/// <summary>A kind of log line that may repeat: its level, its message template and a short name for its summary line.</summary>
public abstract class LogKind
{
    private readonly Action<ILogger, long, string, double, Exception?> _summary;

    /// <summary>Defines a kind; <paramref name="name"/> starts its summary line ("{name}: 12 more for 10.0.0.7 in 30 s").</summary>
    protected LogKind(LogLevel level, string name)
    {
        Level = level;
        Name = name;
        _summary = LoggerMessage.Define<long, string, double>(level, default,
            name + ": {Suppressed} more for {Key} in the last {Seconds} s, not logged one by one");
    }

    /// <summary>Level of the line and of its summary.</summary>
    public LogLevel Level { get; }

    /// <summary>What the line is about, in a few words; starts the summary line.</summary>
    public string Name { get; }

    internal void WriteSummary(ILogger log, long suppressed, string key, double seconds) => _summary(log, suppressed, key, seconds, null);
}

/// <summary>A repeatable line with one argument.</summary>
public sealed class LogKind<T1>(LogLevel level, string name, string template) : LogKind(level, name)
{
    internal Action<ILogger, T1, Exception?> Line { get; } = LoggerMessage.Define<T1>(level, default, template);
}

/// <summary>A repeatable line with two arguments.</summary>
public sealed class LogKind<T1, T2>(LogLevel level, string name, string template) : LogKind(level, name)
{
    internal Action<ILogger, T1, T2, Exception?> Line { get; } = LoggerMessage.Define<T1, T2>(level, default, template);
}

/// <summary>A repeatable line with three arguments.</summary>
public sealed class LogKind<T1, T2, T3>(LogLevel level, string name, string template) : LogKind(level, name)
{
    internal Action<ILogger, T1, T2, T3, Exception?> Line { get; } = LoggerMessage.Define<T1, T2, T3>(level, default, template);
}

/// <summary>A repeatable line with four arguments.</summary>
public sealed class LogKind<T1, T2, T3, T4>(LogLevel level, string name, string template) : LogKind(level, name)
{
    internal Action<ILogger, T1, T2, T3, T4, Exception?> Line { get; } = LoggerMessage.Define<T1, T2, T3, T4>(level, default, template);
}

/// <summary>Writes the first line of a kind and key in each interval and counts the rest; at the end of the interval
/// one summary line gives the count. A repeat costs one dictionary lookup and one interlocked increment.</summary>
public sealed class LogThrottle : IDisposable
{
    /// <summary>The key repeats are counted under once a kind tracks <see cref="LogThrottleOptions.MaxKeys"/> keys.</summary>
    public const string OtherKeys = "other keys";

    private readonly TimeProvider _time;
    private readonly int _maxKeys;
    private readonly ConcurrentDictionary<LogKind, KindState> _kinds = new();
    private readonly ITimer _timer;

    /// <summary>Starts the interval timer.</summary>
    public LogThrottle(TimeProvider time, IOptions<LogThrottleOptions> options)
    {
        _time = time;
        _maxKeys = options.Value.MaxKeys;
        _timer = time.CreateTimer(_ => FlushQuietly(), null, options.Value.Interval, options.Value.Interval);
    }

    /// <summary>Writes the line unless it is a repeat of its kind and key in this interval.</summary>
    public void Write<T1>(ILogger log, LogKind<T1> kind, string? key, T1 a1)
    {
        if (Admit(log, kind, key)) kind.Line(log, a1, null);
    }

    /// <summary>Writes the line unless it is a repeat of its kind and key in this interval.</summary>
    public void Write<T1, T2>(ILogger log, LogKind<T1, T2> kind, string? key, T1 a1, T2 a2)
    {
        if (Admit(log, kind, key)) kind.Line(log, a1, a2, null);
    }

    /// <summary>Writes the line unless it is a repeat of its kind and key in this interval.</summary>
    public void Write<T1, T2, T3>(ILogger log, LogKind<T1, T2, T3> kind, string? key, T1 a1, T2 a2, T3 a3)
    {
        if (Admit(log, kind, key)) kind.Line(log, a1, a2, a3, null);
    }

    /// <summary>Writes the line unless it is a repeat of its kind and key in this interval.</summary>
    public void Write<T1, T2, T3, T4>(ILogger log, LogKind<T1, T2, T3, T4> kind, string? key, T1 a1, T2 a2, T3 a3, T4 a4)
    {
        if (Admit(log, kind, key)) kind.Line(log, a1, a2, a3, a4, null);
    }

    /// <summary>The key for a remote end point: its IP address without the port (a client's every connection has a new port).</summary>
    public static string? AddressOf(EndPoint? remote) => remote switch
    {
        IPEndPoint ip => ip.Address.IsIPv4MappedToIPv6 ? ip.Address.MapToIPv4().ToString() : ip.Address.ToString(),
        null => null,
        _ => remote.ToString(),
    };

    /// <summary>True when this line is the first of its kind and key in the interval (write it); false when it is a
    /// repeat (counted for the summary) or its level is off.</summary>
    internal bool Admit(ILogger log, LogKind kind, string? key)
    {
        if (!log.IsEnabled(kind.Level)) return false;
        var state = _kinds.GetOrAdd(kind, static _ => new KindState());
        key = KeyOf(key);
        while (true)
        {
            if (state.Keys.TryGetValue(key, out var tally))
            {
                if (Interlocked.Increment(ref tally.Suppressed) > 0) return false;
                continue; // the interval of this tally just ended: the line opens a new one
            }
            var counted = key != OtherKeys;
            if (counted && Interlocked.Increment(ref state.KeyCount) > _maxKeys)
            {
                Interlocked.Decrement(ref state.KeyCount);
                key = OtherKeys;
                continue;
            }
            if (state.Keys.TryAdd(key, new Tally(log, _time.GetTimestamp()))) return true;
            if (counted) Interlocked.Decrement(ref state.KeyCount); // another thread opened it first
        }
    }

    /// <summary>Keys come from outside (client ids, user names): a long one is cut and control characters are replaced,
    /// so a key costs little memory and its summary line cannot forge other lines.</summary>
    private static string KeyOf(string? key)
    {
        if (key is null) return "";
        const int max = 128;
        if (key.Length <= max && !key.AsSpan().ContainsAnyInRange('\0', '\x1f') && !key.AsSpan().ContainsAnyInRange('\x7f', '\x9f')) return key;
        var cut = SafeText.Prefix(key, max); // never half an emoji at the end of a log line
        return string.Create(cut.Length, cut, static (span, k) =>
        {
            for (var i = 0; i < span.Length; i++) span[i] = char.IsControl(k[i]) ? '?' : k[i];
        });
    }

    /// <summary>Ends the interval: writes a summary for each kind and key with repeats and forgets them all.</summary>
    internal void Flush()
    {
        foreach (var (kind, state) in _kinds)
        {
            foreach (var (key, tally) in state.Keys)
            {
                if (!state.Keys.TryRemove(new KeyValuePair<string, Tally>(key, tally))) continue;
                if (key != OtherKeys) Interlocked.Decrement(ref state.KeyCount);
                // A repeat that found this tally before it was removed either counts here or, after the exchange,
                // sees a negative count and opens a new interval: none is lost or counted twice.
                var suppressed = Interlocked.Exchange(ref tally.Suppressed, long.MinValue);
                if (suppressed > 0)
                    kind.WriteSummary(tally.Log, suppressed, key.Length == 0 ? "all" : key, Math.Round(_time.GetElapsedTime(tally.Opened).TotalSeconds, 1));
            }
        }
    }

    /// <summary>Keys tracked in the interval in progress, over all kinds.</summary>
    internal int TrackedKeys => _kinds.Values.Sum(k => k.Keys.Count);

    /// <summary>Stops the timer and writes the summaries of the interval in progress.</summary>
    public void Dispose()
    {
        _timer.Dispose();
        FlushQuietly();
    }

    /// <summary>A logger provider that throws (MEL rethrows its providers' exceptions) must not take a timer thread,
    /// and with it the process, down.</summary>
    private void FlushQuietly()
    {
        try
        {
            Flush();
        }
        catch (Exception)
        {
            // nowhere left to report it
        }
    }

    private sealed class KindState
    {
        public readonly ConcurrentDictionary<string, Tally> Keys = new(StringComparer.Ordinal);
        public int KeyCount;
    }

    private sealed class Tally(ILogger log, long opened)
    {
        public readonly ILogger Log = log;
        public readonly long Opened = opened;
        public long Suppressed;
    }
}
