// Runs the rules (RuleEngine) over committed telemetry, off the ack path: its own bounded queue of committed batches
// (CommittedFeed), the 1-minute windows as they close, and a clock tick for deadlines. One loop owns every rule and
// state, so there is no lock and two samples of one device are never evaluated at once. Transitions are stored with
// the (rule, device)'s state, the alarm's history and an outbox row in one transaction (AlarmStore); the state of the
// other (rule, device)s is written in batches every tick, so a restart resumes where the evaluator was.
using System.Threading.Channels;
using IoTHub.Alarms.Rules;
using IoTHub.Contracts;
using Mediator;
using Microsoft.Extensions.Options;

namespace IoTHub.Alarms.Evaluation;

internal sealed class AlarmEvaluator(
    CommittedFeed committed,
    IServiceScopeFactory scopes,
    IOptions<AlarmsOptions> options,
    TimeProvider time,
    IJobLeadership leadership,
    ILogger<AlarmEvaluator> log) : CommittedFeedStage, IAsyncDisposable
{
    private readonly ChannelReader<CommittedPoint[]> _committed = committed.Subscribe("alarms", options.Value.QueueCapacity);
    private readonly Channel<object> _control = Channel.CreateUnbounded<object>(new UnboundedChannelOptions { SingleReader = true });
    private readonly CancellationTokenSource _stop = new();
    private readonly EngineSettings _settings = new(options.Value.FlappingTransitions, (long)options.Value.FlappingWindow.TotalMilliseconds,
        (long)options.Value.NoDataGracePeriod.TotalMilliseconds);

    private readonly Dictionary<long, CompiledRule> _rules = [];
    private readonly Dictionary<(long Rule, string Device), RuleDeviceState> _states = [];
    private readonly HashSet<(long Rule, string Device)> _dirty = [];
    private readonly HashSet<(long Rule, string Device)> _stored = [];
    private readonly Dictionary<string, DeviceScope> _devices = new(StringComparer.Ordinal);
    // Rules by what selects them: (source, metric) → scope value → rules.
    private readonly Dictionary<(RuleSource, string), RuleIndex> _index = [];
    private volatile HashSet<string> _windowMetrics = [];
    private long _startedAt;
    private int _disposed;

    private sealed class RuleIndex
    {
        public readonly Dictionary<string, List<CompiledRule>> ByDevice = new(StringComparer.Ordinal);
        public readonly Dictionary<string, List<CompiledRule>> ByTag = new(StringComparer.Ordinal);
        public readonly Dictionary<string, List<CompiledRule>> ByProfile = new(StringComparer.Ordinal);
    }

    private sealed record RuleChanged(long RuleId);
    private sealed record RuleRemoved(long RuleId);
    private sealed record DeviceChanged(string DeviceId, bool Deleted);
    private sealed record WindowSample(string DeviceId, string Metric, long EndMs, double Avg, double Min, double Max);
    private sealed record Tick;
    private sealed record Barrier(TaskCompletionSource Done);

    /// <summary>Evaluations done (samples through rules), for tests and metrics.</summary>
    public long Evaluations { get; private set; }

    /// <inheritdoc/>
    public override async Task StartAsync(CancellationToken ct)
    {
        _startedAt = time.NowMs();
        await using (var scope = scopes.CreateAsyncScope())
        {
            var store = scope.ServiceProvider.GetRequiredService<AlarmStore>();
            foreach (var (id, body) in await store.LoadRulesAsync(ct)) _rules[id] = CompiledRule.Of(id, body);
            foreach (var (key, state) in await store.LoadStatesAsync(ct))
            {
                _states[key] = state;
                _stored.Add(key);
            }
            foreach (var d in await scope.ServiceProvider.GetRequiredService<IMediator>().Send(new ListDeviceScopes(), ct)) _devices[d.DeviceId] = d;
        }
        Reindex();
        if (_rules.Count > 0) log.LogInformation("Alarm rules loaded: {Rules} rules, {States} device states", _rules.Count, _states.Count);
        Run(() => RunAsync(_stop.Token));
        _ = Task.Run(() => TickAsync(_stop.Token), CancellationToken.None);
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1) return;
        _control.Writer.TryComplete();
        await WaitForLoopAsync(TimeSpan.FromSeconds(10));
        await _stop.CancelAsync();
        _stop.Dispose();
    }

    public void OnRuleChanged(long ruleId) => _control.Writer.TryWrite(new RuleChanged(ruleId));

    public void OnRuleRemoved(long ruleId) => _control.Writer.TryWrite(new RuleRemoved(ruleId));

    public void OnDeviceChanged(string deviceId, bool deleted) => _control.Writer.TryWrite(new DeviceChanged(deviceId, deleted));

    public void OnWindowClosed(WindowAggregate w)
    {
        if (w.Resolution == "1m" && _windowMetrics.Contains(w.Metric))
            _control.Writer.TryWrite(new WindowSample(w.DeviceId, w.Metric, w.End.ToUnixTimeMilliseconds(), w.Avg, w.Min, w.Max));
    }

    /// <summary>Completes when everything queued before it was evaluated and stored (tests, and the API after a rule change).</summary>
    public Task DrainAsync(CancellationToken ct)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        if (!_control.Writer.TryWrite(new Barrier(done))) return Task.CompletedTask;
        return done.Task.WaitAsync(ct);
    }

    private async Task TickAsync(CancellationToken ct)
    {
        using var timer = new PeriodicTimer(options.Value.TickInterval, time);
        try
        {
            while (await timer.WaitForNextTickAsync(ct)) _control.Writer.TryWrite(new Tick());
        }
        catch (OperationCanceledException) { }
    }

    private async Task RunAsync(CancellationToken ct)
    {
        var transitions = new List<Transition>();
        Task<bool>? feedWait = null, controlWait = null;
        while (true)
        {
            try
            {
                var worked = false;
                while (_committed.TryRead(out var batch))
                {
                    worked = true;
                    foreach (var p in batch) OnPoint(p.DeviceId, p.Metric, RuleSource.Raw, p.TimestampMs, p.Value, transitions);
                    if (transitions.Count > 0) await StoreAsync(transitions);
                }
                if (await HandleQueuedControlAsync(transitions, ct)) worked = true;
                if (worked) continue;
                // One outstanding wait per channel (the feed's queue has a single reader).
                feedWait ??= _committed.WaitToReadAsync(ct).AsTask();
                controlWait ??= _control.Reader.WaitToReadAsync(ct).AsTask();
                await Task.WhenAny(feedWait, controlWait);
                if (feedWait.IsCompleted)
                {
                    if (!await feedWait)
                    {
                        // The writer stopped: the hub is stopping. What is already queued (the last windows' samples,
                        // rule changes) is still evaluated.
                        await HandleQueuedControlAsync(transitions, ct);
                        break;
                    }
                    feedWait = null;
                }
                if (controlWait.IsCompleted)
                {
                    if (!await controlWait) break;
                    controlWait = null;
                }
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested) { break; }
            catch (Exception ex)
            {
                log.LogError(ex, "Alarm evaluation failed; it goes on with the next batch");
                transitions.Clear();
            }
        }
        try { await FlushStatesAsync(CancellationToken.None); }
        catch (Exception ex) { log.LogError(ex, "Alarm rule states could not be written at stop"); }
    }

    /// <summary>Handles every control item queued now, storing each one's transitions; false when there was none.</summary>
    private async Task<bool> HandleQueuedControlAsync(List<Transition> transitions, CancellationToken ct)
    {
        var any = false;
        while (_control.Reader.TryRead(out var item))
        {
            any = true;
            await HandleAsync(item, transitions, ct);
            if (transitions.Count > 0) await StoreAsync(transitions);
        }
        return any;
    }

    private async Task HandleAsync(object item, List<Transition> transitions, CancellationToken ct)
    {
        switch (item)
        {
            case WindowSample w:
                foreach (var (source, value) in new[] { (RuleSource.Avg1m, w.Avg), (RuleSource.Min1m, w.Min), (RuleSource.Max1m, w.Max) })
                    OnPoint(w.DeviceId, w.Metric, source, w.EndMs, value, transitions);
                break;
            case Tick:
                // Deadlines (no data) and the purge are one node's when several share the database (IJobLeadership).
                if (leadership.IsLeader) OnTick(transitions);
                if (transitions.Count > 0) await StoreAsync(transitions);
                await FlushStatesAsync(ct);
                if (leadership.IsLeader) await PurgeWhenDueAsync(ct);
                break;
            case RuleChanged r:
                await ReloadRuleAsync(r.RuleId, transitions, ct);
                break;
            case RuleRemoved r:
                RemoveRule(r.RuleId, transitions);
                break;
            case DeviceChanged d:
                await ReloadDeviceAsync(d, transitions, ct);
                break;
            case Barrier b:
                if (transitions.Count > 0) await StoreAsync(transitions);
                await FlushStatesAsync(ct);
                b.Done.TrySetResult();
                break;
        }
    }

    private void OnPoint(string deviceId, string metric, RuleSource source, long ts, double value, List<Transition> transitions)
    {
        if (!_index.TryGetValue((source, metric), out var index)) return;
        var now = time.NowMs();
        if (index.ByDevice.TryGetValue(deviceId, out var rules)) Evaluate(rules, deviceId, ts, value, now, transitions);
        if (index.ByTag.Count + index.ByProfile.Count == 0 || !_devices.TryGetValue(deviceId, out var scope)) return;
        foreach (var tag in scope.Tags)
            if (index.ByTag.TryGetValue(tag, out rules)) Evaluate(rules, deviceId, ts, value, now, transitions);
        if (scope.ProfileId is { } profile && index.ByProfile.TryGetValue(profile, out rules)) Evaluate(rules, deviceId, ts, value, now, transitions);
    }

    private void Evaluate(List<CompiledRule> rules, string deviceId, long ts, double value, long now, List<Transition> transitions)
    {
        foreach (var rule in rules)
        {
            var key = (rule.Id, deviceId);
            var fresh = !_states.TryGetValue(key, out var state);
            if (fresh) _states[key] = state = RuleDeviceState.For(rule, now);
            var before = state!.Signature(rule);
            RuleEngine.OnSample(rule, deviceId, state, ts, value, now, _settings, transitions);
            if (fresh || state.Signature(rule) != before) _dirty.Add(key);
            Evaluations++;
        }
    }

    private void OnTick(List<Transition> transitions)
    {
        var now = time.NowMs();
        foreach (var rule in _rules.Values)
        {
            if (!rule.HasNoData) continue;
            foreach (var deviceId in DevicesOf(rule))
            {
                var key = (rule.Id, deviceId);
                if (_states.ContainsKey(key)) continue;
                _states[key] = RuleDeviceState.For(rule, now); // in view from now on: silence counts from here
                _dirty.Add(key);
            }
        }
        foreach (var ((ruleId, deviceId), state) in _states)
        {
            if (!_rules.TryGetValue(ruleId, out var rule)) continue;
            // As for samples: a latch can move without a transition (an explicit clear holds the alarm open).
            var before = state.Signature(rule);
            RuleEngine.OnTick(rule, deviceId, state, now, _startedAt, _settings, transitions);
            if (state.Signature(rule) != before) _dirty.Add((ruleId, deviceId));
        }
    }

    private long _nextPurge;

    /// <summary>Once an hour: cleared alarms older than Alarms:ClearedRetention go.</summary>
    private async Task PurgeWhenDueAsync(CancellationToken ct)
    {
        var now = time.NowMs();
        if (now < _nextPurge) return;
        _nextPurge = now + 3_600_000;
        await using var scope = scopes.CreateAsyncScope();
        var purged = await scope.ServiceProvider.GetRequiredService<AlarmStore>()
            .PurgeClearedAsync(now - (long)options.Value.ClearedRetention.TotalMilliseconds, ct);
        if (purged > 0) log.LogInformation("Deleted {Count} alarms cleared more than {Retention} ago", purged, options.Value.ClearedRetention);
    }

    private IEnumerable<string> DevicesOf(CompiledRule rule) => rule.ScopeKind switch
    {
        ScopeKind.Device => _devices.ContainsKey(rule.ScopeValue) ? [rule.ScopeValue] : [],
        _ => _devices.Values.Where(d => rule.InScope(d.DeviceId, d.ProfileId, d.Tags)).Select(d => d.DeviceId),
    };

    private async Task ReloadRuleAsync(long ruleId, List<Transition> transitions, CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var body = await scope.ServiceProvider.GetRequiredService<AlarmStore>().LoadRuleAsync(ruleId, ct);
        if (body is null || body.Enabled == false)
        {
            RemoveRule(ruleId, transitions);
            return;
        }
        var rule = CompiledRule.Of(ruleId, body);
        _rules[ruleId] = rule;
        // The conditions may have changed: each device's evaluation starts again from its next sample; an open alarm
        // stays open until the new conditions clear it.
        foreach (var (key, state) in _states.Where(kv => kv.Key.Rule == ruleId).ToList())
        {
            if (!rule.InScope(key.Device, _devices.GetValueOrDefault(key.Device)?.ProfileId, _devices.GetValueOrDefault(key.Device)?.Tags ?? []))
            {
                ClearForGood(rule, key.Device, state, transitions, "the device left the rule's scope");
                continue;
            }
            state.Conditions = rule.Raise.Select(_ => new ConditionState()).ToArray();
            state.ClearSince = null;
            _dirty.Add(key);
        }
        Reindex();
    }

    private void RemoveRule(long ruleId, List<Transition> transitions)
    {
        if (!_rules.Remove(ruleId, out var rule)) return;
        foreach (var (key, state) in _states.Where(kv => kv.Key.Rule == ruleId).ToList()) ClearForGood(rule, key.Device, state, transitions, "the rule was deleted or disabled");
        Reindex();
    }

    /// <summary>Ends the (rule, device)'s evaluation: its open alarm clears (a pending one is withdrawn), its state goes.</summary>
    private void ClearForGood(CompiledRule rule, string deviceId, RuleDeviceState state, List<Transition> transitions, string why)
    {
        var now = time.NowMs();
        if (state.Open)
        {
            transitions.Add(new(state.Pending ? TransitionKind.Withdrawn : TransitionKind.Cleared, rule, deviceId, state, state.Severity!.Value, null,
                state.LastValue, now) { Reason = why });
        }
        state.AlarmId = null;
        state.Removed = true;
        _states.Remove((rule.Id, deviceId));
        _dirty.Add((rule.Id, deviceId));
    }

    private async Task ReloadDeviceAsync(DeviceChanged d, List<Transition> transitions, CancellationToken ct)
    {
        _devices.Remove(d.DeviceId);
        if (!d.Deleted)
        {
            await using var scope = scopes.CreateAsyncScope();
            foreach (var s in await scope.ServiceProvider.GetRequiredService<IMediator>().Send(new ListDeviceScopes(d.DeviceId), ct)) _devices[s.DeviceId] = s;
        }
        if (d.Deleted)
        {
            // Each module deletes what it holds of a deleted device: its states, alarms and their history go, unannounced.
            foreach (var key in _states.Keys.Where(k => k.Device == d.DeviceId).ToList())
            {
                _states.Remove(key);
                _dirty.Remove(key);
                _stored.Remove(key);
            }
            await using var scope = scopes.CreateAsyncScope();
            await scope.ServiceProvider.GetRequiredService<AlarmStore>().DeleteDeviceAsync(d.DeviceId, ct);
            return;
        }
        var scopeOf = _devices.GetValueOrDefault(d.DeviceId);
        foreach (var (key, state) in _states.Where(kv => kv.Key.Device == d.DeviceId).ToList())
        {
            if (_rules.TryGetValue(key.Rule, out var rule) && scopeOf is not null && rule.InScope(d.DeviceId, scopeOf.ProfileId, scopeOf.Tags)) continue;
            if (rule is not null) ClearForGood(rule, d.DeviceId, state, transitions, d.Deleted ? "the device was deleted" : "the device left the rule's scope");
        }
    }

    private void Reindex()
    {
        _index.Clear();
        var windowMetrics = new HashSet<string>(StringComparer.Ordinal);
        foreach (var rule in _rules.Values)
        {
            var key = (rule.Source, rule.Metric);
            if (!_index.TryGetValue(key, out var index)) _index[key] = index = new RuleIndex();
            var map = rule.ScopeKind switch { ScopeKind.Device => index.ByDevice, ScopeKind.Tag => index.ByTag, _ => index.ByProfile };
            if (!map.TryGetValue(rule.ScopeValue, out var list)) map[rule.ScopeValue] = list = [];
            list.Add(rule);
            if (rule.Source != RuleSource.Raw) windowMetrics.Add(rule.Metric);
        }
        _windowMetrics = windowMetrics;
    }

    /// <summary>Writes the transitions (alarm rows, history, outbox) in one transaction. Not cancellable: the states
    /// already moved in memory, and a write cancelled at stop left a state "raised" with no alarm row and no webhook.</summary>
    private async Task StoreAsync(List<Transition> transitions)
    {
        try
        {
            await using var scope = scopes.CreateAsyncScope();
            await scope.ServiceProvider.GetRequiredService<AlarmStore>().ApplyAsync(transitions, CancellationToken.None);
            foreach (var t in transitions)
            {
                var key = (t.Rule.Id, t.DeviceId);
                if (t.State.Removed) { _stored.Remove(key); _dirty.Remove(key); }
                else { _stored.Add(key); _dirty.Remove(key); }
            }
        }
        catch (Exception ex)
        {
            // Not retried: the same transitions would fail the same way. The states stay dirty and are written with the
            // next flush; the alarm rows are as the database had them.
            log.LogError(ex, "Storing {Count} alarm transitions failed", transitions.Count);
        }
        finally
        {
            transitions.Clear();
        }
    }

    private async Task FlushStatesAsync(CancellationToken ct)
    {
        if (_dirty.Count == 0) return;
        var rows = new List<(long Rule, string Device, RuleDeviceState? State, bool Stored)>(_dirty.Count);
        foreach (var key in _dirty) rows.Add((key.Rule, key.Device, _states.GetValueOrDefault(key), _stored.Contains(key)));
        await using var scope = scopes.CreateAsyncScope();
        await scope.ServiceProvider.GetRequiredService<AlarmStore>().SaveStatesAsync(rows, ct);
        foreach (var r in rows)
        {
            if (r.State is null) _stored.Remove((r.Rule, r.Device));
            else _stored.Add((r.Rule, r.Device));
        }
        _dirty.Clear();
    }
}
