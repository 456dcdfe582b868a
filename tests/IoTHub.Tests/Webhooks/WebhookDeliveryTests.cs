// Deliveries end to end: the real hub (its outbox, dispatcher and delivery worker, real HTTP) and a receiver on
// 127.0.0.1 that verifies every signature with a verifier written from the specification. Retry delays are 200 ms here
// so that three attempts take well under a second.
using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using IoTHub.Contracts;
using IoTHub.Storage;
using IoTHub.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using MQTTnet;

namespace IoTHub.Tests.Webhooks;

[TestFixture(Store.Sqlite)]
[TestFixture(Store.Postgres)]
public sealed class WebhookDeliveryTests(Store store) : HubFixture(store)
{
    private readonly CapturedLogs _logs = new();
    private readonly List<string> _secrets = new();
    private WebhookReceiver _receiver = null!;

    protected override IDictionary<string, string?> Settings => new Dictionary<string, string?>
    {
        ["Webhooks:AllowPrivateNetworks"] = "true",
        ["Webhooks:RetryBaseDelay"] = "00:00:00.2",
        ["Webhooks:RetryBackoffFactor"] = "1",
        ["Webhooks:PollInterval"] = "00:00:00.5",
        ["Webhooks:RequestTimeout"] = "00:00:02",
        ["Logging:LogLevel:Default"] = "Information",
    };

    protected override void Configure(WebApplicationBuilder builder) => builder.Logging.AddProvider(_logs);

    [OneTimeSetUp]
    public async Task StartReceiver() => _receiver = await WebhookReceiver.StartAsync();

    [OneTimeTearDown]
    public async Task StopReceiver()
    {
        await _receiver.DisposeAsync();
    }

    /// <summary>Registers an endpoint at the receiver's <paramref name="path"/>; returns its id and secret.</summary>
    private async Task<(long Id, string Secret)> EndpointAsync(string path, params string[] types)
    {
        using var admin = await Hub.AdminAsync();
        var response = await admin.PostAsJsonAsync("/api/v1/webhooks", new { url = _receiver.Url(path), eventTypes = types });
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Created), await response.Content.ReadAsStringAsync());
        var body = await response.ReadJsonAsync();
        var secret = body["secret"]!.GetValue<string>();
        _secrets.Add(secret);
        return (body["webhook"]!["id"]!.GetValue<long>(), secret);
    }

    /// <summary>Commits an outbox row as a module does (the alarms engineer's alarm.* rows look like this).</summary>
    private async Task<string> PublishAsync(string type, object data)
    {
        await using var scope = Hub.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<HubDb>();
        var row = Outbox.Add(db, type, data, DateTimeOffset.UtcNow);
        await db.SaveChangesAsync();
        Hub.Services.GetRequiredService<Outbox>().Committed();
        return row.MessageId;
    }

    private static void AssertSigned(ReceivedWebhook r, string secret) =>
        Assert.That(StandardWebhooksVerifier.Verify(secret, r.Id, r.Timestamp, r.Body, r.Signature, DateTimeOffset.UtcNow), Is.True,
            $"signature of {r.Id} verifies");

    private async Task<JsonNode> DeliveriesAsync(long endpoint)
    {
        using var admin = await Hub.AdminAsync();
        return await admin.GetJsonAsync($"/api/v1/webhooks/{endpoint}/deliveries");
    }

    private async Task<JsonNode> WaitForDeliveryAsync(long endpoint, Func<JsonNode, bool> done)
    {
        for (var i = 0; i < 200; i++)
        {
            var items = (await DeliveriesAsync(endpoint))["items"]!;
            if (items.AsArray().FirstOrDefault(d => done(d!)) is { } hit) return hit;
            await Task.Delay(50);
        }
        Assert.Fail($"no delivery of endpoint {endpoint} reached the state expected: {await DeliveriesAsync(endpoint)}");
        return null!;
    }

    [Test]
    public async Task A_device_going_online_and_offline_is_delivered_once_each_signed_and_shaped_per_the_specification()
    {
        var (_, secret) = await EndpointAsync("presence", HubEventTypes.DeviceOnline, HubEventTypes.DeviceOffline);
        var (id, token) = await Hub.CreateDeviceAsync();
        using (var device = await Hub.ConnectAsync(id, token)) await device.DisconnectAsync();

        bool Mine(ReceivedWebhook r) => r.Data["deviceId"]?.GetValue<string>() == id;
        await _receiver.WaitForAsync(all => all.Count(r => r.Path == "/presence" && Mine(r)) >= 2, what: "online and offline");
        await Task.Delay(1000); // nothing more may come
        // Deliveries run concurrently and may arrive in either order (as Standard Webhooks allows); the timestamp orders them.
        var mine = _receiver.At("presence").Where(Mine).OrderBy(r => DateTimeOffset.Parse(r.Json["timestamp"]!.GetValue<string>())).ToList();
        Assert.That(mine.Select(r => r.Type), Is.EquivalentTo(new[] { "device.online", "device.offline" }));
        Assert.Multiple(() =>
        {
            foreach (var r in mine)
            {
                AssertSigned(r, secret);
                Assert.That(r.Id, Does.Match("^msg_[0-9a-f]{32}$"));
                Assert.That(r.Json.AsObject().Select(p => p.Key), Is.EquivalentTo(new[] { "type", "timestamp", "data" }));
                Assert.That(DateTimeOffset.Parse(r.Json["timestamp"]!.GetValue<string>()), Is.EqualTo(DateTimeOffset.UtcNow).Within(TimeSpan.FromMinutes(1)));
            }
            Assert.That(mine[0].Id, Is.Not.EqualTo(mine[1].Id));
            Assert.That(mine.Single(r => r.Type == "device.offline").Data["reason"], Is.Not.Null);
            Assert.That(mine.Single(r => r.Type == "device.online").Data["protocol"]!.GetValue<string>(), Is.Not.Empty);
        });
    }

    [Test]
    public async Task A_receiver_answering_500_twice_gets_a_third_attempt_with_the_same_webhook_id_and_only_subscribed_types()
    {
        var (endpoint, secret) = await EndpointAsync("flaky", HubEventTypes.AlarmRaised);
        _receiver.Script("flaky", new ScriptedAnswer(500), new ScriptedAnswer(503));
        var messageId = await PublishAsync(HubEventTypes.AlarmRaised, new { alarmId = 1, ruleId = 2, rule = "vibration", deviceId = "pump-1", severity = "major", state = "active", value = 7.4 });
        await PublishAsync(HubEventTypes.DeviceOnline, new { deviceId = "not-for-this-endpoint" });

        var got = await _receiver.WaitForAsync(all => all.Count(r => r.Path == "/flaky") >= 3, what: "three attempts");
        await Task.Delay(800);
        var attempts = _receiver.At("flaky");
        Assert.That(attempts, Has.Count.EqualTo(3));
        Assert.Multiple(() =>
        {
            Assert.That(attempts.Select(a => a.Id), Is.All.EqualTo(messageId));
            Assert.That(attempts.Select(a => a.Type), Is.All.EqualTo("alarm.raised"));
            foreach (var a in attempts) AssertSigned(a, secret);
            Assert.That(attempts[2].Data["severity"]!.GetValue<string>(), Is.EqualTo("major"));
        });
        var delivery = await WaitForDeliveryAsync(endpoint, d => d["status"]!.GetValue<string>() == "succeeded");
        Assert.Multiple(() =>
        {
            Assert.That(delivery["attempt"]!.GetValue<int>(), Is.EqualTo(3));
            Assert.That(delivery["responseStatus"]!.GetValue<int>(), Is.EqualTo(200));
            Assert.That(delivery["messageId"]!.GetValue<string>(), Is.EqualTo(messageId));
            Assert.That(delivery["nextAttemptAt"], Is.Null);
            Assert.That(delivery["durationMs"]!.GetValue<int>(), Is.GreaterThanOrEqualTo(0));
            Assert.That(delivery["lastAttemptAt"], Is.Not.Null);
        });
    }

    [Test]
    public async Task Retry_after_from_the_receiver_is_honoured()
    {
        await EndpointAsync("busy", HubEventTypes.AlarmCleared);
        _receiver.Script("busy", new ScriptedAnswer(429, RetryAfterSeconds: 2));
        await PublishAsync(HubEventTypes.AlarmCleared, new { alarmId = 3 });
        var got = await _receiver.WaitForAsync(all => all.Count(r => r.Path == "/busy") >= 2, what: "the retry");
        var busy = _receiver.At("busy");
        Assert.That(busy[1].ReceivedAt - busy[0].ReceivedAt, Is.GreaterThanOrEqualTo(TimeSpan.FromSeconds(1.9)));
    }

    [Test]
    public async Task A_4xx_answer_fails_the_delivery_without_retrying()
    {
        var (endpoint, _) = await EndpointAsync("strict", HubEventTypes.AlarmAcknowledged);
        _receiver.Script("strict", new ScriptedAnswer(400));
        await PublishAsync(HubEventTypes.AlarmAcknowledged, new { alarmId = 4 });
        var delivery = await WaitForDeliveryAsync(endpoint, d => d["status"]!.GetValue<string>() == "failed");
        await Task.Delay(800);
        Assert.That(_receiver.At("strict"), Has.Count.EqualTo(1));
        Assert.That(delivery["responseStatus"]!.GetValue<int>(), Is.EqualTo(400));
        using var admin = await Hub.AdminAsync();
        Assert.That((await admin.GetJsonAsync($"/api/v1/webhooks/{endpoint}"))["enabled"]!.GetValue<bool>(), Is.True, "a 400 does not disable the endpoint");
    }

    [Test]
    public async Task A_410_Gone_disables_the_endpoint_logs_it_and_raises_an_alarm_that_clears_when_it_is_enabled_again()
    {
        var (endpoint, _) = await EndpointAsync("gone", HubEventTypes.AlarmFlapping);
        _receiver.Always("gone", new ScriptedAnswer(410));
        await PublishAsync(HubEventTypes.AlarmFlapping, new { alarmId = 5 });
        await WaitForDeliveryAsync(endpoint, d => d["status"]!.GetValue<string>() == "failed");
        // The notice that disables it is handled after the attempt is stored (the alarm is raised, the line logged).
        await WaitFor.ConditionAsync(() => _logs.Lines.Any(l => l.Level == LogLevel.Warning && l.Message.Contains("disabled") && l.Message.Contains(_receiver.Url("gone"))),
            "the hub logs that it disabled the endpoint");
        using var admin = await Hub.AdminAsync();
        var view = await admin.GetJsonAsync($"/api/v1/webhooks/{endpoint}");
        Assert.Multiple(() =>
        {
            Assert.That(view["enabled"]!.GetValue<bool>(), Is.False);
            Assert.That(view["disabledReason"]!.GetValue<string>(), Does.Contain("410"));
            Assert.That(_logs.Lines.Any(l => l.Level == LogLevel.Warning && l.Message.Contains("disabled") && l.Message.Contains(_receiver.Url("gone"))), Is.True);
        });

        await PublishAsync(HubEventTypes.AlarmFlapping, new { alarmId = 6 });
        await Task.Delay(1000);
        Assert.That(_receiver.At("gone"), Has.Count.EqualTo(1), "a disabled endpoint is sent nothing");

        var alarms = (await admin.GetJsonAsync("/api/v1/alarms?state=open")).AsObject()["items"]!.AsArray()
            .Where(a => a!["rule"]!.GetValue<string>() == "Webhook endpoint disabled: " + _receiver.Url("gone")).ToList();
        Assert.That(alarms.Select(a => (a!["severity"]!.GetValue<string>(), a["state"]!.GetValue<string>())), Is.EqualTo(new[] { ("major", "active") }),
            "someone must notice that notifications stopped going out");

        var enabled = await admin.PatchAsJsonAsync($"/api/v1/webhooks/{endpoint}", new { enabled = true });
        Assert.That((await enabled.ReadJsonAsync())["disabledReason"], Is.Null);
        var alarm = await admin.GetJsonAsync($"/api/v1/alarms/{alarms[0]!["id"]}");
        Assert.That(alarm["alarm"]!["state"]!.GetValue<string>(), Is.EqualTo("cleared"));
    }

    [Test]
    public async Task Test_events_and_replays_reach_only_their_endpoint_with_the_same_webhook_id()
    {
        var (endpoint, secret) = await EndpointAsync("replays");
        var (other, _) = await EndpointAsync("bystander");
        using var admin = await Hub.AdminAsync();

        var test = await admin.PostAsync($"/api/v1/webhooks/{endpoint}/test", null);
        Assert.That(test.StatusCode, Is.EqualTo(HttpStatusCode.Accepted));
        var first = await _receiver.WaitForAsync(all => all.Any(r => r.Path == "/replays" && r.Type == "webhook.test"), what: "the test event");
        var testEvent = first.First(r => r.Path == "/replays" && r.Type == "webhook.test");
        AssertSigned(testEvent, secret);

        var delivery = await WaitForDeliveryAsync(endpoint, d => d["type"]!.GetValue<string>() == "webhook.test" && d["status"]!.GetValue<string>() == "succeeded");
        var replay = await admin.PostAsync($"/api/v1/webhooks/{endpoint}/deliveries/{delivery["id"]!.GetValue<long>()}/replay", null);
        Assert.That(replay.StatusCode, Is.EqualTo(HttpStatusCode.Accepted), await replay.Content.ReadAsStringAsync());
        await _receiver.WaitForAsync(all => all.Count(r => r.Id == testEvent.Id) >= 2, what: "the replay");

        // The range starts at this event: a range of the last minute would also replay the other tests' events (the slow
        // endpoint's 300), and this one would wait behind them.
        var publishedFrom = DateTimeOffset.UtcNow.AddMilliseconds(-1);
        var messageId = await PublishAsync(HubEventTypes.AlarmRaised, new { alarmId = 7 });
        await _receiver.WaitForAsync(all => all.Any(r => r.Path == "/replays" && r.Id == messageId), what: "the alarm");
        var range = await admin.PostAsJsonAsync($"/api/v1/webhooks/{endpoint}/replay",
            new { from = publishedFrom, to = DateTimeOffset.UtcNow.AddMinutes(1) });
        Assert.That(range.StatusCode, Is.EqualTo(HttpStatusCode.Accepted));
        Assert.That((await range.ReadJsonAsync())["queued"]!.GetValue<int>(), Is.GreaterThanOrEqualTo(1));
        await _receiver.WaitForAsync(all => all.Count(r => r.Path == "/replays" && r.Id == messageId) >= 2, what: "the range replay");

        Assert.Multiple(() =>
        {
            Assert.That(_receiver.At("bystander").Any(r => r.Type == "webhook.test"), Is.False, "test events go to one endpoint");
            Assert.That(_receiver.At("bystander").Count(r => r.Id == messageId), Is.EqualTo(1), "a replay goes to one endpoint");
            foreach (var r in _receiver.At("replays")) AssertSigned(r, secret);
        });
        Assert.That(other, Is.Not.EqualTo(endpoint));
    }

    [Test]
    public async Task A_slow_endpoint_does_not_hold_up_deliveries_to_another()
    {
        await EndpointAsync("slow", HubEventTypes.AlarmSeverityChanged);
        _receiver.Always("slow", new ScriptedAnswer(200, Delay: TimeSpan.FromSeconds(5)));
        // More than a page of due deliveries for the slow endpoint, all older than the fast one's.
        await using (var scope = Hub.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<HubDb>();
            for (var i = 0; i < 300; i++) Outbox.Add(db, HubEventTypes.AlarmSeverityChanged, new { alarmId = 100 + i }, DateTimeOffset.UtcNow);
            await db.SaveChangesAsync();
        }
        Hub.Services.GetRequiredService<Outbox>().Committed();
        await EndpointAsync("fast", HubEventTypes.AlarmCleared);
        await Task.Delay(200);
        var started = DateTimeOffset.UtcNow;
        var messageId = await PublishAsync(HubEventTypes.AlarmCleared, new { alarmId = 200 });
        var got = await _receiver.WaitForAsync(all => all.Any(r => r.Path == "/fast" && r.Id == messageId), what: "the fast endpoint's delivery");
        // Behind the slow endpoint it would wait for the 300 slow attempts to end, each held up to Webhooks:RequestTimeout
        // (2 s here): 300 / 32 deliveries at once x 2 s is about 19 s. The fast one alone takes well under a second; 10 s
        // leaves the margin a loaded machine needs and still tells the two apart.
        Assert.That(got.First(r => r.Id == messageId).ReceivedAt - started, Is.LessThan(TimeSpan.FromSeconds(10)),
            "the fast endpoint is served while the slow one's attempts are in flight");
    }

    /// <summary>The sum of iothub_webhook_deliveries_total over the series with outcome="succeeded" (Prometheus text).</summary>
    private static double Succeeded(string metrics) => metrics.Split('\n')
        .Where(l => l.StartsWith("iothub_webhook_deliveries_total{", StringComparison.Ordinal) && l.Contains("outcome=\"succeeded\"", StringComparison.Ordinal))
        .Sum(l => double.Parse(l[(l.LastIndexOf('}') + 1)..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture)); // value [timestamp]

    [Test]
    public async Task Delivery_outcomes_and_the_outbox_lag_are_exported_as_metrics()
    {
        await EndpointAsync("metered", HubEventTypes.AlarmRaised);
        using var http = Hub.Anonymous();
        var before = Succeeded(await http.GetStringAsync("/metrics"));
        var messageId = await PublishAsync(HubEventTypes.AlarmRaised, new { alarmId = 8 });
        await _receiver.WaitForAsync(all => all.Any(r => r.Path == "/metered" && r.Id == messageId), what: "the delivery");
        // The receiver records a request before it answers; the hub counts the outcome once it has read the answer. Other
        // tests' deliveries were counted already: this one must add to them.
        var metrics = "";
        await WaitFor.ConditionAsync(async () => Succeeded(metrics = await http.GetStringAsync("/metrics")) > before, "this delivery is counted as succeeded");
        Assert.That(metrics, Does.Contain("iothub_webhook_deliveries_total{").And.Contain("outcome=\"succeeded\""));
        Assert.That(metrics, Does.Contain("iothub_webhook_outbox_lag_seconds"));
    }

    [Test]
    public async Task No_secret_appears_in_any_log_line()
    {
        var (endpoint, _) = await EndpointAsync("logged");
        using var admin = await Hub.AdminAsync();
        var rotated = await (await admin.PostAsync($"/api/v1/webhooks/{endpoint}/rotate-secret", null)).ReadJsonAsync();
        _secrets.Add(rotated["secret"]!.GetValue<string>());
        await admin.PostAsync($"/api/v1/webhooks/{endpoint}/test", null);
        await _receiver.WaitForAsync(all => all.Any(r => r.Path == "/logged"), what: "the test event");
        var lines = _logs.Lines.Select(l => l.Message + " " + string.Join(" ", l.Values.Values)).ToList();
        foreach (var secret in _secrets)
        {
            var key = secret["whsec_".Length..];
            Assert.That(lines.Where(l => l.Contains(key, StringComparison.Ordinal)), Is.Empty);
        }
    }
}
