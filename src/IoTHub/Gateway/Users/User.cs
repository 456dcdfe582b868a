using IoTHub.Contracts;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace IoTHub.Gateway.Users;

/// <summary>An admin-UI user. The password is stored only as a PBKDF2 hash (ASP.NET Core Identity's hasher).</summary>
internal sealed class User
{
    public long Id { get; set; }
    public string Username { get; set; } = "";
    public string PasswordHash { get; set; } = "";
    public string Role { get; set; } = Roles.Viewer;
    public long CreatedAt { get; set; }
}

/// <summary>A bearer token issued by <c>POST /auth/token</c>; stored as a SHA-256 hash.</summary>
internal sealed class AccessToken
{
    public long Id { get; set; }
    public string TokenHash { get; set; } = "";
    public long UserId { get; set; }
    public long ExpiresAt { get; set; }
}

internal sealed class UserConfiguration : IEntityTypeConfiguration<User>
{
    public void Configure(EntityTypeBuilder<User> b)
    {
        b.ToTable("users");
        b.HasKey(x => x.Id);
        b.Property(x => x.Id).HasColumnName("id");
        b.Property(x => x.Username).HasColumnName("username").HasMaxLength(64);
        b.Property(x => x.PasswordHash).HasColumnName("password_hash");
        b.Property(x => x.Role).HasColumnName("role").HasMaxLength(16);
        b.Property(x => x.CreatedAt).HasColumnName("created_at");
        b.HasIndex(x => x.Username).IsUnique();
    }
}

internal sealed class AccessTokenConfiguration : IEntityTypeConfiguration<AccessToken>
{
    public void Configure(EntityTypeBuilder<AccessToken> b)
    {
        b.ToTable("access_tokens");
        b.HasKey(x => x.Id);
        b.Property(x => x.Id).HasColumnName("id");
        b.Property(x => x.TokenHash).HasColumnName("token_hash").HasMaxLength(64);
        b.Property(x => x.UserId).HasColumnName("user_id");
        b.Property(x => x.ExpiresAt).HasColumnName("expires_at");
        b.HasIndex(x => x.TokenHash).IsUnique();
        b.HasOne<User>().WithMany().HasForeignKey(x => x.UserId).OnDelete(DeleteBehavior.Cascade);
    }
}
