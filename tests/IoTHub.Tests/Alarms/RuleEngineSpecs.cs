// The alarm rules' state machine on its own: samples and clock ticks in, transitions out; no host, no clock.
using IoTHub.Contracts;
using IoTHub.Alarms.Evaluation;
using IoTHub.Alarms.Rules;

namespace IoTHub.Tests.Alarms;

public sealed class RuleEngineSpecs
{
    private const long Second = 1000, Minute = 60 * Second;
    private static readonly long T0 = DateTimeOffset.Parse("2026-11-30T12:00:00Z", System.Globalization.CultureInfo.InvariantCulture).ToUnixTimeMilliseconds();
    private static readonly EngineSettings Settings = new(FlapTransitions: 4, FlapWindowMs: 10 * Minute, NoDataGraceMs: 5 * Minute);

    private readonly List<Transition> _out = [];
    private RuleDeviceState _state = null!;
    private CompiledRule _rule = null!;

    private void Rule(RaiseCondition[] raise, ClearCondition? clear = null, WeeklySchedule? schedule = null)
    {
        _rule = CompiledRule.Of(1, new AlarmRuleBody("r", null, true, new RuleScope("d", null, null), "v", "raw", raise, clear, schedule));
        _state = RuleDeviceState.For(_rule, T0);
    }

    private static RaiseCondition Above(double value, string severity = "major", int? forSeconds = null, int? count = null, int? of = null) =>
        new(severity, "threshold", ">", value, null, null, forSeconds, count, of);

    private List<TransitionKind> Sample(long ts, double value, long? now = null)
    {
        _out.Clear();
        RuleEngine.OnSample(_rule, "d", _state, ts, value, now ?? ts, Settings, _out);
        foreach (var t in _out) if (t.Kind is TransitionKind.Pending or TransitionKind.Raised && _state.AlarmId == 0) _state.AlarmId = 7;
        return _out.Select(t => t.Kind).ToList();
    }

    private List<TransitionKind> Tick(long now, long startedAt = 0)
    {
        _out.Clear();
        RuleEngine.OnTick(_rule, "d", _state, now, startedAt == 0 ? T0 - Hour : startedAt, Settings, _out);
        foreach (var t in _out) if (t.Kind is TransitionKind.Pending or TransitionKind.Raised && _state.AlarmId == 0) _state.AlarmId = 7;
        return _out.Select(t => t.Kind).ToList();
    }

    private const long Hour = 60 * Minute;

    [Test]
    public void A_single_spike_raises_nothing_under_a_ten_minute_duration_rule()
    {
        Rule([Above(7, forSeconds: 600)]);
        Assert.That(Sample(T0, 5), Is.Empty);
        Assert.That(Sample(T0 + 10 * Second, 12), Is.EqualTo(new[] { TransitionKind.Pending }));
        Assert.That(Sample(T0 + 20 * Second, 5), Is.EqualTo(new[] { TransitionKind.Withdrawn }), "the spike's pending alarm is withdrawn");
        Assert.That(Tick(T0 + 20 * Minute), Is.Empty, "nothing raises later either");
        Assert.That(_state.Open, Is.False);
    }

    [Test]
    public void A_spike_in_a_backlog_of_old_samples_does_not_raise_on_a_tick_between_two_of_its_batches()
    {
        // A device flushes 30 minutes of buffered readings after an outage; the hub judges them now, in two batches with a
        // clock tick between. The spike's device time is 30 minutes old, but the duration has not passed in hub time.
        Rule([Above(7, forSeconds: 600)]);
        var now = T0 + 30 * Minute;
        Assert.That(Sample(T0, 5, now), Is.Empty);
        Assert.That(Sample(T0 + 10 * Second, 12, now), Is.EqualTo(new[] { TransitionKind.Pending }));
        Assert.That(Tick(now + 500), Is.Empty, "the tick between the batches raises nothing");
        Assert.That(Sample(T0 + 20 * Second, 5, now + 600), Is.EqualTo(new[] { TransitionKind.Withdrawn }));
        Assert.That(_state.Open, Is.False);
    }

    [Test]
    public void A_backlog_whose_last_sample_holds_raises_once_the_duration_has_passed_in_hub_time()
    {
        Rule([Above(7, forSeconds: 600)]);
        var now = T0 + 30 * Minute;
        Assert.That(Sample(T0, 12, now), Is.EqualTo(new[] { TransitionKind.Pending }));
        Assert.That(Tick(now + 599 * Second), Is.Empty);
        Assert.That(Tick(now + 600 * Second), Is.EqualTo(new[] { TransitionKind.Raised }), "nothing contradicted it for the duration");
    }

    [Test]
    public void A_sustained_drift_raises_exactly_one_alarm_at_the_end_of_its_duration()
    {
        Rule([Above(7, forSeconds: 600)]);
        var raised = new List<long>();
        for (var i = 0; i <= 60; i++)
        {
            var ts = T0 + i * 20 * Second;
            if (Sample(ts, 6 + i * 0.1).Contains(TransitionKind.Raised)) raised.Add(ts);
        }
        // 7 is passed at i = 11 (7.1); ten minutes later is i = 41.
        Assert.That(raised, Is.EqualTo(new[] { T0 + 41 * 20 * Second }));
    }

    [Test]
    public void The_clock_raises_a_duration_condition_at_its_deadline_when_the_last_sample_still_holds()
    {
        Rule([Above(7, forSeconds: 600)]);
        Sample(T0, 8);
        Assert.That(Tick(T0 + 599 * Second), Is.Empty);
        Assert.That(Tick(T0 + 600 * Second), Is.EqualTo(new[] { TransitionKind.Raised }));
    }

    [Test]
    public void Values_oscillating_around_a_hysteresis_band_raise_once_and_never_clear()
    {
        Rule([Above(80)], new ClearCondition("<", 75, null, null, null));
        var kinds = new List<TransitionKind>();
        for (var i = 0; i < 100; i++) kinds.AddRange(Sample(T0 + i * Second, i % 2 == 0 ? 81 : 79));
        Assert.That(kinds, Is.EqualTo(new[] { TransitionKind.Raised }));
        Assert.That(Sample(T0 + 200 * Second, 74), Is.EqualTo(new[] { TransitionKind.Cleared }));
    }

    [Test]
    public void A_clear_delay_holds_the_alarm_until_the_clear_condition_held_that_long()
    {
        Rule([Above(80)], new ClearCondition("<", 75, null, null, 60));
        Sample(T0, 90);
        Assert.That(Sample(T0 + Second, 70), Is.Empty);
        Assert.That(Sample(T0 + 30 * Second, 70), Is.Empty);
        Assert.That(Tick(T0 + 61 * Second), Is.EqualTo(new[] { TransitionKind.Cleared }));
    }

    [Test]
    public void Without_a_clear_condition_the_alarm_clears_when_the_raise_condition_has_been_false_for_its_duration()
    {
        Rule([Above(7, forSeconds: 60)]);
        Sample(T0, 8);
        Assert.That(Sample(T0 + 60 * Second, 8), Is.EqualTo(new[] { TransitionKind.Raised }));
        Assert.That(Sample(T0 + 70 * Second, 5), Is.Empty);
        Assert.That(Sample(T0 + 100 * Second, 5), Is.Empty);
        Assert.That(Sample(T0 + 130 * Second, 5), Is.EqualTo(new[] { TransitionKind.Cleared }));
    }

    [Test]
    public void N_of_the_last_M_samples_raises_on_the_Nth_and_not_before()
    {
        Rule([Above(7, count: 3, of: 5)]);
        Assert.That(Sample(T0, 8), Is.Empty);
        Assert.That(Sample(T0 + 1 * Second, 1), Is.Empty);
        Assert.That(Sample(T0 + 2 * Second, 8), Is.Empty);
        Assert.That(Sample(T0 + 3 * Second, 1), Is.Empty);
        Assert.That(Sample(T0 + 4 * Second, 8), Is.EqualTo(new[] { TransitionKind.Raised }));
    }

    [Test]
    public void Several_conditions_escalate_and_de_escalate_one_alarm()
    {
        Rule([Above(7, "major"), Above(10, "critical")], new ClearCondition("<", 5, null, null, null));
        Assert.That(Sample(T0, 8), Is.EqualTo(new[] { TransitionKind.Raised }));
        Assert.That(_out[0].Severity, Is.EqualTo(AlarmSeverity.Major));
        Assert.That(Sample(T0 + Second, 11), Is.EqualTo(new[] { TransitionKind.SeverityChanged }));
        Assert.That(_out[0].Severity, Is.EqualTo(AlarmSeverity.Critical));
        Assert.That(_out[0].Previous, Is.EqualTo(AlarmSeverity.Major));
        Assert.That(Sample(T0 + 2 * Second, 8), Is.EqualTo(new[] { TransitionKind.SeverityChanged }));
        Assert.That(_out[0].Severity, Is.EqualTo(AlarmSeverity.Major));
        Assert.That(Sample(T0 + 3 * Second, 4), Is.EqualTo(new[] { TransitionKind.Cleared }));
    }

    [Test]
    public void Rate_of_change_is_per_minute_of_the_samples_timestamps()
    {
        Rule([new RaiseCondition("minor", "rateOfChange", ">", 5, null, null, null, null, null)]);
        Assert.That(Sample(T0, 20), Is.Empty, "the first sample has no rate");
        Assert.That(Sample(T0 + Minute, 24), Is.Empty, "4 per minute");
        Assert.That(Sample(T0 + Minute + 30 * Second, 27), Is.EqualTo(new[] { TransitionKind.Raised }), "3 in half a minute is 6 per minute");
    }

    [Test]
    public void No_data_raises_after_its_period_but_not_within_the_grace_period_after_a_start_and_clears_on_data()
    {
        Rule([new RaiseCondition("major", "noData", null, null, null, null, 120, null, null)]);
        Sample(T0, 1);
        var startedAt = T0 + 60 * Second; // the hub restarted a minute after the last sample
        Assert.That(Tick(T0 + 3 * Minute, startedAt), Is.Empty, "silent for 3 minutes, but the grace period (5 min) is not over");
        Assert.That(Sample(T0 + 4 * Minute, 1, now: T0 + 4 * Minute), Is.Empty, "the device came back within the grace period");
        Assert.That(Tick(T0 + 5 * Minute + 59 * Second, startedAt), Is.Empty, "1 min 59 s since its data");
        Assert.That(Tick(T0 + 6 * Minute, startedAt), Is.EqualTo(new[] { TransitionKind.Raised }), "2 minutes since its data, and the grace period is over");
        Assert.That(Sample(T0 + 8 * Minute, 1), Is.EqualTo(new[] { TransitionKind.Cleared }));
    }

    [Test]
    public void Late_and_resent_samples_are_not_judged_again()
    {
        Rule([Above(7)]);
        Sample(T0 + Minute, 1);
        Assert.That(Sample(T0, 100), Is.Empty, "older than the last sample");
        Assert.That(Sample(T0 + Minute, 100), Is.Empty, "a resend of the last sample");
    }

    [Test]
    public void Outside_its_schedule_a_rule_raises_nothing_but_its_alarms_still_clear()
    {
        // 2026-11-30 is a Monday; 12:00 UTC is 13:00 in Berlin. Weekdays 08:00-12:00 Berlin time.
        Rule([Above(7)], schedule: new WeeklySchedule("Europe/Berlin", ["mon", "tue", "wed", "thu", "fri"], "08:00", "12:00"));
        Assert.That(Sample(T0, 8), Is.Empty, "13:00 in Berlin is outside");
        Assert.That(Sample(T0 - 2 * Hour, 8, now: T0), Is.Empty, "an older sample is skipped anyway");
        Rule([Above(7)], schedule: new WeeklySchedule("Europe/Berlin", ["mon"], "12:00", "14:00"));
        Assert.That(Sample(T0, 8), Is.EqualTo(new[] { TransitionKind.Raised }), "13:00 on a Monday in Berlin is inside");
        Rule([Above(7)], schedule: new WeeklySchedule("Europe/Berlin", ["mon"], "22:00", "02:00"));
        Assert.That(Sample(T0 + 14 * Hour, 8), Is.Empty, "03:00 Tuesday is after the window that started Monday");
        Assert.That(Sample(T0 + 14 * Hour + Second, 8), Is.Empty);
        Rule([Above(7)], schedule: new WeeklySchedule("Europe/Berlin", ["mon"], "22:00", "02:00"));
        Assert.That(Sample(T0 + 12 * Hour, 8), Is.EqualTo(new[] { TransitionKind.Raised }), "01:00 Tuesday is in the window that started Monday");
    }

    [Test]
    public void A_condition_that_keeps_flipping_is_flagged_flapping_once_and_stays_open()
    {
        Rule([Above(80)]);
        var kinds = new List<TransitionKind>();
        for (var i = 0; i < 20; i++) kinds.AddRange(Sample(T0 + i * 10 * Second, i % 2 == 0 ? 90 : 70));
        Assert.That(kinds, Is.EqualTo(new[] { TransitionKind.Raised, TransitionKind.Cleared, TransitionKind.Raised, TransitionKind.Flapping }));
        Assert.That(_state.Open && _state.Flapping, Is.True);
        // Quiet (cleared) for a whole flapping window: it clears.
        Sample(T0 + 300 * Second, 70);
        Assert.That(Sample(T0 + 300 * Second + 10 * Minute, 70), Is.EqualTo(new[] { TransitionKind.Cleared }));
    }
}
