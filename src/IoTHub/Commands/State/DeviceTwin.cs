// A device's desired state (what operators want) and reported state (what the device says it has), each a JSON
// object with its own version. Desired changes go out retained on devices/{id}/state/desired.
using System.Text.Json.Nodes;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace IoTHub.Commands.State;

internal sealed class DeviceTwin
{
    public string DeviceId { get; set; } = "";
    public string DesiredJson { get; set; } = "{}";
    public long DesiredVersion { get; set; }
    public long? DesiredUpdatedAt { get; set; }
    public string? DesiredUpdatedBy { get; set; }
    public string ReportedJson { get; set; } = "{}";
    public long ReportedVersion { get; set; }
    public long? ReportedUpdatedAt { get; set; }
}

internal sealed class DeviceTwinConfiguration : IEntityTypeConfiguration<DeviceTwin>
{
    public void Configure(EntityTypeBuilder<DeviceTwin> b)
    {
        b.ToTable("device_states");
        b.HasKey(x => x.DeviceId);
        b.Property(x => x.DeviceId).HasColumnName("device_id").HasMaxLength(64);
        b.Property(x => x.DesiredJson).HasColumnName("desired");
        b.Property(x => x.DesiredVersion).HasColumnName("desired_version");
        b.Property(x => x.DesiredUpdatedAt).HasColumnName("desired_updated_at");
        b.Property(x => x.DesiredUpdatedBy).HasColumnName("desired_updated_by").HasMaxLength(200);
        b.Property(x => x.ReportedJson).HasColumnName("reported");
        b.Property(x => x.ReportedVersion).HasColumnName("reported_version");
        b.Property(x => x.ReportedUpdatedAt).HasColumnName("reported_updated_at");
    }
}

/// <summary>One side of the twin: its version, its state and when it last changed.</summary>
/// <param name="Version">Starts at 0 (never set) and grows by one with each change; the desired version is the state's
/// ETag and what <c>If-Match</c> names.</param>
/// <param name="State">The JSON object, <c>{}</c> when never set.</param>
/// <param name="UpdatedAt">When it last changed (ISO 8601 UTC), or null.</param>
public sealed record StateSide(long Version, JsonObject State, DateTimeOffset? UpdatedAt);

/// <summary>The device twin as <c>GET|PUT|PATCH /api/v1/devices/{id}/state</c> answer it:
/// <c>{"deviceId", "desired": {"version", "state", "updatedAt"}, "reported": {...}, "delta": {...}}</c>.</summary>
/// <param name="DeviceId">The device.</param>
/// <param name="Desired">What operators asked for; sent to the device retained on <c>devices/{id}/state/desired</c>.</param>
/// <param name="Reported">What the device said it has (<c>devices/{id}/state/reported</c>, merged as RFC 7386 patches).</param>
/// <param name="Delta">What desired asks for that reported does not (yet) show.</param>
public sealed record DeviceStateView(string DeviceId, StateSide Desired, StateSide Reported, JsonObject Delta)
{
    internal static DeviceStateView Of(string deviceId, DeviceTwin? t)
    {
        var desired = JsonStates.Parse(t?.DesiredJson);
        var reported = JsonStates.Parse(t?.ReportedJson);
        return new(deviceId,
            new StateSide(t?.DesiredVersion ?? 0, desired, Contracts.UnixTime.ToDateTime(t?.DesiredUpdatedAt)),
            new StateSide(t?.ReportedVersion ?? 0, reported, Contracts.UnixTime.ToDateTime(t?.ReportedUpdatedAt)),
            JsonStates.Delta(desired, reported));
    }
}

/// <summary>JSON merge patch (RFC 7386) and the desired-minus-reported delta.</summary>
internal static class JsonStates
{
    /// <summary>Parses a JSON object a device sent (at most <paramref name="maxBytes"/>); null with the reason, naming it
    /// <paramref name="what"/>, when it is too large, not an object, or breaks a rule of <see cref="Contracts.FreeFormJson"/>
    /// (UTF-8, 32 levels, each name once, Unicode text without U+0000, finite numbers).</summary>
    public static JsonObject? ParseFromDevice(ReadOnlyMemory<byte> payload, int maxBytes, string what, out string? error)
    {
        if (payload.Length > maxBytes)
        {
            error = $"{what} larger than {maxBytes} bytes";
            return null;
        }
        var node = Contracts.FreeFormJson.Parse(payload.Span, out var problem);
        error = problem is not null ? $"{what}: {problem}" : node is JsonObject ? null : $"{what} must be a JSON object";
        return error is null ? (JsonObject)node! : null;
    }

    public static JsonObject Parse(string? json) => json is null ? new JsonObject() : JsonNode.Parse(json) as JsonObject ?? new JsonObject();

    /// <summary>Applies <paramref name="patch"/> to <paramref name="target"/> in place: null removes a member, objects merge, anything else replaces.</summary>
    public static void MergePatch(JsonObject target, JsonObject patch)
    {
        foreach (var (key, value) in patch.ToList())
        {
            if (value is null) target.Remove(key);
            else if (value is JsonObject p && target[key] is JsonObject t) MergePatch(t, p);
            else
            {
                var copy = value.DeepClone();
                if (copy is JsonObject o) RemoveNulls(o);
                target[key] = copy;
            }
        }
    }

    private static void RemoveNulls(JsonObject o)
    {
        foreach (var (key, value) in o.ToList())
        {
            if (value is null) o.Remove(key);
            else if (value is JsonObject child) RemoveNulls(child);
        }
    }

    public static JsonObject Delta(JsonObject desired, JsonObject reported)
    {
        var delta = new JsonObject();
        foreach (var (key, want) in desired)
        {
            var have = reported[key];
            if (want is JsonObject w && have is JsonObject h)
            {
                var inner = Delta(w, h);
                if (inner.Count > 0) delta[key] = inner;
            }
            else if (!JsonNode.DeepEquals(want, have)) delta[key] = want?.DeepClone();
        }
        return delta;
    }
}
