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
public sealed class CommandTests(Store store) : HubFixture(store)
{
    internal static async Task<HttpResponseMessage> SendAsync(HubHost hub, string deviceId, object body, string? idempotencyKey = null)
    {
        using var admin = await hub.AdminAsync();
        using var request = new HttpRequestMessage(HttpMethod.Post, $"/api/v1/devices/{deviceId}/commands") { Content = body as HttpContent ?? Json.Of(body) };
        if (idempotencyKey is not null) request.Headers.Add("Idempotency-Key", idempotencyKey);
        return await admin.SendAsync(request);
    }

    private Task<HttpResponseMessage> SendAsync(string deviceId, object body, string? idempotencyKey = null) => SendAsync(Hub, deviceId, body, idempotencyKey);

    [TestCase(MqttProtocolVersion.V500)]
    [TestCase(MqttProtocolVersion.V311)]
    public async Task A_rest_command_reaches_the_mqtt_device_and_its_response_comes_back(MqttProtocolVersion version)
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        await using var device = await TestDevice.ConnectAsync(Hub, id, token, version,
            answer: body => new JsonObject { ["status"] = "ok", ["result"] = new JsonObject { ["light"] = body["params"]!["on"]!.GetValue<bool>() ? "on" : "off" } });

        var response = await SendAsync(id, new { name = "setLight", @params = new { on = true }, timeoutSeconds = 10 });

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), await response.Content.ReadAsStringAsync());
        var command = await response.ReadJsonAsync();
        Assert.That(command["state"]!.GetValue<string>(), Is.EqualTo("succeeded"));
        Assert.That(command["response"]!["status"]!.GetValue<string>(), Is.EqualTo("ok"));
        Assert.That(command["response"]!["result"]!["light"]!.GetValue<string>(), Is.EqualTo("on"));
        Assert.That(device.Commands.Single().Body["name"]!.GetValue<string>(), Is.EqualTo("setLight"));
        Assert.That(device.Commands.Single().CommandId, Is.EqualTo(command["id"]!.GetValue<string>()));

        using var admin = await Hub.AdminAsync();
        var list = await admin.GetJsonAsync($"/api/v1/devices/{id}/commands");
        Assert.That(list["items"]!.AsArray().Single()!["state"]!.GetValue<string>(), Is.EqualTo("succeeded"));
        Assert.That(list["items"]![0]!["deliveredAt"], Is.Not.Null);
    }

    [Test]
    public async Task A_command_without_params_or_with_null_params_is_shown_as_the_device_gets_it()
    {
        // "params": null was recorded and shown as null while the device was sent {}.
        var (id, token) = await Hub.CreateDeviceAsync();
        await using var device = await TestDevice.ConnectAsync(Hub, id, token, answer: _ => new JsonObject { ["status"] = "ok" });
        var key = Guid.NewGuid().ToString("N");

        var withNull = await (await SendAsync(id, Json.Body("""{"name": "reboot", "params": null, "timeoutSeconds": 10}"""), key)).ReadJsonAsync();
        var retried = await SendAsync(id, new { name = "reboot", @params = new { }, timeoutSeconds = 10 }, key);
        var without = await (await SendAsync(id, new { name = "ping", timeoutSeconds = 10 })).ReadJsonAsync();

        Assert.That(device.Commands.Select(c => c.Body["params"]!.ToJsonString()), Is.EqualTo(new[] { "{}", "{}" }), "what the device got");
        Assert.That(withNull["params"]!.ToJsonString(), Is.EqualTo("{}"));
        Assert.That(without["params"]!.ToJsonString(), Is.EqualTo("{}"));
        Assert.That(retried.StatusCode, Is.EqualTo(HttpStatusCode.OK), "the same command: none is {}");
        Assert.That((await retried.ReadJsonAsync())["id"]!.GetValue<string>(), Is.EqualTo(withNull["id"]!.GetValue<string>()));
    }

    [Test]
    public async Task A_device_answering_error_fails_the_command_with_its_result()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        await using var device = await TestDevice.ConnectAsync(Hub, id, token,
            answer: _ => new JsonObject { ["status"] = "error", ["result"] = "motor jammed" });

        var response = await SendAsync(id, new { name = "open", timeoutSeconds = 10 });

        var command = await response.ReadJsonAsync();
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(command["state"]!.GetValue<string>(), Is.EqualTo("failed"));
        Assert.That(command["response"]!["result"]!.GetValue<string>(), Is.EqualTo("motor jammed"));
    }

    [Test]
    public async Task A_device_that_does_not_answer_gives_504_with_the_command_state()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        await using var device = await TestDevice.ConnectAsync(Hub, id, token, silent: true);

        var response = await SendAsync(id, new { name = "reboot", timeoutSeconds = 1 });

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.GatewayTimeout));
        var problem = await response.ReadJsonAsync();
        Assert.That(problem["command"]!["state"]!.GetValue<string>(), Is.EqualTo("expired"));
        Assert.That(problem["command"]!["deliveredAt"], Is.Not.Null, "the device acknowledged the message, it just never answered");
        Assert.That(device.Commands, Has.Count.EqualTo(1));
    }

    [Test]
    public async Task An_offline_device_gets_409_unless_the_command_may_wait()
    {
        var (id, _) = await Hub.CreateDeviceAsync();

        var response = await SendAsync(id, new { name = "reboot" });

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Conflict));
        Assert.That((await response.ReadJsonAsync())["command"]!["state"]!.GetValue<string>(), Is.EqualTo("failed"));
    }

    [Test]
    public async Task Retrying_with_the_same_idempotency_key_five_times_delivers_once()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        await using var device = await TestDevice.ConnectAsync(Hub, id, token);
        var key = "order-mayonnaise-" + Guid.NewGuid().ToString("N")[..8];
        var body = new { name = "orderItem", @params = new { item = "mayonnaise", quantity = 1 }, timeoutSeconds = 10 };

        var sequential = new List<string>();
        for (var i = 0; i < 3; i++)
        {
            var r = await SendAsync(id, body, key);
            Assert.That(r.StatusCode, Is.EqualTo(HttpStatusCode.OK), await r.Content.ReadAsStringAsync());
            sequential.Add((await r.ReadJsonAsync())["id"]!.GetValue<string>());
        }
        var concurrent = await Task.WhenAll(Enumerable.Range(0, 2).Select(_ => SendAsync(id, body, key)));
        foreach (var r in concurrent) sequential.Add((await r.ReadJsonAsync())["id"]!.GetValue<string>());

        Assert.That(sequential.Distinct().Count(), Is.EqualTo(1), "every retry returns the first command");
        await Task.Delay(500);
        Assert.That(device.Commands, Has.Count.EqualTo(1), "the fridge orders mayonnaise once");
    }

    [Test]
    public async Task Concurrent_first_requests_with_one_idempotency_key_send_once()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        await using var device = await TestDevice.ConnectAsync(Hub, id, token);
        var key = Guid.NewGuid().ToString("N");

        var responses = await Task.WhenAll(Enumerable.Range(0, 5).Select(_ => SendAsync(id, new { name = "ping", timeoutSeconds = 10 }, key)));

        Assert.That(responses.Select(r => r.StatusCode), Is.All.EqualTo(HttpStatusCode.OK));
        await Task.Delay(500);
        Assert.That(device.Commands, Has.Count.EqualTo(1));
    }

    [Test]
    public async Task Reusing_an_idempotency_key_for_another_command_is_refused_with_422()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        await using var device = await TestDevice.ConnectAsync(Hub, id, token);
        var key = Guid.NewGuid().ToString("N");
        Assert.That((await SendAsync(id, new { name = "ping" }, key)).StatusCode, Is.EqualTo(HttpStatusCode.OK));

        var reused = await SendAsync(id, new { name = "reboot" }, key);

        Assert.That(reused.StatusCode, Is.EqualTo((HttpStatusCode)422));
        Assert.That(device.Commands, Has.Count.EqualTo(1));
    }

    [TestCase("""{}""", "name")]
    [TestCase("""{"name": "bad name!"}""", "name")]
    [TestCase("""{"name": "x", "params": [1, 2]}""", "params")]
    [TestCase("""{"name": "x", "timeoutSeconds": 0}""", "timeoutSeconds")]
    [TestCase("""{"name": "x", "expiresInSeconds": 10}""", "expiresInSeconds")]
    public async Task A_malformed_command_is_refused_naming_the_field(string body, string field)
    {
        var (id, _) = await Hub.CreateDeviceAsync();
        using var admin = await Hub.AdminAsync();

        var response = await admin.PostAsync($"/api/v1/devices/{id}/commands", Json.Body(body));

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        Assert.That((await response.ReadJsonAsync())["errors"]!.AsObject().Select(e => e.Key), Does.Contain(field).IgnoreCase);
    }

    [Test]
    public async Task Commands_for_an_unknown_device_are_404_and_viewers_may_not_send_them()
    {
        var (id, _) = await Hub.CreateDeviceAsync();
        Assert.That((await SendAsync("no-such-device", new { name = "x" })).StatusCode, Is.EqualTo(HttpStatusCode.NotFound));

        using var viewer = Hub.WithApiKey(await Hub.CreateApiKeyAsync("viewer"));
        Assert.That((await viewer.PostAsync($"/api/v1/devices/{id}/commands", Json.Of(new { name = "x" }))).StatusCode, Is.EqualTo(HttpStatusCode.Forbidden));
        Assert.That((await viewer.GetAsync($"/api/v1/devices/{id}/commands")).StatusCode, Is.EqualTo(HttpStatusCode.OK));
    }

    [Test]
    public async Task A_malformed_response_gets_payload_format_invalid_and_another_devices_command_is_not_answerable()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        var (other, _) = await Hub.CreateDeviceAsync();
        using var client = await Hub.ConnectAsync(id, token);

        var garbage = await client.PublishAsync(new MqttApplicationMessageBuilder().WithTopic($"devices/{id}/commands/abc/response")
            .WithPayload("{not json").WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
        var foreign = await client.PublishAsync(new MqttApplicationMessageBuilder().WithTopic($"devices/{other}/commands/abc/response")
            .WithPayload("""{"status":"ok"}""").WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());

        Assert.That(garbage.ReasonCode, Is.EqualTo(MqttClientPublishReasonCode.PayloadFormatInvalid));
        Assert.That(garbage.ReasonString, Does.Contain("not valid JSON"));
        Assert.That(foreign.ReasonCode, Is.EqualTo(MqttClientPublishReasonCode.NotAuthorized));
        Assert.That(client.IsConnected, Is.True);
    }

    [TestCase("""{"status": "ok", "status": "error"}""", "'status' appears more than once")]
    [TestCase("""{"status": "ok", "result": {"s": "\ud800"}}""", "lone surrogate")]
    public async Task A_response_the_hub_cannot_keep_is_refused_naming_why_and_the_command_waits_for_a_proper_one(string payload, string reason)
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        await using var device = await TestDevice.ConnectAsync(Hub, id, token, silent: true);
        var sending = SendAsync(id, new { name = "reboot", timeoutSeconds = 30 });
        await WaitFor.ConditionAsync(() => !device.Commands.IsEmpty, "the device gets the command");
        var topic = $"devices/{id}/commands/{device.Commands.Single().CommandId}/response";

        var twice = await device.Client.PublishAsync(new MqttApplicationMessageBuilder().WithTopic(topic)
            .WithPayload(payload).WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
        var proper = await device.Client.PublishAsync(new MqttApplicationMessageBuilder().WithTopic(topic)
            .WithPayload("""{"status": "ok"}""").WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
        var response = await sending;

        Assert.That(twice.ReasonCode, Is.EqualTo(MqttClientPublishReasonCode.PayloadFormatInvalid), "it was acked as taken (0x10) and lost when its handler threw");
        Assert.That(twice.ReasonString, Does.Contain(reason));
        Assert.That(proper.ReasonCode, Is.AnyOf(MqttClientPublishReasonCode.Success, MqttClientPublishReasonCode.NoMatchingSubscribers), proper.ReasonString);
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That((await response.ReadJsonAsync())["state"]!.GetValue<string>(), Is.EqualTo("succeeded"));
    }
}
