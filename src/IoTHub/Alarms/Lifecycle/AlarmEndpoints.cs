// /api/v1/alarms: the list (open first), one alarm with its history, and what operators do with an alarm:
// acknowledge (with a comment), snooze (no notifications until a time; clearing still notifies), assign, comment.
// Each action is a row of the alarm's history; acknowledging also notifies (outbox, MQTT), in the same transaction.
using System.Globalization;
using System.Security.Claims;
using System.Text.Json;
using FluentValidation;
using IoTHub.Alarms.Rules;
using IoTHub.Contracts;
using IoTHub.Storage;
using Mediator;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;

namespace IoTHub.Alarms.Lifecycle;

/// <summary>An alarm as the API shows it.</summary>
/// <param name="Id">The alarm id.</param>
/// <param name="RuleId">The rule that raised it.</param>
/// <param name="Rule">The rule's name when the alarm opened.</param>
/// <param name="DeviceId">The device.</param>
/// <param name="Metric">The metric the rule reads.</param>
/// <param name="State"><c>pending</c> (a duration condition is under way), <c>active</c> or <c>cleared</c>.</param>
/// <param name="Severity"><c>critical</c>, <c>major</c>, <c>minor</c> or <c>warning</c>: the latest.</param>
/// <param name="Flapping">True when its condition changes too often (see <c>Alarms:FlappingTransitions</c>).</param>
/// <param name="Value">The latest sample that moved it, or null.</param>
/// <param name="CreatedAt">When it opened (pending or active).</param>
/// <param name="RaisedAt">When it became active, or null while pending.</param>
/// <param name="ClearedAt">When it cleared, or null.</param>
/// <param name="AcknowledgedAt">When an operator acknowledged it, or null.</param>
/// <param name="AcknowledgedBy">Who (user name or API key name).</param>
/// <param name="AcknowledgeComment">Their comment.</param>
/// <param name="SnoozedUntil">No notifications before this time (ISO 8601 UTC), or null.</param>
/// <param name="Assignee">Who is on it, or null.</param>
/// <param name="UpdatedAt">Its last change.</param>
public sealed record AlarmView(long Id, long RuleId, string Rule, string DeviceId, string Metric, string State, AlarmSeverity Severity, bool Flapping,
    double? Value, DateTimeOffset CreatedAt, DateTimeOffset? RaisedAt, DateTimeOffset? ClearedAt, DateTimeOffset? AcknowledgedAt,
    string? AcknowledgedBy, string? AcknowledgeComment, DateTimeOffset? SnoozedUntil, string? Assignee, DateTimeOffset UpdatedAt)
{
    internal static AlarmView Of(AlarmRow a) => new(a.Id, a.RuleId, a.RuleName, a.DeviceId, a.Metric, a.State, (AlarmSeverity)a.Severity, a.Flapping,
        a.Value is { } v && double.IsFinite(v) ? v : null, UnixTime.ToDateTime(a.CreatedAt), UnixTime.ToDateTime(a.RaisedAt), UnixTime.ToDateTime(a.ClearedAt),
        UnixTime.ToDateTime(a.AcknowledgedAt), a.AcknowledgedBy, a.AcknowledgeComment, UnixTime.ToDateTime(a.SnoozedUntil), a.Assignee, UnixTime.ToDateTime(a.UpdatedAt));
}

/// <summary>One alarm with its history, oldest first.</summary>
/// <param name="Alarm">The alarm.</param>
/// <param name="History">Every transition and action.</param>
public sealed record AlarmDetail(AlarmView Alarm, IReadOnlyList<AlarmEventView> History);

/// <summary>One entry of an alarm's history.</summary>
/// <param name="At">When (ISO 8601 UTC).</param>
/// <param name="Kind"><c>pending</c>, <c>raised</c>, <c>severity_changed</c>, <c>cleared</c>, <c>flapping</c>, <c>acknowledged</c>,
/// <c>snoozed</c>, <c>assigned</c> or <c>commented</c>.</param>
/// <param name="Severity">The severity it set, for transitions.</param>
/// <param name="Value">The sample, for transitions.</param>
/// <param name="Actor">Who, for actions.</param>
/// <param name="Comment">The comment, the assignee, or why the hub cleared it.</param>
public sealed record AlarmEventView(DateTimeOffset At, string Kind, AlarmSeverity? Severity, double? Value, string? Actor, string? Comment);

/// <summary>Body of <c>POST /alarms/{id}/acknowledge</c> and <c>/comments</c>.</summary>
/// <param name="Comment">Free text, at most 2,000 characters (required for a comment).</param>
public sealed record AlarmCommentBody(string? Comment);

/// <summary>Body of <c>POST /alarms/{id}/snooze</c>: one of the two, or neither to end a snooze.</summary>
/// <param name="Until">No notifications before this time (ISO 8601), at most 30 days ahead.</param>
/// <param name="Minutes">Or for this many minutes, 1 to 43,200.</param>
public sealed record AlarmSnoozeBody(DateTimeOffset? Until, int? Minutes);

/// <summary>Body of <c>POST /alarms/{id}/assign</c>.</summary>
/// <param name="Assignee">Who is on it (at most 200 characters), or null to unassign.</param>
public sealed record AlarmAssignBody(string? Assignee);

internal sealed class AlarmCommentBodyValidator : AbstractValidator<AlarmCommentBody>
{
    public AlarmCommentBodyValidator() => RuleFor(b => b.Comment).MaximumLength(2000);
}

internal static class AlarmEndpoints
{
    private static readonly string[] States = ["open", "pending", "active", "cleared", "all"];

    public static void Map(RouteGroupBuilder api)
    {
        // Full paths on a group without a prefix: a group's own path would end the collection's route in "/".
        var alarms = api.MapGroup("").WithTags("Alarms");

        alarms.MapGet("/alarms", async Task<Results<Ok<Page<AlarmView>>, ValidationProblem>> (string? state, string? severity, string? deviceId, long? ruleId,
                string? cursor, int? limit, HubDb db, CancellationToken ct) =>
            {
                if (PageLimit.Check(limit, 100, 1000, out var n) is { } bad) return bad;
                var errors = new Dictionary<string, string[]>();
                if (state is not null && !States.Contains(state)) errors["state"] = [$"state must be one of {string.Join(", ", States)}"];
                if (severity is not null && !RuleWords.Severities.Contains(severity)) errors["severity"] = [$"severity must be one of {string.Join(", ", RuleWords.Severities)}"];
                (int Closed, long Id)? after = null;
                if (cursor is not null)
                {
                    var parts = cursor.Split('.');
                    if (parts.Length == 2 && int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var c)
                        && long.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var i)) after = (c, i);
                    else errors["cursor"] = ["cursor is the next of a previous page"];
                }
                if (errors.Count > 0) return TypedResults.ValidationProblem(errors);
                var q = AlarmActions.Filter(db.Set<AlarmRow>().AsNoTracking(), state, severity is null ? null : RuleWords.Severity(severity), deviceId, ruleId);
                if (after is { } a0) q = q.Where(a => a.Closed > a0.Closed || (a.Closed == a0.Closed && a.Id < a0.Id));
                var rows = await q.OrderBy(a => a.Closed).ThenByDescending(a => a.Id).Take(n + 1).ToListAsync(ct);
                var next = rows.Count > n ? $"{rows[n - 1].Closed}.{rows[n - 1].Id}" : null;
                return TypedResults.Ok(new Page<AlarmView>(rows.Take(n).Select(AlarmView.Of).ToList(), next));
            })
            .WithName("ListAlarms").WithSummary("Alarms, open ones first, newest first within each; filter by state (open, pending, active, cleared), severity, device, rule");

        alarms.MapGet("/alarms/{id:long}", async Task<Results<Ok<AlarmDetail>, NotFoundProblem>> (long id, IMediator mediator, CancellationToken ct) =>
                await mediator.Send(new GetAlarmQuery(id), ct) is { } detail ? TypedResults.Ok(detail) : NotFound(id))
            .WithName("GetAlarm").WithSummary("One alarm with its history");

        alarms.MapGet("/alarms/counts", async (string? deviceId, HubDb db, CancellationToken ct) =>
            {
                var q = db.Set<AlarmRow>().AsNoTracking().Where(a => a.Closed == 0 && a.State == "active");
                if (deviceId is not null) q = q.Where(a => a.DeviceId == deviceId);
                var bySeverity = await q.GroupBy(a => a.Severity).Select(g => new { g.Key, Count = g.Count() }).ToListAsync(ct);
                return TypedResults.Ok(RuleWords.Severities.ToDictionary(s => s, s => bySeverity.FirstOrDefault(x => x.Key == (int)RuleWords.Severity(s))?.Count ?? 0));
            })
            .WithName("CountAlarms").WithSummary("Active alarms by severity: {\"critical\": n, \"major\": n, \"minor\": n, \"warning\": n}, of one device or all");

        alarms.MapPost("/alarms/{id:long}/acknowledge", async Task<Results<Ok<AlarmView>, ValidationProblem, NotFoundProblem, ConflictProblem>> (long id,
                AlarmCommentBody? body, IValidator<AlarmCommentBody> validator, ClaimsPrincipal user, AlarmActions actions, CancellationToken ct) =>
            {
                body ??= new AlarmCommentBody(null);
                var v = await validator.ValidateAsync(body, ct);
                if (!v.IsValid) return TypedResults.ValidationProblem(v.ToDictionary());
                var done = await actions.AcknowledgeAsync(id, Actor(user), body.Comment, ct);
                return done.Outcome switch
                {
                    AlarmActionOutcome.Done => TypedResults.Ok(done.Alarm!),
                    AlarmActionOutcome.AcknowledgedAlready => new ConflictProblem($"Alarm {id} is acknowledged already", $"by {done.Error}"),
                    _ => NotFound(id),
                };
            })
            .RequireAuthorization("operator").WithName("AcknowledgeAlarm").WithSummary("Acknowledge an alarm, with an optional comment; 409 when acknowledged already");

        alarms.MapPost("/alarms/{id:long}/snooze", async Task<Results<Ok<AlarmView>, ValidationProblem, NotFoundProblem>> (long id, AlarmSnoozeBody body,
                ClaimsPrincipal user, AlarmActions actions, TimeProvider time, CancellationToken ct) =>
            {
                var now = time.NowMs();
                long? until = body.Until?.ToUnixTimeMilliseconds() ?? (body.Minutes is { } m ? now + m * 60_000L : null);
                if (body.Until is not null && body.Minutes is not null)
                    return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["minutes"] = ["give until or minutes, not both"] });
                if (body.Minutes is < 1 or > 43_200)
                    return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["minutes"] = ["minutes must be between 1 and 43200"] });
                if (until is { } u && (u <= now || u > now + 30L * 86_400_000))
                    return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["until"] = ["until must be in the future, at most 30 days ahead"] });
                return Answer(id, await actions.RecordAsync(id, now, "snoozed", Actor(user), AlarmActions.Snoozed(until),
                    s => s.SetProperty(a => a.SnoozedUntil, until).SetProperty(a => a.UpdatedAt, now), ct));
            })
            .RequireAuthorization("operator").WithName("SnoozeAlarm").WithSummary("Snooze an alarm's notifications until a time (or for minutes); an empty body ends the snooze");

        alarms.MapPost("/alarms/{id:long}/assign", async Task<Results<Ok<AlarmView>, ValidationProblem, NotFoundProblem>> (long id, AlarmAssignBody body,
                ClaimsPrincipal user, IMediator mediator, CancellationToken ct) =>
            {
                if (body.Assignee is { Length: > 200 })
                    return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["assignee"] = ["at most 200 characters"] });
                return Answer(id, await mediator.Send(new AlarmActionCommand(id, AlarmAction.Assign, Actor(user), body.Assignee), ct));
            })
            .RequireAuthorization("operator").WithName("AssignAlarm").WithSummary("Assign an alarm to someone (null: unassign)");

        alarms.MapPost("/alarms/{id:long}/comments", async Task<Results<Ok<AlarmView>, ValidationProblem, NotFoundProblem>> (long id, AlarmCommentBody body,
                IValidator<AlarmCommentBody> validator, ClaimsPrincipal user, IMediator mediator, CancellationToken ct) =>
            {
                var v = await validator.ValidateAsync(body, ct);
                if (!v.IsValid) return TypedResults.ValidationProblem(v.ToDictionary());
                if (string.IsNullOrWhiteSpace(body.Comment))
                    return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["comment"] = ["a comment needs text"] });
                return Answer(id, await mediator.Send(new AlarmActionCommand(id, AlarmAction.Comment, Actor(user), body.Comment), ct));
            })
            .RequireAuthorization("operator").WithName("CommentAlarm").WithSummary("Add a comment to an alarm's history");
    }

    private static string Actor(ClaimsPrincipal user) => user.Identity?.Name ?? "?";

    private static Results<Ok<AlarmView>, ValidationProblem, NotFoundProblem> Answer(long id, AlarmActionResult done) => done.Outcome switch
    {
        AlarmActionOutcome.Done => TypedResults.Ok(done.Alarm!),
        AlarmActionOutcome.Invalid => TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["body"] = [done.Error ?? "invalid"] }),
        _ => NotFound(id),
    };

    private static NotFoundProblem NotFound(long id) => new($"Alarm {id} not found");
}
