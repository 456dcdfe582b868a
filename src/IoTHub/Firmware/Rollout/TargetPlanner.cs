// Which devices a campaign definition targets, now: the listed ids, the tag and the profile, less the devices already on
// the version and those the image does not fit, in waves. Used by the start and by the wizard's preview, so they agree.
using IoTHub.Contracts;
using IoTHub.Firmware.Campaigns;
using IoTHub.Storage;
using Mediator;
using Microsoft.EntityFrameworkCore;

namespace IoTHub.Firmware.Rollout;

internal sealed class TargetPlanner(HubDb db, IMediator mediator)
{
    /// <summary>The devices a definition targets, split into the ones to update (with their waves), the ones already on the
    /// version and the ones the image does not fit.</summary>
    public async Task<TargetPlan> PlanAsync(long campaignId, CampaignDefinition def, FirmwareArtifact artifact, CancellationToken ct)
    {
        var scopes = await mediator.Send(new ListDeviceScopes(), ct);
        var t = def.Target!;
        var listed = new HashSet<string>(t.DeviceIds ?? [], StringComparer.Ordinal);
        var targeted = scopes.Where(s => listed.Contains(s.DeviceId) || (t.Tag is { } tag && s.Tags.Contains(tag)) || (t.Profile is { } p && s.ProfileId == p)).ToList();
        var ids = targeted.Select(s => s.DeviceId).ToList();
        var existing = scopes.Select(s => s.DeviceId).ToHashSet(StringComparer.Ordinal);
        var known = await db.Set<DeviceFirmware>().AsNoTracking().Where(f => ids.Contains(f.DeviceId)).ToDictionaryAsync(f => f.DeviceId, ct);
        var update = new List<string>();
        int skipped = 0, incompatible = 0;
        foreach (var s in targeted)
        {
            known.TryGetValue(s.DeviceId, out var f);
            if ((artifact.ProfileId.Length > 0 && s.ProfileId != artifact.ProfileId)
                || (artifact.HardwareModel.Length > 0 && f?.HardwareModel is { } model && model != artifact.HardwareModel)) incompatible++;
            else if (f?.Version == artifact.Version) skipped++;
            else update.Add(s.DeviceId);
        }
        var assigned = WavePlan.Assign(campaignId, update, def.CanaryCount, def.Waves!);
        return new TargetPlan(assigned, skipped, incompatible, listed.Count(id => !existing.Contains(id)),
            WavePlan.WaveCount(def.CanaryCount, def.Waves!), known);
    }

    /// <summary>The plan: devices with their waves; counts of the others.</summary>
    public sealed record TargetPlan(IReadOnlyList<(string DeviceId, int Wave)> Devices, int Skipped, int Incompatible, int Unknown, int WaveCount,
        IReadOnlyDictionary<string, DeviceFirmware> Known);
}
