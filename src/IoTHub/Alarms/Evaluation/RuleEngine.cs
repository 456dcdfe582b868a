// The alarm rules' logic, pure: samples and clock ticks in, alarm transitions out. No I/O, no clock of its own, one
// caller at a time (the evaluator's loop), so two messages a few ms apart are two steps of one state machine and can
// never make two alarms. Its state per (rule, device) is plain data the evaluator stores, so a restart resumes it:
// a condition pending for 8 of 10 minutes raises 2 minutes after the restart.
//
// Semantics, per (rule, device):
// - A sample is (timestamp, value). Samples at or before the last one's timestamp are late or resent: skipped (a rule
//   never raises on history). Rate of change is (value − previous value) per minute of timestamp between the two.
// - A raise condition latches when it holds: at once; or when it has held for ForMs (a sample older than ForMs in the
//   run, or the clock passing the deadline, in device time and in hub time, while the last sample still held); or when Count of the last Of samples held.
//   It unlatches when it has not held for the same duration (or for Of samples in a row). noData latches when nothing
//   arrived for ForMs (never before the hub's grace period after start has passed) and unlatches on the next sample.
// - The alarm's severity is that of the most severe latched condition. No alarm is open: a latched condition raises
//   one (a duration condition under way opens it as pending first). An alarm is open: its severity follows the latched
//   conditions up and down; it clears when its clear condition held for the clear delay, or, without one, when no
//   condition is latched. A pending alarm whose condition stopped holding before its deadline is withdrawn.
// - Outside the rule's schedule no condition latches (clearing goes on).
// - Flapping: when a raise or clear would make the (rule, device)'s transitions reach FlapTransitions within
//   FlapWindow, the alarm stays open marked flapping (one notification), and clears only once the clear has held for a
//   whole FlapWindow without a new raise.
using System.Numerics;
using IoTHub.Alarms.Rules;

namespace IoTHub.Alarms.Evaluation;

/// <summary>What happened to an alarm.</summary>
internal enum TransitionKind { Pending, Withdrawn, Raised, SeverityChanged, Cleared, Flapping }

/// <summary>An alarm transition for the evaluator to store (with the state, in one transaction) and announce.</summary>
internal sealed record Transition(TransitionKind Kind, CompiledRule Rule, string DeviceId, RuleDeviceState State,
    AlarmSeverity Severity, AlarmSeverity? Previous, double? Value, long At)
{
    /// <summary>The open alarm's id when the transition happened: 0 for one opened in this batch and not stored yet.</summary>
    public long? AlarmId { get; init; } = State.AlarmId;

    /// <summary>Why, when not the rule's conditions (the rule was deleted, the device left its scope).</summary>
    public string? Reason { get; init; }
}

/// <summary>The evaluator's memory of one condition of one (rule, device).</summary>
internal sealed class ConditionState
{
    /// <summary>Timestamp of the first sample of the current run of samples that held; null when the last did not.</summary>
    public long? TrueSince { get; set; }
    /// <summary>Timestamp of the first sample of the current run of samples that did not hold.</summary>
    public long? FalseSince { get; set; }
    /// <summary>Hub time (Unix ms) when the sample that began the <see cref="TrueSince"/> run was judged. The clock latches a
    /// duration only when it has passed in hub time too: a backlog of old samples (a device flushing its buffer after an
    /// outage) must not raise between two of its batches because the device time of its first sample is long past.</summary>
    public long? TrueSinceAt { get; set; }
    /// <summary>Hub time when the sample that began the <see cref="FalseSince"/> run was judged.</summary>
    public long? FalseSinceAt { get; set; }
    /// <summary>The last <c>Of</c> results, newest in bit 0.</summary>
    public ulong Window { get; set; }
    /// <summary>Samples in <see cref="Window"/> (at most 64).</summary>
    public int Samples { get; set; }
    /// <summary>Consecutive samples at which Count-of-Of did not hold, while latched.</summary>
    public int NotMetRun { get; set; }
    /// <summary>The condition is raised.</summary>
    public bool Latched { get; set; }
}

/// <summary>The evaluator's memory of one (rule, device); stored as JSON in <c>alarm_rule_states</c>.</summary>
internal sealed class RuleDeviceState
{
    public ConditionState[] Conditions { get; set; } = [];
    /// <summary>The last sample's timestamp and value (Unix ms).</summary>
    public long? LastTs { get; set; }
    public double? LastValue { get; set; }
    /// <summary>Hub time (Unix ms) the metric last arrived, or when the device came into the rule's view.</summary>
    public long LastSeenAt { get; set; }
    /// <summary>Timestamp since which the explicit clear condition holds.</summary>
    public long? ClearSince { get; set; }
    /// <summary>Hub time since which the alarm would have cleared but for flapping.</summary>
    public long? WouldClearSince { get; set; }
    /// <summary>The open alarm: its id (0 until stored), whether it is still pending, its severity.</summary>
    public long? AlarmId { get; set; }
    public bool Pending { get; set; }
    public AlarmSeverity? Severity { get; set; }
    public bool Flapping { get; set; }
    /// <summary>Hub times of recent raises and clears (for flapping).</summary>
    public List<long> Flips { get; set; } = [];

    [System.Text.Json.Serialization.JsonIgnore]
    public bool Open => AlarmId is not null;

    /// <summary>The (rule, device) is no longer evaluated: its stored state is deleted.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public bool Removed { get; set; }

    /// <summary>A hash of what a restart must not lose: the conditions' runs, latches and windows, the clear's run, the
    /// alarm, and for noData rules when data last came (to 10 s). The last sample's time and value are left out: they
    /// change with every sample, and losing them costs only the next rate of change. The evaluator writes a state when
    /// this changes, so a steady stream of samples that change nothing writes nothing.</summary>
    public int Signature(CompiledRule rule)
    {
        var h = new HashCode();
        foreach (var c in Conditions)
        {
            h.Add(c.TrueSince);
            h.Add(c.FalseSince);
            h.Add(c.Latched);
            h.Add(c.Window);
            h.Add(c.NotMetRun);
        }
        h.Add(ClearSince);
        h.Add(AlarmId);
        h.Add(Pending);
        h.Add(Severity);
        h.Add(Flapping);
        h.Add(WouldClearSince);
        h.Add(Flips.Count);
        if (rule.HasNoData) h.Add(LastSeenAt / 10_000);
        return h.ToHashCode();
    }

    public static RuleDeviceState For(CompiledRule rule, long now) => new()
    {
        Conditions = rule.Raise.Select(_ => new ConditionState()).ToArray(),
        LastSeenAt = now,
    };
}

/// <summary>Flapping and grace settings the engine reads.</summary>
internal sealed record EngineSettings(int FlapTransitions, long FlapWindowMs, long NoDataGraceMs);

/// <summary>The rules' state machine (see the file's header).</summary>
internal static class RuleEngine
{
    /// <summary>A sample of the rule's metric for the device. Returns the transitions it caused (usually none).</summary>
    public static void OnSample(CompiledRule rule, string deviceId, RuleDeviceState s, long ts, double value, long now,
        EngineSettings settings, List<Transition> output)
    {
        if (s.Conditions.Length != rule.Raise.Length) s.Conditions = rule.Raise.Select(_ => new ConditionState()).ToArray();
        s.LastSeenAt = Math.Max(s.LastSeenAt, now);
        if (s.LastTs is { } last && ts <= last)
        {
            // Late or resent: nothing to compare, but it is data, so a noData condition lets go.
            UnlatchNoData(rule, s);
            Decide(rule, deviceId, s, value, now, now, settings, output);
            return;
        }
        var inSchedule = rule.Schedule?.Contains(ts) ?? true;
        double? rate = s.LastTs is { } prevTs && s.LastValue is { } prev && ts > prevTs ? (value - prev) / ((ts - prevTs) / 60_000.0) : null;
        for (var i = 0; i < rule.Raise.Length; i++)
        {
            var c = rule.Raise[i];
            var cs = s.Conditions[i];
            if (c.Kind == ConditionKind.NoData)
            {
                cs.Latched = false;
                continue;
            }
            var x = c.Kind == ConditionKind.RateOfChange ? rate : value;
            if (x is null) continue; // the first sample has no rate
            var held = c.Compare!.Holds(x.Value);
            if (held)
            {
                if (cs.TrueSince is null) { cs.TrueSince = ts; cs.TrueSinceAt = now; }
                cs.FalseSince = null;
                cs.FalseSinceAt = null;
            }
            else
            {
                if (cs.FalseSince is null) { cs.FalseSince = ts; cs.FalseSinceAt = now; }
                cs.TrueSince = null;
                cs.TrueSinceAt = null;
            }
            cs.Window = (cs.Window << 1) | (held ? 1UL : 0UL);
            cs.Samples = Math.Min(cs.Samples + 1, 64);
            if (!cs.Latched)
            {
                var met = held && (c.ForMs is { } f ? ts - cs.TrueSince!.Value >= f : c.Count is not { } n || CountMet(cs, n, c.Of!.Value));
                if (met && inSchedule) { cs.Latched = true; cs.NotMetRun = 0; }
            }
            else if (c.Count is { } n)
            {
                cs.NotMetRun = CountMet(cs, n, c.Of!.Value) ? 0 : cs.NotMetRun + 1;
                if (cs.NotMetRun >= c.Of!.Value) cs.Latched = false;
            }
            else if (!held && (c.ForMs is not { } f || ts - cs.FalseSince!.Value >= f))
            {
                cs.Latched = false;
            }
        }
        if (rule.Clear is { } clear)
        {
            if (clear.Holds(value)) s.ClearSince ??= ts;
            else s.ClearSince = null;
        }
        s.LastTs = ts;
        s.LastValue = value;
        Decide(rule, deviceId, s, value, ts, now, settings, output);
    }

    /// <summary>The clock moved to <paramref name="now"/>: deadlines of duration conditions, clear delays, noData and
    /// flapping. <paramref name="startedAt"/> is when the hub started (noData's grace).</summary>
    public static void OnTick(CompiledRule rule, string deviceId, RuleDeviceState s, long now, long startedAt, EngineSettings settings, List<Transition> output)
    {
        if (s.Conditions.Length != rule.Raise.Length) s.Conditions = rule.Raise.Select(_ => new ConditionState()).ToArray();
        var changed = false;
        var inSchedule = rule.Schedule?.Contains(now) ?? true;
        for (var i = 0; i < rule.Raise.Length; i++)
        {
            var c = rule.Raise[i];
            var cs = s.Conditions[i];
            if (c.Kind == ConditionKind.NoData)
            {
                var deadline = Math.Max(s.LastSeenAt + c.ForMs!.Value, startedAt + settings.NoDataGraceMs);
                if (!cs.Latched && now >= deadline && inSchedule) { cs.Latched = true; changed = true; }
                continue;
            }
            if (c.ForMs is not { } f) continue;
            if (!cs.Latched && cs.TrueSince is { } since && now >= since + f && now >= (cs.TrueSinceAt ?? since) + f && inSchedule) { cs.Latched = true; changed = true; }
            else if (cs.Latched && cs.FalseSince is { } off && now >= off + f && now >= (cs.FalseSinceAt ?? off) + f) { cs.Latched = false; changed = true; }
        }
        var clearDue = rule.Clear is not null && s.ClearSince is { } cs0 && rule.ClearDelayMs > 0 && now >= cs0 + rule.ClearDelayMs;
        var flapDue = s.Flapping && s.WouldClearSince is { } w && now >= w + settings.FlapWindowMs;
        if (changed || clearDue || flapDue) Decide(rule, deviceId, s, s.LastValue, now, now, settings, output);
    }

    private static bool CountMet(ConditionState cs, int count, int of)
    {
        var mask = of >= 64 ? ulong.MaxValue : (1UL << of) - 1;
        return BitOperations.PopCount(cs.Window & mask) >= count;
    }

    private static void UnlatchNoData(CompiledRule rule, RuleDeviceState s)
    {
        for (var i = 0; i < rule.Raise.Length; i++)
            if (rule.Raise[i].Kind == ConditionKind.NoData) s.Conditions[i].Latched = false;
    }

    private static void Decide(CompiledRule rule, string deviceId, RuleDeviceState s, double? value, long at, long now, EngineSettings settings,
        List<Transition> output)
    {
        AlarmSeverity? target = null;
        var pending = false;
        for (var i = 0; i < rule.Raise.Length; i++)
        {
            var cs = s.Conditions[i];
            if (cs.Latched) { target ??= rule.Raise[i].Severity; continue; } // sorted most severe first
            if (rule.Raise[i].ForMs is not null && rule.Raise[i].Kind != ConditionKind.NoData && cs.TrueSince is not null) pending = true;
        }
        var inSchedule = rule.Schedule?.Contains(at) ?? true;
        if (!s.Open)
        {
            if (target is { } sev)
            {
                Flip(s, now, settings);
                Open(rule, deviceId, s, sev, pending: false, value, at, output);
            }
            else if (pending && inSchedule)
            {
                var first = rule.Raise.Where((c, i) => c.ForMs is not null && s.Conditions[i].TrueSince is not null).First();
                Open(rule, deviceId, s, first.Severity, pending: true, value, at, output);
            }
            return;
        }
        if (s.Pending)
        {
            if (target is { } sev)
            {
                Flip(s, now, settings);
                s.Pending = false;
                s.Severity = sev;
                output.Add(new(TransitionKind.Raised, rule, deviceId, s, sev, null, value, at));
            }
            else if (!pending || !inSchedule)
            {
                output.Add(new(TransitionKind.Withdrawn, rule, deviceId, s, s.Severity!.Value, null, value, at));
                s.AlarmId = null;
                s.Pending = false;
                s.Severity = null;
            }
            return;
        }
        // Active.
        var clears = rule.Clear is null ? target is null : s.ClearSince is { } since && at - since >= rule.ClearDelayMs;
        if (s.Flapping)
        {
            // Flapping: the clear must hold for a whole flapping window, without a raise in between.
            if (!clears) { s.WouldClearSince = null; }
            else
            {
                s.WouldClearSince ??= now;
                if (now - s.WouldClearSince.Value < settings.FlapWindowMs) return;
            }
        }
        if (clears)
        {
            if (!s.Flapping && Flip(s, now, settings))
            {
                s.Flapping = true;
                s.WouldClearSince = now;
                output.Add(new(TransitionKind.Flapping, rule, deviceId, s, s.Severity!.Value, null, value, at));
                return;
            }
            var severity = s.Severity!.Value;
            foreach (var cs in s.Conditions) { cs.Latched = false; cs.NotMetRun = 0; }
            s.ClearSince = null;
            output.Add(new(TransitionKind.Cleared, rule, deviceId, s, severity, null, value, at));
            s.AlarmId = null;
            s.Severity = null;
            s.Flapping = false;
            s.WouldClearSince = null;
            return;
        }
        if (target is { } t && t != s.Severity)
        {
            var previous = s.Severity;
            s.Severity = t;
            output.Add(new(TransitionKind.SeverityChanged, rule, deviceId, s, t, previous, value, at));
        }
    }

    private static void Open(CompiledRule rule, string deviceId, RuleDeviceState s, AlarmSeverity severity, bool pending, double? value, long at,
        List<Transition> output)
    {
        s.AlarmId = 0;
        s.Pending = pending;
        s.Severity = severity;
        s.ClearSince = rule.Clear is { } c && s.LastValue is { } v && c.Holds(v) ? s.LastTs : null;
        output.Add(new(pending ? TransitionKind.Pending : TransitionKind.Raised, rule, deviceId, s, severity, null, value, at));
    }

    /// <summary>Records a raise or clear; true when that makes the recent transitions reach the flapping count.</summary>
    private static bool Flip(RuleDeviceState s, long now, EngineSettings settings)
    {
        s.Flips.RemoveAll(t => t < now - settings.FlapWindowMs);
        s.Flips.Add(now);
        return s.Flips.Count >= settings.FlapTransitions;
    }
}
