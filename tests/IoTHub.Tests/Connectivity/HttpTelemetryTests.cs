using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using IoTHub.Tests.Infrastructure;

namespace IoTHub.Tests.Connectivity;

[TestFixture(Store.Sqlite)]
[TestFixture(Store.Postgres)]
public sealed class HttpTelemetryTests(Store store) : HubFixture(store)
{
    private async Task<HttpResponseMessage> PostAsync(string deviceId, string? token, HttpContent content)
    {
        using var http = Hub.Anonymous();
        var request = new HttpRequestMessage(HttpMethod.Post, $"/api/v1/devices/{deviceId}/telemetry") { Content = content };
        if (token is not null) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return await http.SendAsync(request);
    }

    [Test]
    public async Task Telemetry_is_accepted_with_202_after_storage_and_readable()
    {
        var (id, token) = await Hub.CreateDeviceAsync();

        var response = await PostAsync(id, token, Json.Body("""{"temperature": 22, "door": "open", "ok": true}"""));

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Accepted));
        using var admin = await Hub.AdminAsync();
        var latest = await admin.GetJsonAsync($"/api/v1/devices/{id}/telemetry/latest");
        Assert.That(latest["values"]!.AsArray(), Has.Count.EqualTo(3), "202 means stored: readable at once");
    }

    [Test]
    public async Task Invalid_fields_get_400_problem_json_naming_each_field_and_a_dead_letter()
    {
        var (id, token) = await Hub.CreateDeviceAsync();

        var response = await PostAsync(id, token, Json.Body("""{"temperature": [1], "humidity": null, "ok": true}"""));

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        Assert.That(response.Content.Headers.ContentType!.MediaType, Is.EqualTo("application/problem+json"));
        var problem = await response.ReadJsonAsync();
        var errors = problem["errors"]!.AsObject();
        Assert.That(errors.Select(e => e.Key), Is.EquivalentTo(new[] { "temperature", "humidity" }));
        using var admin = await Hub.AdminAsync();
        var dead = await admin.GetJsonAsync($"/api/v1/dead-letters?deviceId={id}");
        Assert.That(dead["items"]!.AsArray().Single()!["protocol"]!.GetValue<string>(), Is.EqualTo("http"));
        var latest = await admin.GetJsonAsync($"/api/v1/devices/{id}/telemetry/latest");
        Assert.That(latest["values"]!.AsArray(), Is.Empty, "the valid field of a rejected message is not stored either");
    }

    [Test]
    public async Task A_metric_given_twice_in_one_message_gets_400_naming_it_and_a_dead_letter()
    {
        // {"temperature": 21.5, "temperature": "banana"} stored two readings of one metric at one time.
        var (id, token) = await Hub.CreateDeviceAsync();

        var response = await PostAsync(id, token, Json.Body("""{"temperature": 21.5, "temperature": "banana", "ok": true}"""));

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        var errors = (await response.ReadJsonAsync())["errors"]!.AsObject();
        Assert.That(errors.Select(e => e.Key), Is.EqualTo(new[] { "temperature" }));
        Assert.That(errors["temperature"]!.ToJsonString(), Does.Contain("more than once"));
        using var admin = await Hub.AdminAsync();
        Assert.That((await admin.GetJsonAsync($"/api/v1/dead-letters?deviceId={id}"))["items"]!.AsArray(), Has.Count.EqualTo(1));
        Assert.That((await admin.GetJsonAsync($"/api/v1/devices/{id}/telemetry/latest"))["values"]!.AsArray(), Is.Empty);
    }

    [Test]
    public async Task Missing_token_gets_401()
    {
        var (id, _) = await Hub.CreateDeviceAsync();
        var response = await PostAsync(id, null, Json.Body("""{"t": 1}"""));
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized));
        Assert.That(response.Headers.WwwAuthenticate.ToString(), Does.StartWith("Bearer"));
    }

    [Test]
    public async Task Another_devices_token_gets_401()
    {
        var (id, _) = await Hub.CreateDeviceAsync();
        var (_, otherToken) = await Hub.CreateDeviceAsync();
        var response = await PostAsync(id, otherToken, Json.Body("""{"t": 1}"""));
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized));
    }

    [TestCase("application/json; charset=utf-16", HttpStatusCode.UnsupportedMediaType)]
    [TestCase("application/json; charset=ISO-8859-1", HttpStatusCode.UnsupportedMediaType)]
    [TestCase("application/json; charset=UTF-8", HttpStatusCode.Accepted)]
    [TestCase("Application/JSON;charset=\"utf-8\"", HttpStatusCode.Accepted)]
    public async Task A_json_body_in_a_charset_other_than_utf8_gets_415_and_utf8_labelled_any_way_is_taken(string contentType, HttpStatusCode expected)
    {
        // A body labelled UTF-16 was read as UTF-8 and taken.
        var (id, token) = await Hub.CreateDeviceAsync();
        var body = new ByteArrayContent("""{"t": 1}"""u8.ToArray());
        body.Headers.TryAddWithoutValidation("Content-Type", contentType);
        using var device = Hub.WithBearer(token);

        var telemetry = await PostAsync(id, token, body);
        var reported = await device.PostAsync($"/api/v1/devices/{id}/state/reported", body);

        Assert.That(telemetry.StatusCode, Is.EqualTo(expected), await telemetry.Content.ReadAsStringAsync());
        Assert.That(reported.StatusCode, Is.EqualTo(expected == HttpStatusCode.Accepted ? HttpStatusCode.OK : expected));
        if (expected == HttpStatusCode.UnsupportedMediaType)
            Assert.That(await telemetry.Content.ReadAsStringAsync(), Does.Contain("Send UTF-8"));
    }

    [Test]
    public async Task A_disabled_device_gets_403()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        using var admin = await Hub.AdminAsync();
        var patch = await admin.PatchAsJsonAsync($"/api/v1/devices/{id}", new { enabled = false });
        Assert.That(patch.StatusCode, Is.EqualTo(HttpStatusCode.OK));

        var response = await PostAsync(id, token, Json.Body("""{"t": 1}"""));

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Forbidden));
    }

    [Test]
    public async Task Other_content_types_get_415()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        var response = await PostAsync(id, token, Json.Body("temperature=1", "text/plain"));
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.UnsupportedMediaType));
    }

    [Test]
    public async Task A_body_over_the_limit_gets_413()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        var response = await PostAsync(id, token, Json.Body($$"""{"note": "{{new string('x', 300 * 1024)}}"}"""));
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.RequestEntityTooLarge));
    }

    [Test]
    public async Task Invalid_utf8_is_rejected_with_a_reason_and_kept_as_base64()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        var bytes = "{\"note\": \""u8.ToArray().Concat(new byte[] { 0xC3, 0x28 }).Concat("\"}"u8.ToArray()).ToArray();
        var content = new ByteArrayContent(bytes);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");

        var response = await PostAsync(id, token, content);

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        using var admin = await Hub.AdminAsync();
        var dead = (await admin.GetJsonAsync($"/api/v1/dead-letters?deviceId={id}"))["items"]!.AsArray().Single()!;
        Assert.That(dead["payloadEncoding"]!.GetValue<string>(), Is.EqualTo("base64"));
        Assert.That(Convert.FromBase64String(dead["payload"]!.GetValue<string>()), Is.EqualTo(bytes));
    }

    [Test]
    public async Task Deeply_nested_json_is_rejected_and_the_host_keeps_working()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        var nested = new string('[', 5000) + new string(']', 5000);

        var response = await PostAsync(id, token, Json.Body(nested));
        var next = await PostAsync(id, token, Json.Body("""{"t": 1}"""));

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        Assert.That(next.StatusCode, Is.EqualTo(HttpStatusCode.Accepted));
    }
}
