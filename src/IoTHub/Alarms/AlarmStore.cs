// The Alarms module's reads and writes. A batch of transitions is one transaction: the alarm rows, their history, the
// outbox rows that announce them (webhooks) and the (rule, device) states, so a hub killed at any point either has the
// transition with its notification or neither. Apps on MQTT are told after the commit (best effort: an app that must
// not miss one uses a webhook, or reads GET /alarms).
using System.Text.Json;
using IoTHub.Alarms.Evaluation;
using IoTHub.Alarms.Rules;
using IoTHub.Contracts;
using IoTHub.Storage;
using Mediator;
using Microsoft.EntityFrameworkCore;

namespace IoTHub.Alarms;

internal sealed class AlarmStore(HubDb db, Outbox outbox, IMediator mediator, TimeProvider time, ILogger<AlarmStore> log)
{
    private static readonly System.Diagnostics.Metrics.Counter<long> Transitions = HubMeter.Meter.CreateCounter<long>("iothub_alarm_transitions_total",
        description: "Alarm transitions stored, by kind (pending, withdrawn, raised, severity_changed, cleared, flapping)");

    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    public async Task<List<(long Id, AlarmRuleBody Body)>> LoadRulesAsync(CancellationToken ct)
    {
        var rows = await db.Set<AlarmRuleRow>().AsNoTracking().Where(r => r.Enabled).ToListAsync(ct);
        var rules = new List<(long, AlarmRuleBody)>();
        foreach (var r in rows)
            if (JsonSerializer.Deserialize<AlarmRuleBody>(r.Body, Json) is { } body) rules.Add((r.Id, body));
        return rules;
    }

    public async Task<AlarmRuleBody?> LoadRuleAsync(long id, CancellationToken ct)
    {
        var row = await db.Set<AlarmRuleRow>().AsNoTracking().FirstOrDefaultAsync(r => r.Id == id, ct);
        return row is null || JsonSerializer.Deserialize<AlarmRuleBody>(row.Body, Json) is not { } body ? null : body with { Enabled = row.Enabled };
    }

    public async Task<List<((long Rule, string Device) Key, RuleDeviceState State)>> LoadStatesAsync(CancellationToken ct)
    {
        var rows = await db.Set<AlarmRuleStateRow>().AsNoTracking().ToListAsync(ct);
        var states = new List<((long, string), RuleDeviceState)>(rows.Count);
        foreach (var r in rows)
        {
            try
            {
                if (JsonSerializer.Deserialize<RuleDeviceState>(r.State, Json) is { } s) states.Add(((r.RuleId, r.DeviceId), s));
            }
            catch (JsonException ex)
            {
                log.LogWarning(ex, "The stored state of alarm rule {RuleId} for device {DeviceId} is unreadable; it starts afresh", r.RuleId, r.DeviceId);
            }
        }
        return states;
    }

    /// <summary>Deletes alarms that cleared before <paramref name="before"/> (Unix ms) and their history, 1,000 at a time
    /// so that no transaction holds the store for long; returns how many.</summary>
    public async Task<int> PurgeClearedAsync(long before, CancellationToken ct)
    {
        var total = 0;
        while (true)
        {
            var ids = await db.Set<AlarmRow>().Where(a => a.Closed == 1 && a.ClearedAt < before).OrderBy(a => a.Id).Select(a => a.Id).Take(1000).ToListAsync(ct);
            if (ids.Count == 0) return total;
            await using var tx = await db.Database.BeginTransactionAsync(ct);
            await db.Set<AlarmEventRow>().Where(e => ids.Contains(e.AlarmId)).ExecuteDeleteAsync(ct);
            total += await db.Set<AlarmRow>().Where(a => ids.Contains(a.Id)).ExecuteDeleteAsync(ct);
            await tx.CommitAsync(ct);
        }
    }

    /// <summary>Deletes what the module holds of a deleted device: its states, alarms and their history.</summary>
    public async Task DeleteDeviceAsync(string deviceId, CancellationToken ct)
    {
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        var alarms = db.Set<AlarmRow>().Where(a => a.DeviceId == deviceId).Select(a => a.Id);
        await db.Set<AlarmEventRow>().Where(e => alarms.Contains(e.AlarmId)).ExecuteDeleteAsync(ct);
        await db.Set<AlarmRow>().Where(a => a.DeviceId == deviceId).ExecuteDeleteAsync(ct);
        await db.Set<AlarmRuleStateRow>().Where(s => s.DeviceId == deviceId).ExecuteDeleteAsync(ct);
        await tx.CommitAsync(ct);
    }

    /// <summary>Writes states (null: delete) in one transaction. <c>Stored</c>: a row exists already.</summary>
    public async Task SaveStatesAsync(IReadOnlyList<(long Rule, string Device, RuleDeviceState? State, bool Stored)> states, CancellationToken ct)
    {
        var now = time.NowMs();
        foreach (var (rule, device, state, stored) in states) Stage(rule, device, state, stored, now);
        await db.SaveChangesAsync(ct);
        db.ChangeTracker.Clear();
    }

    private void Stage(long rule, string device, RuleDeviceState? state, bool stored, long now)
    {
        var row = new AlarmRuleStateRow { RuleId = rule, DeviceId = device, State = state is null ? "{}" : JsonSerializer.Serialize(state, Json), UpdatedAt = now };
        var tracked = db.ChangeTracker.Entries<AlarmRuleStateRow>().FirstOrDefault(e => e.Entity.RuleId == rule && e.Entity.DeviceId == device);
        if (tracked is not null) tracked.State = EntityState.Detached;
        if (state is null || state.Removed)
        {
            if (stored) db.Remove(row);
        }
        else if (stored) db.Update(row);
        else db.Add(row);
    }

    /// <summary>Stores a batch of transitions with their states and outbox rows in one transaction, then tells apps.</summary>
    public async Task ApplyAsync(IReadOnlyList<Transition> transitions, CancellationToken ct)
    {
        var now = time.NowMs();
        var opened = new Dictionary<(long, string), AlarmRow>();
        var announce = new List<(string Topic, object Data)>();
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        foreach (var t in transitions)
        {
            var key = (t.Rule.Id, t.DeviceId);
            AlarmRow? row = opened.GetValueOrDefault(key);
            if (row is null && t.AlarmId is > 0) row = await db.Set<AlarmRow>().FirstOrDefaultAsync(a => a.Id == t.AlarmId, ct);
            string? type = null;
            string kind;
            switch (t.Kind)
            {
                case TransitionKind.Pending:
                    row = NewRow(t, "pending", now);
                    kind = "pending";
                    break;
                case TransitionKind.Raised:
                    row ??= NewRow(t, "active", now);
                    row.State = "active";
                    row.RaisedAt = t.At;
                    row.Severity = (int)t.Severity;
                    row.Value = t.Value;
                    kind = "raised";
                    type = HubEventTypes.AlarmRaised;
                    break;
                case TransitionKind.SeverityChanged when row is not null:
                    row.Severity = (int)t.Severity;
                    row.Value = t.Value;
                    kind = "severity_changed";
                    type = HubEventTypes.AlarmSeverityChanged;
                    break;
                case TransitionKind.Flapping when row is not null:
                    row.Flapping = true;
                    kind = "flapping";
                    type = HubEventTypes.AlarmFlapping;
                    break;
                case TransitionKind.Cleared when row is not null:
                    row.State = "cleared";
                    row.Closed = 1;
                    row.ClearedAt = t.At;
                    row.Value = t.Value ?? row.Value;
                    kind = "cleared";
                    type = HubEventTypes.AlarmCleared;
                    break;
                case TransitionKind.Withdrawn when row is not null:
                    // A pending alarm whose condition let go before its deadline: it never was; its row and history go.
                    if (row.Id > 0) await db.Set<AlarmEventRow>().Where(e => e.AlarmId == row.Id).ExecuteDeleteAsync(ct);
                    db.Remove(row);
                    opened.Remove(key);
                    await db.SaveChangesAsync(ct);
                    continue;
                default:
                    log.LogWarning("Alarm transition {Kind} of rule {RuleId} for device {DeviceId} has no open alarm; skipped", t.Kind, t.Rule.Id, t.DeviceId);
                    continue;
            }
            row.UpdatedAt = now;
            if (row.Id == 0) db.Add(row);
            await db.SaveChangesAsync(ct);
            opened[key] = row;
            if (t.Kind == TransitionKind.Cleared) opened.Remove(key);
            db.Add(new AlarmEventRow { AlarmId = row.Id, At = t.At, Kind = kind, Severity = (int)t.Severity, Value = t.Value, Comment = t.Reason });
            var snoozed = row.SnoozedUntil is { } until && until > now && t.Kind != TransitionKind.Cleared;
            if (type is not null && !snoozed)
            {
                var data = AlarmNotice.Of(row, t.Previous, type);
                Outbox.Add(db, type, data, UnixTime.ToDateTime(t.At));
                announce.Add((AlarmTopics.Of(row.DeviceId, row.RuleId), data));
            }
            if (t.State.AlarmId == 0 && !t.State.Removed && t.Kind is TransitionKind.Pending or TransitionKind.Raised) t.State.AlarmId = row.Id;
        }
        // The states of the (rule, device)s that moved, in the same transaction.
        var staged = new HashSet<(long, string)>();
        foreach (var t in transitions)
        {
            var key = (t.Rule.Id, t.DeviceId);
            if (!staged.Add(key)) continue;
            var exists = await db.Set<AlarmRuleStateRow>().AsNoTracking().AnyAsync(s => s.RuleId == t.Rule.Id && s.DeviceId == t.DeviceId, ct);
            Stage(t.Rule.Id, t.DeviceId, t.State.Removed ? null : t.State, exists, now);
        }
        await db.SaveChangesAsync(ct);
        await tx.CommitAsync(ct);
        db.ChangeTracker.Clear();
        foreach (var t in transitions) Transitions.Add(1, new KeyValuePair<string, object?>("kind", t.Kind switch
        {
            TransitionKind.Pending => "pending", TransitionKind.Withdrawn => "withdrawn", TransitionKind.Raised => "raised",
            TransitionKind.SeverityChanged => "severity_changed", TransitionKind.Cleared => "cleared", _ => "flapping",
        }));
        if (announce.Count == 0) return;
        outbox.Committed();
        foreach (var (topic, data) in announce)
        {
            try { await mediator.Send(new PublishToApps(topic, JsonSerializer.SerializeToUtf8Bytes(data, Json), Retain: false), ct); }
            catch (Exception ex) when (ex is not OperationCanceledException) { log.LogWarning(ex, "Alarm transition could not be published on {Topic}", topic); }
        }
    }

    private static AlarmRow NewRow(Transition t, string state, long now) => new()
    {
        RuleId = t.Rule.Id,
        RuleName = t.Rule.Name,
        DeviceId = t.DeviceId,
        Metric = t.Rule.Metric,
        State = state,
        Severity = (int)t.Severity,
        Value = t.Value,
        CreatedAt = t.At,
        UpdatedAt = now,
    };
}

/// <summary>An alarm transition as webhooks (<c>data</c>) and MQTT apps (<c>alarms/{deviceId}/{ruleId}</c>) receive it.</summary>
/// <param name="AlarmId">The alarm's id (<c>GET /api/v1/alarms/{id}</c>).</param>
/// <param name="RuleId">The rule's id.</param>
/// <param name="Rule">The rule's name.</param>
/// <param name="DeviceId">The device.</param>
/// <param name="Metric">The metric the rule reads.</param>
/// <param name="Severity"><c>critical</c>, <c>major</c>, <c>minor</c> or <c>warning</c>.</param>
/// <param name="PreviousSeverity">For <c>alarm.severity_changed</c>, the severity before; else null.</param>
/// <param name="State"><c>active</c> or <c>cleared</c>.</param>
/// <param name="Flapping">True once the alarm is flapping.</param>
/// <param name="Acknowledged">True once an operator acknowledged it.</param>
/// <param name="Value">The sample that caused the transition, or null (no data, a clock deadline).</param>
/// <param name="At">When (ISO 8601 UTC).</param>
/// <param name="Type">The event type (<see cref="HubEventTypes"/>).</param>
public sealed record AlarmNotice(long AlarmId, long RuleId, string Rule, string DeviceId, string Metric, AlarmSeverity Severity,
    AlarmSeverity? PreviousSeverity, string State, bool Flapping, bool Acknowledged, double? Value, DateTimeOffset At, string Type)
{
    internal static AlarmNotice Of(AlarmRow a, AlarmSeverity? previous, string type) => new(a.Id, a.RuleId, a.RuleName, a.DeviceId, a.Metric,
        (AlarmSeverity)a.Severity, previous, a.State, a.Flapping, a.AcknowledgedAt is not null, a.Value is { } v && double.IsFinite(v) ? v : null,
        UnixTime.ToDateTime(a.ClearedAt ?? a.RaisedAt ?? a.UpdatedAt), type);
}
