// /api/v1/alarm-rules: create, list, read, replace, delete. Operators write, viewers read. A change reaches the
// evaluator before the answer: the next sample is judged by the rule as it now stands.
using System.Text.Json;
using FluentValidation;
using IoTHub.Alarms.Evaluation;
using IoTHub.Contracts;
using IoTHub.Storage;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace IoTHub.Alarms.Rules;

internal static class RuleEndpoints
{
    public static void Map(RouteGroupBuilder api)
    {
        var rules = api.MapGroup("/alarm-rules").WithTags("Alarms");

        rules.MapPost("/", async Task<Results<Created<AlarmRuleView>, ValidationProblem, ConflictProblem>> (AlarmRuleBody body,
                IValidator<AlarmRuleBody> validator, HubDb db, AlarmEvaluator evaluator, IOptions<AlarmsOptions> options, TimeProvider time, CancellationToken ct) =>
            {
                var v = await validator.ValidateAsync(body, ct);
                if (!v.IsValid) return TypedResults.ValidationProblem(v.ToDictionary());
                if (await db.Set<AlarmRuleRow>().CountAsync(ct) >= options.Value.MaxRules)
                    return new ConflictProblem("Too many alarm rules", $"the hub holds at most {options.Value.MaxRules} rules (Alarms:MaxRules)");
                var now = time.NowMs();
                var row = new AlarmRuleRow { CreatedAt = now };
                Fill(row, body, now);
                db.Add(row);
                await db.SaveChangesAsync(ct);
                evaluator.OnRuleChanged(row.Id);
                await Settle(evaluator, ct);
                return TypedResults.Created($"/api/v1/alarm-rules/{row.Id}", View(row));
            })
            .RequireAuthorization("operator").WithName("CreateAlarmRule").WithSummary("Create an alarm rule");

        rules.MapGet("/", async (HubDb db, CancellationToken ct) =>
                TypedResults.Ok(new Page<AlarmRuleView>((await db.Set<AlarmRuleRow>().AsNoTracking().OrderBy(r => r.Id).ToListAsync(ct)).Select(View).ToList(), null)))
            .WithName("ListAlarmRules").WithSummary("Every alarm rule, oldest first, in one page");

        rules.MapGet("/{id:long}", async Task<Results<Ok<AlarmRuleView>, NotFoundProblem>> (long id, HubDb db, CancellationToken ct) =>
                await db.Set<AlarmRuleRow>().AsNoTracking().FirstOrDefaultAsync(r => r.Id == id, ct) is { } row ? TypedResults.Ok(View(row)) : NotFound(id))
            .WithName("GetAlarmRule").WithSummary("One alarm rule");

        rules.MapPut("/{id:long}", async Task<Results<Ok<AlarmRuleView>, ValidationProblem, NotFoundProblem>> (long id, AlarmRuleBody body,
                IValidator<AlarmRuleBody> validator, HubDb db, AlarmEvaluator evaluator, TimeProvider time, CancellationToken ct) =>
            {
                var v = await validator.ValidateAsync(body, ct);
                if (!v.IsValid) return TypedResults.ValidationProblem(v.ToDictionary());
                var row = await db.Set<AlarmRuleRow>().FirstOrDefaultAsync(r => r.Id == id, ct);
                if (row is null) return NotFound(id);
                Fill(row, body, time.NowMs());
                await db.SaveChangesAsync(ct);
                evaluator.OnRuleChanged(id);
                await Settle(evaluator, ct);
                return TypedResults.Ok(View(row));
            })
            .RequireAuthorization("operator").WithName("ReplaceAlarmRule")
            .WithSummary("Replace an alarm rule; devices are judged by the new conditions from their next sample, open alarms stay until these clear them");

        rules.MapDelete("/{id:long}", async Task<Results<NoContent, NotFoundProblem>> (long id, HubDb db, AlarmEvaluator evaluator, CancellationToken ct) =>
            {
                if (await db.Set<AlarmRuleRow>().Where(r => r.Id == id).ExecuteDeleteAsync(ct) == 0) return NotFound(id);
                evaluator.OnRuleRemoved(id);
                await Settle(evaluator, ct);
                return TypedResults.NoContent();
            })
            .RequireAuthorization("operator").WithName("DeleteAlarmRule").WithSummary("Delete an alarm rule; its open alarms clear");
    }

    /// <summary>Waits (a few seconds at most) until the evaluator has taken the change in.</summary>
    private static async Task Settle(AlarmEvaluator evaluator, CancellationToken ct)
    {
        try { await evaluator.DrainAsync(ct).WaitAsync(TimeSpan.FromSeconds(5), ct); }
        catch (TimeoutException) { }
    }

    private static NotFoundProblem NotFound(long id) => new($"Alarm rule {id} not found");

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
