using System.Net;
using System.Net.Http.Json;
using IoTHub.Contracts;
using IoTHub.Storage;
using IoTHub.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace IoTHub.Tests.Webhooks;

/// <summary>An endpoint whose every attempt fails for <c>Webhooks:DisableAfter</c> (a day by default, a second here) is
/// disabled, with its reason.</summary>
[TestFixture(Store.Sqlite)]
[TestFixture(Store.Postgres)]
public sealed class WebhookEndpointDisableTests(Store store) : HubFixture(store)
{
    protected override IDictionary<string, string?> Settings => new Dictionary<string, string?>
    {
        ["Webhooks:AllowPrivateNetworks"] = "true",
        ["Webhooks:RetryBaseDelay"] = "00:00:00.2",
        ["Webhooks:RetryBackoffFactor"] = "1",
        ["Webhooks:DisableAfter"] = "00:00:01",
    };

    [Test]
    public async Task An_endpoint_failing_for_the_configured_time_is_disabled_and_its_open_deliveries_fail()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        receiver.Always("down", new ScriptedAnswer(503));
        using var admin = await Hub.AdminAsync();
        var created = await admin.PostAsJsonAsync("/api/v1/webhooks", new { url = receiver.Url("down"), eventTypes = new[] { "alarm.raised" } });
        var id = (await created.ReadJsonAsync())["webhook"]!["id"]!.GetValue<long>();
        await using (var scope = Hub.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<HubDb>();
            Outbox.Add(db, HubEventTypes.AlarmRaised, new { alarmId = 1 }, DateTimeOffset.UtcNow);
            await db.SaveChangesAsync();
        }
        Hub.Services.GetRequiredService<Outbox>().Committed();

        for (var i = 0; i < 100; i++)
        {
            var view = await admin.GetJsonAsync($"/api/v1/webhooks/{id}");
            if (!view["enabled"]!.GetValue<bool>())
            {
                Assert.That(view["disabledReason"]!.GetValue<string>(), Does.Contain("every delivery failed"));
                Assert.That(receiver.At("down").Count, Is.GreaterThanOrEqualTo(3), "retried until then");
                var log = await admin.GetJsonAsync($"/api/v1/webhooks/{id}/deliveries");
                Assert.That(log["items"]![0]!["status"]!.GetValue<string>(), Is.EqualTo("failed"));
                Assert.That((await admin.PostAsync($"/api/v1/webhooks/{id}/test", null)).StatusCode, Is.EqualTo(HttpStatusCode.Conflict));
                return;
            }
            await Task.Delay(100);
        }
        Assert.Fail("the endpoint was not disabled");
    }
}
