using System.Diagnostics.Metrics;

namespace IoTHub.Contracts;

/// <summary>The one meter every module records its counters on; Observability exports it at <c>/metrics</c>.</summary>
public static class HubMeter
{
    public const string Name = "IoTHub";
    public static readonly Meter Meter = new(Name);
}
