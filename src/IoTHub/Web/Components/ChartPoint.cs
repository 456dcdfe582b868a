namespace IoTHub.Web.Components;

/// <summary>One point of a line chart (local time on the axis).</summary>
public sealed record ChartPoint(DateTime At, double Value);
