// An alarm rule as the API takes and shows it (/api/v1/alarm-rules), and its validation. Words on the wire (operators,
// severities, kinds, sources, days) are checked here once; the evaluator works on the compiled form (CompiledRule).
using System.Globalization;
using System.Text.Json.Serialization;
using FluentValidation;
using IoTHub.Contracts;

namespace IoTHub.Alarms.Rules;

/// <summary>An alarm rule: what to watch (scope and metric), when to raise (one or more conditions, each with a
/// severity; the most severe that holds is the alarm's), when to clear, and when the rule may raise at all.</summary>
/// <param name="Name">A label for people, 1 to 200 characters.</param>
/// <param name="Description">Free text, at most 2,000 characters, or null.</param>
/// <param name="Enabled">False: the rule is kept but not evaluated (its open alarms stay as they are). Default true.</param>
/// <param name="Scope">Which devices: exactly one of one device, a tag, or a profile.</param>
/// <param name="Metric">The telemetry metric the conditions read, e.g. <c>vibration</c> (1 to 128 characters).</param>
/// <param name="Source"><c>raw</c> (default): every stored point; <c>avg1m</c>, <c>min1m</c>, <c>max1m</c>: the 1-minute
/// window's aggregate when the window closes (see Aggregation), one sample per minute.</param>
/// <param name="Raise">The raise conditions, 1 to 4; several may escalate one alarm (e.g. <c>major</c> above 7,
/// <c>critical</c> above 10).</param>
/// <param name="Clear">The clear condition (hysteresis: raise above 80, clear below 75), or null: the alarm then clears when
/// no raise condition has held for its own duration (or count).</param>
/// <param name="Schedule">When the rule may raise, or null for always. Outside it nothing new is raised; open alarms still clear.</param>
public sealed record AlarmRuleBody(
    string? Name, string? Description, bool? Enabled, RuleScope? Scope, string? Metric, string? Source,
    IReadOnlyList<RaiseCondition>? Raise, ClearCondition? Clear, WeeklySchedule? Schedule);

/// <summary>A rule's devices: exactly one of the three is set.</summary>
/// <param name="DeviceId">One device.</param>
/// <param name="Tag">Every device carrying this tag (now or later).</param>
/// <param name="Profile">Every device with this profile (now or later).</param>
public sealed record RuleScope(string? DeviceId, string? Tag, string? Profile);

/// <summary>One raise condition.</summary>
/// <param name="Severity"><c>critical</c>, <c>major</c>, <c>minor</c> or <c>warning</c> (ITU-T X.733 perceived severities,
/// as ThingsBoard and most NMS use them).</param>
/// <param name="Kind"><c>threshold</c> (default): the value compared with <paramref name="Value"/> (or a band);
/// <c>rateOfChange</c>: the change per minute between consecutive samples compared with <paramref name="Value"/>;
/// <c>noData</c>: nothing received for <paramref name="ForSeconds"/> seconds.</param>
/// <param name="Operator"><c>&gt;</c>, <c>&gt;=</c>, <c>&lt;</c>, <c>&lt;=</c>, or <c>outside</c> (below <paramref name="Low"/> or
/// above <paramref name="High"/>). Not for <c>noData</c>.</param>
/// <param name="Value">The threshold (units of the metric; for <c>rateOfChange</c>, units per minute).</param>
/// <param name="Low">The band's lower edge, for <c>outside</c>.</param>
/// <param name="High">The band's upper edge, for <c>outside</c>.</param>
/// <param name="ForSeconds">Threshold and rate: the comparison must hold for this long, 1 to 604,800 s ("above 7 mm/s for
/// 10 minutes"); a single spike raises nothing. <c>noData</c>: the silence that raises. Null: the first sample that holds raises.</param>
/// <param name="Count">With <paramref name="Of"/>: raise when at least Count of the last Of samples hold (1 ≤ Count ≤ Of ≤ 64).</param>
/// <param name="Of">The number of recent samples <paramref name="Count"/> counts in.</param>
public sealed record RaiseCondition(string? Severity, string? Kind, string? Operator, double? Value, double? Low, double? High,
    int? ForSeconds, int? Count, int? Of);

/// <summary>The explicit clear condition: the alarm clears when it holds for <paramref name="DelaySeconds"/>.</summary>
/// <param name="Operator"><c>&gt;</c>, <c>&gt;=</c>, <c>&lt;</c>, <c>&lt;=</c>, or <c>inside</c> (between <paramref name="Low"/> and <paramref name="High"/>).</param>
/// <param name="Value">The threshold.</param>
/// <param name="Low">The band's lower edge, for <c>inside</c>.</param>
/// <param name="High">The band's upper edge, for <c>inside</c>.</param>
/// <param name="DelaySeconds">How long it must hold before the alarm clears, 0 (default) to 604,800 s.</param>
public sealed record ClearCondition(string? Operator, double? Value, double? Low, double? High, int? DelaySeconds);


/// <summary>A stored rule as the API answers it: the body's fields with defaults filled in.</summary>
/// <param name="Id">The rule id.</param>
/// <param name="Name">Its label.</param>
/// <param name="Description">Free text, or null.</param>
/// <param name="Enabled">Whether it is evaluated.</param>
/// <param name="Scope">Its devices.</param>
/// <param name="Metric">The metric it reads.</param>
/// <param name="Source"><c>raw</c>, <c>avg1m</c>, <c>min1m</c> or <c>max1m</c>.</param>
/// <param name="Raise">Its raise conditions.</param>
/// <param name="Clear">Its clear condition, or null.</param>
/// <param name="Schedule">Its schedule, or null.</param>
/// <param name="CreatedAt">When it was created (ISO 8601 UTC).</param>
/// <param name="UpdatedAt">When it was last changed (ISO 8601 UTC).</param>
public sealed record AlarmRuleView(long Id, string Name, string? Description, bool Enabled, RuleScope Scope, string Metric, string Source,
    IReadOnlyList<RaiseCondition> Raise, ClearCondition? Clear, WeeklySchedule? Schedule, DateTimeOffset CreatedAt, DateTimeOffset UpdatedAt);

/// <summary>The perceived severity of an alarm (ITU-T X.733 §8.1.2.3, without <c>indeterminate</c>), most severe first;
/// on the wire its lower-case name.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<AlarmSeverity>))]
public enum AlarmSeverity
{
    /// <summary><c>critical</c>: service is lost; immediate action.</summary>
    [JsonStringEnumMemberName("critical")] Critical = 0,
    /// <summary><c>major</c>: service is badly degraded; urgent action.</summary>
    [JsonStringEnumMemberName("major")] Major = 1,
    /// <summary><c>minor</c>: a fault that does not yet degrade service.</summary>
    [JsonStringEnumMemberName("minor")] Minor = 2,
    /// <summary><c>warning</c>: something may become a fault.</summary>
    [JsonStringEnumMemberName("warning")] Warning = 3,
}

/// <summary>The words of the rule language and their parsing.</summary>
public static class RuleWords
{
    /// <summary>The severities, most severe first.</summary>
    public static readonly string[] Severities = ["critical", "major", "minor", "warning"];
    /// <summary>The condition kinds.</summary>
    public static readonly string[] Kinds = ["threshold", "rateOfChange", "noData"];
    /// <summary>The raise operators.</summary>
    public static readonly string[] RaiseOperators = [">", ">=", "<", "<=", "outside"];
    /// <summary>The clear operators.</summary>
    public static readonly string[] ClearOperators = [">", ">=", "<", "<=", "inside"];
    /// <summary>The sources.</summary>
    public static readonly string[] Sources = ["raw", "avg1m", "min1m", "max1m"];

    /// <summary>The severity a word names (<see cref="Severities"/>).</summary>
    public static AlarmSeverity Severity(string word) => (AlarmSeverity)Array.IndexOf(Severities, word);

    /// <summary>The wire word of a severity.</summary>
    public static string Word(this AlarmSeverity s) => Severities[(int)s];
}

/// <summary>Validates a rule body; every field's problem is named (HTTP 400, problem+json).</summary>
internal sealed class AlarmRuleBodyValidator : AbstractValidator<AlarmRuleBody>
{
    public const int MaxSeconds = 604_800;

    public AlarmRuleBodyValidator()
    {
        RuleFor(x => x.Name).NotEmpty().MaximumLength(200);
        RuleFor(x => x.Description).MaximumLength(2000);
        RuleFor(x => x.Metric).NotEmpty().MaximumLength(128);
        RuleFor(x => x.Source).Must(s => s is null || RuleWords.Sources.Contains(s))
            .WithMessage($"source must be one of {string.Join(", ", RuleWords.Sources)}");
        RuleFor(x => x.Scope).NotNull().WithMessage("scope is required: one of deviceId, tag or profile");
        RuleFor(x => x.Scope!).Must(s => new[] { s.DeviceId, s.Tag, s.Profile }.Count(v => !string.IsNullOrEmpty(v)) == 1)
            .WithMessage("scope names exactly one of deviceId, tag or profile").When(x => x.Scope is not null);
        RuleFor(x => x.Scope!.DeviceId).MaximumLength(64).When(x => x.Scope is not null);
        RuleFor(x => x.Scope!.Tag).MaximumLength(64).When(x => x.Scope is not null);
        RuleFor(x => x.Scope!.Profile).MaximumLength(64).When(x => x.Scope is not null);
        RuleFor(x => x.Raise).NotEmpty().WithMessage("raise needs at least one condition");
        RuleFor(x => x.Raise).Must(r => r is null || r.Count <= 4).WithMessage("at most 4 raise conditions");
        RuleFor(x => x.Raise).Must(r => r is null || r.Where(c => c is not null).Select(c => c.Severity).Distinct().Count() == r.Count)
            .WithMessage("each raise condition has its own severity");
        RuleForEach(x => x.Raise).NotNull().SetValidator(new RaiseConditionValidator());
        RuleFor(x => x.Clear!).SetValidator(new ClearConditionValidator()).When(x => x.Clear is not null);
        RuleFor(x => x.Clear).Null().When(x => x.Raise is { Count: > 0 } r && r.All(c => c?.Kind == "noData"))
            .WithMessage("a noData rule clears when data arrives; it takes no clear condition");
        RuleFor(x => x.Schedule!).SetValidator(new WeeklyScheduleValidator()).When(x => x.Schedule is not null);
    }
}

internal sealed class RaiseConditionValidator : AbstractValidator<RaiseCondition>
{
    public RaiseConditionValidator()
    {
        RuleFor(c => c.Severity).NotEmpty().Must(s => RuleWords.Severities.Contains(s))
            .WithMessage($"severity must be one of {string.Join(", ", RuleWords.Severities)}");
        RuleFor(c => c.Kind).Must(k => k is null || RuleWords.Kinds.Contains(k))
            .WithMessage($"kind must be one of {string.Join(", ", RuleWords.Kinds)}");
        When(c => c.Kind == "noData", () =>
        {
            RuleFor(c => c.ForSeconds).NotNull().InclusiveBetween(1, AlarmRuleBodyValidator.MaxSeconds).WithMessage("noData needs forSeconds, 1 to 604800");
            RuleFor(c => c.Operator).Null().WithMessage("noData takes no operator");
            RuleFor(c => c.Count).Null().WithMessage("noData takes no count");
        }).Otherwise(() =>
        {
            RuleFor(c => c.Operator).NotEmpty().Must(o => RuleWords.RaiseOperators.Contains(o))
                .WithMessage($"operator must be one of {string.Join(" ", RuleWords.RaiseOperators)}");
            RuleFor(c => c.Value).NotNull().Must(v => v is { } d && double.IsFinite(d)).When(c => c.Operator != "outside").WithMessage("value is required: a finite number");
            RuleFor(c => c.Low).NotNull().Must(v => v is { } d && double.IsFinite(d)).When(c => c.Operator == "outside").WithMessage("outside needs low and high");
            RuleFor(c => c.High).NotNull().Must(v => v is { } d && double.IsFinite(d)).When(c => c.Operator == "outside").WithMessage("outside needs low and high");
            RuleFor(c => c).Must(c => c.Low < c.High).When(c => c.Operator == "outside" && c.Low is not null && c.High is not null)
                .WithName("high").WithMessage("low must be below high");
            RuleFor(c => c.ForSeconds).InclusiveBetween(1, AlarmRuleBodyValidator.MaxSeconds);
            RuleFor(c => c.ForSeconds).Null().When(c => c.Count is not null).WithMessage("forSeconds and count/of are alternatives");
            RuleFor(c => c.Of).NotNull().InclusiveBetween(1, 64).When(c => c.Count is not null).WithMessage("count needs of, 1 to 64");
            RuleFor(c => c.Count).NotNull().When(c => c.Of is not null).WithMessage("of needs count");
            RuleFor(c => c.Count).InclusiveBetween(1, 64).Must((c, n) => n <= c.Of).When(c => c.Count is not null && c.Of is not null)
                .WithMessage("count must be between 1 and of");
        });
    }
}

internal sealed class ClearConditionValidator : AbstractValidator<ClearCondition>
{
    public ClearConditionValidator()
    {
        RuleFor(c => c.Operator).NotEmpty().Must(o => RuleWords.ClearOperators.Contains(o))
            .WithMessage($"clear operator must be one of {string.Join(" ", RuleWords.ClearOperators)}");
        RuleFor(c => c.Value).NotNull().Must(v => v is { } d && double.IsFinite(d)).When(c => c.Operator != "inside").WithMessage("value is required: a finite number");
        RuleFor(c => c.Low).NotNull().When(c => c.Operator == "inside").WithMessage("inside needs low and high");
        RuleFor(c => c.High).NotNull().When(c => c.Operator == "inside").WithMessage("inside needs low and high");
        RuleFor(c => c).Must(c => c.Low < c.High).When(c => c.Operator == "inside" && c.Low is not null && c.High is not null)
            .WithName("high").WithMessage("low must be below high");
        RuleFor(c => c.DelaySeconds).InclusiveBetween(0, AlarmRuleBodyValidator.MaxSeconds);
    }
}

