// What operators do with an alarm, one path for the REST API and the admin UI: acknowledge (only the first counts; it
// notifies webhooks and MQTT apps, in the same transaction as the change), snooze, assign, comment. Each action is a row
// of the alarm's history. Also the UI's reads: the list, one alarm with its history, and the open-alarm badges.
using System.Globalization;
using System.Text.Json;
using IoTHub.Alarms.Rules;
using IoTHub.Contracts;
using IoTHub.Storage;
using Mediator;
using Microsoft.EntityFrameworkCore;

namespace IoTHub.Alarms.Lifecycle;

/// <summary>An operator's action on an alarm.</summary>
public enum AlarmAction
{
    /// <summary>Acknowledge, with an optional comment.</summary>
    Acknowledge,
    /// <summary>Snooze notifications for <see cref="AlarmActionCommand.SnoozeMinutes"/> (null ends a snooze).</summary>
    Snooze,
    /// <summary>Assign to <see cref="AlarmActionCommand.Text"/> (null or blank unassigns).</summary>
    Assign,
    /// <summary>Add <see cref="AlarmActionCommand.Text"/> to the history.</summary>
    Comment,
}

/// <summary>What became of an action.</summary>
public enum AlarmActionOutcome
{
    /// <summary>Done.</summary>
    Done,
    /// <summary>No such alarm.</summary>
    NotFound,
    /// <summary>Acknowledged already (by <see cref="AlarmActionResult.Error"/>).</summary>
    AcknowledgedAlready,
    /// <summary>The input is invalid (<see cref="AlarmActionResult.Error"/> says why).</summary>
    Invalid,
}

/// <summary>The answer to <see cref="AlarmActionCommand"/>.</summary>
/// <param name="Outcome">What happened.</param>
/// <param name="Alarm">The alarm after the action, when there is one.</param>
/// <param name="Error">Why not, or who acknowledged it first.</param>
public sealed record AlarmActionResult(AlarmActionOutcome Outcome, AlarmView? Alarm, string? Error);

/// <summary>An operator acts on an alarm (the caller has checked the role).</summary>
/// <param name="Id">The alarm.</param>
/// <param name="Action">What to do.</param>
/// <param name="Actor">Who (user name).</param>
/// <param name="Text">The comment (acknowledge, comment) or the assignee (assign).</param>
/// <param name="SnoozeMinutes">For snooze: 1 to 43,200 minutes, or null to end the snooze.</param>
public sealed record AlarmActionCommand(long Id, AlarmAction Action, string Actor, string? Text = null, int? SnoozeMinutes = null) : IRequest<AlarmActionResult>;

/// <summary>Alarms, open first and newest first within each, at most <paramref name="Limit"/>.</summary>
/// <param name="State"><c>open</c>, <c>pending</c>, <c>active</c>, <c>cleared</c>, or null for all.</param>
/// <param name="Severity">A severity, or null for all.</param>
/// <param name="DeviceId">One device, or null.</param>
/// <param name="RuleId">One rule, or null.</param>
/// <param name="Limit">At most this many, 1 to 1,000.</param>
public sealed record ListAlarmsQuery(string? State, AlarmSeverity? Severity, string? DeviceId, long? RuleId, int Limit = 200) : IRequest<IReadOnlyList<AlarmView>>;

/// <summary>One alarm with its history, or null.</summary>
/// <param name="Id">The alarm id.</param>
public sealed record GetAlarmQuery(long Id) : IRequest<AlarmDetail?>;

/// <summary>The active (raised, not cleared) alarms of some devices, or of the whole hub, for badges.</summary>
/// <param name="DeviceIds">These devices only, or null for all.</param>
public sealed record ActiveAlarmsSummaryQuery(IReadOnlyList<string>? DeviceIds) : IRequest<ActiveAlarmsSummary>;

/// <summary>Active alarms in all and by device.</summary>
/// <param name="Active">Active alarms.</param>
/// <param name="Unacknowledged">Of those, not acknowledged yet.</param>
/// <param name="MostSevere">The most severe among them, or null when there is none.</param>
/// <param name="ByDevice">Per device with at least one.</param>
public sealed record ActiveAlarmsSummary(int Active, int Unacknowledged, AlarmSeverity? MostSevere, IReadOnlyDictionary<string, DeviceAlarmBadge> ByDevice);

/// <summary>A device's active alarms as a badge shows them.</summary>
/// <param name="Active">Active alarms.</param>
/// <param name="Unacknowledged">Of those, not acknowledged yet.</param>
/// <param name="MostSevere">The most severe.</param>
public sealed record DeviceAlarmBadge(int Active, int Unacknowledged, AlarmSeverity MostSevere);

internal sealed class AlarmActions(HubDb db, Outbox outbox, IMediator mediator, TimeProvider time) :
    IRequestHandler<AlarmActionCommand, AlarmActionResult>, IRequestHandler<ListAlarmsQuery, IReadOnlyList<AlarmView>>,
    IRequestHandler<GetAlarmQuery, AlarmDetail?>, IRequestHandler<ActiveAlarmsSummaryQuery, ActiveAlarmsSummary>
{
    public async ValueTask<AlarmActionResult> Handle(AlarmActionCommand c, CancellationToken ct)
    {
        if (c.Text is { Length: > 2000 }) return Invalid("at most 2000 characters");
        var now = time.NowMs();
        switch (c.Action)
        {
            case AlarmAction.Acknowledge:
                return await AcknowledgeAsync(c.Id, c.Actor, c.Text, ct);
            case AlarmAction.Snooze:
                if (c.SnoozeMinutes is < 1 or > 43_200) return Invalid("minutes must be between 1 and 43200");
                long? until = c.SnoozeMinutes is { } m ? now + m * 60_000L : null;
                return await RecordAsync(c.Id, now, "snoozed", c.Actor, Snoozed(until), s => s.SetProperty(a => a.SnoozedUntil, until).SetProperty(a => a.UpdatedAt, now), ct);
            case AlarmAction.Assign:
                if (c.Text is { Length: > 200 }) return Invalid("at most 200 characters");
                var assignee = string.IsNullOrWhiteSpace(c.Text) ? null : c.Text.Trim();
                return await RecordAsync(c.Id, now, "assigned", c.Actor, assignee ?? "(nobody)",
                    s => s.SetProperty(a => a.Assignee, assignee).SetProperty(a => a.UpdatedAt, now), ct);
            default:
                if (string.IsNullOrWhiteSpace(c.Text)) return Invalid("a comment needs text");
                return await RecordAsync(c.Id, now, "commented", c.Actor, c.Text, s => s.SetProperty(a => a.UpdatedAt, now), ct);
        }
    }

    private static AlarmActionResult Invalid(string why) => new(AlarmActionOutcome.Invalid, null, why);

    /// <summary>The history's note of a snooze: its end (ISO 8601) or <c>ended</c>.</summary>
    public static string Snoozed(long? until) => until is { } t ? UnixTime.ToDateTime(t).ToString("O", CultureInfo.InvariantCulture) : "ended";

    /// <summary>Acknowledges; only the first acknowledgement counts (the update is conditional, so two at once cannot both win).</summary>
    public async Task<AlarmActionResult> AcknowledgeAsync(long id, string actor, string? comment, CancellationToken ct)
    {
        var now = time.NowMs();
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        var changed = await db.Set<AlarmRow>().Where(a => a.Id == id && a.AcknowledgedAt == null).ExecuteUpdateAsync(s => s
            .SetProperty(a => a.AcknowledgedAt, now).SetProperty(a => a.AcknowledgedBy, actor)
            .SetProperty(a => a.AcknowledgeComment, comment).SetProperty(a => a.UpdatedAt, now), ct);
        var row = await db.Set<AlarmRow>().AsNoTracking().FirstOrDefaultAsync(a => a.Id == id, ct);
        if (row is null) return new(AlarmActionOutcome.NotFound, null, null);
        if (changed == 0) return new(AlarmActionOutcome.AcknowledgedAlready, AlarmView.Of(row), row.AcknowledgedBy);
        db.Add(new AlarmEventRow { AlarmId = id, At = now, Kind = "acknowledged", Actor = actor, Comment = comment });
        var notice = AlarmNotice.Of(row, null, HubEventTypes.AlarmAcknowledged) with { At = UnixTime.ToDateTime(now) };
        Outbox.Add(db, HubEventTypes.AlarmAcknowledged, notice, UnixTime.ToDateTime(now));
        await db.SaveChangesAsync(ct);
        await tx.CommitAsync(ct);
        outbox.Committed();
        await mediator.Send(new PublishToApps(AlarmTopics.Of(row.DeviceId, row.RuleId), JsonSerializer.SerializeToUtf8Bytes(notice, AlarmStore.Json), false), ct);
        return new(AlarmActionOutcome.Done, AlarmView.Of(row), null);
    }

    /// <summary>Changes the alarm and adds the action to its history, in one transaction.</summary>
    public async Task<AlarmActionResult> RecordAsync(long id, long now, string kind, string actor, string? comment,
        Action<Microsoft.EntityFrameworkCore.Query.UpdateSettersBuilder<AlarmRow>> set, CancellationToken ct)
    {
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        if (await db.Set<AlarmRow>().Where(a => a.Id == id).ExecuteUpdateAsync(set, ct) == 0) return new(AlarmActionOutcome.NotFound, null, null);
        db.Add(new AlarmEventRow { AlarmId = id, At = now, Kind = kind, Actor = actor, Comment = comment });
        await db.SaveChangesAsync(ct);
        await tx.CommitAsync(ct);
        return new(AlarmActionOutcome.Done, AlarmView.Of(await db.Set<AlarmRow>().AsNoTracking().FirstAsync(a => a.Id == id, ct)), null);
    }

    /// <summary>The list's filters, shared by the UI's query and <c>GET /alarms</c> (which adds its cursor).</summary>
    public static IQueryable<AlarmRow> Filter(IQueryable<AlarmRow> rows, string? state, AlarmSeverity? severity, string? deviceId, long? ruleId)
    {
        rows = state switch
        {
            "open" => rows.Where(a => a.Closed == 0),
            "pending" or "active" or "cleared" => rows.Where(a => a.State == state),
            _ => rows,
        };
        if (severity is { } s) { var sev = (int)s; rows = rows.Where(a => a.Severity == sev); }
        if (deviceId is not null) rows = rows.Where(a => a.DeviceId == deviceId);
        if (ruleId is not null) rows = rows.Where(a => a.RuleId == ruleId);
        return rows;
    }

    public async ValueTask<IReadOnlyList<AlarmView>> Handle(ListAlarmsQuery q, CancellationToken ct)
    {
        var rows = Filter(db.Set<AlarmRow>().AsNoTracking(), q.State, q.Severity, q.DeviceId, q.RuleId);
        var list = await rows.OrderBy(a => a.Closed).ThenByDescending(a => a.Id).Take(Math.Clamp(q.Limit, 1, 1000)).ToListAsync(ct);
        return list.Select(AlarmView.Of).ToList();
    }

    public async ValueTask<AlarmDetail?> Handle(GetAlarmQuery q, CancellationToken ct)
    {
        var row = await db.Set<AlarmRow>().AsNoTracking().FirstOrDefaultAsync(a => a.Id == q.Id, ct);
        if (row is null) return null;
        var history = await db.Set<AlarmEventRow>().AsNoTracking().Where(e => e.AlarmId == q.Id).OrderBy(e => e.Id).ToListAsync(ct);
        return new AlarmDetail(AlarmView.Of(row), history.Select(e => new AlarmEventView(UnixTime.ToDateTime(e.At), e.Kind,
            e.Severity is { } s ? (AlarmSeverity)s : null, e.Value, e.Actor, e.Comment)).ToList());
    }

    public async ValueTask<ActiveAlarmsSummary> Handle(ActiveAlarmsSummaryQuery q, CancellationToken ct)
    {
        var rows = db.Set<AlarmRow>().AsNoTracking().Where(a => a.Closed == 0 && a.State == "active");
        if (q.DeviceIds is { } ids) rows = rows.Where(a => ids.Contains(a.DeviceId));
        var groups = await rows.GroupBy(a => a.DeviceId).Select(g => new
        {
            g.Key, Active = g.Count(), Unacknowledged = g.Count(a => a.AcknowledgedAt == null), MostSevere = g.Min(a => a.Severity),
        }).ToListAsync(ct);
        var byDevice = groups.ToDictionary(g => g.Key, g => new DeviceAlarmBadge(g.Active, g.Unacknowledged, (AlarmSeverity)g.MostSevere), StringComparer.Ordinal);
        return new ActiveAlarmsSummary(groups.Sum(g => g.Active), groups.Sum(g => g.Unacknowledged),
            groups.Count == 0 ? null : (AlarmSeverity)groups.Min(g => g.MostSevere), byDevice);
    }
}
