// A command to one device and everything that happened to it. States move forward only:
// queued → sent → delivered → succeeded | failed, or expired when no response came in time.
using System.Text.Json.Nodes;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace IoTHub.Commands;

internal static class CommandState
{
    public const string Queued = "queued";
    public const string Sent = "sent";
    public const string Delivered = "delivered";
    public const string Succeeded = "succeeded";
    public const string Failed = "failed";
    public const string Expired = "expired";

    public static readonly string[] All = [Queued, Sent, Delivered, Succeeded, Failed, Expired];

    public static bool IsFinal(string state) => state is Succeeded or Failed or Expired;
}

internal sealed class DeviceCommand
{
    public string Id { get; set; } = "";
    public string DeviceId { get; set; } = "";
    public string Name { get; set; } = "";
    public string? ParamsJson { get; set; }
    public string State { get; set; } = CommandState.Queued;
    public string? IdempotencyKey { get; set; }
    public bool DeliverWhenOnline { get; set; }
    public long CreatedAt { get; set; }
    public long? ExpiresAt { get; set; }
    public long? SentAt { get; set; }
    public long? DeliveredAt { get; set; }
    public long? CompletedAt { get; set; }
    public string? ResponseStatus { get; set; }
    public string? ResultJson { get; set; }
    public string? Error { get; set; }
    public string? RequestedBy { get; set; }
}

internal sealed class DeviceCommandConfiguration : IEntityTypeConfiguration<DeviceCommand>
{
    public void Configure(EntityTypeBuilder<DeviceCommand> b)
    {
        b.ToTable("device_commands");
        b.HasKey(x => x.Id);
        b.Property(x => x.Id).HasColumnName("id").HasMaxLength(32);
        b.Property(x => x.DeviceId).HasColumnName("device_id").HasMaxLength(64);
        b.Property(x => x.Name).HasColumnName("name").HasMaxLength(64);
        b.Property(x => x.ParamsJson).HasColumnName("params");
        b.Property(x => x.State).HasColumnName("state").HasMaxLength(16);
        b.Property(x => x.IdempotencyKey).HasColumnName("idempotency_key").HasMaxLength(200);
        b.Property(x => x.DeliverWhenOnline).HasColumnName("deliver_when_online");
        b.Property(x => x.CreatedAt).HasColumnName("created_at");
        b.Property(x => x.ExpiresAt).HasColumnName("expires_at");
        b.Property(x => x.SentAt).HasColumnName("sent_at");
        b.Property(x => x.DeliveredAt).HasColumnName("delivered_at");
        b.Property(x => x.CompletedAt).HasColumnName("completed_at");
        b.Property(x => x.ResponseStatus).HasColumnName("response_status").HasMaxLength(8);
        b.Property(x => x.ResultJson).HasColumnName("result");
        b.Property(x => x.Error).HasColumnName("error").HasMaxLength(500);
        b.Property(x => x.RequestedBy).HasColumnName("requested_by").HasMaxLength(200);
        b.HasIndex(x => new { x.DeviceId, x.IdempotencyKey }).IsUnique();
        b.HasIndex(x => new { x.DeviceId, x.State, x.CreatedAt });
        b.HasIndex(x => new { x.State, x.ExpiresAt });
    }
}

/// <summary>A command as the API shows it.</summary>
public sealed record CommandView(
    string Id, string DeviceId, string Name, JsonNode? Params, string State, bool DeliverWhenOnline,
    DateTimeOffset CreatedAt, DateTimeOffset? ExpiresAt, DateTimeOffset? SentAt, DateTimeOffset? DeliveredAt, DateTimeOffset? CompletedAt,
    CommandResponse? Response, string? Error)
{
    internal static CommandView Of(DeviceCommand c) => new(
        c.Id, c.DeviceId, c.Name, c.ParamsJson is null ? null : JsonNode.Parse(c.ParamsJson), c.State, c.DeliverWhenOnline,
        Contracts.UnixTime.ToDateTime(c.CreatedAt), Contracts.UnixTime.ToDateTime(c.ExpiresAt), Contracts.UnixTime.ToDateTime(c.SentAt),
        Contracts.UnixTime.ToDateTime(c.DeliveredAt), Contracts.UnixTime.ToDateTime(c.CompletedAt),
        c.ResponseStatus is null ? null : new CommandResponse(c.ResponseStatus, c.ResultJson is null ? null : JsonNode.Parse(c.ResultJson)),
        c.Error);
}

/// <summary>What the device answered: <c>{"status": "ok"|"error", "result": ...}</c>.</summary>
public sealed record CommandResponse(string Status, JsonNode? Result);
