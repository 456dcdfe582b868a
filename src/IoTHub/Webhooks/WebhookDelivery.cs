// One message owed to one endpoint, and the log of trying: the retry schedule lives here (next_attempt_at), not in
// memory, so a restart or a crash resumes it where it was. A replay is a new row for the same outbox message, so it
// carries the same webhook-id.
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace IoTHub.Webhooks;

/// <summary>Where a delivery stands.</summary>
internal enum DeliveryStatus
{
    /// <summary>Not attempted yet.</summary>
    Pending = 0,
    /// <summary>Failed at least once; <c>next_attempt_at</c> says when it is tried again.</summary>
    Retrying = 1,
    /// <summary>The receiver answered 2xx.</summary>
    Succeeded = 2,
    /// <summary>Given up: a permanent refusal (4xx), the retry window ran out, or the endpoint was disabled.</summary>
    Failed = 3,
}

/// <summary>A row of <c>webhook_deliveries</c>.</summary>
internal sealed class WebhookDelivery
{
    public long Id { get; set; }
    public long EndpointId { get; set; }
    /// <summary><c>outbox.id</c> of the message: its body is built from that row.</summary>
    public long OutboxId { get; set; }
    public string MessageId { get; set; } = "";
    public string Type { get; set; } = "";
    public DeliveryStatus Status { get; set; }
    /// <summary>Attempts started so far (an attempt cut short by a crash counts).</summary>
    public int Attempt { get; set; }
    public int? ResponseStatus { get; set; }
    public int? DurationMs { get; set; }
    public string? Error { get; set; }
    /// <summary>Unix ms when it is due; while an attempt runs, the end of its lease (a crashed attempt is retried then).</summary>
    public long? NextAttemptAt { get; set; }
    public long CreatedAt { get; set; }
    public long? LastAttemptAt { get; set; }
}

internal sealed class WebhookDeliveryConfiguration : IEntityTypeConfiguration<WebhookDelivery>
{
    public void Configure(EntityTypeBuilder<WebhookDelivery> b)
    {
        b.ToTable("webhook_deliveries");
        b.HasKey(x => x.Id);
        b.Property(x => x.Id).HasColumnName("id").ValueGeneratedOnAdd();
        b.Property(x => x.EndpointId).HasColumnName("endpoint_id");
        b.Property(x => x.OutboxId).HasColumnName("outbox_id");
        b.Property(x => x.MessageId).HasColumnName("message_id").HasMaxLength(36);
        b.Property(x => x.Type).HasColumnName("type").HasMaxLength(64);
        b.Property(x => x.Status).HasColumnName("status");
        b.Property(x => x.Attempt).HasColumnName("attempt");
        b.Property(x => x.ResponseStatus).HasColumnName("response_status");
        b.Property(x => x.DurationMs).HasColumnName("duration_ms");
        b.Property(x => x.Error).HasColumnName("error").HasMaxLength(500);
        b.Property(x => x.NextAttemptAt).HasColumnName("next_attempt_at");
        b.Property(x => x.CreatedAt).HasColumnName("created_at");
        b.Property(x => x.LastAttemptAt).HasColumnName("last_attempt_at");
        b.HasOne<WebhookEndpoint>().WithMany().HasForeignKey(x => x.EndpointId).OnDelete(DeleteBehavior.Cascade);
        b.HasOne<Contracts.OutboxMessage>().WithMany().HasForeignKey(x => x.OutboxId).OnDelete(DeleteBehavior.Cascade);
        b.HasIndex(x => new { x.EndpointId, x.Id }).HasDatabaseName("ix_webhook_deliveries_endpoint");
        b.HasIndex(x => x.NextAttemptAt).HasFilter("status IN (0, 1)").HasDatabaseName("ix_webhook_deliveries_due");
    }
}
