// Alarm rules end to end: rules over HTTP, telemetry from a real MQTT client, alarms read over HTTP and received by an
// app subscribed on alarms/{deviceId}/{ruleId}; on both stores.
using System.Collections.Concurrent;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using IoTHub.Alarms;
using IoTHub.Storage;
using IoTHub.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using MQTTnet;
using MQTTnet.Protocol;

namespace IoTHub.Tests.Alarms;

[TestFixture(Store.Sqlite)]
[TestFixture(Store.Postgres)]
public sealed class AlarmTests(Store store) : HubFixture(store)
{
    internal static string RuleJson(string deviceId, string raise, string? clear = null, string metric = "v") =>
        $$"""{"name": "rule for {{deviceId}}", "scope": {"deviceId": "{{deviceId}}"}, "metric": "{{metric}}", "raise": [{{raise}}]{{(clear is null ? "" : $", \"clear\": {clear}")}}}""";

    internal static async Task<long> CreateRuleAsync(HubHost hub, string json)
    {
        using var admin = await hub.AdminAsync();
        var response = await admin.PostAsync("/api/v1/alarm-rules", Json.Body(json));
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Created), await response.Content.ReadAsStringAsync());
        return (await response.ReadJsonAsync())["id"]!.GetValue<long>();
    }

    internal static async Task<JsonArray> AlarmsAsync(HubHost hub, string deviceId, string state = "all")
    {
        using var admin = await hub.AdminAsync();
        return (await admin.GetJsonAsync($"/api/v1/alarms?deviceId={deviceId}&state={state}"))["items"]!.AsArray();
    }

    internal static async Task PublishAsync(IMqttClient device, string deviceId, long ts, double value, string metric = "v")
    {
        var result = await device.PublishAsync(new MqttApplicationMessageBuilder().WithTopic($"devices/{deviceId}/telemetry")
            .WithPayload($$$"""{"ts": {{{ts}}}, "values": {"{{{metric}}}": {{{value.ToString(System.Globalization.CultureInfo.InvariantCulture)}}}}}""")
            .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
        Assert.That(result.IsSuccess, Is.True, result.ReasonString);
    }

    /// <summary>Waits until the evaluator has judged everything committed so far.</summary>
    internal static Task SettleAsync(HubHost hub) => hub.Services.GetRequiredService<IoTHub.Alarms.Evaluation.AlarmEvaluator>().DrainAsync(CancellationToken.None);

    private async Task<(IMqttClient App, ConcurrentQueue<JsonNode> Received)> WatchAlarmsAsync(string deviceId)
    {
        var app = await Hub.ConnectAsync("apikey", await Hub.CreateApiKeyAsync("viewer"));
        var received = new ConcurrentQueue<JsonNode>();
        app.ApplicationMessageReceivedAsync += e =>
        {
            received.Enqueue(JsonNode.Parse(Encoding.UTF8.GetString(e.ApplicationMessage.Payload))!);
            return Task.CompletedTask;
        };
        await app.SubscribeAsync($"alarms/{deviceId}/#", MqttQualityOfServiceLevel.AtLeastOnce);
        return (app, received);
    }

    [Test]
    public async Task A_rule_raises_one_alarm_from_mqtt_telemetry_tells_apps_on_mqtt_and_clears_below_its_hysteresis_band()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        var ruleId = await CreateRuleAsync(Hub, RuleJson(id, """{"severity": "major", "operator": ">", "value": 80}""", """{"operator": "<", "value": 75}"""));
        var (app, received) = await WatchAlarmsAsync(id);
        using var _ = app;
        using var device = await Hub.ConnectAsync(id, token);
        var t0 = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() - 60_000;

        await PublishAsync(device, id, t0, 70);
        await PublishAsync(device, id, t0 + 1000, 90);
        for (var i = 2; i < 12; i++) await PublishAsync(device, id, t0 + i * 1000, i % 2 == 0 ? 79 : 81);
        await SettleAsync(Hub);
        var alarms = await AlarmsAsync(Hub, id);
        Assert.That(alarms, Has.Count.EqualTo(1), "one alarm for the whole oscillation");
        Assert.That(alarms[0]!["state"]!.GetValue<string>(), Is.EqualTo("active"));
        Assert.That(alarms[0]!["severity"]!.GetValue<string>(), Is.EqualTo("major"));
        Assert.That(alarms[0]!["ruleId"]!.GetValue<long>(), Is.EqualTo(ruleId));

        await PublishAsync(device, id, t0 + 20_000, 74);
        await SettleAsync(Hub);
        alarms = await AlarmsAsync(Hub, id);
        Assert.That(alarms.Select(a => a!["state"]!.GetValue<string>()), Is.EqualTo(new[] { "cleared" }));
        await WaitFor.ConditionAsync(() => received.Count >= 2, "the app heard the raise and the clear");
        Assert.That(received.Select(n => n["type"]!.GetValue<string>()), Is.EqualTo(new[] { "alarm.raised", "alarm.cleared" }));
        Assert.That(received.First()["alarmId"]!.GetValue<long>(), Is.EqualTo(alarms[0]!["id"]!.GetValue<long>()));
        Assert.That(received.First()["value"]!.GetValue<double>(), Is.EqualTo(90));
    }

    [Test]
    public async Task A_flapping_condition_is_marked_flapping_notifies_once_and_stays_one_open_alarm()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        await CreateRuleAsync(Hub, RuleJson(id, """{"severity": "major", "operator": ">", "value": 80}"""));
        var (app, received) = await WatchAlarmsAsync(id);
        using var _ = app;
        using var device = await Hub.ConnectAsync(id, token);
        var t0 = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() - 60_000;
        for (var i = 0; i < 12; i++) await PublishAsync(device, id, t0 + i * 1000, i % 2 == 0 ? 90 : 70);
        await SettleAsync(Hub);
        var alarms = await AlarmsAsync(Hub, id);
        Assert.That(alarms.Select(a => a!["state"]!.GetValue<string>()), Is.EqualTo(new[] { "active", "cleared" }), "the first alarm cleared; the second stays open");
        Assert.That(alarms[0]!["flapping"]!.GetValue<bool>(), Is.True);
        await WaitFor.ConditionAsync(() => received.Count >= 4, "the app heard the transitions");
        await Task.Delay(200);
        Assert.That(received.Select(n => n["type"]!.GetValue<string>()), Is.EqualTo(new[] { "alarm.raised", "alarm.cleared", "alarm.raised", "alarm.flapping" }),
            "after the flapping notice, quiet");
    }

    [Test]
    public async Task A_single_spike_raises_nothing_under_a_duration_rule()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        await CreateRuleAsync(Hub, RuleJson(id, """{"severity": "major", "operator": ">", "value": 7, "forSeconds": 600}"""));
        using var device = await Hub.ConnectAsync(id, token);
        var t0 = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() - 60_000;
        await PublishAsync(device, id, t0, 5);
        await PublishAsync(device, id, t0 + 1000, 50);
        await PublishAsync(device, id, t0 + 2000, 5);
        await SettleAsync(Hub);
        Assert.That(await AlarmsAsync(Hub, id), Is.Empty, "the spike's pending alarm was withdrawn");
    }

    [Test]
    public async Task Two_devices_connections_publishing_at_once_never_make_two_open_alarms()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        await CreateRuleAsync(Hub, RuleJson(id, """{"severity": "critical", "operator": ">", "value": 80}"""));
        using var a = await Hub.ConnectAsync(id, token, clientId: id + ":a");
        using var b = await Hub.ConnectAsync(id, token, clientId: id + ":b");
        var t0 = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() - 60_000;
        await Task.WhenAll(Enumerable.Range(0, 20).Select(i => PublishAsync(i % 2 == 0 ? a : b, id, t0 + i, 90 + i)));
        await SettleAsync(Hub);
        var alarms = await AlarmsAsync(Hub, id);
        Assert.That(alarms, Has.Count.EqualTo(1));
        Assert.That(alarms[0]!["state"]!.GetValue<string>(), Is.EqualTo("active"));
    }

    [Test]
    public async Task The_database_refuses_a_second_open_alarm_for_one_rule_and_device()
    {
        var (id, _) = await Hub.CreateDeviceAsync();
        await using var scope = Hub.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<HubDb>();
        db.Add(new AlarmRow { RuleId = 999_999, RuleName = "r", DeviceId = id, Metric = "v", State = "active" });
        await db.SaveChangesAsync();
        db.ChangeTracker.Clear();
        db.Add(new AlarmRow { RuleId = 999_999, RuleName = "r", DeviceId = id, Metric = "v", State = "active" });
        Assert.ThrowsAsync<DbUpdateException>(() => db.SaveChangesAsync());
        db.ChangeTracker.Clear();
        db.Add(new AlarmRow { RuleId = 999_999, RuleName = "r", DeviceId = id, Metric = "v", State = "cleared", Closed = 1 });
        Assert.DoesNotThrowAsync(() => db.SaveChangesAsync(), "cleared alarms are not limited");
    }

    [Test]
    public async Task Operators_acknowledge_snooze_assign_and_comment_and_each_is_in_the_alarms_history()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        await CreateRuleAsync(Hub, RuleJson(id, """{"severity": "minor", "operator": ">=", "value": 10}"""));
        using var device = await Hub.ConnectAsync(id, token);
        await PublishAsync(device, id, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() - 1000, 10);
        await SettleAsync(Hub);
        var alarmId = (await AlarmsAsync(Hub, id, "open")).Single()!["id"]!.GetValue<long>();
        using var admin = await Hub.AdminAsync();
        using var viewer = Hub.WithApiKey(await Hub.CreateApiKeyAsync("viewer"));

        Assert.That((await viewer.PostAsync($"/api/v1/alarms/{alarmId}/acknowledge", Json.Body("{}"))).StatusCode, Is.EqualTo(HttpStatusCode.Forbidden));
        var ack = await admin.PostAsync($"/api/v1/alarms/{alarmId}/acknowledge", Json.Body("""{"comment": "on it"}"""));
        Assert.That(ack.StatusCode, Is.EqualTo(HttpStatusCode.OK), await ack.Content.ReadAsStringAsync());
        Assert.That((await ack.ReadJsonAsync())["acknowledgedBy"]!.GetValue<string>(), Is.EqualTo("admin"));
        Assert.That((await admin.PostAsync($"/api/v1/alarms/{alarmId}/acknowledge", Json.Body("{}"))).StatusCode, Is.EqualTo(HttpStatusCode.Conflict));
        Assert.That((await admin.PostAsync($"/api/v1/alarms/{alarmId}/snooze", Json.Body("""{"minutes": 30}"""))).StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That((await admin.PostAsync($"/api/v1/alarms/{alarmId}/snooze", Json.Body("""{"minutes": 0}"""))).StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        Assert.That((await admin.PostAsync($"/api/v1/alarms/{alarmId}/assign", Json.Body("""{"assignee": "dana"}"""))).StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That((await admin.PostAsync($"/api/v1/alarms/{alarmId}/comments", Json.Body("""{"comment": "pump replaced"}"""))).StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That((await admin.PostAsync($"/api/v1/alarms/{alarmId}/comments", Json.Body("""{"comment": ""}"""))).StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        Assert.That((await admin.PostAsync("/api/v1/alarms/987654321/comments", Json.Body("""{"comment": "x"}"""))).StatusCode, Is.EqualTo(HttpStatusCode.NotFound));

        var detail = await admin.GetJsonAsync($"/api/v1/alarms/{alarmId}");
        Assert.That(detail["alarm"]!["assignee"]!.GetValue<string>(), Is.EqualTo("dana"));
        Assert.That(detail["alarm"]!["snoozedUntil"], Is.Not.Null);
        Assert.That(detail["history"]!.AsArray().Select(e => e!["kind"]!.GetValue<string>()),
            Is.EqualTo(new[] { "raised", "acknowledged", "snoozed", "assigned", "commented" }));
        Assert.That((await admin.GetJsonAsync($"/api/v1/alarms/counts?deviceId={id}"))["minor"]!.GetValue<int>(), Is.EqualTo(1));
    }

    [TestCase("""{"name": "", "scope": {"deviceId": "d"}, "metric": "v", "raise": [{"severity": "major", "operator": ">", "value": 1}]}""", "Name")]
    [TestCase("""{"name": "n", "scope": {"deviceId": "d", "tag": "t"}, "metric": "v", "raise": [{"severity": "major", "operator": ">", "value": 1}]}""", "Scope")]
    [TestCase("""{"name": "n", "scope": {"deviceId": "d"}, "metric": "v", "raise": []}""", "Raise")]
    [TestCase("""{"name": "n", "scope": {"deviceId": "d"}, "metric": "v", "raise": [{"severity": "apocalyptic", "operator": ">", "value": 1}]}""", "Severity")]
    [TestCase("""{"name": "n", "scope": {"deviceId": "d"}, "metric": "v", "raise": [{"severity": "major", "operator": "~", "value": 1}]}""", "Operator")]
    [TestCase("""{"name": "n", "scope": {"deviceId": "d"}, "metric": "v", "raise": [{"severity": "major", "operator": ">", "value": 1, "count": 5, "of": 3}]}""", "Count")]
    [TestCase("""{"name": "n", "scope": {"deviceId": "d"}, "metric": "v", "raise": [{"severity": "major", "operator": "outside", "low": 5, "high": 1}]}""", "high")]
    [TestCase("""{"name": "n", "scope": {"deviceId": "d"}, "metric": "v", "raise": [{"severity": "major", "operator": "outside"}]}""", "Low")]
    [TestCase("""{"name": "n", "scope": {"deviceId": "d"}, "metric": "v", "raise": [{"severity": "major", "operator": ">", "value": 1}], "clear": {"operator": "inside"}}""", "Low")]
    [TestCase("""{"name": "n", "scope": {"deviceId": "d"}, "metric": "v", "raise": [{"severity": "major", "kind": "noData"}]}""", "ForSeconds")]
    [TestCase("""{"name": "n", "scope": {"deviceId": "d"}, "metric": "v", "raise": [{"severity": "major", "operator": ">", "value": 1}], "schedule": {"timeZone": "Mars/Olympus"}}""", "TimeZone")]
    [TestCase("""{"name": "n", "scope": {"deviceId": "d"}, "metric": "v", "raise": [{"severity": "major", "operator": ">", "value": 1}], "clear": {"operator": "<"}}""", "Value")]
    public async Task A_malformed_rule_is_refused_with_a_problem_naming_the_field(string body, string field)
    {
        using var admin = await Hub.AdminAsync();
        var response = await admin.PostAsync("/api/v1/alarm-rules", Json.Body(body));
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        var errors = (await response.ReadJsonAsync())["errors"]!.AsObject();
        Assert.That(errors.Select(e => e.Key), Has.Some.Contains(field), errors.ToJsonString());
    }

    [Test]
    public async Task Viewers_read_rules_but_only_operators_write_them_and_a_deleted_rule_clears_its_alarms()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        using var viewer = Hub.WithApiKey(await Hub.CreateApiKeyAsync("viewer"));
        Assert.That((await viewer.PostAsync("/api/v1/alarm-rules", Json.Body(RuleJson(id, """{"severity": "major", "operator": ">", "value": 1}""")))).StatusCode,
            Is.EqualTo(HttpStatusCode.Forbidden));
        var ruleId = await CreateRuleAsync(Hub, RuleJson(id, """{"severity": "major", "operator": ">", "value": 1}"""));
        Assert.That((await viewer.GetJsonAsync($"/api/v1/alarm-rules/{ruleId}"))["raise"]![0]!["kind"]!.GetValue<string>(), Is.EqualTo("threshold"));
        Assert.That((await viewer.DeleteAsync($"/api/v1/alarm-rules/{ruleId}")).StatusCode, Is.EqualTo(HttpStatusCode.Forbidden));
        using (var device = await Hub.ConnectAsync(id, token)) await PublishAsync(device, id, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() - 1000, 5);
        await SettleAsync(Hub);
        Assert.That((await AlarmsAsync(Hub, id, "open")), Has.Count.EqualTo(1));
        using var admin = await Hub.AdminAsync();
        Assert.That((await admin.DeleteAsync($"/api/v1/alarm-rules/{ruleId}")).StatusCode, Is.EqualTo(HttpStatusCode.NoContent));
        Assert.That((await admin.GetAsync($"/api/v1/alarm-rules/{ruleId}")).StatusCode, Is.EqualTo(HttpStatusCode.NotFound));
        var alarms = await AlarmsAsync(Hub, id);
        Assert.That(alarms.Select(a => a!["state"]!.GetValue<string>()), Is.EqualTo(new[] { "cleared" }));
    }

    [Test]
    public async Task A_tag_rule_covers_a_device_from_when_it_is_tagged_and_clears_its_alarm_when_the_tag_is_removed()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        var tag = "pumps-" + id[^6..];
        await CreateRuleAsync(Hub, $$"""{"name": "tagged", "scope": {"tag": "{{tag}}"}, "metric": "v", "raise": [{"severity": "warning", "operator": ">", "value": 50}]}""");
        using var device = await Hub.ConnectAsync(id, token);
        var t0 = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() - 60_000;
        await PublishAsync(device, id, t0, 90);
        await SettleAsync(Hub);
        Assert.That(await AlarmsAsync(Hub, id), Is.Empty, "not tagged yet");

        using var admin = await Hub.AdminAsync();
        Assert.That((await admin.PatchAsync($"/api/v1/devices/{id}", Json.Body($$"""{"tags": ["{{tag}}"]}"""))).IsSuccessStatusCode, Is.True);
        await SettleAsync(Hub);
        await PublishAsync(device, id, t0 + 1000, 90);
        await SettleAsync(Hub);
        Assert.That((await AlarmsAsync(Hub, id)).Select(a => a!["state"]!.GetValue<string>()), Is.EqualTo(new[] { "active" }));

        Assert.That((await admin.PatchAsync($"/api/v1/devices/{id}", Json.Body("""{"tags": []}"""))).IsSuccessStatusCode, Is.True);
        await SettleAsync(Hub);
        var alarm = (await AlarmsAsync(Hub, id)).Single()!;
        Assert.That(alarm["state"]!.GetValue<string>(), Is.EqualTo("cleared"));
        var history = (await admin.GetJsonAsync($"/api/v1/alarms/{alarm["id"]}"))["history"]!.AsArray();
        Assert.That(history.Last()!["comment"]!.GetValue<string>(), Does.Contain("left the rule's scope"));
    }

    [Test]
    public async Task Deleting_a_device_deletes_its_alarms_and_their_history()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        await CreateRuleAsync(Hub, RuleJson(id, """{"severity": "major", "operator": ">", "value": 1}"""));
        using (var device = await Hub.ConnectAsync(id, token)) await PublishAsync(device, id, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() - 1000, 5);
        await SettleAsync(Hub);
        var alarmId = (await AlarmsAsync(Hub, id)).Single()!["id"]!.GetValue<long>();
        using var admin = await Hub.AdminAsync();
        Assert.That((await admin.DeleteAsync($"/api/v1/devices/{id}")).IsSuccessStatusCode, Is.True);
        await SettleAsync(Hub);
        Assert.That(await AlarmsAsync(Hub, id), Is.Empty);
        Assert.That((await admin.GetAsync($"/api/v1/alarms/{alarmId}")).StatusCode, Is.EqualTo(HttpStatusCode.NotFound));
        await using var scope = Hub.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<HubDb>();
        Assert.That(await db.Set<AlarmEventRow>().CountAsync(e => e.AlarmId == alarmId), Is.Zero);
        Assert.That(await db.Set<AlarmRuleStateRow>().CountAsync(s => s.DeviceId == id), Is.Zero);
    }

    [Test]
    public async Task Apps_may_not_publish_on_alarm_topics()
    {
        var (id, _) = await Hub.CreateDeviceAsync();
        using var app = await Hub.ConnectAsync("apikey", await Hub.CreateApiKeyAsync("operator"));
        var result = await app.PublishAsync(new MqttApplicationMessageBuilder().WithTopic($"alarms/{id}/1").WithPayload("{}")
            .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
        Assert.That(result.ReasonCode, Is.EqualTo(MqttClientPublishReasonCode.NotAuthorized));
    }

    [Test]
    public async Task The_preview_replays_a_rule_over_the_stored_one_minute_rollups_and_counts_its_raises()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        var ruleId = await CreateRuleAsync(Hub, RuleJson(id, """{"severity": "major", "operator": ">", "value": 80}""", """{"operator": "<", "value": 75}"""));
        using (var device = await Hub.ConnectAsync(id, token))
        {
            // Three 1-minute windows, averaging 90, 70 and 90: above, below the clear, above again.
            var minute = IoTHub.Contracts.WindowResolution.BucketOf(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() - 10 * 60_000, 0);
            double[][] windows = [[85, 95], [65, 75], [88, 92]];
            for (var w = 0; w < windows.Length; w++)
                for (var i = 0; i < windows[w].Length; i++) await PublishAsync(device, id, minute + w * 60_000 + i * 1000, windows[w][i]);
        }
        await SettleAsync(Hub);
        using var admin = await Hub.AdminAsync();
        var preview = await admin.GetJsonAsync($"/api/v1/alarm-rules/{ruleId}/preview?hours=24");
        Assert.That(preview["raises"]!.GetValue<int>(), Is.EqualTo(2), preview.ToJsonString());
        Assert.That(preview["devices"]!.GetValue<int>(), Is.EqualTo(1));
        Assert.That(preview["to"]!.GetValue<DateTimeOffset>() - preview["from"]!.GetValue<DateTimeOffset>(), Is.EqualTo(TimeSpan.FromHours(24)));
        Assert.That((await admin.GetAsync($"/api/v1/alarm-rules/{ruleId}/preview?hours=0")).StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        Assert.That((await admin.GetAsync("/api/v1/alarm-rules/987654321/preview")).StatusCode, Is.EqualTo(HttpStatusCode.NotFound));
    }
}

/// <summary>The simulator's vibration model with its faults, against the README's rule: "rms above 7 mm/s for 10 minutes".</summary>
[TestFixture(Store.Sqlite)]
[TestFixture(Store.Postgres)]
public sealed class SimulatedFaultTests(Store store) : HubFixture(store)
{
    private const string TenMinutesAbove7 = """{"severity": "major", "operator": ">", "value": 7, "forSeconds": 600}""";

    /// <summary>30 minutes of a vibration device's readings, one every 10 s, ending now (device time), sent over MQTT.</summary>
    private async Task<string> RunDeviceAsync(IoTHub.Simulator.DeviceFault fault)
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        await AlarmTests.CreateRuleAsync(Hub, AlarmTests.RuleJson(id, TenMinutesAbove7, metric: "rms"));
        var model = new IoTHub.Simulator.PayloadFactory(IoTHub.Simulator.DeviceModel.Vibration, 1, fault);
        using var device = await Hub.ConnectAsync(id, token);
        var t0 = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() - 30 * 60_000;
        for (var i = 0; i < 180; i++)
        {
            var result = await device.PublishAsync(new MqttApplicationMessageBuilder().WithTopic($"devices/{id}/telemetry")
                .WithPayload(model.Next(t0 + i * 10_000)).WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
            Assert.That(result.IsSuccess, Is.True, result.ReasonString);
        }
        await AlarmTests.SettleAsync(Hub);
        return id;
    }

    [Test]
    public async Task A_spike_raises_nothing_and_a_drift_raises_one_major_alarm()
    {
        var spiking = await RunDeviceAsync(IoTHub.Simulator.DeviceFault.Spike);
        var drifting = await RunDeviceAsync(IoTHub.Simulator.DeviceFault.Drift);
        Assert.That(await AlarmTests.AlarmsAsync(Hub, spiking), Is.Empty, "one 12 mm/s reading");
        var alarms = await AlarmTests.AlarmsAsync(Hub, drifting);
        Assert.That(alarms.Select(a => (a!["state"]!.GetValue<string>(), a["severity"]!.GetValue<string>())), Is.EqualTo(new[] { ("active", "major") }));
    }
}
