using IoTHub.Contracts;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace IoTHub.Gateway.ApiKeys;

/// <summary>An app's key: a role, shown once at creation, stored as a SHA-256 hash, revocable.</summary>
internal sealed class ApiKey
{
    public long Id { get; set; }
    public string Name { get; set; } = "";
    public string Role { get; set; } = Roles.Viewer;
    public string KeyHash { get; set; } = "";
    public long CreatedAt { get; set; }
    public long? LastUsedAt { get; set; }
    public long? RevokedAt { get; set; }
}

internal sealed class ApiKeyConfiguration : IEntityTypeConfiguration<ApiKey>
{
    public void Configure(EntityTypeBuilder<ApiKey> b)
    {
        b.ToTable("api_keys");
        b.HasKey(x => x.Id);
        b.Property(x => x.Id).HasColumnName("id");
        b.Property(x => x.Name).HasColumnName("name").HasMaxLength(100);
        b.Property(x => x.Role).HasColumnName("role").HasMaxLength(16);
        b.Property(x => x.KeyHash).HasColumnName("key_hash").HasMaxLength(64);
        b.Property(x => x.CreatedAt).HasColumnName("created_at");
        b.Property(x => x.LastUsedAt).HasColumnName("last_used_at");
        b.Property(x => x.RevokedAt).HasColumnName("revoked_at");
        b.HasIndex(x => x.KeyHash).IsUnique();
    }
}
