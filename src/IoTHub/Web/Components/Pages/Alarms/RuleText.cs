// How the UI words a rule's scope and conditions ("> 80 for 600 s", "3 of 5 samples").
using System.Globalization;
using IoTHub.Alarms.Rules;

namespace IoTHub.Web.Components.Pages.Alarms;

/// <summary>A rule's parts in words, for lists.</summary>
public static class RuleText
{
    /// <summary>"device x", "tag y" or "profile z".</summary>
    public static string Scope(RuleScope s) =>
        !string.IsNullOrEmpty(s.DeviceId) ? $"device {s.DeviceId}" : !string.IsNullOrEmpty(s.Tag) ? $"tag {s.Tag}" : $"profile {s.Profile}";

    /// <summary>A raise condition without its severity, e.g. "> 80 for 600 s".</summary>
    public static string Condition(RaiseCondition c)
    {
        var compare = c.Operator == "outside" ? $"outside {N(c.Low)}…{N(c.High)}" : $"{c.Operator} {N(c.Value)}";
        var what = c.Kind switch { "noData" => "no data", "rateOfChange" => $"change per minute {compare}", _ => compare };
        var how = c.ForSeconds is { } f ? $" for {f} s" : c.Count is { } n ? $", {n} of {c.Of} samples" : "";
        return what + how;
    }

    private static string N(double? v) => v?.ToString("0.###", CultureInfo.InvariantCulture) ?? "?";
}
