using System.Diagnostics.Metrics;

namespace IoTHub.Contracts;

/// <summary>The one meter every module records its counters on; Observability exports it at <c>/metrics</c>.</summary>
public static class HubMeter
{
    /// <summary>The meter's name, which the Prometheus exporter listens to.</summary>
    public const string Name = "IoTHub";

    /// <summary>The meter; instrument names start <c>iothub_</c> and are exported as they are.</summary>
    public static readonly Meter Meter = new(Name);
}
