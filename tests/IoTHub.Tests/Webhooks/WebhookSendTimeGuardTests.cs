// The SSRF guard at send time, where it matters most: the address a name resolves to when the hub connects, not the URL
// as it was written. A receiver listens on 127.0.0.1 and must never be reached while private networks are not allowed.
using System.Net;
using System.Net.Http.Json;
using IoTHub.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace IoTHub.Tests.Webhooks;

[TestFixture(Store.Sqlite)]
[TestFixture(Store.Postgres)]
[OwnHost("restarts the hub with Webhooks:AllowPrivateNetworks changed")]
public sealed class WebhookSendTimeGuardTests(Store store) : HubFixture(store)
{
    private WebhookReceiver _receiver = null!;

    [OneTimeSetUp]
    public async Task StartReceiver() => _receiver = await WebhookReceiver.StartAsync();

    [OneTimeTearDown]
    public async Task StopReceiver() => await _receiver.DisposeAsync();

    [Test]
    public async Task The_webhook_client_refuses_a_name_that_resolves_to_loopback()
    {
        var client = Hub.Services.GetRequiredService<IHttpClientFactory>().CreateClient("webhooks");
        var refused = Assert.ThrowsAsync<HttpRequestException>(() => client.PostAsync($"http://localhost:{_receiver.Port}/dns", new StringContent("{}")));
        Assert.That(refused!.ToString(), Does.Contain("non-public"));
        Assert.That(_receiver.At("dns"), Is.Empty);
    }

    [Test]
    public async Task An_endpoint_allowed_when_created_is_refused_at_send_time_once_private_networks_are_not()
    {
        await Hub.RestartAsync(new Dictionary<string, string?> { ["Webhooks:AllowPrivateNetworks"] = "true" });
        long id;
        using (var admin = await Hub.AdminAsync())
        {
            var created = await admin.PostAsJsonAsync("/api/v1/webhooks", new { url = _receiver.Url("inside"), eventTypes = new[] { "webhook.test" } });
            Assert.That(created.StatusCode, Is.EqualTo(HttpStatusCode.Created));
            id = (await created.ReadJsonAsync())["webhook"]!["id"]!.GetValue<long>();
        }
        await Hub.RestartAsync(new Dictionary<string, string?> { ["Webhooks:AllowPrivateNetworks"] = "false" });

        using var again = await Hub.AdminAsync();
        Assert.That((await again.PostAsync($"/api/v1/webhooks/{id}/test", null)).StatusCode, Is.EqualTo(HttpStatusCode.Accepted));
        for (var i = 0; i < 100; i++)
        {
            var delivery = (await again.GetJsonAsync($"/api/v1/webhooks/{id}/deliveries"))["items"]![0]!;
            if (delivery["status"]!.GetValue<string>() == "failed")
            {
                Assert.That(delivery["error"]!.GetValue<string>(), Does.Contain("refused").And.Contain("127.0.0.1"));
                Assert.That(delivery["attempt"]!.GetValue<int>(), Is.EqualTo(1), "a refused address is not retried");
                Assert.That(_receiver.At("inside"), Is.Empty);
                return;
            }
            await Task.Delay(100);
        }
        Assert.Fail("the delivery was not refused");
    }
}
