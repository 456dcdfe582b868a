namespace IoTHub.Web.Components;

/// <summary>One point of a line chart (local time on the axis).</summary>
public sealed record ChartPoint(DateTime At, double Value);

/// <summary>A horizontal line across a chart: an alarm rule's threshold or band edge.</summary>
/// <param name="Label">What it is, e.g. "major > 80".</param>
/// <param name="Value">Where, in the metric's units.</param>
/// <param name="Severity">The severity word (<c>critical</c> … <c>warning</c>, or <c>clear</c>), for its colour.</param>
public sealed record ChartBand(string Label, double Value, string Severity);
