// An API key's last use is shown to admins (GET /api/v1/api-keys, lastUsedAt); uses are written every few seconds and
// once more when the hub stops.
using System.Net;
using System.Net.Http.Json;
using IoTHub.Tests.Infrastructure;

namespace IoTHub.Tests.Gateway;

[TestFixture(Store.Sqlite)]
[TestFixture(Store.Postgres)]
[OwnHost("restarts the hub")]
public sealed class ApiKeyUseTests(Store store) : HubFixture(store)
{
    [Test]
    public async Task An_api_keys_last_use_is_recorded_even_when_the_hub_stops_right_after()
    {
        // Uses are written every 5 s; the ones of the last seconds before a stop were never written.
        string key;
        long keyId;
        using (var admin = await Hub.AdminAsync())
        {
            var body = await (await admin.PostAsJsonAsync("/api/v1/api-keys", new { name = "last-use", role = "viewer" })).ReadJsonAsync();
            (key, keyId) = (body["key"]!.GetValue<string>(), body["id"]!.GetValue<long>());
        }
        var before = DateTimeOffset.UtcNow.AddSeconds(-1);
        using (var app = Hub.WithApiKey(key)) Assert.That((await app.GetAsync("/api/v1/devices")).StatusCode, Is.EqualTo(HttpStatusCode.OK));

        await Hub.RestartAsync();

        using var again = await Hub.AdminAsync();
        var keys = (await again.GetJsonAsync("/api/v1/api-keys"))["items"]!.AsArray();
        var lastUsed = keys.Single(k => k!["id"]!.GetValue<long>() == keyId)!["lastUsedAt"];
        Assert.That(lastUsed, Is.Not.Null, "the use before the stop was recorded");
        Assert.That(lastUsed!.GetValue<DateTimeOffset>(), Is.GreaterThan(before));
    }
}
