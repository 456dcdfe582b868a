// The default retry schedule over a whole day, on the hub's clock: the host runs on a FakeTimeProvider that the test
// moves to each stored next attempt, so a day of retries takes seconds and nothing is slept through.
using System.Net.Http.Json;
using IoTHub.Contracts;
using IoTHub.Storage;
using IoTHub.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace IoTHub.Tests.Webhooks;

[TestFixture(Store.Sqlite)]
[TestFixture(Store.Postgres)]
public sealed class WebhookRetryDayTests(Store store) : HubFixture(store)
{
    private readonly FakeTimeProvider _time = new(DateTimeOffset.UtcNow);

    protected override IDictionary<string, string?> Settings => new Dictionary<string, string?> { ["Webhooks:AllowPrivateNetworks"] = "true" };

    protected override void Configure(Microsoft.AspNetCore.Builder.WebApplicationBuilder builder) => builder.Services.AddSingleton<TimeProvider>(_time);

    [Test]
    public async Task A_receiver_down_for_a_day_gets_the_default_back_off_then_the_endpoint_is_disabled()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        receiver.Always("down", new ScriptedAnswer(503));
        using var admin = Hub.WithApiKey(await Hub.CreateApiKeyAsync("admin")); // a bearer token would expire within the day
        var created = await admin.PostAsJsonAsync("/api/v1/webhooks", new { url = receiver.Url("down"), eventTypes = new[] { "alarm.raised" } });
        var endpoint = (await created.ReadJsonAsync())["webhook"]!["id"]!.GetValue<long>();
        await using (var scope = Hub.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<HubDb>();
            Outbox.Add(db, HubEventTypes.AlarmRaised, new { alarmId = 1 }, _time.GetUtcNow());
            await db.SaveChangesAsync();
        }
        Hub.Services.GetRequiredService<Outbox>().Committed();

        for (var attempt = 1; attempt <= 20; attempt++)
        {
            await receiver.WaitForAsync(all => all.Count >= attempt, what: $"attempt {attempt}");
            var delivery = await WaitForRecordedAsync(admin, endpoint, attempt);
            if (delivery["status"]!.GetValue<string>() == "failed") break;
            // The endpoint is disabled after a day of failures, measured from its first failure; with the jitter that can
            // come at the attempt before the one that ends the delivery's retry window: nothing more is sent then.
            if (!(await admin.GetJsonAsync($"/api/v1/webhooks/{endpoint}"))["enabled"]!.GetValue<bool>()) break;
            _time.SetUtcNow(delivery["nextAttemptAt"]!.GetValue<DateTimeOffset>()); // to the stored next attempt, no sooner
        }

        var stamps = receiver.Received.Select(r => long.Parse(r.Timestamp!)).ToList();
        var gaps = stamps.Zip(stamps.Skip(1), (a, b) => b - a).ToList();
        var view = await admin.GetJsonAsync($"/api/v1/webhooks/{endpoint}");
        Assert.Multiple(() =>
        {
            Assert.That(receiver.Received.Select(r => r.Id).Distinct().Count(), Is.EqualTo(1), "one webhook-id throughout");
            Assert.That(gaps[0], Is.InRange(4, 6), "5 s ± 20 %");
            Assert.That(gaps[1], Is.InRange(24, 36), "30 s ± 20 %");
            Assert.That(gaps[2], Is.InRange(144, 216), "3 min ± 20 %");
            Assert.That(gaps[3], Is.InRange(864, 1296), "18 min ± 20 %");
            Assert.That(gaps.Skip(4), Is.All.LessThanOrEqualTo(6 * 3600 * 1.2 + 1), "capped at 6 h");
            Assert.That(stamps[^1] - stamps[0], Is.InRange(24 * 3600 - 60, 24 * 3600 + 60), "the last attempt a day after the first");
            Assert.That(stamps, Has.Count.InRange(9, 12));
            Assert.That(view["enabled"]!.GetValue<bool>(), Is.False, "failing for a day disables the endpoint");
            Assert.That(view["disabledReason"]!.GetValue<string>(), Does.Contain("every delivery failed"));
        });
    }

    /// <summary>The delivery once attempt <paramref name="attempt"/> is recorded (retrying with its next time, or failed).
    /// While an attempt is in flight the row already counts it and its next attempt is the claim's lease (the request
    /// timeout and 30 s after it started): moving the clock there, as this test once did about 1 run in 6, skipped
    /// the real next attempt by hours.</summary>
    private async Task<System.Text.Json.Nodes.JsonNode> WaitForRecordedAsync(HttpClient admin, long endpoint, int attempt)
    {
        var lease = Hub.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<IoTHub.Webhooks.WebhooksOptions>>().Value.RequestTimeout + TimeSpan.FromSeconds(30);
        for (var i = 0; i < 200; i++)
        {
            var d = (await admin.GetJsonAsync($"/api/v1/webhooks/{endpoint}/deliveries"))["items"]![0]!;
            var leased = d["nextAttemptAt"] is { } next && d["lastAttemptAt"] is { } last
                && next.GetValue<DateTimeOffset>() - last.GetValue<DateTimeOffset>() == lease;
            if (d["attempt"]!.GetValue<int>() == attempt && !leased && d["status"]!.GetValue<string>() is "retrying" or "failed") return d;
            await Task.Delay(25);
        }
        Assert.Fail($"attempt {attempt} was not recorded");
        return null!;
    }
}
