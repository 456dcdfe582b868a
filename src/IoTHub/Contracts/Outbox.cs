// The transactional outbox (https://microservices.io/patterns/data/transactional-outbox.html): a module that changes
// state and must tell the outside (alarm transitions, and next firmware events) adds an OutboxMessage to the same
// DbContext, so the row commits in the transaction of the change or not at all. The Webhooks module owns delivery:
// it reads undispatched rows in id order, fans each out to the endpoints subscribed to its type, and marks it
// dispatched. A hub killed between the change and the send loses nothing; the message id stays the same across
// retries and replays (Standard Webhooks' webhook-id), so a receiver can drop a repeat.
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace IoTHub.Contracts;

/// <summary>A row of <c>outbox</c>: one event the hub owes the outside, committed with the change it reports.</summary>
public sealed class OutboxMessage
{
    /// <summary>Database order of the rows: the dispatcher reads them in this order.</summary>
    public long Id { get; set; }

    /// <summary>Stable identifier of the event, <c>msg_</c> and 32 hex digits; the <c>webhook-id</c> header of every
    /// delivery of it, retries and replays included (Standard Webhooks, "Webhook headers").</summary>
    public string MessageId { get; set; } = "";

    /// <summary>Dot-separated event type, one of <see cref="HubEventTypes"/> (e.g. <c>alarm.raised</c>).</summary>
    public string Type { get; set; } = "";

    /// <summary>When the event happened, Unix ms (the payload's <c>timestamp</c>).</summary>
    public long OccurredAt { get; set; }

    /// <summary>The event's <c>data</c> object, UTF-8 JSON in the API's camelCase.</summary>
    public string Data { get; set; } = "{}";

    /// <summary>Unix ms when the Webhooks dispatcher fanned it out to the subscribed endpoints; null until then.</summary>
    public long? DispatchedAt { get; set; }
}

/// <summary>Maps <see cref="OutboxMessage"/> to <c>outbox</c>, with an index on the undispatched rows.</summary>
internal sealed class OutboxMessageConfiguration : IEntityTypeConfiguration<OutboxMessage>
{
    public void Configure(EntityTypeBuilder<OutboxMessage> b)
    {
        b.ToTable("outbox");
        b.HasKey(x => x.Id);
        b.Property(x => x.Id).HasColumnName("id").ValueGeneratedOnAdd();
        b.Property(x => x.MessageId).HasColumnName("message_id").HasMaxLength(36);
        b.Property(x => x.Type).HasColumnName("type").HasMaxLength(64);
        b.Property(x => x.OccurredAt).HasColumnName("occurred_at");
        b.Property(x => x.Data).HasColumnName("data");
        b.Property(x => x.DispatchedAt).HasColumnName("dispatched_at");
        b.HasIndex(x => x.MessageId).IsUnique();
        b.HasIndex(x => x.Id).HasFilter("dispatched_at IS NULL").HasDatabaseName("ix_outbox_undispatched");
    }
}

/// <summary>The event types the hub sends to the outside (webhooks, and MQTT for alarms), dot-separated like
/// Standard Webhooks' examples.</summary>
public static class HubEventTypes
{
    /// <summary>An alarm became active (its raise condition held for its duration).</summary>
    public const string AlarmRaised = "alarm.raised";
    /// <summary>An open alarm's severity went up or down (another raise condition of its rule holds).</summary>
    public const string AlarmSeverityChanged = "alarm.severity_changed";
    /// <summary>An alarm cleared (its clear condition held, after the clear delay).</summary>
    public const string AlarmCleared = "alarm.cleared";
    /// <summary>An operator acknowledged an alarm.</summary>
    public const string AlarmAcknowledged = "alarm.acknowledged";
    /// <summary>An alarm's condition changes too often (N transitions in M minutes): one notification, then quiet until it settles.</summary>
    public const string AlarmFlapping = "alarm.flapping";
    /// <summary>A device came online.</summary>
    public const string DeviceOnline = "device.online";
    /// <summary>A device went offline.</summary>
    public const string DeviceOffline = "device.offline";
    /// <summary>A message was rejected and kept in the dead-letter store. Not emitted yet (docs/adr/0009): endpoints may
    /// subscribe to it, and receive nothing of it so far.</summary>
    public const string DeadLetterCreated = "dead_letter.created";
    /// <summary>A firmware campaign halted by itself (failure threshold crossed, or a wave ended below its success
    /// threshold): <c>{"campaignId", "name", "state", "reason", "version"}</c>.</summary>
    public const string FirmwareCampaignHalted = "firmware.campaign_halted";
    /// <summary>A firmware campaign finished: every targeted device succeeded or failed, <c>{"campaignId", "name", "state",
    /// "succeeded", "failed", "version"}</c>.</summary>
    public const string FirmwareCampaignCompleted = "firmware.campaign_completed";
    /// <summary>A test event an admin sent to one endpoint.</summary>
    public const string Test = "webhook.test";

    /// <summary>Every type above, for validating an endpoint's filter.</summary>
    public static readonly IReadOnlyList<string> All =
        [AlarmRaised, AlarmSeverityChanged, AlarmCleared, AlarmAcknowledged, AlarmFlapping, DeviceOnline, DeviceOffline, DeadLetterCreated,
        FirmwareCampaignHalted, FirmwareCampaignCompleted, Test];
}

/// <summary>Adds events to the outbox within the caller's unit of work, and wakes the dispatcher after a commit.</summary>
public sealed class Outbox
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);
    private readonly SemaphoreSlim _signal = new(0, 1);

    /// <summary>Adds an event to <paramref name="db"/>'s change tracker; it commits with the caller's SaveChanges.</summary>
    /// <param name="db">The caller's context (the hub's one model), in the transaction of the change it reports.</param>
    /// <param name="type">One of <see cref="HubEventTypes"/>.</param>
    /// <param name="data">The event's <c>data</c>, serialised as the API's camelCase JSON.</param>
    /// <param name="at">When it happened.</param>
    /// <returns>The row, whose <see cref="OutboxMessage.MessageId"/> is already set.</returns>
    public static OutboxMessage Add(DbContext db, string type, object data, DateTimeOffset at)
    {
        var row = new OutboxMessage
        {
            MessageId = "msg_" + Guid.NewGuid().ToString("N"),
            Type = type,
            OccurredAt = at.ToUnixTimeMilliseconds(),
            Data = JsonSerializer.Serialize(data, data.GetType(), Json),
        };
        db.Add(row);
        return row;
    }

    /// <summary>Tells the dispatcher new rows committed (call after SaveChanges); cheap, never blocks.</summary>
    public void Committed()
    {
        if (_signal.CurrentCount == 0) try { _signal.Release(); } catch (SemaphoreFullException) { }
    }

    /// <summary>Waits until <see cref="Committed"/> is called or <paramref name="timeout"/> passes (the dispatcher's poll).</summary>
    public Task WaitAsync(TimeSpan timeout, CancellationToken ct) => _signal.WaitAsync(timeout, ct);
}
