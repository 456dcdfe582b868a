// The Firmware module's tables: artifacts (the images; files under {DataDirectory}/firmware), campaigns, one row per
// (campaign, device) for the rollout, and what each device last reported about its firmware.
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace IoTHub.Firmware;

/// <summary>A firmware image. Empty <see cref="HardwareModel"/> and <see cref="ProfileId"/> mean "fits any".</summary>
internal sealed class FirmwareArtifact
{
    public long Id { get; set; }
    public string Version { get; set; } = "";
    public string HardwareModel { get; set; } = "";
    public string ProfileId { get; set; } = "";
    public string? Notes { get; set; }
    public long Size { get; set; }
    public string Sha256 { get; set; } = "";
    public string? SigningKey { get; set; }
    public long CreatedAt { get; set; }
    public string? CreatedBy { get; set; }
}

/// <summary>A rollout of one artifact. <see cref="Definition"/> is the API's definition as JSON; the other columns are
/// its progress.</summary>
internal sealed class FirmwareCampaign
{
    public long Id { get; set; }
    public string Name { get; set; } = "";
    public long ArtifactId { get; set; }
    public string Version { get; set; } = "";
    public string Definition { get; set; } = "{}";
    public string State { get; set; } = CampaignStates.Draft;
    /// <summary>1-based; 0 before the start.</summary>
    public int CurrentWave { get; set; }
    public int WaveCount { get; set; }
    /// <summary>When the current wave reached its success threshold (its soak runs from here).</summary>
    public long? WaveMetAt { get; set; }
    /// <summary>An operator approved the wave after the current one.</summary>
    public bool NextWaveApproved { get; set; }
    /// <summary>An operator resumed a wave that ended below its success threshold: it counts as passed.</summary>
    public bool WavePassedByOperator { get; set; }
    /// <summary>Devices finished from here on count toward the failure threshold (the start, then each resume).</summary>
    public long ThresholdSince { get; set; }
    public string? HaltReason { get; set; }
    public int Skipped { get; set; }
    public int Incompatible { get; set; }
    public long CreatedAt { get; set; }
    public string? CreatedBy { get; set; }
    public long? StartedAt { get; set; }
    public long? FinishedAt { get; set; }
    public long UpdatedAt { get; set; }
}

/// <summary>One device's update in one campaign. <see cref="Active"/> is 1 from notification until it finishes: a
/// unique index on (device) where active keeps a device in one campaign at a time.</summary>
internal sealed class CampaignDevice
{
    public long CampaignId { get; set; }
    public string DeviceId { get; set; } = "";
    public int Wave { get; set; }
    public string State { get; set; } = DeviceUpdateStates.Queued;
    public int Active { get; set; }
    public long Bytes { get; set; }
    public int Attempt { get; set; }
    public int DownloadRetries { get; set; }
    public int ChecksumRetries { get; set; }
    public int InstallRetries { get; set; }
    public int TimeoutRetries { get; set; }
    public string? Reason { get; set; }
    public string? Detail { get; set; }
    public string? FromVersion { get; set; }
    public long StateSince { get; set; }
    public long? NotifiedAt { get; set; }
    /// <summary>When the device began installing: a connection after this, then the new version, proves the update.</summary>
    public long? InstallingSince { get; set; }
    public long? FinishedAt { get; set; }
    /// <summary>When the row times out (Unix ms) unless it moves first; null when final or queued.</summary>
    public long? Deadline { get; set; }
    public long UpdatedAt { get; set; }
    /// <summary>Optimistic concurrency: progress reports and the rollout loop change the same row.</summary>
    public int Revision { get; set; }
}

/// <summary>What a device last reported about its firmware, and when it last connected over MQTT.</summary>
internal sealed class DeviceFirmware
{
    public string DeviceId { get; set; } = "";
    public string? Version { get; set; }
    public string? HardwareModel { get; set; }
    public long? VersionReportedAt { get; set; }
    public long? ConnectedAt { get; set; }
}

internal sealed class FirmwareArtifactConfiguration : IEntityTypeConfiguration<FirmwareArtifact>
{
    public void Configure(EntityTypeBuilder<FirmwareArtifact> b)
    {
        b.ToTable("firmware_artifacts");
        SnakeCaseColumns.Apply(b);
        b.HasKey(x => x.Id);
        b.Property(x => x.Id).ValueGeneratedOnAdd();
        b.Property(x => x.Version).HasMaxLength(128);
        b.Property(x => x.HardwareModel).HasMaxLength(64);
        b.Property(x => x.ProfileId).HasMaxLength(64);
        b.Property(x => x.Notes).HasMaxLength(4000);
        b.Property(x => x.Sha256).HasMaxLength(64);
        b.Property(x => x.SigningKey).HasMaxLength(64);
        b.Property(x => x.CreatedBy).HasMaxLength(200);
        b.HasIndex(x => new { x.Version, x.HardwareModel, x.ProfileId }).IsUnique();
    }
}

internal sealed class FirmwareCampaignConfiguration : IEntityTypeConfiguration<FirmwareCampaign>
{
    public void Configure(EntityTypeBuilder<FirmwareCampaign> b)
    {
        b.ToTable("firmware_campaigns");
        SnakeCaseColumns.Apply(b);
        b.HasKey(x => x.Id);
        b.Property(x => x.Id).ValueGeneratedOnAdd();
        b.Property(x => x.Name).HasMaxLength(200);
        b.Property(x => x.Version).HasMaxLength(128);
        b.Property(x => x.State).HasMaxLength(16);
        b.Property(x => x.HaltReason).HasMaxLength(500);
        b.Property(x => x.CreatedBy).HasMaxLength(200);
        b.HasIndex(x => x.State);
        b.HasIndex(x => x.ArtifactId);
    }
}

internal sealed class CampaignDeviceConfiguration : IEntityTypeConfiguration<CampaignDevice>
{
    public void Configure(EntityTypeBuilder<CampaignDevice> b)
    {
        b.ToTable("firmware_campaign_devices");
        SnakeCaseColumns.Apply(b);
        b.HasKey(x => new { x.CampaignId, x.DeviceId });
        b.Property(x => x.DeviceId).HasMaxLength(64);
        b.Property(x => x.State).HasMaxLength(16);
        b.Property(x => x.Reason).HasMaxLength(64);
        b.Property(x => x.Detail).HasMaxLength(500);
        b.Property(x => x.FromVersion).HasMaxLength(128);
        b.Property(x => x.Revision).IsConcurrencyToken();
        b.HasIndex(x => x.DeviceId).IsUnique().HasFilter("active = 1").HasDatabaseName("ux_firmware_campaign_devices_one_active");
        b.HasIndex(x => new { x.CampaignId, x.State, x.Wave });
        b.HasIndex(x => new { x.DeviceId, x.UpdatedAt });
        b.HasIndex(x => x.Deadline).HasFilter("deadline IS NOT NULL");
    }
}

internal sealed class DeviceFirmwareConfiguration : IEntityTypeConfiguration<DeviceFirmware>
{
    public void Configure(EntityTypeBuilder<DeviceFirmware> b)
    {
        b.ToTable("firmware_devices");
        SnakeCaseColumns.Apply(b);
        b.HasKey(x => x.DeviceId);
        b.Property(x => x.DeviceId).HasMaxLength(64);
        b.Property(x => x.Version).HasMaxLength(128);
        b.Property(x => x.HardwareModel).HasMaxLength(64);
    }
}

/// <summary>Names every column in snake_case after its property, as the other modules' tables are named.</summary>
internal static class SnakeCaseColumns
{
    public static void Apply<T>(EntityTypeBuilder<T> b) where T : class
    {
        foreach (var p in b.Metadata.GetDeclaredProperties()) p.SetColumnName(Snake(p.Name));
    }

    private static string Snake(string name)
    {
        var sb = new System.Text.StringBuilder(name.Length + 8);
        for (var i = 0; i < name.Length; i++)
        {
            if (char.IsUpper(name[i]) && i > 0 && !char.IsDigit(name[i - 1])) sb.Append('_');
            sb.Append(char.ToLowerInvariant(name[i]));
        }
        return sb.ToString();
    }
}
