// Device profiles as validation uses them: which profile each device has, and per profile a lookup of its
// metric rules. Loaded once at start and kept current by notifications, so the hot path only reads memory.
using System.Collections.Concurrent;
using System.Collections.Frozen;
using System.Globalization;
using IoTHub.Contracts;
using Mediator;

namespace IoTHub.Validation;

internal sealed class CompiledProfile(TelemetryProfile profile)
{
    public TelemetryProfile Profile { get; } = profile;
    public FrozenDictionary<string, MetricRule> Rules { get; } = profile.Metrics.ToFrozenDictionary(m => m.Name, StringComparer.Ordinal);

    /// <summary>Adds the problems of one point under this profile to <paramref name="errors"/>.</summary>
    public void Check(in TelemetryPoint p, ref List<FieldError>? errors)
    {
        if (!Rules.TryGetValue(p.Metric, out var rule))
        {
            if (Profile.RejectUnknownMetrics)
                (errors ??= []).Add(new FieldError(p.Metric, $"'{p.Metric}' is not a metric of profile '{Profile.Id}'"));
            return;
        }
        if (rule.Kind != p.Kind)
        {
            (errors ??= []).Add(new FieldError(p.Metric, $"expected {SeriesTypes.Name(rule.Kind)} (profile '{Profile.Id}'), got {SeriesTypes.Name(p.Kind)}"));
            return;
        }
        if (p.Kind != ValueKind.Number) return;
        if (rule.Min is { } min && p.Number < min)
            (errors ??= []).Add(new FieldError(p.Metric, $"{F(p.Number)} is below the minimum {F(min)}{Unit(rule)} of profile '{Profile.Id}'"));
        if (rule.Max is { } max && p.Number > max)
            (errors ??= []).Add(new FieldError(p.Metric, $"{F(p.Number)} is above the maximum {F(max)}{Unit(rule)} of profile '{Profile.Id}'"));
    }

    // Only for an error's text: a valid point allocates nothing here.
    private static string Unit(MetricRule rule) => rule.Unit is { Length: > 0 } u ? " " + u : "";

    public bool Declares(string metric) => Rules.ContainsKey(metric);

    private static string F(double v) => v.ToString(CultureInfo.InvariantCulture);
}

internal sealed class ProfileRules
{
    private readonly ConcurrentDictionary<string, CompiledProfile> _profiles = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, string> _deviceProfiles = new(StringComparer.Ordinal);

    public void Load(TelemetryProfiles all)
    {
        foreach (var p in all.Profiles) _profiles[p.Id] = new CompiledProfile(p);
        foreach (var (device, profile) in all.Assignments) _deviceProfiles[device] = profile;
    }

    public CompiledProfile? For(string deviceId) =>
        _deviceProfiles.TryGetValue(deviceId, out var id) && _profiles.TryGetValue(id, out var p) ? p : null;

    public void Set(TelemetryProfile profile) => _profiles[profile.Id] = new CompiledProfile(profile);

    public void Remove(string profileId) => _profiles.TryRemove(profileId, out _);

    public void Assign(string deviceId, string? profileId)
    {
        if (profileId is null) _deviceProfiles.TryRemove(deviceId, out _);
        else _deviceProfiles[deviceId] = profileId;
    }
}

/// <summary>Keeps <see cref="ProfileRules"/> current as profiles and assignments change.</summary>
internal sealed class ProfileRulesUpdater(ProfileRules rules) :
    INotificationHandler<ProfileChanged>, INotificationHandler<ProfileDeleted>, INotificationHandler<DeviceProfileAssigned>
{
    public ValueTask Handle(ProfileChanged n, CancellationToken ct)
    {
        rules.Set(n.Profile);
        return ValueTask.CompletedTask;
    }

    public ValueTask Handle(ProfileDeleted n, CancellationToken ct)
    {
        rules.Remove(n.ProfileId);
        return ValueTask.CompletedTask;
    }

    public ValueTask Handle(DeviceProfileAssigned n, CancellationToken ct)
    {
        rules.Assign(n.DeviceId, n.ProfileId);
        return ValueTask.CompletedTask;
    }
}
