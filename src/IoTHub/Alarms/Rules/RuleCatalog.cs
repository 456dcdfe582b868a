// Saving and deleting rules, one path for the REST API and the admin UI: validate with the same validator, store, then
// tell the evaluator and wait (a few seconds at most) until it has taken the change in, so the next sample is judged
// by the rule as it now stands. The UI reaches it through the public requests below.
using System.Text.Json;
using FluentValidation;
using IoTHub.Alarms.Evaluation;
using IoTHub.Contracts;
using IoTHub.Storage;
using Mediator;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace IoTHub.Alarms.Rules;

/// <summary>What became of a save.</summary>
public enum SaveAlarmRuleOutcome
{
    /// <summary>Created or replaced.</summary>
    Saved,
    /// <summary>The body is invalid; see the errors by field.</summary>
    Invalid,
    /// <summary>No rule with that id.</summary>
    NotFound,
    /// <summary>The hub holds <c>Alarms:MaxRules</c> rules already.</summary>
    TooMany,
}

/// <summary>The answer to <see cref="SaveAlarmRuleCommand"/>.</summary>
/// <param name="Outcome">What happened.</param>
/// <param name="Rule">The stored rule, when saved.</param>
/// <param name="Errors">The validator's messages by property path (e.g. <c>Raise[0].Value</c>), when invalid.</param>
public sealed record SaveAlarmRuleResult(SaveAlarmRuleOutcome Outcome, AlarmRuleView? Rule, IReadOnlyDictionary<string, string[]> Errors);

/// <summary>Creates (<paramref name="Id"/> null) or replaces a rule.</summary>
/// <param name="Id">The rule to replace, or null to create one.</param>
/// <param name="Body">The rule.</param>
public sealed record SaveAlarmRuleCommand(long? Id, AlarmRuleBody Body) : IRequest<SaveAlarmRuleResult>;

/// <summary>Deletes a rule (its open alarms clear); false when there was none.</summary>
/// <param name="Id">The rule id.</param>
public sealed record DeleteAlarmRuleCommand(long Id) : IRequest<bool>;

/// <summary>Every rule, oldest first.</summary>
public sealed record ListAlarmRulesQuery : IRequest<IReadOnlyList<AlarmRuleView>>;

/// <summary>One rule, or null.</summary>
/// <param name="Id">The rule id.</param>
public sealed record GetAlarmRuleQuery(long Id) : IRequest<AlarmRuleView?>;

internal sealed class RuleCatalog(HubDb db, IValidator<AlarmRuleBody> validator, AlarmEvaluator evaluator, IOptions<AlarmsOptions> options,
    TimeProvider time) :
    IRequestHandler<SaveAlarmRuleCommand, SaveAlarmRuleResult>, IRequestHandler<DeleteAlarmRuleCommand, bool>,
    IRequestHandler<ListAlarmRulesQuery, IReadOnlyList<AlarmRuleView>>, IRequestHandler<GetAlarmRuleQuery, AlarmRuleView?>
{
    private static readonly IReadOnlyDictionary<string, string[]> NoErrors = new Dictionary<string, string[]>();

    public async ValueTask<SaveAlarmRuleResult> Handle(SaveAlarmRuleCommand c, CancellationToken ct)
    {
        var v = await validator.ValidateAsync(c.Body, ct);
        if (!v.IsValid) return new(SaveAlarmRuleOutcome.Invalid, null, v.ToDictionary().AsReadOnly());
        var now = time.NowMs();
        AlarmRuleRow? row;
        if (c.Id is { } id)
        {
            row = await db.Set<AlarmRuleRow>().FirstOrDefaultAsync(r => r.Id == id, ct);
            if (row is null) return new(SaveAlarmRuleOutcome.NotFound, null, NoErrors);
        }
        else
        {
            if (await db.Set<AlarmRuleRow>().CountAsync(ct) >= options.Value.MaxRules) return new(SaveAlarmRuleOutcome.TooMany, null, NoErrors);
            row = new AlarmRuleRow { CreatedAt = now };
            db.Add(row);
        }
        Fill(row, c.Body, now);
        await db.SaveChangesAsync(ct);
        evaluator.OnRuleChanged(row.Id);
        await SettleAsync(ct);
        return new(SaveAlarmRuleOutcome.Saved, View(row), NoErrors);
    }

    public async ValueTask<bool> Handle(DeleteAlarmRuleCommand c, CancellationToken ct)
    {
        if (await db.Set<AlarmRuleRow>().Where(r => r.Id == c.Id).ExecuteDeleteAsync(ct) == 0) return false;
        evaluator.OnRuleRemoved(c.Id);
        await SettleAsync(ct);
        return true;
    }

    public async ValueTask<IReadOnlyList<AlarmRuleView>> Handle(ListAlarmRulesQuery q, CancellationToken ct) =>
        (await db.Set<AlarmRuleRow>().AsNoTracking().OrderBy(r => r.Id).ToListAsync(ct)).Select(View).ToList();

    public async ValueTask<AlarmRuleView?> Handle(GetAlarmRuleQuery q, CancellationToken ct) =>
        await db.Set<AlarmRuleRow>().AsNoTracking().FirstOrDefaultAsync(r => r.Id == q.Id, ct) is { } row ? View(row) : null;

    /// <summary>Waits (a few seconds at most) until the evaluator has taken the change in.</summary>
    private async Task SettleAsync(CancellationToken ct)
    {
        try { await evaluator.DrainAsync(ct).WaitAsync(TimeSpan.FromSeconds(5), ct); }
        catch (TimeoutException) { }
    }

    private static void Fill(AlarmRuleRow row, AlarmRuleBody body, long now)
    {
        var normal = body with { Enabled = body.Enabled ?? true, Source = body.Source ?? "raw",
            Raise = body.Raise!.Select(c => c with { Kind = c.Kind ?? "threshold" }).ToList() };
        row.Name = body.Name!;
        row.Enabled = normal.Enabled!.Value;
        row.Metric = body.Metric!;
        row.Body = JsonSerializer.Serialize(normal, AlarmStore.Json);
        row.UpdatedAt = now;
    }

    internal static AlarmRuleView View(AlarmRuleRow row)
    {
        var b = JsonSerializer.Deserialize<AlarmRuleBody>(row.Body, AlarmStore.Json)!;
        return new(row.Id, row.Name, b.Description, row.Enabled, b.Scope!, row.Metric, b.Source ?? "raw", b.Raise ?? [], b.Clear, b.Schedule,
            UnixTime.ToDateTime(row.CreatedAt), UnixTime.ToDateTime(row.UpdatedAt));
    }
}
