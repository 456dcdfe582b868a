using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using IoTHub.Tests.Infrastructure;
using MQTTnet;
using MQTTnet.Formatter;
using MQTTnet.Protocol;

namespace IoTHub.Tests.Commands;

[TestFixture(Store.Sqlite)]
[TestFixture(Store.Postgres)]
[OwnHost("restarts the hub")]
public sealed class DeviceStateTests(Store store) : HubFixture(store)
{
    private static MqttApplicationMessage Reported(string id, string json) => new MqttApplicationMessageBuilder()
        .WithTopic($"devices/{id}/state/reported").WithPayload(json).WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build();

    private async Task<HttpResponseMessage> PutDesiredAsync(string id, object desired, string? ifMatch = null, HttpMethod? method = null)
    {
        using var admin = await Hub.AdminAsync();
        using var request = new HttpRequestMessage(method ?? HttpMethod.Put, $"/api/v1/devices/{id}/state") { Content = Json.Of(new { desired }) };
        if (ifMatch is not null) request.Headers.TryAddWithoutValidation("If-Match", ifMatch);
        return await admin.SendAsync(request);
    }

    [Test]
    public async Task Desired_state_is_versioned_retained_for_the_device_and_the_delta_shows_what_reported_lacks()
    {
        var (id, token) = await Hub.CreateDeviceAsync();

        var put = await PutDesiredAsync(id, new { setpoint = 21.5, mode = "eco" });
        Assert.That(put.StatusCode, Is.EqualTo(HttpStatusCode.OK), await put.Content.ReadAsStringAsync());
        Assert.That(put.Headers.ETag!.Tag, Is.EqualTo("\"1\""));

        // The device connects afterwards (3.1.1) and still gets the desired state: it is retained.
        await using var device = await TestDevice.ConnectAsync(Hub, id, token, MqttProtocolVersion.V311);
        await WaitFor.ConditionAsync(() => !device.DesiredStates.IsEmpty, "the retained desired state arrives");
        var desired = device.DesiredStates.Single();
        Assert.That(desired["version"]!.GetValue<long>(), Is.EqualTo(1));
        Assert.That(desired["state"]!["mode"]!.GetValue<string>(), Is.EqualTo("eco"));

        await device.Client.PublishAsync(Reported(id, """{"setpoint": 21.5, "firmware": "1.2.0"}"""));

        using var admin = await Hub.AdminAsync();
        var state = await admin.GetJsonAsync($"/api/v1/devices/{id}/state");
        Assert.That(state["desired"]!["version"]!.GetValue<long>(), Is.EqualTo(1));
        Assert.That(state["reported"]!["version"]!.GetValue<long>(), Is.EqualTo(1));
        Assert.That(state["reported"]!["state"]!["firmware"]!.GetValue<string>(), Is.EqualTo("1.2.0"));
        Assert.That(state["delta"]!.ToJsonString(), Is.EqualTo("""{"mode":"eco"}"""));
    }

    [Test]
    public async Task A_connected_device_receives_each_new_desired_version()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        await using var device = await TestDevice.ConnectAsync(Hub, id, token);

        await PutDesiredAsync(id, new { light = "on" });
        var patch = await PutDesiredAsync(id, new { brightness = 80 }, method: HttpMethod.Patch);

        Assert.That(patch.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        await WaitFor.ConditionAsync(() => device.DesiredStates.Count >= 2, "both versions arrive");
        var last = device.DesiredStates.Last();
        Assert.That(last["version"]!.GetValue<long>(), Is.EqualTo(2));
        Assert.That(last["state"]!.ToJsonString(), Is.EqualTo("""{"light":"on","brightness":80}"""), "PATCH merges into desired");
    }

    [Test]
    public async Task Concurrent_desired_updates_with_a_stale_version_are_refused_with_412()
    {
        var (id, _) = await Hub.CreateDeviceAsync();
        Assert.That((await PutDesiredAsync(id, new { v = 0 })).StatusCode, Is.EqualTo(HttpStatusCode.OK));

        var racers = await Task.WhenAll(Enumerable.Range(1, 6).Select(i => PutDesiredAsync(id, new { v = i }, ifMatch: "\"1\"")));

        Assert.That(racers.Count(r => r.StatusCode == HttpStatusCode.OK), Is.EqualTo(1));
        Assert.That(racers.Count(r => r.StatusCode == HttpStatusCode.PreconditionFailed), Is.EqualTo(5));
        using var admin = await Hub.AdminAsync();
        var state = await admin.GetJsonAsync($"/api/v1/devices/{id}/state");
        Assert.That(state["desired"]!["version"]!.GetValue<long>(), Is.EqualTo(2));
        var stale = await PutDesiredAsync(id, new { v = 99 }, ifMatch: "\"1\"");
        Assert.That(stale.StatusCode, Is.EqualTo(HttpStatusCode.PreconditionFailed));
        Assert.That(stale.Headers.ETag!.Tag, Is.EqualTo("\"2\""), "the 412 tells the current version");
    }

    [Test]
    public async Task If_match_compares_strongly_and_takes_a_list_as_RFC_9110_says()
    {
        var (id, _) = await Hub.CreateDeviceAsync();
        Assert.That((await PutDesiredAsync(id, new { v = 0 })).StatusCode, Is.EqualTo(HttpStatusCode.OK)); // version 1

        var weak = await PutDesiredAsync(id, new { v = 1 }, ifMatch: "W/\"1\"");
        Assert.That(weak.StatusCode, Is.EqualTo(HttpStatusCode.PreconditionFailed), "a weak tag never matches (§13.1.1: strong comparison)");
        var listed = await PutDesiredAsync(id, new { v = 2 }, ifMatch: "\"7\", \"1\"");
        Assert.That(listed.StatusCode, Is.EqualTo(HttpStatusCode.OK), "one of the listed tags is current: " + await listed.Content.ReadAsStringAsync());
        Assert.That(listed.Headers.ETag!.Tag, Is.EqualTo("\"2\""));
        var any = await PutDesiredAsync(id, new { v = 3 }, ifMatch: "*");
        Assert.That(any.StatusCode, Is.EqualTo(HttpStatusCode.OK), "* matches any current version");
        var malformed = await PutDesiredAsync(id, new { v = 4 }, ifMatch: "3");
        Assert.That(malformed.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest), "an entity tag is quoted");
    }

    [Test]
    public async Task Reported_state_over_http_is_a_merge_patch_and_the_device_reads_desired_over_http()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        await PutDesiredAsync(id, new { interval = 30 });
        using var device = Hub.WithBearer(token);

        var first = await device.PostAsync($"/api/v1/devices/{id}/state/reported", Json.Body("""{"interval": 60, "battery": {"level": 90, "charging": true}}"""));
        var second = await device.PostAsync($"/api/v1/devices/{id}/state/reported", Json.Body("""{"battery": {"charging": null}, "interval": 30}"""));
        var desired = await device.GetJsonAsync($"/api/v1/devices/{id}/state/desired");

        Assert.That(first.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That((await second.ReadJsonAsync())["version"]!.GetValue<long>(), Is.EqualTo(2));
        Assert.That(desired.ToJsonString(), Is.EqualTo("""{"version":1,"state":{"interval":30}}"""));
        using var admin = await Hub.AdminAsync();
        var state = await admin.GetJsonAsync($"/api/v1/devices/{id}/state");
        Assert.That(state["reported"]!["state"]!.ToJsonString(), Is.EqualTo("""{"interval":30,"battery":{"level":90}}"""));
        Assert.That(state["delta"]!.AsObject(), Is.Empty);
    }

    [TestCase("{\"label\": \"\\ud800\"}")]
    [TestCase("{\"label\": \"a\\u0000b\"}")]
    [TestCase("{\"big\": 1e400}")]
    [TestCase("{\"interval\": 60, \"interval\": 30}")]
    [TestCase("{\"battery\": {\"level\": 90, \"level\": 10}}")]
    [TestCase("[1,2,3]")]
    [TestCase("{\"a\": ")]
    [TestCase("\"just a string\"")]
    public async Task Invalid_reported_state_is_refused_and_changes_nothing(string payload)
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        using var client = await Hub.ConnectAsync(id, token);
        using var http = Hub.WithBearer(token);

        var ack = await client.PublishAsync(Reported(id, payload));
        var response = await http.PostAsync($"/api/v1/devices/{id}/state/reported", Json.Body(payload));

        Assert.That(ack.ReasonCode, Is.EqualTo(MqttClientPublishReasonCode.PayloadFormatInvalid));
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        using var admin = await Hub.AdminAsync();
        Assert.That((await admin.GetJsonAsync($"/api/v1/devices/{id}/state"))["reported"]!["version"]!.GetValue<long>(), Is.Zero);
    }

    [Test]
    public async Task Reported_state_with_a_name_given_twice_is_refused_naming_it()
    {
        // JsonNode kept both and threw on first use, after the parse had passed.
        var (id, token) = await Hub.CreateDeviceAsync();
        using var http = Hub.WithBearer(token);

        var response = await http.PostAsync($"/api/v1/devices/{id}/state/reported", Json.Body("""{"battery": {"level": 90, "level": 10}}"""));

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        Assert.That(await response.Content.ReadAsStringAsync(), Does.Contain("'level'").And.Contain("more than once"));
    }

    [Test]
    public async Task Reported_state_that_is_not_utf8_is_refused_not_stored_with_replacement_characters()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        using var http = Hub.WithBearer(token);
        var body = new ByteArrayContent([.. "{\"label\": \""u8, 0xFF, .. "\"}"u8]);
        body.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");

        var response = await http.PostAsync($"/api/v1/devices/{id}/state/reported", body);

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        Assert.That(await response.Content.ReadAsStringAsync(), Does.Contain("not valid UTF-8"));
    }

    [Test]
    public async Task Deeply_nested_reported_state_is_refused()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        using var http = Hub.WithBearer(token);
        var nested = string.Concat(Enumerable.Repeat("{\"a\":", 200)) + "1" + new string('}', 200);

        var response = await http.PostAsync($"/api/v1/devices/{id}/state/reported", Json.Body(nested));

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        Assert.That(await response.Content.ReadAsStringAsync(), Does.Contain("depth"));
    }

    [Test]
    public async Task Another_devices_token_cannot_report_or_read_its_state()
    {
        var (id, _) = await Hub.CreateDeviceAsync();
        var (_, otherToken) = await Hub.CreateDeviceAsync();
        using var http = Hub.WithBearer(otherToken);

        Assert.That((await http.PostAsync($"/api/v1/devices/{id}/state/reported", Json.Body("{}"))).StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized));
        Assert.That((await http.GetAsync($"/api/v1/devices/{id}/state/desired")).StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized));
    }

    [Test]
    public async Task Desired_state_is_still_retained_after_a_hub_restart_and_mosquitto_sub_receives_it()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        await PutDesiredAsync(id, new { color = "blue" });

        await Hub.RestartAsync();
        var (code, output) = await ExternalTool.RunAsync("mosquitto_sub", "-h", "127.0.0.1", "-p", Hub.MqttPort.ToString(), "-V", "mqttv311",
            "-i", id + ":sub", "-u", id, "-P", token, "-t", $"devices/{id}/state/desired", "-q", "1", "-C", "1", "-W", "10");

        Assert.That(code, Is.Zero, output);
        Assert.That(JsonNode.Parse(output)!.ToJsonString(), Is.EqualTo("""{"version":1,"state":{"color":"blue"}}"""));
    }

    [Test]
    public async Task Viewers_read_state_but_may_not_set_it_and_unknown_devices_are_404()
    {
        var (id, _) = await Hub.CreateDeviceAsync();
        using var viewer = Hub.WithApiKey(await Hub.CreateApiKeyAsync("viewer"));

        Assert.That((await viewer.GetAsync($"/api/v1/devices/{id}/state")).StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That((await viewer.PutAsync($"/api/v1/devices/{id}/state", Json.Of(new { desired = new { a = 1 } }))).StatusCode, Is.EqualTo(HttpStatusCode.Forbidden));
        Assert.That((await PutDesiredAsync("no-such-device", new { a = 1 })).StatusCode, Is.EqualTo(HttpStatusCode.NotFound));
        Assert.That((await PutDesiredAsync(id, "not an object")).StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
    }
}
