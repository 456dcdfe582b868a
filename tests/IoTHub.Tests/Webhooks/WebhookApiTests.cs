using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using IoTHub.Tests.Infrastructure;

namespace IoTHub.Tests.Webhooks;

/// <summary>Managing webhook endpoints over REST: admin only, validated bodies, private addresses refused as written,
/// the secret shown once. Endpoints here point at <c>.invalid</c> names and are created disabled, so nothing leaves.</summary>
[TestFixture(Store.Sqlite)]
[TestFixture(Store.Postgres)]
public sealed class WebhookApiTests(Store store) : HubFixture(store)
{
    private static string Unreachable => $"https://{Guid.NewGuid():N}.example.invalid/hook";

    private async Task<JsonNode> CreateAsync(HttpClient admin, object body)
    {
        var response = await admin.PostAsJsonAsync("/api/v1/webhooks", body);
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Created), await response.Content.ReadAsStringAsync());
        return await response.ReadJsonAsync();
    }

    [TestCase("viewer")]
    [TestCase("operator")]
    public async Task Viewer_and_operator_keys_are_refused_with_403(string role)
    {
        using var keyed = Hub.WithApiKey(await Hub.CreateApiKeyAsync(role));
        using var admin = await Hub.AdminAsync();
        var id = (await CreateAsync(admin, new { url = Unreachable, enabled = false }))["webhook"]!["id"]!.GetValue<long>();
        Assert.Multiple(async () =>
        {
            Assert.That((await keyed.PostAsJsonAsync("/api/v1/webhooks", new { url = Unreachable })).StatusCode, Is.EqualTo(HttpStatusCode.Forbidden));
            Assert.That((await keyed.GetAsync("/api/v1/webhooks")).StatusCode, Is.EqualTo(HttpStatusCode.Forbidden));
            Assert.That((await keyed.GetAsync($"/api/v1/webhooks/{id}/deliveries")).StatusCode, Is.EqualTo(HttpStatusCode.Forbidden));
            Assert.That((await keyed.PostAsync($"/api/v1/webhooks/{id}/rotate-secret", null)).StatusCode, Is.EqualTo(HttpStatusCode.Forbidden));
            Assert.That((await keyed.DeleteAsync($"/api/v1/webhooks/{id}")).StatusCode, Is.EqualTo(HttpStatusCode.Forbidden));
        });
        using var anonymous = Hub.Anonymous();
        Assert.That((await anonymous.GetAsync("/api/v1/webhooks")).StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized));
    }

    [TestCase("""{"url": "/relative/path"}""", "url")]
    [TestCase("""{"url": "ftp://example.com/hook"}""", "url")]
    [TestCase("""{}""", "url")]
    [TestCase("""{"url": "https://example.invalid/h", "eventTypes": ["alarm.raised", "device.exploded"]}""", "eventTypes")]
    [TestCase("""{"url": "https://example.invalid/h", "description": "DESCRIPTION"}""", "description")]
    public async Task Malformed_bodies_get_400_naming_the_field(string body, string field)
    {
        using var admin = await Hub.AdminAsync();
        var response = await admin.PostAsync("/api/v1/webhooks", Json.Body(body.Replace("DESCRIPTION", new string('d', 501))));
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        Assert.That(response.Content.Headers.ContentType?.MediaType, Is.EqualTo("application/problem+json"));
        var errors = (await response.ReadJsonAsync())["errors"]!.AsObject();
        Assert.That(errors.Select(e => e.Key), Does.Contain(field).IgnoreCase);
    }

    [Test]
    public async Task The_openapi_document_describes_the_webhook_endpoints()
    {
        using var http = Hub.Anonymous();
        var doc = await http.GetJsonAsync("/openapi/v1.json");
        var paths = doc["paths"]!.AsObject().Select(p => p.Key).ToList();
        Assert.That(paths, Is.SupersetOf(new[]
        {
            "/api/v1/webhooks", "/api/v1/webhooks/{id}", "/api/v1/webhooks/{id}/rotate-secret", "/api/v1/webhooks/{id}/deliveries",
            "/api/v1/webhooks/{id}/deliveries/{deliveryId}/replay", "/api/v1/webhooks/{id}/replay", "/api/v1/webhooks/{id}/test",
        }));
    }

    [Test]
    public async Task A_body_that_is_not_json_gets_400()
    {
        using var admin = await Hub.AdminAsync();
        Assert.That((await admin.PostAsync("/api/v1/webhooks", Json.Body("{\"url\": "))).StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
    }

    [TestCase("http://127.0.0.1:9000/hook")]
    [TestCase("http://10.20.30.40/hook")]
    [TestCase("http://169.254.169.254/latest/meta-data/")]
    [TestCase("http://[::1]:9000/hook")]
    [TestCase("http://[::ffff:192.168.1.10]/hook")]
    [TestCase("http://100.64.1.1/hook")]
    [TestCase("http://localhost:9000/hook")]
    public async Task Loopback_private_and_link_local_addresses_are_refused_when_created_or_changed(string url)
    {
        using var admin = await Hub.AdminAsync();
        var created = await admin.PostAsJsonAsync("/api/v1/webhooks", new { url });
        Assert.That(created.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        Assert.That((await created.ReadJsonAsync())["errors"]!["url"]![0]!.GetValue<string>(), Does.Contain("AllowPrivateNetworks"));

        var id = (await CreateAsync(admin, new { url = Unreachable, enabled = false }))["webhook"]!["id"]!.GetValue<long>();
        var patched = await admin.PatchAsJsonAsync($"/api/v1/webhooks/{id}", new { url });
        Assert.That(patched.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
    }

    [Test]
    public async Task The_secret_is_shown_when_created_and_rotated_and_never_listed()
    {
        using var admin = await Hub.AdminAsync();
        var created = await CreateAsync(admin, new { url = Unreachable, eventTypes = new[] { "alarm.raised", "device.offline" }, description = "on-call", enabled = false });
        var secret = created["secret"]!.GetValue<string>();
        var id = created["webhook"]!["id"]!.GetValue<long>();
        Assert.That(secret, Does.StartWith("whsec_"));
        Assert.That(Convert.FromBase64String(secret["whsec_".Length..]), Has.Length.GreaterThanOrEqualTo(24));

        var one = await (await admin.GetAsync($"/api/v1/webhooks/{id}")).Content.ReadAsStringAsync();
        var all = await (await admin.GetAsync("/api/v1/webhooks?limit=1000")).Content.ReadAsStringAsync();
        Assert.Multiple(() =>
        {
            Assert.That(one, Does.Not.Contain(secret["whsec_".Length..]).And.Not.Contain("whsec_"));
            Assert.That(all, Does.Not.Contain(secret["whsec_".Length..]).And.Not.Contain("whsec_"));
            var view = JsonNode.Parse(one)!;
            Assert.That(view["eventTypes"]!.AsArray().Select(t => t!.GetValue<string>()), Is.EqualTo(new[] { "alarm.raised", "device.offline" }));
            Assert.That(view["description"]!.GetValue<string>(), Is.EqualTo("on-call"));
            Assert.That(view["enabled"]!.GetValue<bool>(), Is.False);
        });

        var rotated = await (await admin.PostAsync($"/api/v1/webhooks/{id}/rotate-secret", null)).ReadJsonAsync();
        Assert.That(rotated["secret"]!.GetValue<string>(), Does.StartWith("whsec_").And.Not.EqualTo(secret));
        Assert.That(rotated["previousSecretExpiresAt"], Is.Not.Null, "the old secret signs too for a grace period");
        var after = await (await admin.GetAsync($"/api/v1/webhooks/{id}")).Content.ReadAsStringAsync();
        Assert.That(after, Does.Not.Contain("whsec_"));
    }

    [Test]
    public async Task An_endpoint_is_changed_paged_and_deleted()
    {
        using var admin = await Hub.AdminAsync();
        var ids = new List<long>();
        for (var i = 0; i < 3; i++) ids.Add((await CreateAsync(admin, new { url = Unreachable, enabled = false }))["webhook"]!["id"]!.GetValue<long>());

        var newUrl = Unreachable;
        var patched = await admin.PatchAsJsonAsync($"/api/v1/webhooks/{ids[0]}", new { url = newUrl, eventTypes = new[] { "device.online" } });
        Assert.That(patched.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        var view = await patched.ReadJsonAsync();
        Assert.That(view["url"]!.GetValue<string>(), Is.EqualTo(newUrl));
        Assert.That(view["eventTypes"]!.AsArray().Select(t => t!.GetValue<string>()), Is.EqualTo(new[] { "device.online" }));
        Assert.That(view["enabled"]!.GetValue<bool>(), Is.False, "absent fields stay as they were");

        var first = await admin.GetJsonAsync($"/api/v1/webhooks?cursor={ids[0] - 1}&limit=2");
        Assert.That(first["items"]!.AsArray().Select(i => i!["id"]!.GetValue<long>()), Is.EqualTo(ids.Take(2)));
        var next = first["next"]!.GetValue<string>();
        var second = await admin.GetJsonAsync($"/api/v1/webhooks?cursor={next}&limit=2");
        Assert.That(second["items"]![0]!["id"]!.GetValue<long>(), Is.EqualTo(ids[2]));

        Assert.That((await admin.DeleteAsync($"/api/v1/webhooks/{ids[1]}")).StatusCode, Is.EqualTo(HttpStatusCode.NoContent));
        Assert.Multiple(async () =>
        {
            Assert.That((await admin.GetAsync($"/api/v1/webhooks/{ids[1]}")).StatusCode, Is.EqualTo(HttpStatusCode.NotFound));
            Assert.That((await admin.DeleteAsync($"/api/v1/webhooks/{ids[1]}")).StatusCode, Is.EqualTo(HttpStatusCode.NotFound));
            Assert.That((await admin.GetAsync($"/api/v1/webhooks/{ids[1]}/deliveries")).StatusCode, Is.EqualTo(HttpStatusCode.NotFound));
            Assert.That((await admin.PostAsync($"/api/v1/webhooks/{ids[2]}/test", null)).StatusCode, Is.EqualTo(HttpStatusCode.Conflict), "a disabled endpoint gets no test event");
            Assert.That((await admin.PostAsJsonAsync($"/api/v1/webhooks/{ids[2]}/replay", new { from = DateTimeOffset.UtcNow, to = DateTimeOffset.UtcNow.AddHours(-1) })).StatusCode,
                Is.EqualTo(HttpStatusCode.BadRequest), "to before from");
        });
    }
}
