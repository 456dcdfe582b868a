// Alarm rules across a restart of the hub, on a faked clock: nothing is slept through.
using IoTHub.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace IoTHub.Tests.Alarms;

[TestFixture(Store.Sqlite)]
[TestFixture(Store.Postgres)]
[OwnHost("restarts the hub on a faked clock")]
public sealed class AlarmRestartTests(Store store) : HubFixture(store)
{
    private readonly FakeTimeProvider _time = new(DateTimeOffset.UtcNow);

    protected override IDictionary<string, string?> Settings => new Dictionary<string, string?>
    {
        ["Alarms:NoDataGracePeriod"] = "00:02:00",
        ["Alarms:TickInterval"] = "00:00:01",
        // The shortest retention allowed, so that the clock moves hours, not months: a faked clock fires every periodic
        // timer of the hub once per period it passes (91 days of the 1-second ticks took 24 s of the suite).
        ["Alarms:ClearedRetention"] = "02:00:00",
    };

    protected override void Configure(Microsoft.AspNetCore.Builder.WebApplicationBuilder builder) => builder.Services.AddSingleton<TimeProvider>(_time);

    private long Now => _time.GetUtcNow().ToUnixTimeMilliseconds();

    /// <summary>Moves the hub's clock in steps of a second (the evaluator's tick) and lets it judge what fell due.</summary>
    private async Task AdvanceAsync(TimeSpan by)
    {
        for (var left = by; left > TimeSpan.Zero; left -= TimeSpan.FromSeconds(1))
            _time.Advance(left < TimeSpan.FromSeconds(1) ? left : TimeSpan.FromSeconds(1));
        await Task.Delay(100);
        await AlarmTests.SettleAsync(Hub);
    }

    private async Task<string?> StateAsync(string deviceId) =>
        (await AlarmTests.AlarmsAsync(Hub, deviceId)).FirstOrDefault()?["state"]?.GetValue<string>();

    [Test]
    public async Task A_condition_pending_for_8_of_10_minutes_before_a_restart_raises_2_minutes_after_it()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        await AlarmTests.CreateRuleAsync(Hub, AlarmTests.RuleJson(id, """{"severity": "major", "operator": ">", "value": 7, "forSeconds": 600}"""));
        using (var device = await Hub.ConnectAsync(id, token)) await AlarmTests.PublishAsync(device, id, Now, 9);
        await AlarmTests.SettleAsync(Hub);
        Assert.That(await StateAsync(id), Is.EqualTo("pending"));

        await AdvanceAsync(TimeSpan.FromMinutes(8));
        await Hub.RestartAsync();
        await AdvanceAsync(TimeSpan.FromSeconds(110));
        Assert.That(await StateAsync(id), Is.EqualTo("pending"), "1 min 50 s after the restart: 9 min 50 s in all");
        await AdvanceAsync(TimeSpan.FromSeconds(12));
        Assert.That(await StateAsync(id), Is.EqualTo("active"), "the original deadline, not 10 minutes after the restart");
        var raised = (await AlarmTests.AlarmsAsync(Hub, id))[0]!["raisedAt"]!.GetValue<DateTimeOffset>();
        Assert.That(raised, Is.EqualTo(_time.GetUtcNow()).Within(TimeSpan.FromSeconds(3)));
    }

    [Test]
    public async Task A_restart_raises_no_data_alarm_for_a_device_that_reconnects_within_the_grace_period()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        await AlarmTests.CreateRuleAsync(Hub, AlarmTests.RuleJson(id, """{"severity": "warning", "kind": "noData", "forSeconds": 60}"""));
        using (var device = await Hub.ConnectAsync(id, token)) await AlarmTests.PublishAsync(device, id, Now, 1);
        await AlarmTests.SettleAsync(Hub);

        await Hub.StopAppAsync();
        _time.Advance(TimeSpan.FromMinutes(10)); // the hub was down for ten minutes: every device looks silent
        await Hub.RestartAsync();
        await AdvanceAsync(TimeSpan.FromSeconds(90));
        using (var device = await Hub.ConnectAsync(id, token)) await AlarmTests.PublishAsync(device, id, Now, 1);
        await AlarmTests.SettleAsync(Hub);
        await AdvanceAsync(TimeSpan.FromSeconds(40));
        Assert.That(await AlarmTests.AlarmsAsync(Hub, id), Is.Empty, "back within the grace period: no storm");

        // Silent for longer than the rule's minute, now that the grace period is over: this is a real silence.
        await AdvanceAsync(TimeSpan.FromSeconds(30));
        Assert.That(await StateAsync(id), Is.EqualTo("active"));
    }

    [Test]
    public async Task Cleared_alarms_are_deleted_after_the_retention_and_open_ones_never()
    {
        var (cleared, token) = await Hub.CreateDeviceAsync();
        var (open, token2) = await Hub.CreateDeviceAsync();
        await AlarmTests.CreateRuleAsync(Hub, AlarmTests.RuleJson(cleared, """{"severity": "minor", "operator": ">", "value": 1}"""));
        await AlarmTests.CreateRuleAsync(Hub, AlarmTests.RuleJson(open, """{"severity": "minor", "operator": ">", "value": 1}"""));
        using (var device = await Hub.ConnectAsync(cleared, token))
        {
            await AlarmTests.PublishAsync(device, cleared, Now - 2000, 5);
            await AlarmTests.PublishAsync(device, cleared, Now - 1000, 0);
        }
        using (var device = await Hub.ConnectAsync(open, token2)) await AlarmTests.PublishAsync(device, open, Now - 1000, 5);
        await AlarmTests.SettleAsync(Hub);
        Assert.That(await StateAsync(cleared), Is.EqualTo("cleared"));

        using var viewer = Hub.WithApiKey(await Hub.CreateApiKeyAsync("viewer"));
        async Task<string[]> States(string deviceId) => (await viewer.GetJsonAsync($"/api/v1/alarms?deviceId={deviceId}"))["items"]!.AsArray()
            .Select(a => a!["state"]!.GetValue<string>()).ToArray();
        // The purge runs once an hour: past 1 h 30 min the first has run, past 3 h 30 min another.
        _time.Advance(TimeSpan.FromMinutes(90));
        await AdvanceAsync(TimeSpan.FromSeconds(2));
        Assert.That(await States(cleared), Is.EqualTo(new[] { "cleared" }), "1 h 30 min of the 2 h retention: kept");
        _time.Advance(TimeSpan.FromHours(2));
        await AdvanceAsync(TimeSpan.FromSeconds(2));
        Assert.That(await States(cleared), Is.Empty, "3 h 30 min: deleted");
        Assert.That(await States(open), Is.EqualTo(new[] { "active" }), "an open alarm is never deleted");
    }
}
