// Campaigns as the API and the UI see them: save (drafts only), list, read with the funnel, preview the target, act
// (start, pause, resume, abort, approve), list a campaign's devices, a device's firmware history.
using System.Text.Json;
using FluentValidation;
using IoTHub.Contracts;
using IoTHub.Firmware.Rollout;
using IoTHub.Storage;
using Mediator;
using Microsoft.EntityFrameworkCore;

namespace IoTHub.Firmware.Campaigns;

/// <summary>A campaign: its definition (defaults filled in) and its progress.</summary>
/// <param name="Id">Its id.</param>
/// <param name="Name">Its label.</param>
/// <param name="State"><c>draft</c>, <c>running</c>, <c>paused</c>, <c>completed</c> or <c>aborted</c>.</param>
/// <param name="Artifact">The image: id and version.</param>
/// <param name="Definition">What it rolls out to whom, how fast, when to stop.</param>
/// <param name="CurrentWave">The 1-based wave being notified; 0 before the start.</param>
/// <param name="WaveStates">Each wave's devices and state.</param>
/// <param name="Funnel">Devices per update state (every state named, zero included).</param>
/// <param name="Skipped">Targeted devices already on the version when it started.</param>
/// <param name="Incompatible">Targeted devices the image does not fit.</param>
/// <param name="HaltReason">Why it stopped by itself, while it is paused (or aborted) for that reason.</param>
/// <param name="CreatedAt">When it was created.</param>
/// <param name="CreatedBy">Who created it.</param>
/// <param name="StartedAt">When it started.</param>
/// <param name="FinishedAt">When it completed or was aborted.</param>
public sealed record CampaignView(long Id, string Name, string State, CampaignArtifactRef Artifact, CampaignDefinition Definition, int CurrentWave,
    IReadOnlyList<WaveStateView> WaveStates, IReadOnlyDictionary<string, int> Funnel, int Skipped, int Incompatible, string? HaltReason,
    DateTimeOffset CreatedAt, string? CreatedBy, DateTimeOffset? StartedAt, DateTimeOffset? FinishedAt);

/// <summary>A campaign's image.</summary>
public sealed record CampaignArtifactRef(long Id, string Version);

/// <summary>One wave.</summary>
/// <param name="Wave">1-based.</param>
/// <param name="Devices">Devices in it.</param>
/// <param name="Succeeded">Updated and proven.</param>
/// <param name="Failed">Failed, timed out or rejected.</param>
/// <param name="InProgress">Notified and not finished.</param>
/// <param name="State"><c>pending</c>, <c>running</c>, <c>soaking</c>, <c>awaiting-approval</c>, <c>passed</c> or <c>halted</c>.</param>
public sealed record WaveStateView(int Wave, int Devices, int Succeeded, int Failed, int InProgress, string State);

/// <summary>One device's update in a campaign.</summary>
public sealed record CampaignDeviceView(string DeviceId, int Wave, string State, long Bytes, int Attempt, string? Reason, string? Detail,
    string? FromVersion, DateTimeOffset UpdatedAt, DateTimeOffset? FinishedAt);

/// <summary>What a definition would target now.</summary>
/// <param name="Devices">Devices that would be updated.</param>
/// <param name="Skipped">Already on the version.</param>
/// <param name="Incompatible">The image does not fit them.</param>
/// <param name="Unknown">Listed ids that are no device.</param>
/// <param name="Waves">Devices per wave.</param>
public sealed record CampaignPreview(int Devices, int Skipped, int Incompatible, int Unknown, IReadOnlyList<WavePreview> Waves);

/// <summary>A wave's size in a preview.</summary>
public sealed record WavePreview(int Wave, int Devices);

/// <summary>A device's firmware: what it reports, and its updates, newest first.</summary>
public sealed record DeviceFirmwareView(string DeviceId, string? Version, string? HardwareModel, DateTimeOffset? ReportedAt, IReadOnlyList<DeviceUpdateView> History);

/// <summary>One update of a device.</summary>
public sealed record DeviceUpdateView(long CampaignId, string CampaignName, string Version, string State, string? Reason, string? Detail, DateTimeOffset UpdatedAt);

/// <summary>Create (<paramref name="Id"/> null) or replace a draft.</summary>
public sealed record SaveCampaignCommand(long? Id, CampaignDefinition Definition, string? Actor) : IRequest<SaveCampaignResult>;

/// <summary>How a save ended.</summary>
public enum SaveCampaignOutcome
{
    /// <summary>Saved.</summary>
    Saved,
    /// <summary>A field is wrong.</summary>
    Invalid,
    /// <summary>No such campaign.</summary>
    NotFound,
    /// <summary>Not a draft any more.</summary>
    NotDraft,
}

/// <summary>The outcome, the campaign, each bad field.</summary>
public sealed record SaveCampaignResult(SaveCampaignOutcome Outcome, CampaignView? Campaign, Dictionary<string, string[]> Errors);

/// <summary>Campaigns, newest first, optionally in one state.</summary>
public sealed record ListCampaignsQuery(string? State) : IRequest<IReadOnlyList<CampaignView>>;

/// <summary>One campaign, or null.</summary>
public sealed record GetCampaignQuery(long Id) : IRequest<CampaignView?>;

/// <summary>What a definition would target; errors instead when it is not valid.</summary>
public sealed record PreviewCampaignQuery(CampaignDefinition Definition) : IRequest<(CampaignPreview? Preview, Dictionary<string, string[]> Errors)>;

/// <summary>An operator's action: <c>start</c>, <c>pause</c>, <c>resume</c>, <c>abort</c> or <c>approve</c>.</summary>
public sealed record CampaignActionCommand(long Id, string Action, string? Actor) : IRequest<CampaignActionOutcome>;

/// <summary>Delete a draft, completed or aborted campaign with its device rows.</summary>
public sealed record DeleteCampaignCommand(long Id) : IRequest<CampaignActionOutcome>;

/// <summary>A page of a campaign's devices, by device id, optionally in one state or wave.</summary>
public sealed record ListCampaignDevicesQuery(long Id, string? State, int? Wave, string? After, int Limit) : IRequest<Page<CampaignDeviceView>?>;

/// <summary>A device's firmware and update history.</summary>
public sealed record GetDeviceFirmwareQuery(string DeviceId) : IRequest<DeviceFirmwareView>;

internal sealed class CampaignCatalog(HubDb db, Rollouts rollouts, TargetPlanner planner, IValidator<CampaignDefinition> validator, TimeProvider time) :
    IRequestHandler<SaveCampaignCommand, SaveCampaignResult>, IRequestHandler<ListCampaignsQuery, IReadOnlyList<CampaignView>>,
    IRequestHandler<GetCampaignQuery, CampaignView?>, IRequestHandler<PreviewCampaignQuery, (CampaignPreview? Preview, Dictionary<string, string[]> Errors)>,
    IRequestHandler<CampaignActionCommand, CampaignActionOutcome>, IRequestHandler<DeleteCampaignCommand, CampaignActionOutcome>,
    IRequestHandler<ListCampaignDevicesQuery, Page<CampaignDeviceView>?>, IRequestHandler<GetDeviceFirmwareQuery, DeviceFirmwareView>
{
    public async ValueTask<SaveCampaignResult> Handle(SaveCampaignCommand c, CancellationToken ct)
    {
        var (artifact, errors) = await CheckAsync(c.Definition, ct);
        if (errors.Count > 0) return new(SaveCampaignOutcome.Invalid, null, errors);
        var def = c.Definition.Normalized();
        var now = time.NowMs();
        FirmwareCampaign row;
        if (c.Id is { } id)
        {
            var existing = await db.Set<FirmwareCampaign>().FirstOrDefaultAsync(x => x.Id == id, ct);
            if (existing is null) return new(SaveCampaignOutcome.NotFound, null, errors);
            if (existing.State != CampaignStates.Draft) return new(SaveCampaignOutcome.NotDraft, null, errors);
            row = existing;
        }
        else
        {
            row = new FirmwareCampaign { CreatedAt = now, CreatedBy = c.Actor, State = CampaignStates.Draft };
            db.Add(row);
        }
        row.Name = def.Name!;
        row.ArtifactId = artifact!.Id;
        row.Version = artifact.Version;
        row.Definition = JsonSerializer.Serialize(def, Rollouts.Json);
        row.WaveCount = WavePlan.WaveCount(def.CanaryCount, def.Waves!);
        row.UpdatedAt = now;
        await db.SaveChangesAsync(ct);
        return new(SaveCampaignOutcome.Saved, await ViewAsync(row, ct), errors);
    }

    public async ValueTask<(CampaignPreview? Preview, Dictionary<string, string[]> Errors)> Handle(PreviewCampaignQuery q, CancellationToken ct)
    {
        var (artifact, errors) = await CheckAsync(q.Definition, ct);
        if (errors.Count > 0) return (null, errors);
        var def = q.Definition.Normalized();
        var plan = await planner.PlanAsync(0, def, artifact!, ct);
        var waves = Enumerable.Range(1, plan.WaveCount).Select(w => new WavePreview(w, plan.Devices.Count(d => d.Wave == w))).ToList();
        return (new CampaignPreview(plan.Devices.Count, plan.Skipped, plan.Incompatible, plan.Unknown, waves), errors);
    }

    private async Task<(FirmwareArtifact? Artifact, Dictionary<string, string[]> Errors)> CheckAsync(CampaignDefinition d, CancellationToken ct)
    {
        var v = await validator.ValidateAsync(d, ct);
        var errors = new Dictionary<string, string[]>(v.ToDictionary());
        FirmwareArtifact? artifact = null;
        if (!errors.Keys.Any(k => k.Equals("artifactId", StringComparison.OrdinalIgnoreCase)) && (artifact = await db.Set<FirmwareArtifact>().AsNoTracking().FirstOrDefaultAsync(a => a.Id == d.ArtifactId, ct)) is null)
            errors["artifactId"] = [$"no firmware artifact {d.ArtifactId}"];
        return (artifact, errors);
    }

    public async ValueTask<IReadOnlyList<CampaignView>> Handle(ListCampaignsQuery q, CancellationToken ct)
    {
        var rows = await db.Set<FirmwareCampaign>().AsNoTracking().Where(c => q.State == null || c.State == q.State).OrderByDescending(c => c.Id).Take(500).ToListAsync(ct);
        var list = new List<CampaignView>(rows.Count);
        foreach (var r in rows) list.Add(await ViewAsync(r, ct));
        return list;
    }

    public async ValueTask<CampaignView?> Handle(GetCampaignQuery q, CancellationToken ct) =>
        await db.Set<FirmwareCampaign>().AsNoTracking().FirstOrDefaultAsync(c => c.Id == q.Id, ct) is { } row ? await ViewAsync(row, ct) : null;

    public async ValueTask<CampaignActionOutcome> Handle(CampaignActionCommand c, CancellationToken ct) => c.Action switch
    {
        "start" => await rollouts.StartAsync(c.Id, c.Actor, ct),
        "pause" => await rollouts.PauseAsync(c.Id, c.Actor, ct),
        "resume" => await rollouts.ResumeAsync(c.Id, c.Actor, ct),
        "abort" => await rollouts.AbortAsync(c.Id, c.Actor, ct),
        "approve" => await rollouts.ApproveAsync(c.Id, c.Actor, ct),
        _ => throw new ArgumentOutOfRangeException(nameof(c), c.Action, "unknown campaign action"),
    };

    public async ValueTask<CampaignActionOutcome> Handle(DeleteCampaignCommand c, CancellationToken ct)
    {
        var row = await db.Set<FirmwareCampaign>().FirstOrDefaultAsync(x => x.Id == c.Id, ct);
        if (row is null) return CampaignActionOutcome.NotFound;
        if (row.State is CampaignStates.Running or CampaignStates.Paused) return CampaignActionOutcome.WrongState;
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        await db.Set<CampaignDevice>().Where(e => e.CampaignId == c.Id).ExecuteDeleteAsync(ct);
        db.Remove(row);
        await db.SaveChangesAsync(ct);
        await tx.CommitAsync(ct);
        return CampaignActionOutcome.Done;
    }

    public async ValueTask<Page<CampaignDeviceView>?> Handle(ListCampaignDevicesQuery q, CancellationToken ct)
    {
        if (!await db.Set<FirmwareCampaign>().AnyAsync(c => c.Id == q.Id, ct)) return null;
        var query = db.Set<CampaignDevice>().AsNoTracking().Where(e => e.CampaignId == q.Id);
        if (q.State is { } s) query = query.Where(e => e.State == s);
        if (q.Wave is { } w) query = query.Where(e => e.Wave == w);
        if (q.After is { } after) query = query.Where(e => string.Compare(e.DeviceId, after) > 0);
        var rows = await query.OrderBy(e => e.DeviceId).Take(q.Limit + 1).ToListAsync(ct);
        var items = rows.Take(q.Limit).Select(e => new CampaignDeviceView(e.DeviceId, e.Wave, e.State, e.Bytes, e.Attempt, e.Reason, e.Detail, e.FromVersion,
            UnixTime.ToDateTime(e.UpdatedAt), UnixTime.ToDateTime(e.FinishedAt))).ToList();
        return new Page<CampaignDeviceView>(items, rows.Count > q.Limit ? items[^1].DeviceId : null);
    }

    public async ValueTask<DeviceFirmwareView> Handle(GetDeviceFirmwareQuery q, CancellationToken ct)
    {
        var f = await db.Set<DeviceFirmware>().AsNoTracking().FirstOrDefaultAsync(x => x.DeviceId == q.DeviceId, ct);
        var history = await (from e in db.Set<CampaignDevice>().AsNoTracking()
                             join c in db.Set<FirmwareCampaign>().AsNoTracking() on e.CampaignId equals c.Id
                             where e.DeviceId == q.DeviceId
                             orderby e.UpdatedAt descending
                             select new { e, c.Name, c.Version }).Take(100).ToListAsync(ct);
        return new DeviceFirmwareView(q.DeviceId, f?.Version, f?.HardwareModel, UnixTime.ToDateTime(f?.VersionReportedAt),
            history.Select(h => new DeviceUpdateView(h.e.CampaignId, h.Name, h.Version, h.e.State, h.e.Reason, h.e.Detail, UnixTime.ToDateTime(h.e.UpdatedAt))).ToList());
    }

    private async Task<CampaignView> ViewAsync(FirmwareCampaign c, CancellationToken ct)
    {
        var counts = await db.Set<CampaignDevice>().Where(e => e.CampaignId == c.Id).GroupBy(e => new { e.Wave, e.State })
            .Select(g => new { g.Key.Wave, g.Key.State, Count = g.Count() }).ToListAsync(ct);
        var funnel = DeviceUpdateStates.All.ToDictionary(s => s, s => counts.Where(x => x.State == s).Sum(x => x.Count));
        var def = Rollouts.DefinitionOf(c);
        var waves = new List<WaveStateView>();
        for (var w = 1; w <= Math.Max(c.WaveCount, 1); w++)
        {
            var inWave = counts.Where(x => x.Wave == w).ToList();
            var size = inWave.Sum(x => x.Count);
            var ok = inWave.Where(x => x.State == DeviceUpdateStates.Succeeded).Sum(x => x.Count);
            var failed = inWave.Where(x => DeviceUpdateStates.IsFailure(x.State)).Sum(x => x.Count);
            var moving = inWave.Where(x => DeviceUpdateStates.Rank(x.State) > 0).Sum(x => x.Count);
            waves.Add(new WaveStateView(w, size, ok, failed, moving, WaveState(c, def, w)));
        }
        return new CampaignView(c.Id, c.Name, c.State, new CampaignArtifactRef(c.ArtifactId, c.Version), def, c.CurrentWave, waves, funnel,
            c.Skipped, c.Incompatible, c.HaltReason, UnixTime.ToDateTime(c.CreatedAt), c.CreatedBy, UnixTime.ToDateTime(c.StartedAt), UnixTime.ToDateTime(c.FinishedAt));
    }

    private string WaveState(FirmwareCampaign c, CampaignDefinition def, int wave)
    {
        if (c.State == CampaignStates.Draft || wave > c.CurrentWave) return "pending";
        if (wave < c.CurrentWave || c.State == CampaignStates.Completed) return "passed";
        if (c.HaltReason is not null) return "halted";
        if (c.WaveMetAt is null) return "running";
        var index = def.CanaryCount is > 0 ? Math.Max(0, wave - 2) : wave - 1;
        var settings = def.Waves![Math.Clamp(index, 0, def.Waves.Count - 1)];
        return c.WaveMetAt + settings.SoakSeconds!.Value * 1000L > time.NowMs() ? "soaking"
            : settings.RequireApproval!.Value && !c.NextWaveApproved && wave < c.WaveCount ? "awaiting-approval" : "passed";
    }
}
