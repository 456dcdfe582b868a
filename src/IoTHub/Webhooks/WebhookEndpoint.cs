// An endpoint an admin registered. Its signing secret cannot be stored as a hash like API keys and device tokens
// (Contracts/Secrets.cs): the hub needs the secret itself to compute each delivery's HMAC. It is stored encrypted with
// ASP.NET Core Data Protection (the key ring the Gateway keeps in the data directory, readable by the hub's user only),
// so a copy of the database alone (a backup, a PostgreSQL dump) does not let anyone forge deliveries.
using IoTHub.Contracts;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace IoTHub.Webhooks;

/// <summary>A row of <c>webhook_endpoints</c>.</summary>
internal sealed class WebhookEndpoint
{
    public long Id { get; set; }
    public string Url { get; set; } = "";
    /// <summary>Subscribed event types, comma-separated; empty = every type.</summary>
    public string EventTypes { get; set; } = "";
    public string? Description { get; set; }
    public bool Enabled { get; set; } = true;
    /// <summary>Why the hub disabled it (410, failing for a day); null when it is enabled or an admin disabled it.</summary>
    public string? DisabledReason { get; set; }
    /// <summary>The signing secret (<c>whsec_...</c>), protected with Data Protection.</summary>
    public string ProtectedSecret { get; set; } = "";
    /// <summary>The secret before the last rotation, protected; it also signs until <see cref="PreviousSecretUntil"/>.</summary>
    public string? ProtectedPreviousSecret { get; set; }
    public long? PreviousSecretUntil { get; set; }
    /// <summary>Unix ms of the first failed attempt since the last success; null while it succeeds.</summary>
    public long? FailingSince { get; set; }
    public long CreatedAt { get; set; }
    public long UpdatedAt { get; set; }

    public IReadOnlyList<string> TypeList => EventTypes.Length == 0 ? [] : EventTypes.Split(',');

    public bool Subscribes(string type) => EventTypes.Length == 0 ? type != HubEventTypes.Test : ("," + EventTypes + ",").Contains("," + type + ",", StringComparison.Ordinal);

    public static string JoinTypes(IEnumerable<string>? types) => types is null ? "" : string.Join(',', types.Distinct(StringComparer.Ordinal));
}

internal sealed class WebhookEndpointConfiguration : IEntityTypeConfiguration<WebhookEndpoint>
{
    public void Configure(EntityTypeBuilder<WebhookEndpoint> b)
    {
        b.ToTable("webhook_endpoints");
        b.HasKey(x => x.Id);
        b.Property(x => x.Id).HasColumnName("id").ValueGeneratedOnAdd();
        b.Property(x => x.Url).HasColumnName("url").HasMaxLength(2048);
        b.Property(x => x.EventTypes).HasColumnName("event_types").HasMaxLength(1024);
        b.Property(x => x.Description).HasColumnName("description").HasMaxLength(500);
        b.Property(x => x.Enabled).HasColumnName("enabled");
        b.Property(x => x.DisabledReason).HasColumnName("disabled_reason").HasMaxLength(500);
        b.Property(x => x.ProtectedSecret).HasColumnName("protected_secret");
        b.Property(x => x.ProtectedPreviousSecret).HasColumnName("protected_previous_secret");
        b.Property(x => x.PreviousSecretUntil).HasColumnName("previous_secret_until");
        b.Property(x => x.FailingSince).HasColumnName("failing_since");
        b.Property(x => x.CreatedAt).HasColumnName("created_at");
        b.Property(x => x.UpdatedAt).HasColumnName("updated_at");
        b.Ignore(x => x.TypeList);
    }
}
