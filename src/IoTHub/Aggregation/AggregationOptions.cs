namespace IoTHub.Aggregation;

/// <summary>Section <c>Aggregation</c>: when windows count as closed.</summary>
public sealed class AggregationOptions
{
    /// <summary>The configuration section: <c>Aggregation</c>.</summary>
    public const string SectionName = "Aggregation";

    /// <summary>A window closes when the device's watermark (latest event time) passes its end plus this.</summary>
    public TimeSpan AllowedLateness { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>A device that goes quiet still gets its windows closed this long after end plus lateness (by the hub's clock).</summary>
    public TimeSpan IdleClose { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>How often due windows are closed.</summary>
    public TimeSpan TickInterval { get; set; } = TimeSpan.FromSeconds(1);
}
