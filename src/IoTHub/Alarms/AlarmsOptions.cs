using System.ComponentModel.DataAnnotations;

namespace IoTHub.Alarms;

/// <summary>Section <c>Alarms</c>: how rules are evaluated and when an alarm counts as flapping.</summary>
public sealed class AlarmsOptions
{
    /// <summary>The configuration section: <c>Alarms</c>.</summary>
    public const string SectionName = "Alarms";

    /// <summary>How often the evaluator checks deadlines (durations, clear delays, no data). Default 1 s; at least 50 ms.</summary>
    public TimeSpan TickInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>After the hub starts, no <c>noData</c> condition raises before this has passed, so that devices have time
    /// to reconnect (a restart is not a storm). Default 5 minutes.</summary>
    public TimeSpan NoDataGracePeriod { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Raises and clears of one (rule, device) within <see cref="FlappingWindow"/> that make it flapping. Default 4 (2 to 100).</summary>
    [Range(2, 100)]
    public int FlappingTransitions { get; set; } = 4;

    /// <summary>The window <see cref="FlappingTransitions"/> are counted in, and how long a flapping alarm's clear must hold.
    /// Default 10 minutes.</summary>
    public TimeSpan FlappingWindow { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>Committed telemetry batches the evaluator may fall behind by before it loses the oldest (counted in
    /// <c>iothub_committed_feed_dropped_total{consumer="alarms"}</c>). Default 4,096 (16 to 1,000,000).</summary>
    [Range(16, 1_000_000)]
    public int QueueCapacity { get; set; } = 4096;

    /// <summary>Cleared alarms and their history are deleted this long after they cleared (checked hourly). Default 90 days;
    /// at least 1 hour.</summary>
    public TimeSpan ClearedRetention { get; set; } = TimeSpan.FromDays(90);

    /// <summary>Most rules the hub holds. Default 10,000 (1 to 1,000,000).</summary>
    [Range(1, 1_000_000)]
    public int MaxRules { get; set; } = 10_000;
}
