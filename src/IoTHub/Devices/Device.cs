using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace IoTHub.Devices;

/// <summary>A registered device. Its token is never stored in clear: its SHA-256 hash authenticates it, and a copy
/// encrypted with Data Protection (<see cref="DtlsPsk"/>) is the key of its DTLS sessions.</summary>
internal sealed class Device
{
    public string Id { get; set; } = "";
    public string? Name { get; set; }
    public string TokenHash { get; set; } = "";
    public bool Enabled { get; set; } = true;
    public string? ProfileId { get; set; }
    /// <summary>Tags, stored as <c>,a,b,</c> so a tag filter is a LIKE on <c>,tag,</c>.</summary>
    public string Tags { get; set; } = ",";
    public long CreatedAt { get; set; }
    public bool Online { get; set; }
    public long? LastSeen { get; set; }
    public long? ClockDriftMs { get; set; }
    public bool ClockDriftFlagged { get; set; }
    /// <summary>SHA-256 thumbprint (hex) of the client certificate the device may log in with over TLS instead of its token.</summary>
    public string? CertificateThumbprint { get; set; }
    /// <summary>The token encrypted by <see cref="DevicePsk"/>: the pre-shared key of CoAP over DTLS, which needs the
    /// key itself. Null for devices created before DTLS support until their token is rotated.</summary>
    public string? DtlsPsk { get; set; }

    public IReadOnlyList<string> TagList => Tags.Split(',', StringSplitOptions.RemoveEmptyEntries);

    public static string JoinTags(IEnumerable<string>? tags) => "," + string.Join(',', (tags ?? []).Distinct()) + (tags?.Any() == true ? "," : "");
}

internal sealed class DeviceConfiguration : IEntityTypeConfiguration<Device>
{
    public void Configure(EntityTypeBuilder<Device> b)
    {
        b.ToTable("devices");
        b.HasKey(x => x.Id);
        b.Property(x => x.Id).HasColumnName("id").HasMaxLength(64);
        b.Property(x => x.Name).HasColumnName("name").HasMaxLength(200);
        b.Property(x => x.TokenHash).HasColumnName("token_hash").HasMaxLength(64);
        b.Property(x => x.Enabled).HasColumnName("enabled");
        b.Property(x => x.ProfileId).HasColumnName("profile_id").HasMaxLength(64);
        b.Property(x => x.Tags).HasColumnName("tags").HasMaxLength(2100);
        b.Property(x => x.CreatedAt).HasColumnName("created_at");
        b.Property(x => x.Online).HasColumnName("online");
        b.Property(x => x.LastSeen).HasColumnName("last_seen");
        b.Property(x => x.ClockDriftMs).HasColumnName("clock_drift_ms");
        b.Property(x => x.ClockDriftFlagged).HasColumnName("clock_drift_flagged");
        b.Property(x => x.CertificateThumbprint).HasColumnName("certificate_thumbprint").HasMaxLength(64);
        b.Property(x => x.DtlsPsk).HasColumnName("dtls_psk");
        b.Ignore(x => x.TagList);
        b.HasIndex(x => x.TokenHash);
    }
}

/// <summary>What the API shows of a device (never its token or hash): <c>GET /api/v1/devices/{id}</c> and the items of
/// <c>GET /api/v1/devices</c>.</summary>
/// <param name="Id">The device id.</param>
/// <param name="Name">Its label, or null.</param>
/// <param name="Status"><c>online</c>, <c>offline</c> or <c>never</c> (CONTRACT.md, "Presence").</param>
/// <param name="Enabled">False when an operator disabled it: every protocol refuses it.</param>
/// <param name="LastSeen">When it was last heard from (ISO 8601 UTC), or null if never.</param>
/// <param name="Profile">Its profile id, or null.</param>
/// <param name="Tags">Its tags.</param>
/// <param name="ClockDriftMs">The latest drift of its clock: device time minus receive time, in milliseconds; null until it
/// sent a timestamp.</param>
/// <param name="ClockDriftFlagged">True when that drift exceeds <c>Validation:ClockDriftTolerance</c> (default 60 s).</param>
/// <param name="Inactive">Its profile says it reports every N seconds (<c>reportIntervalSeconds</c>) and nothing has been
/// heard from it for more than <see cref="InactiveAfterIntervals"/> times that.</param>
/// <param name="CertificateThumbprint">The SHA-256 thumbprint (64 upper-case hex digits) of the client certificate it may
/// log in with, or null.</param>
/// <param name="CreatedAt">When it was registered (ISO 8601 UTC).</param>
public sealed record DeviceView(
    string Id, string? Name, DeviceStatus Status, bool Enabled, DateTimeOffset? LastSeen, string? Profile,
    IReadOnlyList<string> Tags, long? ClockDriftMs, bool ClockDriftFlagged, bool Inactive, string? CertificateThumbprint, DateTimeOffset CreatedAt)
{
    /// <summary>Silence longer than this many report intervals makes a device inactive.</summary>
    public const int InactiveAfterIntervals = 2;

    internal static DeviceView Of(Device d, Presence.DevicePresence presence, IReadOnlyDictionary<string, int> reportIntervals, long nowMs)
    {
        var lastSeen = Math.Max(d.LastSeen ?? 0, presence.LastSeen(d.Id) ?? 0);
        var clock = presence.Clock(d.Id);
        var status = d.Online ? DeviceStatus.Online : lastSeen > 0 ? DeviceStatus.Offline : DeviceStatus.Never;
        var inactive = d.ProfileId is { } p && reportIntervals.TryGetValue(p, out var interval) && lastSeen > 0
            && nowMs - lastSeen > InactiveAfterIntervals * interval * 1000L;
        return new DeviceView(d.Id, d.Name, status, d.Enabled, lastSeen > 0 ? DateTimeOffset.FromUnixTimeMilliseconds(lastSeen) : null,
            d.ProfileId, d.TagList, clock?.DriftMs ?? d.ClockDriftMs, clock?.Flagged ?? d.ClockDriftFlagged, inactive, d.CertificateThumbprint,
            DateTimeOffset.FromUnixTimeMilliseconds(d.CreatedAt));
    }

    /// <summary>A SHA-256 certificate thumbprint: 64 hex digits (colons and case are normalised away).</summary>
    internal static string? NormaliseThumbprint(string? t) => t is null ? null : t.Replace(":", "", StringComparison.Ordinal).Trim().ToUpperInvariant();

    internal static bool IsThumbprint(string? t) => t is null || t.Length == 0 || (NormaliseThumbprint(t) is { Length: 64 } n && n.All(char.IsAsciiHexDigit));

    /// <summary>Report intervals by profile id, for the profiles that declare one.</summary>
    internal static async Task<IReadOnlyDictionary<string, int>> ReportIntervalsAsync(Storage.HubDb db, CancellationToken ct) =>
        await db.Set<Profiles.DeviceProfile>().AsNoTracking().Where(p => p.ReportIntervalSeconds != null)
            .ToDictionaryAsync(p => p.Id, p => p.ReportIntervalSeconds!.Value, StringComparer.Ordinal, ct);
}
