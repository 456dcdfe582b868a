// The rollout engine: starts, pauses, resumes and aborts campaigns, and drives the running ones (timeouts, the failure
// threshold, waves and soak times, notifications inside the maintenance window). One pass at a time runs, from the
// CampaignRunner's loop; progress reports and version reports change single rows with optimistic concurrency.
// Notifications are retained messages on devices/{id}/firmware, published after the commit that decided them, and
// loaded back from these rows when the broker starts (ListPendingFirmware): nothing decided is lost to a crash.
using System.Text.Json;
using IoTHub.Contracts;
using IoTHub.Firmware.Campaigns;
using IoTHub.Storage;
using Mediator;
using Microsoft.EntityFrameworkCore;

namespace IoTHub.Firmware.Rollout;

/// <summary>How an operator's action on a campaign ended.</summary>
public enum CampaignActionOutcome
{
    /// <summary>Done.</summary>
    Done,
    /// <summary>No such campaign.</summary>
    NotFound,
    /// <summary>Not allowed in the campaign's state.</summary>
    WrongState,
    /// <summary>Its artifact is gone.</summary>
    ArtifactMissing,
}

internal sealed class Rollouts(HubDb db, IMediator mediator, TargetPlanner planner, Outbox outbox, InstallWatch watch, RolloutSignal signal, TimeProvider time, ILogger<Rollouts> log)
{
    internal static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);
    private const int Attempts = 5;

    public static CampaignDefinition DefinitionOf(FirmwareCampaign c) => JsonSerializer.Deserialize<CampaignDefinition>(c.Definition, Json)!;

    // ---- operator actions -----------------------------------------------------------------------------------------

    public async Task<CampaignActionOutcome> StartAsync(long id, string? actor, CancellationToken ct)
    {
        var c = await db.Set<FirmwareCampaign>().FirstOrDefaultAsync(x => x.Id == id, ct);
        if (c is null) return CampaignActionOutcome.NotFound;
        if (c.State != CampaignStates.Draft) return CampaignActionOutcome.WrongState;
        var artifact = await db.Set<FirmwareArtifact>().AsNoTracking().FirstOrDefaultAsync(a => a.Id == c.ArtifactId, ct);
        if (artifact is null) return CampaignActionOutcome.ArtifactMissing;
        var def = DefinitionOf(c);
        var plan = await planner.PlanAsync(c.Id, def, artifact, ct);
        var now = time.NowMs();
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        foreach (var (deviceId, wave) in plan.Devices)
        {
            db.Add(new CampaignDevice
            {
                CampaignId = c.Id, DeviceId = deviceId, Wave = wave, State = DeviceUpdateStates.Queued, StateSince = now, UpdatedAt = now,
                FromVersion = plan.Known.TryGetValue(deviceId, out var f) ? f.Version : null,
            });
        }
        c.State = CampaignStates.Running;
        c.CurrentWave = 1;
        c.WaveCount = plan.WaveCount;
        c.ThresholdSince = now;
        c.StartedAt = now;
        c.Skipped = plan.Skipped;
        c.Incompatible = plan.Incompatible;
        c.UpdatedAt = now;
        await db.SaveChangesAsync(ct);
        await tx.CommitAsync(ct);
        db.ChangeTracker.Clear();
        log.LogInformation("Firmware campaign {CampaignId} ({Version}) started by {Actor}: {Devices} devices in {Waves} waves, {Skipped} already on it, {Incompatible} incompatible",
            c.Id, c.Version, actor, plan.Devices.Count, plan.WaveCount, plan.Skipped, plan.Incompatible);
        signal.Wake();
        return CampaignActionOutcome.Done;
    }

    public async Task<CampaignActionOutcome> PauseAsync(long id, string? actor, CancellationToken ct)
    {
        var c = await db.Set<FirmwareCampaign>().FirstOrDefaultAsync(x => x.Id == id, ct);
        if (c is null) return CampaignActionOutcome.NotFound;
        if (c.State != CampaignStates.Running) return CampaignActionOutcome.WrongState;
        await HaltAsync(c, CampaignStates.Paused, null, ct);
        log.LogInformation("Firmware campaign {CampaignId} paused by {Actor}", id, actor);
        return CampaignActionOutcome.Done;
    }

    public async Task<CampaignActionOutcome> AbortAsync(long id, string? actor, CancellationToken ct)
    {
        var c = await db.Set<FirmwareCampaign>().FirstOrDefaultAsync(x => x.Id == id, ct);
        if (c is null) return CampaignActionOutcome.NotFound;
        if (c.State is not (CampaignStates.Running or CampaignStates.Paused)) return CampaignActionOutcome.WrongState;
        var wasHalted = c.HaltReason is not null;
        await HaltAsync(c, CampaignStates.Aborted, null, ct);
        if (wasHalted) await mediator.Publish(new FirmwareCampaignResolved(id, $"aborted by {actor}", time.GetUtcNow()), ct);
        log.LogInformation("Firmware campaign {CampaignId} aborted by {Actor}", id, actor);
        return CampaignActionOutcome.Done;
    }

    public async Task<CampaignActionOutcome> ResumeAsync(long id, string? actor, CancellationToken ct)
    {
        var c = await db.Set<FirmwareCampaign>().FirstOrDefaultAsync(x => x.Id == id, ct);
        if (c is null) return CampaignActionOutcome.NotFound;
        if (c.State != CampaignStates.Paused) return CampaignActionOutcome.WrongState;
        var now = time.NowMs();
        var wasHalted = c.HaltReason is not null;
        // An operator who resumes a wave that ended below its threshold lets it pass; failures before now no longer count.
        var wave = await db.Set<CampaignDevice>().Where(e => e.CampaignId == id && e.Wave == c.CurrentWave).Select(e => e.State).ToListAsync(ct);
        if (wave.Count > 0 && wave.All(DeviceUpdateStates.IsFinal)) c.WavePassedByOperator = true;
        c.State = CampaignStates.Running;
        c.HaltReason = null;
        c.ThresholdSince = now;
        c.UpdatedAt = now;
        await db.SaveChangesAsync(ct);
        if (wasHalted) await mediator.Publish(new FirmwareCampaignResolved(id, $"resumed by {actor}", time.GetUtcNow()), ct);
        log.LogInformation("Firmware campaign {CampaignId} resumed by {Actor}", id, actor);
        signal.Wake();
        return CampaignActionOutcome.Done;
    }

    public async Task<CampaignActionOutcome> ApproveAsync(long id, string? actor, CancellationToken ct)
    {
        var c = await db.Set<FirmwareCampaign>().FirstOrDefaultAsync(x => x.Id == id, ct);
        if (c is null) return CampaignActionOutcome.NotFound;
        if (c.State is not (CampaignStates.Running or CampaignStates.Paused) || c.CurrentWave >= c.WaveCount) return CampaignActionOutcome.WrongState;
        c.NextWaveApproved = true;
        c.UpdatedAt = time.NowMs();
        await db.SaveChangesAsync(ct);
        log.LogInformation("Wave {Wave} of firmware campaign {CampaignId} approved by {Actor}", c.CurrentWave + 1, id, actor);
        signal.Wake();
        return CampaignActionOutcome.Done;
    }

    /// <summary>Pauses or aborts: devices told but not started are withdrawn (back to queued, or canceled); devices already
    /// updating go on. <paramref name="reason"/> non-null: the campaign halted by itself (alarm and webhook).</summary>
    private async Task HaltAsync(FirmwareCampaign c, string state, string? reason, CancellationToken ct)
    {
        var now = time.NowMs();
        var withdrawn = await db.Set<CampaignDevice>().Where(e => e.CampaignId == c.Id && e.State == DeviceUpdateStates.Notified)
            .Select(e => e.DeviceId).ToListAsync(ct);
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        if (state == CampaignStates.Aborted)
        {
            await db.Set<CampaignDevice>().Where(e => e.CampaignId == c.Id && (e.State == DeviceUpdateStates.Notified || e.State == DeviceUpdateStates.Queued))
                .ExecuteUpdateAsync(s => s.SetProperty(e => e.State, DeviceUpdateStates.Canceled).SetProperty(e => e.Active, 0)
                    .SetProperty(e => e.Deadline, (long?)null).SetProperty(e => e.FinishedAt, now).SetProperty(e => e.StateSince, now)
                    .SetProperty(e => e.UpdatedAt, now).SetProperty(e => e.Revision, e => e.Revision + 1), ct);
            c.FinishedAt = now;
        }
        else
        {
            await db.Set<CampaignDevice>().Where(e => e.CampaignId == c.Id && e.State == DeviceUpdateStates.Notified)
                .ExecuteUpdateAsync(s => s.SetProperty(e => e.State, DeviceUpdateStates.Queued).SetProperty(e => e.Active, 0)
                    .SetProperty(e => e.Deadline, (long?)null).SetProperty(e => e.NotifiedAt, (long?)null).SetProperty(e => e.StateSince, now)
                    .SetProperty(e => e.UpdatedAt, now).SetProperty(e => e.Revision, e => e.Revision + 1), ct);
        }
        c.State = state;
        c.HaltReason = reason ?? (state == CampaignStates.Aborted ? c.HaltReason : null);
        c.UpdatedAt = now;
        if (reason is not null)
            Outbox.Add(db, HubEventTypes.FirmwareCampaignHalted, new { campaignId = c.Id, name = c.Name, state, reason, version = c.Version }, time.GetUtcNow());
        await db.SaveChangesAsync(ct);
        await tx.CommitAsync(ct);
        if (reason is not null)
        {
            outbox.Committed();
            log.LogWarning("Firmware campaign {CampaignId} {State} by itself: {Reason}", c.Id, state, reason);
            await mediator.Publish(new FirmwareCampaignHalted(c.Id, c.Name, reason, time.GetUtcNow()), CancellationToken.None); // committed: its alarm must follow
        }
        foreach (var device in withdrawn) await NotifyAsync(device, null);
    }

    // ---- the drive --------------------------------------------------------------------------------------------------

    /// <summary>One pass: time out what is overdue, then move every running campaign on.</summary>
    public async Task DriveAsync(CancellationToken ct)
    {
        var now = time.NowMs();
        var overdue = await db.Set<CampaignDevice>().Where(e => e.Deadline != null && e.Deadline <= now).OrderBy(e => e.Deadline).Take(1000).ToListAsync(ct);
        if (overdue.Count > 0)
        {
            var defs = await DefinitionsAsync(overdue.Select(e => e.CampaignId), ct);
            foreach (var e in overdue) await ChangeAsync(e, defs[e.CampaignId], d => UpdateRules.TimeOut(d, defs[e.CampaignId].Definition, now), ct);
        }
        db.ChangeTracker.Clear();
        foreach (var c in await db.Set<FirmwareCampaign>().Where(x => x.State == CampaignStates.Running).OrderBy(x => x.Id).ToListAsync(ct))
            await DriveCampaignAsync(c, ct);
    }

    private async Task DriveCampaignAsync(FirmwareCampaign c, CancellationToken ct)
    {
        var now = time.NowMs();
        var def = DefinitionOf(c);
        var counts = await db.Set<CampaignDevice>().Where(e => e.CampaignId == c.Id).GroupBy(e => new { e.Wave, e.State })
            .Select(g => new { g.Key.Wave, g.Key.State, Count = g.Count() }).ToListAsync(ct);
        var recent = await db.Set<CampaignDevice>().Where(e => e.CampaignId == c.Id && e.FinishedAt != null && e.FinishedAt >= c.ThresholdSince)
            .GroupBy(e => e.State).Select(g => new { State = g.Key, Count = g.Count() }).ToListAsync(ct);

        var ft = def.FailureThreshold!;
        var finished = recent.Where(r => r.State != DeviceUpdateStates.Canceled).Sum(r => r.Count);
        var failures = recent.Where(r => DeviceUpdateStates.IsFailure(r.State)).Sum(r => r.Count);
        if (finished >= ft.MinFinished && failures * 100.0 > ft.Percent!.Value * finished)
        {
            var action = ft.Action == "abort" ? CampaignStates.Aborted : CampaignStates.Paused;
            await HaltAsync(c, action, $"{failures} of {finished} finished devices failed ({failures * 100.0 / finished:0.#} %), above the failure threshold of {ft.Percent} %", ct);
            return;
        }

        var settings = WaveSettings(def, c.CurrentWave);
        var wave = counts.Where(x => x.Wave == c.CurrentWave).ToList();
        var size = wave.Sum(x => x.Count);
        var succeeded = wave.Where(x => x.State == DeviceUpdateStates.Succeeded).Sum(x => x.Count);
        var waveFinished = wave.Where(x => DeviceUpdateStates.IsFinal(x.State)).Sum(x => x.Count);
        var met = size == 0 || succeeded * 100.0 >= settings.SuccessThreshold!.Value * size || c.WavePassedByOperator;
        if (met)
        {
            c.WaveMetAt ??= now;
            var soaked = now >= c.WaveMetAt + settings.SoakSeconds!.Value * 1000L;
            if (soaked && c.CurrentWave >= c.WaveCount)
            {
                if (counts.All(x => DeviceUpdateStates.IsFinal(x.State))) { await CompleteAsync(c, counts.Select(x => (x.State, x.Count)), ct); return; }
            }
            else if (soaked && (!settings.RequireApproval!.Value || c.NextWaveApproved))
            {
                c.CurrentWave++;
                c.WaveMetAt = null;
                c.NextWaveApproved = false;
                c.WavePassedByOperator = false;
                log.LogInformation("Firmware campaign {CampaignId} starts wave {Wave} of {Waves}", c.Id, c.CurrentWave, c.WaveCount);
            }
            c.UpdatedAt = now;
            await db.SaveChangesAsync(ct);
        }
        else if (waveFinished == size)
        {
            await HaltAsync(c, CampaignStates.Paused,
                $"wave {c.CurrentWave} ended with {succeeded} of {size} devices updated, below its success threshold of {settings.SuccessThreshold} %", ct);
            return;
        }

        if (CompiledWeeklySchedule.Of(def.MaintenanceWindow) is { } window && !window.Contains(now)) return;
        await AdmitAsync(c, ct);
    }

    /// <summary>The settings of a 1-based wave: a canary wave takes the first wave's.</summary>
    private static CampaignWave WaveSettings(CampaignDefinition def, int wave)
    {
        var index = def.CanaryCount is > 0 ? Math.Max(0, wave - 2) : wave - 1;
        return def.Waves![Math.Clamp(index, 0, def.Waves.Count - 1)];
    }

    /// <summary>Notifies the queued devices of the waves that started, unless another campaign holds them.</summary>
    private async Task AdmitAsync(FirmwareCampaign c, CancellationToken ct)
    {
        var now = time.NowMs();
        var def = DefinitionOf(c);
        var deadline = now + Math.Min(def.Timeouts!.NotifiedSeconds!.Value, def.Timeouts.OverallSeconds!.Value) * 1000L;
        var all = db.Set<CampaignDevice>();
        var candidates = await all.Where(e => e.CampaignId == c.Id && e.Wave <= c.CurrentWave && e.State == DeviceUpdateStates.Queued
                && !all.Any(o => o.DeviceId == e.DeviceId && o.Active == 1))
            .OrderBy(e => e.Wave).ThenBy(e => e.DeviceId).Select(e => e.DeviceId).Take(1000).ToListAsync(ct);
        if (candidates.Count == 0) return;
        try
        {
            await all.Where(e => e.CampaignId == c.Id && candidates.Contains(e.DeviceId) && e.State == DeviceUpdateStates.Queued)
                .ExecuteUpdateAsync(s => s.SetProperty(e => e.State, DeviceUpdateStates.Notified).SetProperty(e => e.Active, 1)
                    .SetProperty(e => e.NotifiedAt, now).SetProperty(e => e.StateSince, now).SetProperty(e => e.Attempt, 1)
                    .SetProperty(e => e.Deadline, deadline).SetProperty(e => e.UpdatedAt, now).SetProperty(e => e.Revision, e => e.Revision + 1), ct);
        }
        catch (DbUpdateException ex)
        {
            log.LogInformation(ex, "Firmware campaign {CampaignId}: another campaign took a device at the same time; trying again", c.Id);
            return;
        }
        var artifact = await db.Set<FirmwareArtifact>().AsNoTracking().FirstAsync(a => a.Id == c.ArtifactId, ct);
        var told = await all.AsNoTracking().Where(e => e.CampaignId == c.Id && candidates.Contains(e.DeviceId) && e.State == DeviceUpdateStates.Notified)
            .ToListAsync(ct);
        foreach (var e in told) await NotifyAsync(e.DeviceId, NotificationOf(e, c, artifact));
        if (candidates.Count == 1000) signal.Wake(); // more to notify: at once, not at the next tick
        log.LogInformation("Firmware campaign {CampaignId} notified {Count} devices", c.Id, told.Count);
    }

    private async Task CompleteAsync(FirmwareCampaign c, IEnumerable<(string State, int Count)> counts, CancellationToken ct)
    {
        var list = counts.ToList();
        var ok = list.Where(x => x.State == DeviceUpdateStates.Succeeded).Sum(x => x.Count);
        var failed = list.Where(x => DeviceUpdateStates.IsFailure(x.State)).Sum(x => x.Count);
        var now = time.NowMs();
        c.State = CampaignStates.Completed;
        c.FinishedAt = now;
        c.UpdatedAt = now;
        Outbox.Add(db, HubEventTypes.FirmwareCampaignCompleted,
            new { campaignId = c.Id, name = c.Name, state = c.State, succeeded = ok, failed, version = c.Version }, time.GetUtcNow());
        await db.SaveChangesAsync(ct);
        outbox.Committed();
        log.LogInformation("Firmware campaign {CampaignId} completed: {Succeeded} devices updated, {Failed} failed", c.Id, ok, failed);
    }

    // ---- what devices say ---------------------------------------------------------------------------------------------

    public async Task<string?> RecordProgressAsync(string deviceId, ReadOnlyMemory<byte> payload, CancellationToken ct)
    {
        if (UpdateRules.Parse(payload.Span, out var report) is { } error) return error;
        var e = await db.Set<CampaignDevice>().FirstOrDefaultAsync(x => x.CampaignId == report.CampaignId && x.DeviceId == deviceId, ct);
        if (e is null) return $"device {deviceId} is not in firmware campaign {report.CampaignId}";
        var defs = await DefinitionsAsync([e.CampaignId], ct);
        await ChangeAsync(e, defs[e.CampaignId], d => UpdateRules.Apply(d, report, defs[e.CampaignId].Definition, time.NowMs()), ct);
        return null;
    }

    /// <summary>A device connected (MQTT) or reported its firmware: judge its update if it is installing or rebooting.</summary>
    public async Task ObserveAsync(string deviceId, Action<DeviceFirmware> record, CancellationToken ct)
    {
        for (var attempt = 0; ; attempt++)
        {
            db.ChangeTracker.Clear();
            var f = await db.Set<DeviceFirmware>().FirstOrDefaultAsync(x => x.DeviceId == deviceId, ct);
            if (f is null) db.Add(f = new DeviceFirmware { DeviceId = deviceId });
            record(f);
            try
            {
                await db.SaveChangesAsync(ct);
                break;
            }
            catch (DbUpdateException) when (attempt < Attempts)
            {
                // inserted by a concurrent report: read it again
            }
        }
        var e = await db.Set<CampaignDevice>().FirstOrDefaultAsync(x => x.DeviceId == deviceId && x.Active == 1
            && (x.State == DeviceUpdateStates.Installing || x.State == DeviceUpdateStates.Rebooting), ct);
        if (e is null) return;
        var fw = await db.Set<DeviceFirmware>().AsNoTracking().FirstAsync(x => x.DeviceId == deviceId, ct);
        var defs = await DefinitionsAsync([e.CampaignId], ct);
        await ChangeAsync(e, defs[e.CampaignId], d => UpdateRules.Prove(d, fw, defs[e.CampaignId].Version, defs[e.CampaignId].Definition, time.NowMs()), ct);
    }

    /// <summary>Applies <paramref name="change"/> to the row and saves it, again on a fresh copy when a concurrent writer won;
    /// then tells the device (a retry's notification, or the withdrawal of a finished one) and wakes the loop.</summary>
    private async Task ChangeAsync(CampaignDevice e, CampaignInfo info, Func<CampaignDevice, UpdateChange> change, CancellationToken ct)
    {
        for (var attempt = 0; attempt < Attempts; attempt++)
        {
            var result = change(e);
            if (result == UpdateChange.None) return;
            e.Revision++;
            try
            {
                await db.SaveChangesAsync(ct);
            }
            catch (DbUpdateConcurrencyException)
            {
                db.ChangeTracker.Clear();
                e = await db.Set<CampaignDevice>().FirstAsync(x => x.CampaignId == e.CampaignId && x.DeviceId == e.DeviceId, ct);
                continue;
            }
            watch.Track(e.DeviceId, e.Active == 1 && e.State is DeviceUpdateStates.Installing or DeviceUpdateStates.Rebooting);
            if (result == UpdateChange.Retried) await NotifyAsync(e.DeviceId, NotificationOf(e, info.Campaign, info.Artifact));
            else if (result == UpdateChange.Finished)
            {
                await NotifyAsync(e.DeviceId, null);
                log.LogInformation("Device {DeviceId} in firmware campaign {CampaignId}: {State} {Reason}", e.DeviceId, e.CampaignId, e.State, e.Reason);
            }
            if (result != UpdateChange.Moved || e.State == DeviceUpdateStates.Rebooting) signal.Wake();
            return;
        }
    }

    /// <summary>A campaign with its parsed definition and artifact.</summary>
    internal sealed record CampaignInfo(FirmwareCampaign Campaign, CampaignDefinition Definition, FirmwareArtifact Artifact)
    {
        public string Version => Campaign.Version;
    }

    private async Task<Dictionary<long, CampaignInfo>> DefinitionsAsync(IEnumerable<long> ids, CancellationToken ct)
    {
        var set = ids.Distinct().ToList();
        var campaigns = await db.Set<FirmwareCampaign>().AsNoTracking().Where(c => set.Contains(c.Id)).ToListAsync(ct);
        var artifactIds = campaigns.Select(c => c.ArtifactId).Distinct().ToList();
        var artifacts = await db.Set<FirmwareArtifact>().AsNoTracking().Where(a => artifactIds.Contains(a.Id)).ToDictionaryAsync(a => a.Id, ct);
        return campaigns.ToDictionary(c => c.Id, c => new CampaignInfo(c, DefinitionOf(c),
            artifacts.TryGetValue(c.ArtifactId, out var a) ? a : new FirmwareArtifact { Id = c.ArtifactId, Version = c.Version }));
    }

    // ---- notifications ------------------------------------------------------------------------------------------------

    /// <summary>The message of <c>devices/{id}/firmware</c>: <c>{"campaignId","version","url","sha256","size","attempt"}</c>.</summary>
    public static byte[] NotificationOf(CampaignDevice e, FirmwareCampaign c, FirmwareArtifact a) => JsonSerializer.SerializeToUtf8Bytes(new
    {
        campaignId = c.Id, version = c.Version, url = $"/api/v1/devices/{e.DeviceId}/firmware/{a.Id}", sha256 = a.Sha256, size = a.Size,
        attempt = Math.Max(1, e.Attempt),
    }, Json);

    /// <summary>Sets (or, with null, withdraws) the device's retained firmware message. Always after the commit that
    /// decided it, so not cancellable: a stop or an aborted request no longer leaves the broker with the old message.</summary>
    private async Task NotifyAsync(string deviceId, byte[]? payload)
    {
        try
        {
            await mediator.Send(new DeliverToDevice(deviceId, "firmware", payload ?? [], Retain: true), CancellationToken.None);
        }
        catch (Exception ex)
        {
            // The row decided it; the broker loads it again at its next start, and HTTP devices poll it.
            log.LogWarning(ex, "Could not publish the firmware notification of device {DeviceId}", deviceId);
        }
    }

    /// <summary>The pending notification of every device (or of one), from the rows.</summary>
    public async Task<IReadOnlyList<(string DeviceId, byte[] Payload)>> PendingAsync(string? deviceId, CancellationToken ct)
    {
        var rows = await (from e in db.Set<CampaignDevice>().AsNoTracking()
                          join c in db.Set<FirmwareCampaign>().AsNoTracking() on e.CampaignId equals c.Id
                          join a in db.Set<FirmwareArtifact>().AsNoTracking() on c.ArtifactId equals a.Id
                          where e.Active == 1 && (deviceId == null || e.DeviceId == deviceId)
                          select new { e, c, a }).ToListAsync(ct);
        return rows.Select(r => (r.e.DeviceId, NotificationOf(r.e, r.c, r.a))).ToList();
    }
}
