// A campaign as the API takes it (/api/v1/firmware-campaigns, docs/firmware.md) and its validation: every bad field is
// named (HTTP 400, problem+json). Defaults are filled in by Normalized(), so that the stored definition says everything.
using FluentValidation;
using IoTHub.Contracts;

namespace IoTHub.Firmware.Campaigns;

/// <summary>What to roll out to whom, how fast, and when to stop.</summary>
/// <param name="Name">A label for people, 1 to 200 characters.</param>
/// <param name="ArtifactId">The image (<c>/api/v1/firmware/{id}</c>).</param>
/// <param name="Target">Which devices: the union of the listed ids, a tag and a profile.</param>
/// <param name="CanaryCount">Optional: exactly this many devices in a first wave of their own.</param>
/// <param name="Waves">Cumulative percentages of the targeted devices, increasing, the last one 100. Default: one wave of 100 %.</param>
/// <param name="FailureThreshold">When the campaign halts by itself. Default: more than 10 % of at least 1 finished device, pause.</param>
/// <param name="Timeouts">Seconds per step and overall.</param>
/// <param name="Retries">Notifications again after a failure, per kind.</param>
/// <param name="MaintenanceWindow">New devices are notified only inside it; null: any time.</param>
public sealed record CampaignDefinition(string? Name, long ArtifactId, CampaignTarget? Target, int? CanaryCount,
    IReadOnlyList<CampaignWave>? Waves, FailureThreshold? FailureThreshold, StepTimeouts? Timeouts, FailureRetries? Retries,
    WeeklySchedule? MaintenanceWindow)
{
    /// <summary>The definition with every default filled in.</summary>
    public CampaignDefinition Normalized() => this with
    {
        Target = new CampaignTarget(Target?.DeviceIds ?? [], string.IsNullOrEmpty(Target?.Tag) ? null : Target.Tag,
            string.IsNullOrEmpty(Target?.Profile) ? null : Target.Profile),
        Waves = Waves is { Count: > 0 } ? Waves.Select(w => w.Normalized()).ToList() : [new CampaignWave(100, null, null, null).Normalized()],
        FailureThreshold = (FailureThreshold ?? new FailureThreshold(null, null, null)).Normalized(),
        Timeouts = (Timeouts ?? new StepTimeouts(null, null, null, null, null, null)).Normalized(),
        Retries = (Retries ?? new FailureRetries(null, null, null, null)).Normalized(),
    };
}

/// <summary>The devices a campaign is for.</summary>
/// <param name="DeviceIds">Device ids, at most 10,000.</param>
/// <param name="Tag">Every device with this tag.</param>
/// <param name="Profile">Every device with this profile.</param>
public sealed record CampaignTarget(IReadOnlyList<string>? DeviceIds, string? Tag, string? Profile);

/// <summary>A wave: the devices up to <see cref="Percent"/> of the target.</summary>
/// <param name="Percent">Cumulative share of the targeted devices, 1 to 100.</param>
/// <param name="SuccessThreshold">Percent of the wave's devices that must succeed before the next wave (default 100).</param>
/// <param name="SoakSeconds">Wait after the threshold is met before the next wave starts (default 0).</param>
/// <param name="RequireApproval">The next wave waits for <c>POST .../approve</c> (default false).</param>
public sealed record CampaignWave(double Percent, double? SuccessThreshold, int? SoakSeconds, bool? RequireApproval)
{
    /// <summary>With defaults filled in.</summary>
    public CampaignWave Normalized() => new(Percent, SuccessThreshold ?? 100, SoakSeconds ?? 0, RequireApproval ?? false);
}

/// <summary>When a campaign halts by itself.</summary>
/// <param name="Percent">Halt when more than this percent of the finished devices failed (0 to 100; default 10).</param>
/// <param name="MinFinished">…once at least this many devices finished (default 1).</param>
/// <param name="Action"><c>pause</c> (default) or <c>abort</c>.</param>
public sealed record FailureThreshold(double? Percent, int? MinFinished, string? Action)
{
    /// <summary>With defaults filled in.</summary>
    public FailureThreshold Normalized() => new(Percent ?? 10, MinFinished ?? 1, Action ?? "pause");
}

/// <summary>Seconds a device may spend in each step (from entering it) and overall (from its notification); a device
/// past one is <c>timed-out</c>.</summary>
/// <param name="NotifiedSeconds">Default 86,400 (a day: it may be offline).</param>
/// <param name="DownloadingSeconds">Default 3,600.</param>
/// <param name="VerifyingSeconds">Default 600.</param>
/// <param name="InstallingSeconds">Default 1,800.</param>
/// <param name="RebootingSeconds">Default 900: to come back on the new version.</param>
/// <param name="OverallSeconds">Default 172,800.</param>
public sealed record StepTimeouts(int? NotifiedSeconds, int? DownloadingSeconds, int? VerifyingSeconds, int? InstallingSeconds,
    int? RebootingSeconds, int? OverallSeconds)
{
    /// <summary>With defaults filled in.</summary>
    public StepTimeouts Normalized() => new(NotifiedSeconds ?? 86_400, DownloadingSeconds ?? 3_600, VerifyingSeconds ?? 600,
        InstallingSeconds ?? 1_800, RebootingSeconds ?? 900, OverallSeconds ?? 172_800);

    /// <summary>The timeout of a moving state, seconds.</summary>
    public int Of(string state) => state switch
    {
        DeviceUpdateStates.Notified => NotifiedSeconds!.Value,
        DeviceUpdateStates.Downloading => DownloadingSeconds!.Value,
        DeviceUpdateStates.Verifying => VerifyingSeconds!.Value,
        DeviceUpdateStates.Installing => InstallingSeconds!.Value,
        _ => RebootingSeconds!.Value,
    };
}

/// <summary>How many times a device is notified again after a failure of each kind (0 to 10 each, default 0).</summary>
/// <param name="Download">The download failed.</param>
/// <param name="Checksum">The image did not verify.</param>
/// <param name="Install">Installing failed, or the device came back on its old version.</param>
/// <param name="Timeout">A step took too long.</param>
public sealed record FailureRetries(int? Download, int? Checksum, int? Install, int? Timeout)
{
    /// <summary>With defaults filled in.</summary>
    public FailureRetries Normalized() => new(Download ?? 0, Checksum ?? 0, Install ?? 0, Timeout ?? 0);
}

/// <summary>Names each bad field of a definition.</summary>
internal sealed class CampaignDefinitionValidator : AbstractValidator<CampaignDefinition>
{
    public const int MaxListedDevices = 10_000;
    private const int MaxSeconds = 30 * 86_400;

    public CampaignDefinitionValidator()
    {
        RuleFor(d => d.Name).NotEmpty().WithMessage("name is required").MaximumLength(200);
        RuleFor(d => d.ArtifactId).GreaterThan(0).WithMessage("artifactId is required");
        RuleFor(d => d.Target).NotNull().WithMessage("target is required (deviceIds, tag or profile)");
        RuleFor(d => d.Target!).Must(t => t.DeviceIds is { Count: > 0 } || !string.IsNullOrEmpty(t.Tag) || !string.IsNullOrEmpty(t.Profile))
            .When(d => d.Target is not null).WithName("target").WithMessage("target needs deviceIds, a tag or a profile");
        RuleFor(d => d.Target!.DeviceIds).Must(ids => ids is null || ids.Count <= MaxListedDevices)
            .When(d => d.Target is not null).WithName("target.deviceIds").WithMessage($"at most {MaxListedDevices} device ids; use a tag or a profile");
        RuleForEach(d => d.Target!.DeviceIds).Must(id => Identifier.IsValid(id)).When(d => d.Target?.DeviceIds is not null)
            .WithName("target.deviceIds").WithMessage($"device ids are {Identifier.Rule}");
        RuleFor(d => d.Target!.Tag).Must(t => t is null || t.Length == 0 || Identifier.IsValid(t)).When(d => d.Target is not null)
            .WithName("target.tag").WithMessage($"a tag is {Identifier.Rule}");
        RuleFor(d => d.Target!.Profile).Must(t => t is null || t.Length == 0 || Identifier.IsValid(t)).When(d => d.Target is not null)
            .WithName("target.profile").WithMessage($"a profile id is {Identifier.Rule}");
        RuleFor(d => d.CanaryCount).InclusiveBetween(1, 10_000).When(d => d.CanaryCount is not null);
        RuleFor(d => d.Waves).Must(w => w!.Count <= 20).When(d => d.Waves is not null).WithMessage("at most 20 waves");
        RuleFor(d => d.Waves).Must(Increasing).When(d => d.Waves is { Count: > 0 })
            .WithMessage("wave percentages must increase and the last one must be 100");
        RuleForEach(d => d.Waves).ChildRules(w =>
        {
            w.RuleFor(x => x.Percent).GreaterThan(0).LessThanOrEqualTo(100);
            w.RuleFor(x => x.SuccessThreshold).InclusiveBetween(0, 100).When(x => x.SuccessThreshold is not null);
            w.RuleFor(x => x.SoakSeconds).InclusiveBetween(0, MaxSeconds).When(x => x.SoakSeconds is not null);
        });
        RuleFor(d => d.FailureThreshold!).ChildRules(f =>
        {
            f.RuleFor(x => x.Percent).InclusiveBetween(0, 100).When(x => x.Percent is not null);
            f.RuleFor(x => x.MinFinished).InclusiveBetween(1, 1_000_000).When(x => x.MinFinished is not null);
            f.RuleFor(x => x.Action).Must(a => a is null or "pause" or "abort").WithMessage("action is pause or abort");
        }).When(d => d.FailureThreshold is not null);
        RuleFor(d => d.Timeouts!).ChildRules(t =>
        {
            foreach (var (name, get) in new (string, Func<StepTimeouts, int?>)[]
                     {
                         ("notifiedSeconds", x => x.NotifiedSeconds), ("downloadingSeconds", x => x.DownloadingSeconds),
                         ("verifyingSeconds", x => x.VerifyingSeconds), ("installingSeconds", x => x.InstallingSeconds),
                         ("rebootingSeconds", x => x.RebootingSeconds), ("overallSeconds", x => x.OverallSeconds),
                     })
                t.RuleFor(x => get(x)).InclusiveBetween(1, MaxSeconds).When(x => get(x) is not null).WithName(name);
        }).When(d => d.Timeouts is not null);
        RuleFor(d => d.Retries!).ChildRules(r =>
        {
            foreach (var (name, get) in new (string, Func<FailureRetries, int?>)[]
                     { ("download", x => x.Download), ("checksum", x => x.Checksum), ("install", x => x.Install), ("timeout", x => x.Timeout) })
                r.RuleFor(x => get(x)).InclusiveBetween(0, 10).When(x => get(x) is not null).WithName(name);
        }).When(d => d.Retries is not null);
        RuleFor(d => d.MaintenanceWindow!).SetValidator(new WeeklyScheduleValidator()).When(d => d.MaintenanceWindow is not null);
    }

    private static bool Increasing(IReadOnlyList<CampaignWave>? waves)
    {
        if (waves is null) return true;
        for (var i = 1; i < waves.Count; i++)
            if (waves[i].Percent <= waves[i - 1].Percent) return false;
        return waves[^1].Percent == 100;
    }
}
