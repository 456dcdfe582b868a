using System.ComponentModel.DataAnnotations;
using IoTHub.Contracts;

namespace IoTHub.Validation;

/// <summary>Section <c>Validation</c>: the limits every telemetry message is held to.</summary>
public sealed class ValidationOptions
{
    /// <summary>The configuration section: <c>Validation</c> (shared with <see cref="TelemetryAge"/>).</summary>
    public const string SectionName = "Validation";

    /// <summary>Largest accepted payload, in bytes (the contract's 256 KiB).</summary>
    [Range(64, 16 * 1024 * 1024)]
    public int MaxPayloadBytes { get; set; } = 256 * 1024;

    /// <summary>Most points in one message (a batch counts every value of every item).</summary>
    [Range(1, 100_000)]
    public int MaxBatchPoints { get; set; } = 1_000;

    /// <summary>Longest string value, in UTF-8 bytes.</summary>
    [Range(1, 1024 * 1024)]
    public int MaxStringBytes { get; set; } = 1_024;

    /// <summary>Points older than this are rejected (a device clock years off, or a replay).</summary>
    public TimeSpan MaxPastAge { get; set; } = TelemetryAge.DefaultMaxPastAge;

    /// <summary>How far a device timestamp may be ahead of the hub's clock before it counts as drift.</summary>
    public TimeSpan ClockDriftTolerance { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>The clock policy of devices without a profile: <c>Reject</c>, <c>ServerTime</c> or <c>Accept</c>.</summary>
    public Contracts.ClockPolicy DefaultClockPolicy { get; set; } = Contracts.ClockPolicy.Reject;

    /// <summary>Even under the <c>accept</c> policy, points further ahead than this are rejected.</summary>
    public TimeSpan MaxFutureAccepted { get; set; } = TimeSpan.FromDays(1);

    /// <summary>Decode-and-validate workers; 0 means one per processor.</summary>
    [Range(0, 64)]
    public int Workers { get; set; }
}
