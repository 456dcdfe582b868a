// /api/v1/alarm-rules: create, list, read, replace, delete, preview. Operators write, viewers read. Saving and deleting
// go through RuleCatalog (the UI's path too): a change reaches the evaluator before the answer.
using IoTHub.Contracts;
using Mediator;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;

namespace IoTHub.Alarms.Rules;

internal static class RuleEndpoints
{
    public static void Map(RouteGroupBuilder api)
    {
        // Full paths on a group without a prefix: a group's own path would end the collection's route in "/".
        var rules = api.MapGroup("").WithTags("Alarms");

        rules.MapPost("/alarm-rules", async Task<Results<Created<AlarmRuleView>, ValidationProblem, ConflictProblem>> (AlarmRuleBody body,
                IMediator mediator, IOptions<AlarmsOptions> options, CancellationToken ct) =>
            {
                var saved = await mediator.Send(new SaveAlarmRuleCommand(null, body), ct);
                return saved.Outcome switch
                {
                    SaveAlarmRuleOutcome.Saved => TypedResults.Created($"/api/v1/alarm-rules/{saved.Rule!.Id}", saved.Rule),
                    SaveAlarmRuleOutcome.TooMany => new ConflictProblem("Too many alarm rules",
                        $"the hub holds at most {options.Value.MaxRules} rules (Alarms:MaxRules)"),
                    _ => TypedResults.ValidationProblem(saved.Errors),
                };
            })
            .RequireAuthorization("operator").WithName("CreateAlarmRule").WithSummary("Create an alarm rule");

        rules.MapGet("/alarm-rules", async (IMediator mediator, CancellationToken ct) =>
                TypedResults.Ok(new Page<AlarmRuleView>(await mediator.Send(new ListAlarmRulesQuery(), ct), null)))
            .WithName("ListAlarmRules").WithSummary("Every alarm rule, oldest first, in one page");

        rules.MapGet("/alarm-rules/{id:long}", async Task<Results<Ok<AlarmRuleView>, NotFoundProblem>> (long id, IMediator mediator, CancellationToken ct) =>
                await mediator.Send(new GetAlarmRuleQuery(id), ct) is { } rule ? TypedResults.Ok(rule) : NotFound(id))
            .WithName("GetAlarmRule").WithSummary("One alarm rule");

        rules.MapPut("/alarm-rules/{id:long}", async Task<Results<Ok<AlarmRuleView>, ValidationProblem, NotFoundProblem>> (long id, AlarmRuleBody body,
                IMediator mediator, CancellationToken ct) =>
            {
                var saved = await mediator.Send(new SaveAlarmRuleCommand(id, body), ct);
                return saved.Outcome switch
                {
                    SaveAlarmRuleOutcome.Saved => TypedResults.Ok(saved.Rule!),
                    SaveAlarmRuleOutcome.NotFound => NotFound(id),
                    _ => TypedResults.ValidationProblem(saved.Errors),
                };
            })
            .RequireAuthorization("operator").WithName("ReplaceAlarmRule")
            .WithSummary("Replace an alarm rule; devices are judged by the new conditions from their next sample, open alarms stay until these clear them");

        rules.MapDelete("/alarm-rules/{id:long}", async Task<Results<NoContent, NotFoundProblem>> (long id, IMediator mediator, CancellationToken ct) =>
                await mediator.Send(new DeleteAlarmRuleCommand(id), ct) ? TypedResults.NoContent() : NotFound(id))
            .RequireAuthorization("operator").WithName("DeleteAlarmRule").WithSummary("Delete an alarm rule; its open alarms clear");

        MapPreview(rules);
    }

    private static void MapPreview(RouteGroupBuilder rules) =>
        rules.MapGet("/alarm-rules/{id:long}/preview", async Task<Results<Ok<AlarmRulePreview>, ValidationProblem, NotFoundProblem>> (long id, int? hours,
                IMediator mediator, CancellationToken ct) =>
            {
                if (hours is < 1 or > 168)
                    return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["hours"] = ["hours must be between 1 and 168"] });
                if (await mediator.Send(new GetAlarmRuleQuery(id), ct) is not { } r) return NotFound(id);
                var body = new AlarmRuleBody(r.Name, r.Description, r.Enabled, r.Scope, r.Metric, r.Source, r.Raise, r.Clear, r.Schedule);
                return TypedResults.Ok(await mediator.Send(new PreviewAlarmRuleQuery(body, hours ?? 24), ct));
            })
            .WithName("PreviewAlarmRule")
            .WithSummary("How often the rule would have raised in the last hours (default 24, at most 168), replayed over the stored 1-minute rollups: {raises, devices, from, to}");

    private static NotFoundProblem NotFound(long id) => new($"Alarm rule {id} not found");
}
