using MQTTnet;
using System.Net;
using System.Net.Http.Json;
using IoTHub.Tests.Infrastructure;

namespace IoTHub.Tests.Gateway;

[TestFixture(Store.Sqlite)]
public sealed class AuthTests(Store store) : HubFixture(store)
{
    [TestCase("/api/v1/devices")]
    [TestCase("/api/v1/dead-letters")]
    [TestCase("/api/v1/devices/x/telemetry/latest")]
    [TestCase("/api/v1/users")]
    public async Task The_api_requires_authentication(string url)
    {
        using var http = Hub.Anonymous();
        Assert.That((await http.GetAsync(url)).StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized));
    }

    [Test]
    public async Task A_wrong_password_gets_401_and_no_token()
    {
        using var http = Hub.Anonymous();
        var response = await http.PostAsJsonAsync("/api/v1/auth/token", new { username = "admin", password = "wrong-password" });
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized));
        Assert.That(await response.Content.ReadAsStringAsync(), Does.Not.Contain("token\""));
    }

    [Test]
    public async Task A_token_carries_its_expiry()
    {
        using var http = Hub.Anonymous();
        var response = await http.PostAsJsonAsync("/api/v1/auth/token", new { username = "admin", password = HubHost.AdminPassword });
        var body = await response.ReadJsonAsync();
        Assert.That(body["expiresAt"]!.GetValue<DateTimeOffset>(), Is.GreaterThan(DateTimeOffset.UtcNow.AddHours(1)));
    }

    [Test]
    public async Task An_invalid_bearer_token_gets_401()
    {
        using var http = Hub.WithBearer("not-a-token");
        Assert.That((await http.GetAsync("/api/v1/devices")).StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized));
    }

    [Test]
    public async Task A_viewer_reads_but_cannot_create_or_delete_devices()
    {
        using var admin = await Hub.AdminAsync();
        var username = "viewer" + Guid.NewGuid().ToString("N")[..6];
        Assert.That((await admin.PostAsJsonAsync("/api/v1/users", new { username, password = "viewer-password-1", role = "viewer" })).StatusCode,
            Is.EqualTo(HttpStatusCode.Created));
        var (id, _) = await Hub.CreateDeviceAsync();
        using var viewer = Hub.WithBearer(await Hub.TokenAsync(username, "viewer-password-1"));

        Assert.That((await viewer.GetAsync($"/api/v1/devices/{id}")).StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That((await viewer.PostAsJsonAsync("/api/v1/devices", new { })).StatusCode, Is.EqualTo(HttpStatusCode.Forbidden));
        Assert.That((await viewer.DeleteAsync($"/api/v1/devices/{id}")).StatusCode, Is.EqualTo(HttpStatusCode.Forbidden));
        Assert.That((await viewer.GetAsync("/api/v1/users")).StatusCode, Is.EqualTo(HttpStatusCode.Forbidden));
    }

    [Test]
    public async Task An_api_key_works_until_revoked_and_is_shown_only_once()
    {
        using var admin = await Hub.AdminAsync();
        var created = await admin.PostAsJsonAsync("/api/v1/api-keys", new { name = "dashboard", role = "operator" });
        Assert.That(created.StatusCode, Is.EqualTo(HttpStatusCode.Created));
        var body = await created.ReadJsonAsync();
        var key = body["key"]!.GetValue<string>();
        var keyId = body["id"]!.GetValue<long>();

        using var app = Hub.WithApiKey(key);
        Assert.That((await app.PostAsJsonAsync("/api/v1/devices", new { })).StatusCode, Is.EqualTo(HttpStatusCode.Created));
        Assert.That(await (await admin.GetAsync("/api/v1/api-keys")).Content.ReadAsStringAsync(), Does.Not.Contain(key));

        Assert.That((await admin.DeleteAsync($"/api/v1/api-keys/{keyId}")).StatusCode, Is.EqualTo(HttpStatusCode.NoContent));
        Assert.That((await app.GetAsync("/api/v1/devices")).StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized));
    }

    [Test]
    public async Task An_app_key_on_mqtt_may_subscribe_to_device_topics_but_never_publish_as_a_device()
    {
        using var admin = await Hub.AdminAsync();
        var key = (await (await admin.PostAsJsonAsync("/api/v1/api-keys", new { name = "worker", role = "operator" })).ReadJsonAsync())["key"]!.GetValue<string>();
        var (id, _) = await Hub.CreateDeviceAsync();
        using var app = await Hub.ConnectAsync("apikey", key);

        var sub = await app.SubscribeAsync("devices/+/telemetry");
        var publish = await app.PublishAsync(new MQTTnet.MqttApplicationMessageBuilder()
            .WithTopic($"devices/{id}/telemetry").WithPayload("""{"t": 1}""").WithQualityOfServiceLevel(MQTTnet.Protocol.MqttQualityOfServiceLevel.AtLeastOnce).Build());

        Assert.That(sub.Items.Single().ResultCode, Is.EqualTo(MQTTnet.MqttClientSubscribeResultCode.GrantedQoS0));
        Assert.That(publish.ReasonCode, Is.EqualTo(MQTTnet.MqttClientPublishReasonCode.NotAuthorized));
    }

    [Test]
    public async Task An_app_subscribed_to_device_telemetry_receives_it_once_stored()
    {
        using var admin = await Hub.AdminAsync();
        var key = (await (await admin.PostAsJsonAsync("/api/v1/api-keys", new { name = "listener", role = "viewer" })).ReadJsonAsync())["key"]!.GetValue<string>();
        var (id, token) = await Hub.CreateDeviceAsync();
        using var app = await Hub.ConnectAsync("apikey", key);
        var received = new TaskCompletionSource<string>();
        app.ApplicationMessageReceivedAsync += e =>
        {
            received.TrySetResult(e.ApplicationMessage.ConvertPayloadToString());
            return Task.CompletedTask;
        };
        await app.SubscribeAsync($"devices/{id}/telemetry");
        using var device = await Hub.ConnectAsync(id, token);

        await device.PublishAsync(new MQTTnet.MqttApplicationMessageBuilder().WithTopic($"devices/{id}/telemetry").WithPayload("""{"t": 7}""")
            .WithQualityOfServiceLevel(MQTTnet.Protocol.MqttQualityOfServiceLevel.AtLeastOnce).Build());

        Assert.That(await received.Task.WaitAsync(TimeSpan.FromSeconds(10)), Is.EqualTo("""{"t": 7}"""));
    }

    [Test]
    public async Task A_viewer_app_key_may_not_publish_anywhere()
    {
        using var admin = await Hub.AdminAsync();
        var key = (await (await admin.PostAsJsonAsync("/api/v1/api-keys", new { name = "ro", role = "viewer" })).ReadJsonAsync())["key"]!.GetValue<string>();
        using var app = await Hub.ConnectAsync("apikey", key);

        var publish = await app.PublishAsync(new MQTTnet.MqttApplicationMessageBuilder().WithTopic("home/lights").WithPayload("on")
            .WithQualityOfServiceLevel(MQTTnet.Protocol.MqttQualityOfServiceLevel.AtLeastOnce).Build());

        Assert.That(publish.ReasonCode, Is.EqualTo(MQTTnet.MqttClientPublishReasonCode.NotAuthorized));
    }

    [Test]
    public async Task Anonymous_mqtt_is_refused_by_default()
    {
        using var client = new MQTTnet.MqttClientFactory().CreateMqttClient();
        Assert.That(await MqttConnect.TryAsync(client, Hub.MqttOptions(null, null)), Is.Not.EqualTo(MQTTnet.MqttClientConnectResultCode.Success));
    }
}
