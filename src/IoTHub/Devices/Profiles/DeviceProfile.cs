using System.Text.Json;
using IoTHub.Contracts;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace IoTHub.Devices.Profiles;

/// <summary>What devices of a kind send: metrics with type, unit and valid range; and how to treat the rest.</summary>
internal sealed class DeviceProfile
{
    public string Id { get; set; } = "";
    public string? Name { get; set; }
    public string UnknownMetrics { get; set; } = "allow";
    public string ClockPolicy { get; set; } = "reject";
    public int? ReportIntervalSeconds { get; set; }
    public string MetricsJson { get; set; } = "[]";
    public long CreatedAt { get; set; }

    private static readonly JsonSerializerOptions Web = new(JsonSerializerDefaults.Web);

    public List<ProfileMetric> Metrics
    {
        get => JsonSerializer.Deserialize<List<ProfileMetric>>(MetricsJson, Web) ?? [];
        set => MetricsJson = JsonSerializer.Serialize(value, Web);
    }

    public TelemetryProfile ToTelemetryProfile() => new(Id, UnknownMetrics == "reject", ProfileValues.Clock(ClockPolicy),
        Metrics.Select(m => new MetricRule(m.Name, ProfileValues.Kind(m.Type), m.Unit, m.Min, m.Max)).ToList());
}

/// <summary>One metric of a profile, as the API shows and takes it:
/// <c>{"name": "temperature", "type": "number", "unit": "°C", "min": -40, "max": 85}</c>.</summary>
/// <param name="Name">The metric name in the payload (an identifier); unique in the profile.</param>
/// <param name="Type"><c>number</c>, <c>boolean</c> or <c>string</c>: a value of another type is rejected.</param>
/// <param name="Unit">The unit, for people and charts (at most 32 characters; not converted).</param>
/// <param name="Min">Smallest valid value, inclusive (numbers only): a smaller one is rejected.</param>
/// <param name="Max">Largest valid value, inclusive (numbers only); not below <paramref name="Min"/>.</param>
public sealed record ProfileMetric(string Name, string Type, string? Unit, double? Min, double? Max);

internal static class ProfileValues
{
    public static readonly string[] Types = ["number", "boolean", "string"];
    public static readonly string[] UnknownMetrics = ["allow", "reject"];
    public static readonly string[] ClockPolicies = ["reject", "serverTime", "accept"];

    public static ValueKind Kind(string type) => type switch { "number" => ValueKind.Number, "boolean" => ValueKind.Boolean, _ => ValueKind.Text };

    public static ClockPolicy Clock(string policy) => policy switch { "serverTime" => Contracts.ClockPolicy.ServerTime, "accept" => Contracts.ClockPolicy.Accept, _ => Contracts.ClockPolicy.Reject };
}

internal sealed class DeviceProfileConfiguration : IEntityTypeConfiguration<DeviceProfile>
{
    public void Configure(EntityTypeBuilder<DeviceProfile> b)
    {
        b.ToTable("device_profiles");
        b.HasKey(x => x.Id);
        b.Property(x => x.Id).HasColumnName("id").HasMaxLength(64);
        b.Property(x => x.Name).HasColumnName("name").HasMaxLength(200);
        b.Property(x => x.UnknownMetrics).HasColumnName("unknown_metrics").HasMaxLength(16);
        b.Property(x => x.ClockPolicy).HasColumnName("clock_policy").HasMaxLength(16);
        b.Property(x => x.ReportIntervalSeconds).HasColumnName("report_interval_seconds");
        b.Property(x => x.MetricsJson).HasColumnName("metrics");
        b.Property(x => x.CreatedAt).HasColumnName("created_at");
        b.Ignore(x => x.Metrics);
    }
}
