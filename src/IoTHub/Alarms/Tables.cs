// The Alarms module's tables: rules, the evaluator's state per (rule, device), alarms and their history.
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace IoTHub.Alarms;

/// <summary>A row of <c>alarm_rules</c>: the rule's body as JSON (the API's shape), and what lists filter on.</summary>
internal sealed class AlarmRuleRow
{
    public long Id { get; set; }
    public string Name { get; set; } = "";
    public bool Enabled { get; set; } = true;
    public string Metric { get; set; } = "";
    /// <summary>The <see cref="Rules.AlarmRuleBody"/> as JSON.</summary>
    public string Body { get; set; } = "{}";
    public long CreatedAt { get; set; }
    public long UpdatedAt { get; set; }
}

/// <summary>A row of <c>alarm_rule_states</c>: the evaluator's memory of one (rule, device) as JSON.</summary>
internal sealed class AlarmRuleStateRow
{
    public long RuleId { get; set; }
    public string DeviceId { get; set; } = "";
    /// <summary>The <see cref="Evaluation.RuleDeviceState"/> as JSON.</summary>
    public string State { get; set; } = "{}";
    public long UpdatedAt { get; set; }
}

/// <summary>A row of <c>alarms</c>. At most one open (not cleared) alarm per (rule, device): a unique partial index.</summary>
internal sealed class AlarmRow
{
    public long Id { get; set; }
    public long RuleId { get; set; }
    public string RuleName { get; set; } = "";
    public string DeviceId { get; set; } = "";
    public string Metric { get; set; } = "";
    /// <summary><c>pending</c>, <c>active</c> or <c>cleared</c>.</summary>
    public string State { get; set; } = "";
    /// <summary>0 critical … 3 warning (<see cref="Rules.AlarmSeverity"/>).</summary>
    public int Severity { get; set; }
    /// <summary>0 while open, 1 once cleared: open alarms sort first.</summary>
    public int Closed { get; set; }
    public double? Value { get; set; }
    public long CreatedAt { get; set; }
    public long? RaisedAt { get; set; }
    public long? ClearedAt { get; set; }
    public long UpdatedAt { get; set; }
    public bool Flapping { get; set; }
    public long? AcknowledgedAt { get; set; }
    public string? AcknowledgedBy { get; set; }
    public string? AcknowledgeComment { get; set; }
    public long? SnoozedUntil { get; set; }
    public string? Assignee { get; set; }
}

/// <summary>A row of <c>alarm_events</c>: one transition or operator action on an alarm.</summary>
internal sealed class AlarmEventRow
{
    public long Id { get; set; }
    public long AlarmId { get; set; }
    public long At { get; set; }
    /// <summary><c>pending</c>, <c>raised</c>, <c>severity_changed</c>, <c>cleared</c>, <c>flapping</c>, <c>acknowledged</c>,
    /// <c>snoozed</c>, <c>assigned</c>, <c>commented</c>.</summary>
    public string Kind { get; set; } = "";
    public int? Severity { get; set; }
    public double? Value { get; set; }
    public string? Actor { get; set; }
    public string? Comment { get; set; }
}

internal sealed class AlarmTablesConfiguration :
    IEntityTypeConfiguration<AlarmRuleRow>, IEntityTypeConfiguration<AlarmRuleStateRow>, IEntityTypeConfiguration<AlarmRow>, IEntityTypeConfiguration<AlarmEventRow>
{
    public void Configure(EntityTypeBuilder<AlarmRuleRow> b)
    {
        b.ToTable("alarm_rules");
        b.HasKey(x => x.Id);
        b.Property(x => x.Id).HasColumnName("id").ValueGeneratedOnAdd();
        b.Property(x => x.Name).HasColumnName("name").HasMaxLength(200);
        b.Property(x => x.Enabled).HasColumnName("enabled");
        b.Property(x => x.Metric).HasColumnName("metric").HasMaxLength(128);
        b.Property(x => x.Body).HasColumnName("body");
        b.Property(x => x.CreatedAt).HasColumnName("created_at");
        b.Property(x => x.UpdatedAt).HasColumnName("updated_at");
    }

    public void Configure(EntityTypeBuilder<AlarmRuleStateRow> b)
    {
        b.ToTable("alarm_rule_states");
        b.HasKey(x => new { x.RuleId, x.DeviceId });
        b.Property(x => x.RuleId).HasColumnName("rule_id");
        b.Property(x => x.DeviceId).HasColumnName("device_id").HasMaxLength(64);
        b.Property(x => x.State).HasColumnName("state");
        b.Property(x => x.UpdatedAt).HasColumnName("updated_at");
        b.HasIndex(x => x.DeviceId);
    }

    public void Configure(EntityTypeBuilder<AlarmRow> b)
    {
        b.ToTable("alarms");
        b.HasKey(x => x.Id);
        b.Property(x => x.Id).HasColumnName("id").ValueGeneratedOnAdd();
        b.Property(x => x.RuleId).HasColumnName("rule_id");
        b.Property(x => x.RuleName).HasColumnName("rule_name").HasMaxLength(200);
        b.Property(x => x.DeviceId).HasColumnName("device_id").HasMaxLength(64);
        b.Property(x => x.Metric).HasColumnName("metric").HasMaxLength(128);
        b.Property(x => x.State).HasColumnName("state").HasMaxLength(16);
        b.Property(x => x.Severity).HasColumnName("severity");
        b.Property(x => x.Closed).HasColumnName("closed");
        b.Property(x => x.Value).HasColumnName("value");
        b.Property(x => x.CreatedAt).HasColumnName("created_at");
        b.Property(x => x.RaisedAt).HasColumnName("raised_at");
        b.Property(x => x.ClearedAt).HasColumnName("cleared_at");
        b.Property(x => x.UpdatedAt).HasColumnName("updated_at");
        b.Property(x => x.Flapping).HasColumnName("flapping");
        b.Property(x => x.AcknowledgedAt).HasColumnName("acknowledged_at");
        b.Property(x => x.AcknowledgedBy).HasColumnName("acknowledged_by").HasMaxLength(200);
        b.Property(x => x.AcknowledgeComment).HasColumnName("acknowledge_comment").HasMaxLength(2000);
        b.Property(x => x.SnoozedUntil).HasColumnName("snoozed_until");
        b.Property(x => x.Assignee).HasColumnName("assignee").HasMaxLength(200);
        // At most one open alarm per (rule, device), kept by the database (both stores have partial unique indexes).
        b.HasIndex(x => new { x.RuleId, x.DeviceId }).IsUnique().HasFilter("closed = 0").HasDatabaseName("ux_alarms_open_per_rule_device");
        b.HasIndex(x => new { x.Closed, x.Id }).HasDatabaseName("ix_alarms_list");
        b.HasIndex(x => new { x.DeviceId, x.Closed });
    }

    public void Configure(EntityTypeBuilder<AlarmEventRow> b)
    {
        b.ToTable("alarm_events");
        b.HasKey(x => x.Id);
        b.Property(x => x.Id).HasColumnName("id").ValueGeneratedOnAdd();
        b.Property(x => x.AlarmId).HasColumnName("alarm_id");
        b.Property(x => x.At).HasColumnName("at");
        b.Property(x => x.Kind).HasColumnName("kind").HasMaxLength(32);
        b.Property(x => x.Severity).HasColumnName("severity");
        b.Property(x => x.Value).HasColumnName("value");
        b.Property(x => x.Actor).HasColumnName("actor").HasMaxLength(200);
        b.Property(x => x.Comment).HasColumnName("comment").HasMaxLength(2000);
        b.HasIndex(x => new { x.AlarmId, x.Id });
    }
}
