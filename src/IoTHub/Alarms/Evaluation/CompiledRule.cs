// The evaluator's form of a rule: words parsed once into enums and milliseconds, and the schedule's zone resolved.
using IoTHub.Contracts;
using IoTHub.Alarms.Rules;

namespace IoTHub.Alarms.Evaluation;

internal enum ConditionKind { Threshold, RateOfChange, NoData }

internal enum CompareOp { Gt, Ge, Lt, Le, Outside, Inside }

internal enum RuleSource { Raw, Avg1m, Min1m, Max1m }

internal enum ScopeKind { Device, Tag, Profile }

/// <summary>A comparison of a sample with a threshold or a band.</summary>
internal sealed record Comparison(CompareOp Op, double Value, double Low, double High)
{
    public bool Holds(double x) => Op switch
    {
        CompareOp.Gt => x > Value,
        CompareOp.Ge => x >= Value,
        CompareOp.Lt => x < Value,
        CompareOp.Le => x <= Value,
        CompareOp.Outside => x < Low || x > High,
        _ => x >= Low && x <= High,
    };

    public static Comparison? Of(string? op, double? value, double? low, double? high) => op switch
    {
        ">" => new(CompareOp.Gt, value ?? 0, 0, 0),
        ">=" => new(CompareOp.Ge, value ?? 0, 0, 0),
        "<" => new(CompareOp.Lt, value ?? 0, 0, 0),
        "<=" => new(CompareOp.Le, value ?? 0, 0, 0),
        "outside" => new(CompareOp.Outside, 0, low ?? 0, high ?? 0),
        "inside" => new(CompareOp.Inside, 0, low ?? 0, high ?? 0),
        _ => null,
    };
}

/// <summary>One raise condition: <see cref="ForMs"/> (a duration) or <see cref="Count"/> of <see cref="Of"/> (recent
/// samples), or neither (the first sample that holds).</summary>
internal sealed record CompiledCondition(AlarmSeverity Severity, ConditionKind Kind, Comparison? Compare, long? ForMs, int? Count, int? Of);

/// <summary>A rule as the evaluator runs it.</summary>
internal sealed record CompiledRule(long Id, string Name, ScopeKind ScopeKind, string ScopeValue, string Metric, RuleSource Source,
    CompiledCondition[] Raise, Comparison? Clear, long ClearDelayMs, CompiledWeeklySchedule? Schedule)
{
    public bool HasNoData => Raise.Any(c => c.Kind == ConditionKind.NoData);

    public bool InScope(string deviceId, string? profile, IReadOnlyList<string> tags) => ScopeKind switch
    {
        ScopeKind.Device => deviceId == ScopeValue,
        ScopeKind.Profile => profile == ScopeValue,
        _ => tags.Contains(ScopeValue),
    };

    public static CompiledRule Of(long id, AlarmRuleBody b)
    {
        var scope = b.Scope!;
        var (kind, value) = !string.IsNullOrEmpty(scope.DeviceId) ? (ScopeKind.Device, scope.DeviceId)
            : !string.IsNullOrEmpty(scope.Tag) ? (ScopeKind.Tag, scope.Tag) : (ScopeKind.Profile, scope.Profile!);
        var source = b.Source switch { "avg1m" => RuleSource.Avg1m, "min1m" => RuleSource.Min1m, "max1m" => RuleSource.Max1m, _ => RuleSource.Raw };
        var raise = b.Raise!.Select(c => new CompiledCondition(RuleWords.Severity(c.Severity!),
                c.Kind switch { "noData" => ConditionKind.NoData, "rateOfChange" => ConditionKind.RateOfChange, _ => ConditionKind.Threshold },
                Comparison.Of(c.Operator, c.Value, c.Low, c.High), c.ForSeconds * 1000L, c.Count, c.Of))
            .OrderBy(c => c.Severity).ToArray();
        var clear = b.Clear is { } cl ? Comparison.Of(cl.Operator, cl.Value, cl.Low, cl.High) : null;
        return new(id, b.Name!, kind, value, b.Metric!, source, raise, clear, (b.Clear?.DelaySeconds ?? 0) * 1000L, CompiledWeeklySchedule.Of(b.Schedule));
    }
}
