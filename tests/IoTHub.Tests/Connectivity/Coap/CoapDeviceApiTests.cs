// The rest of the CoAP device API through libcoap's coap-client-openssl: reported state, commands delivered to an
// observer, a firmware image fetched in Block2 blocks, and Accept. On both stores.
using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using IoTHub.Tests.Firmware;
using IoTHub.Tests.Infrastructure;

namespace IoTHub.Tests.Connectivity.Coap;

[TestFixture(Store.Sqlite)]
[TestFixture(Store.Postgres)]
public sealed class CoapDeviceApiTests(Store store) : HubFixture(store)
{
    private const string Client = "coap-client-openssl";

    private string Uri(string path) => $"coap://127.0.0.1:{Hub.CoapPort}/{path}";

    [Test]
    public async Task A_reported_state_posted_over_CoAP_is_the_device_s_reported_state()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        var (code, output) = await ExternalTool.RunAsync(Client, "-B", "10", "-m", "post", "-t", "json", "-e", """{"setpoint": 19.5}""",
            Uri($"devices/{id}/state/reported?token={token}"));
        Assert.That(code, Is.Zero, output);
        Assert.That(output, Does.Contain("\"version\":1"));
        using var admin = await Hub.AdminAsync();
        var state = await admin.GetJsonAsync($"/api/v1/devices/{id}/state");
        Assert.That(state["reported"]!["state"]!["setpoint"]!.GetValue<double>(), Is.EqualTo(19.5));
    }

    [TestCase("""{"label": "\ud800"}""", "lone surrogate")]
    [TestCase("""{"a": 1, "a": 2}""", "'a' appears more than once")]
    [TestCase("""{"big": 1e400}""", "finite number")]
    public async Task Reported_state_the_hub_cannot_keep_is_4_00_naming_why(string payload, string reason)
    {
        // A lone surrogate escape was answered 5.00 ("the hub could not handle the request").
        var (id, token) = await Hub.CreateDeviceAsync();
        var (_, output) = await ExternalTool.RunAsync(Client, "-B", "10", "-m", "post", "-t", "json", "-e", payload,
            Uri($"devices/{id}/state/reported?token={token}"));
        Assert.That(output, Does.Contain("4.00").And.Contain(reason));
        using var admin = await Hub.AdminAsync();
        Assert.That((await admin.GetJsonAsync($"/api/v1/devices/{id}/state"))["reported"]!["version"]!.GetValue<long>(), Is.Zero);
    }

    [Test]
    public async Task An_observer_of_its_commands_receives_a_command_sent_through_the_REST_API()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        var observe = ExternalTool.RunAsync(Client, "-s", "6", "-B", "8", Uri($"devices/{id}/commands?token={token}"));
        using var admin = await Hub.AdminAsync();
        await WaitFor.ConditionAsync(async () => (await admin.GetJsonAsync($"/api/v1/devices/{id}"))["status"]!.GetValue<string>() == "online",
            "the observer is registered (the device is online)");
        var send = await admin.PostAsJsonAsync($"/api/v1/devices/{id}/commands", new { name = "reboot", timeoutSeconds = 2 });
        var (_, output) = await observe;
        Assert.That(output, Does.Contain("\"name\":\"reboot\"").And.Contain("\"commandId\""), "the command arrived as a notification");
        Assert.That(send.StatusCode, Is.EqualTo(HttpStatusCode.GatewayTimeout), "nobody answered it");
    }

    [Test]
    public async Task A_firmware_image_is_fetched_in_Block2_blocks_by_a_device_that_is_updating_to_it()
    {
        using var admin = await Hub.AdminAsync();
        var (id, token) = await Hub.CreateDeviceAsync();
        var image = FirmwareCampaignTests.Image(5_000, 11);
        var artifact = await FirmwareCampaignTests.UploadAsync(admin, image, "9.0.0-coap" + id[^6..]);
        var artifactId = artifact["id"]!.GetValue<long>();
        var campaign = await FirmwareCampaignTests.CreateCampaignAsync(admin, new { name = "coap", artifactId, target = new { deviceIds = new[] { id } } });
        await FirmwareCampaignTests.ActAsync(admin, campaign, "start");
        await WaitFor.ConditionAsync(async () => (await FirmwareCampaignTests.CampaignAsync(admin, campaign))["funnel"]!["notified"]!.GetValue<int>() == 1,
            "the device is notified");
        var (_, pending) = await ExternalTool.RunAsync(Client, "-B", "10", Uri($"devices/{id}/firmware/pending?token={token}"));
        Assert.That(pending, Does.Contain($"\"campaignId\":{campaign}"));

        var file = Path.GetTempFileName();
        var (code, output) = await ExternalTool.RunAsync(Client, "-B", "20", "-b", "256", "-o", file, Uri($"devices/{id}/firmware/{artifactId}?token={token}"));
        Assert.That(code, Is.Zero, output);
        var fetched = await File.ReadAllBytesAsync(file);
        File.Delete(file);
        Assert.That(Convert.ToHexStringLower(SHA256.HashData(fetched)), Is.EqualTo(artifact["sha256"]!.GetValue<string>()), "all 20 blocks, in order");

        var (_, other) = await Hub.CreateDeviceAsync() is var (otherId, otherToken)
            ? await ExternalTool.RunAsync(Client, "-B", "10", Uri($"devices/{otherId}/firmware/{artifactId}?token={otherToken}"))
            : default;
        Assert.That(other, Does.Contain("4.04"), "a device not updating to the image cannot fetch it");
    }

    [Test]
    public async Task Discovery_with_a_device_token_lists_that_device_s_resources_and_filters_them_by_query()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        var (code, output) = await ExternalTool.RunAsync(Client, "-B", "10", Uri($".well-known/core?token={token}"));
        Assert.That(code, Is.Zero, output);
        Assert.That(output, Does.Contain($"</devices/{id}/telemetry>;rt=\"iothub.telemetry\";ct=\"50 60\"")
            .And.Contain($"</devices/{id}/state/desired>;rt=\"iothub.state.desired\";ct=50;obs")
            .And.Contain($"</devices/{id}/firmware/progress>"));

        (_, output) = await ExternalTool.RunAsync(Client, "-B", "10", Uri($".well-known/core?token={token}&rt=iothub.commands"));
        Assert.That(output, Does.Contain($"</devices/{id}/commands>;rt=\"iothub.commands\";ct=50;obs").And.Not.Contain("telemetry"));

        // What discovery lists is what the device can reach: the desired-state link, followed with the token, is 2.05.
        (_, output) = await ExternalTool.RunAsync(Client, "-B", "10", Uri($"devices/{id}/state/desired?token={token}"));
        Assert.That(output, Does.Contain("\"version\""));
    }

    [Test]
    public async Task Discovery_without_a_device_s_credentials_is_refused_and_lists_nothing()
    {
        var (id, _) = await Hub.CreateDeviceAsync();
        var (_, output) = await ExternalTool.RunAsync(Client, "-B", "10", Uri(".well-known/core"));
        Assert.That(output, Does.Contain("4.01").And.Contain("?token=").And.Not.Contain("</"));
        (_, output) = await ExternalTool.RunAsync(Client, "-B", "10", Uri(".well-known/core?token=not-a-token"));
        Assert.That(output, Does.Contain("4.01").And.Not.Contain(id));
        (_, output) = await ExternalTool.RunAsync(Client, "-B", "10", "-m", "post", "-e", "x", Uri(".well-known/core"));
        Assert.That(output, Does.Contain("4.05"));
    }

    [Test]
    public async Task A_GET_that_accepts_only_another_format_is_4_06()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        var (_, output) = await ExternalTool.RunAsync(Client, "-B", "10", "-A", "cbor", Uri($"devices/{id}/state/desired?token={token}"));
        Assert.That(output, Does.Contain("4.06"));
    }
}
