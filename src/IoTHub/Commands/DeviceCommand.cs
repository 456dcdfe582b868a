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

/// <summary>A command as the API shows it (<c>/api/v1/devices/{id}/commands</c>). Times are ISO 8601 UTC, null until they happen.</summary>
/// <param name="Id">The command id: 32 hex digits of a UUIDv7, so ids sort by creation time. It is the last level of the
/// device's topic <c>devices/{id}/commands/{commandId}</c>.</param>
/// <param name="DeviceId">The device it is for.</param>
/// <param name="Name">The command name (an identifier), e.g. <c>reboot</c>.</param>
/// <param name="Params">The parameters object sent with it: <c>{}</c> when the request gave none (or null), as the device gets it.</param>
/// <param name="State"><c>queued</c>, <c>sent</c>, <c>delivered</c> (the device acknowledged the message), <c>succeeded</c>,
/// <c>failed</c> or <c>expired</c>; it only moves forward, and the last three are final.</param>
/// <param name="DeliverWhenOnline">True when it waits for an offline device to connect instead of failing at once.</param>
/// <param name="CreatedAt">When it was requested.</param>
/// <param name="ExpiresAt">When a queued command stops waiting for its device (<c>deliverWhenOnline</c> only).</param>
/// <param name="SentAt">When it was published to the device.</param>
/// <param name="DeliveredAt">When the device acknowledged it (MQTT PUBACK).</param>
/// <param name="CompletedAt">When it became final.</param>
/// <param name="Response">What the device answered, or null.</param>
/// <param name="Error">Why it failed or expired (e.g. "device is offline", "no response before the timeout"), or null.</param>
public sealed record CommandView(
    string Id, string DeviceId, string Name, JsonNode Params, string State, bool DeliverWhenOnline,
    DateTimeOffset CreatedAt, DateTimeOffset? ExpiresAt, DateTimeOffset? SentAt, DateTimeOffset? DeliveredAt, DateTimeOffset? CompletedAt,
    CommandResponse? Response, string? Error)
{
    internal static CommandView Of(DeviceCommand c) => new(
        c.Id, c.DeviceId, c.Name, JsonNode.Parse(c.ParamsJson ?? "{}") ?? new JsonObject(), c.State, c.DeliverWhenOnline,
        Contracts.UnixTime.ToDateTime(c.CreatedAt), Contracts.UnixTime.ToDateTime(c.ExpiresAt), Contracts.UnixTime.ToDateTime(c.SentAt),
        Contracts.UnixTime.ToDateTime(c.DeliveredAt), Contracts.UnixTime.ToDateTime(c.CompletedAt),
        c.ResponseStatus is null ? null : new CommandResponse(c.ResponseStatus, c.ResultJson is null ? null : JsonNode.Parse(c.ResultJson)),
        c.Error);
}

/// <summary>What the device answered on <c>devices/{id}/commands/{commandId}/response</c> (CONTRACT.md, MQTT topics):
/// <c>{"status": "ok"|"error", "result": ...}</c>.</summary>
/// <param name="Status"><c>ok</c> (the command succeeded) or <c>error</c> (it failed).</param>
/// <param name="Result">Any JSON the device sent back, or null.</param>
public sealed record CommandResponse(string Status, JsonNode? Result);
