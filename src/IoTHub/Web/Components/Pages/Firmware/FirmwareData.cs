// What the firmware pages read and do, behind one small interface: the pages are written against these shapes (those
// of docs/firmware.md's REST API) and never see where they come from. The implementation sends the Firmware module's
// public requests through the UI's ScopedMediator, as every other page does, and maps its answers to these records.
// The upload alone does not go through here: the browser streams the image itself to POST /api/v1/firmware
// (firmware-upload.js), since an image of up to 256 MiB has no business in a SignalR circuit.
using IoTHub.Contracts;

namespace IoTHub.Web.Components.Pages.Firmware;

/// <summary>The firmware pages' access to artifacts, campaigns and devices' firmware (see the file's header).</summary>
internal interface IFirmwareData
{
    /// <summary>A page of artifacts, newest first.</summary>
    Task<Page<ArtifactModel>> ListArtifactsAsync(string? cursor, CancellationToken ct = default);

    /// <summary>Deletes an artifact: <see cref="FirmwareStatus.Conflict"/> while a draft, running or paused campaign uses it.</summary>
    Task<FirmwareResult> DeleteArtifactAsync(long id, string actor, CancellationToken ct = default);

    /// <summary>How the definition's target splits into waves now; nothing is saved.</summary>
    Task<FirmwareResult<PreviewModel>> PreviewAsync(CampaignDefinition definition, CancellationToken ct = default);

    /// <summary>Saves the definition as a campaign in state <c>draft</c>.</summary>
    Task<FirmwareResult<CampaignModel>> CreateCampaignAsync(CampaignDefinition definition, string actor, CancellationToken ct = default);

    /// <summary>Starts, pauses, resumes, aborts or approves the next wave of a campaign; <see cref="FirmwareStatus.Conflict"/>
    /// (with the state in the detail) when its state does not allow it.</summary>
    Task<FirmwareResult<CampaignModel>> ActAsync(long id, CampaignAction action, string actor, CancellationToken ct = default);

    /// <summary>Deletes a draft, completed or aborted campaign.</summary>
    Task<FirmwareResult> DeleteCampaignAsync(long id, string actor, CancellationToken ct = default);

    /// <summary>A page of campaigns, optionally of one state.</summary>
    Task<Page<CampaignModel>> ListCampaignsAsync(string? state, string? cursor, CancellationToken ct = default);

    /// <summary>One campaign with its funnel, or null.</summary>
    Task<CampaignModel?> GetCampaignAsync(long id, CancellationToken ct = default);

    /// <summary>A page of a campaign's devices, optionally of one state and one wave; null when there is no such campaign.</summary>
    Task<Page<CampaignDeviceModel>?> ListCampaignDevicesAsync(long id, string? state, int? wave, string? cursor, CancellationToken ct = default);

    /// <summary>A device's reported firmware and its update history, or null when there is no such device.</summary>
    Task<DeviceFirmwareModel?> GetDeviceFirmwareAsync(string deviceId, CancellationToken ct = default);
}

/// <summary>What a campaign's buttons do.</summary>
internal enum CampaignAction { Start, Pause, Resume, Abort, Approve }

/// <summary>How a write came out.</summary>
internal enum FirmwareStatus { Ok, NotFound, Invalid, Conflict }

/// <summary>The outcome of a write without an answer.</summary>
/// <param name="Status">How it came out.</param>
/// <param name="Detail">Why not, in a sentence (a conflict's state, an artifact's campaign).</param>
/// <param name="Errors">The bad fields by name (<c>waves[1].percent</c>), when <see cref="FirmwareStatus.Invalid"/>.</param>
internal record FirmwareResult(FirmwareStatus Status, string? Detail = null, IReadOnlyDictionary<string, string>? Errors = null)
{
    public bool Ok => Status == FirmwareStatus.Ok;
}

/// <summary>The outcome of a write with its answer (set when <see cref="FirmwareResult.Ok"/>).</summary>
internal sealed record FirmwareResult<T>(FirmwareStatus Status, T? Value = default, string? Detail = null, IReadOnlyDictionary<string, string>? Errors = null)
    : FirmwareResult(Status, Detail, Errors);

/// <summary>A stored firmware image (docs/firmware.md, "artifact").</summary>
internal sealed record ArtifactModel(long Id, string Version, string? HardwareModel, string? Profile, string? Notes, long Size, string Sha256,
    bool Signed, string? SigningKey, DateTimeOffset CreatedAt, string? CreatedBy);

/// <summary>Which devices a campaign is for: the union of the listed ones, a tag and a profile.</summary>
internal sealed record TargetModel(IReadOnlyList<string>? DeviceIds, string? Tag, string? Profile);

/// <summary>One wave: the cumulative percent of the targeted devices it reaches, and when the next may start.</summary>
internal sealed record WaveModel(double Percent, double? SuccessThreshold, int? SoakSeconds, bool? RequireApproval);

/// <summary>When the campaign halts by itself.</summary>
internal sealed record FailureThresholdModel(double? Percent, int? MinFinished, string? Action);

/// <summary>Per-step timeouts in seconds, and the overall one from notification.</summary>
internal sealed record TimeoutsModel(int? NotifiedSeconds, int? DownloadingSeconds, int? VerifyingSeconds, int? InstallingSeconds, int? RebootingSeconds, int? OverallSeconds);

/// <summary>How often a device is notified again after a failure of each kind.</summary>
internal sealed record RetriesModel(int? Download, int? Checksum, int? Install, int? Timeout);

/// <summary>When new devices may be notified: days (mon…sun) and a local time range in an IANA time zone.</summary>
internal sealed record MaintenanceWindowModel(string? TimeZone, IReadOnlyList<string>? Days, string? From, string? To);

/// <summary>What the wizard defines (docs/firmware.md, "definition").</summary>
internal sealed record CampaignDefinition(string Name, long ArtifactId, TargetModel Target, int? CanaryCount, IReadOnlyList<WaveModel> Waves,
    FailureThresholdModel? FailureThreshold, TimeoutsModel? Timeouts, RetriesModel? Retries, MaintenanceWindowModel? MaintenanceWindow);

/// <summary>The wizard's target preview.</summary>
/// <param name="Devices">Devices that would be updated.</param>
/// <param name="Skipped">Targeted devices that already report the artifact's version.</param>
/// <param name="Incompatible">Targeted devices whose hardware model or profile does not fit the artifact.</param>
/// <param name="Unknown">Listed ids that are no device.</param>
/// <param name="Waves">Devices per wave, the canary wave (if any) first.</param>
internal sealed record PreviewModel(int Devices, int Skipped, int Incompatible, int Unknown, IReadOnlyList<WaveCount> Waves);

/// <summary>How many devices a wave holds.</summary>
internal sealed record WaveCount(int Wave, int Devices);

/// <summary>Where a wave stands (<c>pending|running|soaking|awaiting-approval|passed|halted</c>); <paramref name="Failed"/>
/// counts failed, timed-out and rejected devices, <paramref name="InProgress"/> the notified ones not finished.</summary>
internal sealed record WaveStateModel(int Wave, int Devices, int Succeeded, int Failed, int InProgress, string State);

/// <summary>How many of a campaign's devices are in each state.</summary>
internal sealed record FunnelModel(int Queued, int Notified, int Downloading, int Verifying, int Installing, int Rebooting,
    int Succeeded, int Failed, int TimedOut, int Rejected, int Canceled)
{
    /// <summary>Every state with its count, in the order a device moves through them.</summary>
    public IEnumerable<(string State, int Count)> Steps =>
    [
        ("queued", Queued), ("notified", Notified), ("downloading", Downloading), ("verifying", Verifying), ("installing", Installing),
        ("rebooting", Rebooting), ("succeeded", Succeeded), ("failed", Failed), ("timed-out", TimedOut), ("rejected", Rejected), ("canceled", Canceled),
    ];

    public int Total => Steps.Sum(s => s.Count);

    /// <summary>From counts by state word (<c>timed-out</c> and all); a state not named counts 0.</summary>
    public static FunnelModel From(IReadOnlyDictionary<string, int> counts)
    {
        int Of(string state) => counts.GetValueOrDefault(state);
        return new FunnelModel(Of("queued"), Of("notified"), Of("downloading"), Of("verifying"), Of("installing"), Of("rebooting"),
            Of("succeeded"), Of("failed"), Of("timed-out"), Of("rejected"), Of("canceled"));
    }
}

/// <summary>A campaign with its progress (docs/firmware.md, "campaign").</summary>
/// <remarks><see cref="CurrentWave"/> is 1-based (null before the start); <see cref="Skipped"/> and <see cref="Incompatible"/>
/// count the targeted devices left out when it started.</remarks>
internal sealed record CampaignModel(long Id, CampaignDefinition Definition, string State, long ArtifactId, string ArtifactVersion, int? CurrentWave,
    IReadOnlyList<WaveStateModel> WaveStates, FunnelModel Funnel, int Skipped, int Incompatible, string? HaltReason, DateTimeOffset CreatedAt, DateTimeOffset? StartedAt,
    DateTimeOffset? FinishedAt, string? CreatedBy);

/// <summary>One device of a campaign.</summary>
internal sealed record CampaignDeviceModel(string DeviceId, int? Wave, string State, long? Bytes, int Attempt, string? Reason, string? Detail,
    string? FromVersion, DateTimeOffset UpdatedAt, DateTimeOffset? FinishedAt);

/// <summary>A device's firmware as it reports it, and the campaigns that updated (or tried to update) it, newest first.</summary>
internal sealed record DeviceFirmwareModel(string DeviceId, string? Version, string? HardwareModel, DateTimeOffset? ReportedAt, IReadOnlyList<DeviceUpdateModel> History);

/// <summary>One update of a device.</summary>
internal sealed record DeviceUpdateModel(long CampaignId, string? CampaignName, string Version, string State, string? Reason, string? Detail, DateTimeOffset UpdatedAt);
