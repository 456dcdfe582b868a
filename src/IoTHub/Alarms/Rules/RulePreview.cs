// "This rule would have raised 3 times in the last 24 h": the real engine (RuleEngine) run over the stored 1-minute
// rollups of the devices in the rule's scope, each on a fresh state. A window is one sample at its end: its average
// (for raw and avg1m rules; raw points are not replayed, so a preview of a raw rule is an estimate), its min or max.
// Clock deadlines (durations, clear delays, no data) are ticked at each sample and at the end; the start-up grace of
// noData does not apply.
using IoTHub.Alarms.Evaluation;
using IoTHub.Contracts;
using Mediator;
using Microsoft.Extensions.Options;

namespace IoTHub.Alarms.Rules;

/// <summary>How often a rule would have raised over the last <paramref name="Hours"/> hours of stored 1-minute rollups.</summary>
/// <param name="Body">The rule (valid: check it with the rule validator first).</param>
/// <param name="Hours">How far back, 1 to 168.</param>
public sealed record PreviewAlarmRuleQuery(AlarmRuleBody Body, int Hours = 24) : IRequest<AlarmRulePreview>;

/// <summary>A rule's preview.</summary>
/// <param name="Raises">Alarms it would have raised (pending ones withdrawn in time do not count).</param>
/// <param name="Devices">Devices in its scope with rollups of its metric in the range.</param>
/// <param name="From">Start of the range.</param>
/// <param name="To">End of the range (now).</param>
public sealed record AlarmRulePreview(int Raises, int Devices, DateTimeOffset From, DateTimeOffset To);

internal sealed class RulePreviewer(IMediator mediator, IOptions<AlarmsOptions> options, TimeProvider time) : IRequestHandler<PreviewAlarmRuleQuery, AlarmRulePreview>
{
    private const long Minute = 60_000;

    public async ValueTask<AlarmRulePreview> Handle(PreviewAlarmRuleQuery q, CancellationToken ct)
    {
        var now = time.NowMs();
        var from = now - Math.Clamp(q.Hours, 1, 168) * 3_600_000L;
        var rule = CompiledRule.Of(0, q.Body with { Name = q.Body.Name ?? "preview" });
        var settings = new EngineSettings(options.Value.FlappingTransitions, (long)options.Value.FlappingWindow.TotalMilliseconds, 0);
        var inScope = (await mediator.Send(new ListDeviceScopes(), ct)).Where(d => rule.InScope(d.DeviceId, d.ProfileId, d.Tags))
            .Select(d => d.DeviceId).ToHashSet(StringComparer.Ordinal);
        var keys = (await mediator.Send(new ListRecentRollups([WindowResolution.BucketOf(from, 0), long.MaxValue, long.MaxValue]), ct))
            .Where(r => r.Key.Resolution == 0 && r.Metric == rule.Metric && inScope.Contains(r.DeviceId)).ToList();
        var deviceOf = keys.GroupBy(k => k.Key.SeriesId).ToDictionary(g => g.Key, g => g.First().DeviceId);
        var rows = keys.Count == 0 ? [] : await mediator.Send(new ReadRollups(keys.Select(k => k.Key).ToList()), ct);
        var raises = 0;
        var output = new List<Transition>();
        foreach (var series in rows.Where(r => r.Count > 0).GroupBy(r => r.Key.SeriesId))
        {
            var device = deviceOf[series.Key];
            var windows = series.OrderBy(r => r.Key.Bucket).ToList();
            var state = RuleDeviceState.For(rule, windows[0].Key.Bucket);
            foreach (var w in windows)
            {
                var at = w.Key.Bucket + Minute;
                var value = rule.Source switch
                {
                    RuleSource.Min1m => w.Min,
                    RuleSource.Max1m => w.Max,
                    _ => Math.Clamp(w.Sum / w.Count, w.Min, w.Max),
                };
                RuleEngine.OnTick(rule, device, state, at - 1, from, settings, output);
                RuleEngine.OnSample(rule, device, state, at, value, at, settings, output);
                Resolve(state, output, ref raises);
            }
            RuleEngine.OnTick(rule, device, state, now, from, settings, output);
            Resolve(state, output, ref raises);
        }
        return new AlarmRulePreview(raises, deviceOf.Count, UnixTime.ToDateTime(from), UnixTime.ToDateTime(now));
    }

    /// <summary>Counts the raises and gives an opened alarm an id, as the store would.</summary>
    private static void Resolve(RuleDeviceState state, List<Transition> output, ref int raises)
    {
        raises += output.Count(t => t.Kind == TransitionKind.Raised);
        if (state.AlarmId == 0) state.AlarmId = 1;
        output.Clear();
    }
}
