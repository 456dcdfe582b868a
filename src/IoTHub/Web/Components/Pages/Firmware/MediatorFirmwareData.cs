// The firmware pages' data from the Firmware module's public requests, sent through the UI's ScopedMediator like every
// other page's; its views are mapped to the pages' records (FirmwareData.cs), which have the same shapes.
using IoTHub.Contracts;
using IoTHub.Firmware.Artifacts;
using IoTHub.Firmware.Campaigns;
using IoTHub.Firmware.Rollout;

namespace IoTHub.Web.Components.Pages.Firmware;

internal sealed class MediatorFirmwareData(ScopedMediator mediator) : IFirmwareData
{
    private const int DevicePage = 100;
    private static readonly string[] Holding = ["draft", "running", "paused"];

    public async Task<Page<ArtifactModel>> ListArtifactsAsync(string? cursor, CancellationToken ct = default) =>
        new((await mediator.Send(new ListFirmwareArtifactsQuery(), ct)).Select(Map).ToList(), null);

    public async Task<FirmwareResult> DeleteArtifactAsync(long id, string actor, CancellationToken ct = default)
    {
        switch (await mediator.Send(new DeleteFirmwareArtifactCommand(id), ct))
        {
            case DeleteFirmwareArtifactOutcome.Deleted:
                return new FirmwareResult(FirmwareStatus.Ok);
            case DeleteFirmwareArtifactOutcome.InUse:
                // Name the campaigns that hold it, so the user knows what to abort or delete.
                var users = (await mediator.Send(new ListCampaignsQuery(null), ct)).Where(c => c.Artifact.Id == id && Holding.Contains(c.State))
                    .Select(c => $"{c.Name} ({c.State})").ToList();
                return new FirmwareResult(FirmwareStatus.Conflict, users.Count == 0 ? null : "used by " + string.Join(", ", users));
            default:
                return new FirmwareResult(FirmwareStatus.NotFound);
        }
    }

    public async Task<FirmwareResult<PreviewModel>> PreviewAsync(CampaignDefinition definition, CancellationToken ct = default)
    {
        var (preview, errors) = await mediator.Send(new PreviewCampaignQuery(Map(definition)), ct);
        return preview is null
            ? new FirmwareResult<PreviewModel>(FirmwareStatus.Invalid, Errors: Flatten(errors))
            : new FirmwareResult<PreviewModel>(FirmwareStatus.Ok, new PreviewModel(preview.Devices, preview.Skipped, preview.Incompatible, preview.Unknown,
                preview.Waves.Select(w => new WaveCount(w.Wave, w.Devices)).ToList()));
    }

    public async Task<FirmwareResult<CampaignModel>> CreateCampaignAsync(CampaignDefinition definition, string actor, CancellationToken ct = default)
    {
        var saved = await mediator.Send(new SaveCampaignCommand(null, Map(definition), actor), ct);
        return saved.Outcome switch
        {
            SaveCampaignOutcome.Saved => new FirmwareResult<CampaignModel>(FirmwareStatus.Ok, Map(saved.Campaign!)),
            SaveCampaignOutcome.NotFound => new FirmwareResult<CampaignModel>(FirmwareStatus.NotFound),
            SaveCampaignOutcome.NotDraft => new FirmwareResult<CampaignModel>(FirmwareStatus.Conflict, Detail: "only a draft campaign can be changed"),
            _ => new FirmwareResult<CampaignModel>(FirmwareStatus.Invalid, Errors: Flatten(saved.Errors)),
        };
    }

    public async Task<FirmwareResult<CampaignModel>> ActAsync(long id, CampaignAction action, string actor, CancellationToken ct = default)
    {
        var outcome = await mediator.Send(new CampaignActionCommand(id, action.ToString().ToLowerInvariant(), actor), ct);
        var view = await mediator.Send(new GetCampaignQuery(id), ct);
        var campaign = view is null ? null : Map(view);
        return outcome switch
        {
            CampaignActionOutcome.Done => new FirmwareResult<CampaignModel>(FirmwareStatus.Ok, campaign),
            CampaignActionOutcome.WrongState => new FirmwareResult<CampaignModel>(FirmwareStatus.Conflict, campaign, $"the campaign is {view?.State}"),
            CampaignActionOutcome.ArtifactMissing => new FirmwareResult<CampaignModel>(FirmwareStatus.Conflict, campaign, "its firmware image was deleted"),
            _ => new FirmwareResult<CampaignModel>(FirmwareStatus.NotFound),
        };
    }

    public async Task<FirmwareResult> DeleteCampaignAsync(long id, string actor, CancellationToken ct = default) =>
        await mediator.Send(new DeleteCampaignCommand(id), ct) switch
        {
            CampaignActionOutcome.Done => new FirmwareResult(FirmwareStatus.Ok),
            CampaignActionOutcome.WrongState => new FirmwareResult(FirmwareStatus.Conflict, "pause and abort it first, or wait until it completes"),
            _ => new FirmwareResult(FirmwareStatus.NotFound),
        };

    public async Task<Page<CampaignModel>> ListCampaignsAsync(string? state, string? cursor, CancellationToken ct = default) =>
        new((await mediator.Send(new ListCampaignsQuery(state), ct)).Select(Map).ToList(), null);

    public async Task<CampaignModel?> GetCampaignAsync(long id, CancellationToken ct = default) =>
        await mediator.Send(new GetCampaignQuery(id), ct) is { } c ? Map(c) : null;

    public async Task<Page<CampaignDeviceModel>?> ListCampaignDevicesAsync(long id, string? state, int? wave, string? cursor, CancellationToken ct = default) =>
        await mediator.Send(new ListCampaignDevicesQuery(id, state, wave, cursor, DevicePage), ct) is { } page
            ? new Page<CampaignDeviceModel>(page.Items.Select(d => new CampaignDeviceModel(d.DeviceId, d.Wave, d.State, d.Bytes, d.Attempt, d.Reason, d.Detail,
                d.FromVersion, d.UpdatedAt, d.FinishedAt)).ToList(), page.Next)
            : null;

    public async Task<DeviceFirmwareModel?> GetDeviceFirmwareAsync(string deviceId, CancellationToken ct = default)
    {
        var f = await mediator.Send(new GetDeviceFirmwareQuery(deviceId), ct);
        return new DeviceFirmwareModel(f.DeviceId, f.Version, f.HardwareModel, f.ReportedAt,
            f.History.Select(u => new DeviceUpdateModel(u.CampaignId, u.CampaignName, u.Version, u.State, u.Reason, u.Detail, u.UpdatedAt)).ToList());
    }

    private static ArtifactModel Map(FirmwareArtifactView a) =>
        new(a.Id, a.Version, a.HardwareModel, a.Profile, a.Notes, a.Size, a.Sha256, a.Signed, a.SigningKey, a.CreatedAt, a.CreatedBy);

    private static CampaignModel Map(CampaignView c) => new(c.Id, Map(c.Definition, c.Name), c.State, c.Artifact.Id, c.Artifact.Version,
        c.CurrentWave > 0 ? c.CurrentWave : null,
        c.WaveStates.Select(w => new WaveStateModel(w.Wave, w.Devices, w.Succeeded, w.Failed, w.InProgress, w.State)).ToList(),
        FunnelModel.From(c.Funnel), c.Skipped, c.Incompatible, c.HaltReason, c.CreatedAt, c.StartedAt, c.FinishedAt, c.CreatedBy);

    private static CampaignDefinition Map(IoTHub.Firmware.Campaigns.CampaignDefinition d, string name) => new(
        d.Name ?? name, d.ArtifactId, new TargetModel(d.Target?.DeviceIds, d.Target?.Tag, d.Target?.Profile), d.CanaryCount,
        (d.Waves ?? []).Select(w => new WaveModel(w.Percent, w.SuccessThreshold, w.SoakSeconds, w.RequireApproval)).ToList(),
        d.FailureThreshold is { } f ? new FailureThresholdModel(f.Percent, f.MinFinished, f.Action) : null,
        d.Timeouts is { } t ? new TimeoutsModel(t.NotifiedSeconds, t.DownloadingSeconds, t.VerifyingSeconds, t.InstallingSeconds, t.RebootingSeconds, t.OverallSeconds) : null,
        d.Retries is { } r ? new RetriesModel(r.Download, r.Checksum, r.Install, r.Timeout) : null,
        d.MaintenanceWindow is { } m ? new MaintenanceWindowModel(m.TimeZone, m.Days, m.From, m.To) : null);

    private static IoTHub.Firmware.Campaigns.CampaignDefinition Map(CampaignDefinition d) => new(
        d.Name, d.ArtifactId, new CampaignTarget(d.Target.DeviceIds, d.Target.Tag, d.Target.Profile), d.CanaryCount,
        d.Waves.Select(w => new CampaignWave(w.Percent, w.SuccessThreshold, w.SoakSeconds, w.RequireApproval)).ToList(),
        d.FailureThreshold is { } f ? new FailureThreshold(f.Percent, f.MinFinished, f.Action) : null,
        d.Timeouts is { } t ? new StepTimeouts(t.NotifiedSeconds, t.DownloadingSeconds, t.VerifyingSeconds, t.InstallingSeconds, t.RebootingSeconds, t.OverallSeconds) : null,
        d.Retries is { } r ? new FailureRetries(r.Download, r.Checksum, r.Install, r.Timeout) : null,
        d.MaintenanceWindow is { } m ? new WeeklySchedule(m.TimeZone, m.Days, m.From, m.To) : null);

    private static Dictionary<string, string> Flatten(Dictionary<string, string[]> errors) =>
        errors.ToDictionary(e => e.Key, e => string.Join(" ", e.Value), StringComparer.OrdinalIgnoreCase);
}
