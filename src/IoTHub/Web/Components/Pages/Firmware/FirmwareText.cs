// How the firmware pages word and colour campaigns, waves and devices' update states, shared by the list, the campaign
// page, the wizard and the device page.
namespace IoTHub.Web.Components.Pages.Firmware;

internal static class FirmwareText
{
    /// <summary>Campaign states, in the order of their lives.</summary>
    public static readonly IReadOnlyList<string> CampaignStates = ["draft", "running", "paused", "completed", "aborted"];

    /// <summary>A device's update states, in the order a device moves through them, then the ways it can end.</summary>
    public static readonly IReadOnlyList<string> DeviceStates =
        ["queued", "notified", "downloading", "verifying", "installing", "rebooting", "succeeded", "failed", "timed-out", "rejected", "canceled"];

    /// <summary>The states in which a device's update is over without success.</summary>
    public static readonly IReadOnlySet<string> FailureStates = new HashSet<string>(["failed", "timed-out", "rejected"], StringComparer.Ordinal);

    /// <summary>The badge class of a campaign's state.</summary>
    public static string CampaignClass(string state) => state switch
    {
        "running" => "online",
        "paused" => "warn",
        "completed" => "done",
        "aborted" => "offline",
        _ => "",
    };

    /// <summary>The badge (and funnel segment) class of a device's update state.</summary>
    public static string DeviceClass(string state) => state switch
    {
        "succeeded" => "online",
        "failed" or "timed-out" or "rejected" => "offline",
        "canceled" => "off",
        "queued" => "",
        _ => "busy",
    };

    /// <summary>The badge class of a wave's state.</summary>
    public static string WaveClass(string state) => state switch
    {
        "passed" => "online",
        "failed" or "halted" => "offline",
        "awaiting-approval" => "warn",
        "running" or "soaking" => "busy",
        _ => "",
    };

    /// <summary>"Canary (n devices)" for the canary wave, else "Wave n (p %)". Waves are numbered from 1; wave 1 is the
    /// canary when the definition has a canary count, and the definition's waves are numbered from 1 after it.</summary>
    public static string WaveLabel(int wave, CampaignDefinition definition)
    {
        var index = wave - 1;
        var canary = definition.CanaryCount is > 0;
        if (canary && index == 0) return $"Canary ({definition.CanaryCount} device{(definition.CanaryCount == 1 ? "" : "s")})";
        var waveIndex = canary ? index - 1 : index;
        return waveIndex >= 0 && waveIndex < definition.Waves.Count ? $"Wave {waveIndex + 1} ({Percent(definition.Waves[waveIndex].Percent)} %)" : $"Wave {wave}";
    }

    /// <summary>"canary" or the wave's number as <see cref="WaveLabel"/> counts it, for a column of waves.</summary>
    public static string ShortWave(int wave, CampaignDefinition definition)
    {
        var index = wave - 1;
        if (definition.CanaryCount is > 0) return index == 0 ? "canary" : index.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return (index + 1).ToString(System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>What the target of a definition says: "devices a, b · tag floor-2 · profile thermo".</summary>
    public static string Target(TargetModel target)
    {
        var parts = new List<string>();
        if (target.DeviceIds is { Count: > 0 } ids)
            parts.Add(ids.Count <= 3 ? $"device{(ids.Count == 1 ? "" : "s")} {string.Join(", ", ids)}" : $"{ids.Count} listed devices");
        if (!string.IsNullOrEmpty(target.Tag)) parts.Add($"tag {target.Tag}");
        if (!string.IsNullOrEmpty(target.Profile)) parts.Add($"profile {target.Profile}");
        return parts.Count == 0 ? "nothing" : string.Join(" · ", parts);
    }

    /// <summary>The waves as one line: "canary 1 → 10 % → 50 % → 100 %".</summary>
    public static string Waves(CampaignDefinition definition) =>
        string.Join(" → ", (definition.CanaryCount is > 0 ? [$"canary {definition.CanaryCount}"] : Array.Empty<string>())
            .Concat(definition.Waves.Select(w => $"{Percent(w.Percent)} %")));

    /// <summary>A percentage without needless decimals: "10", "12.5".</summary>
    public static string Percent(double percent) => percent.ToString("0.##", System.Globalization.CultureInfo.InvariantCulture);
}
