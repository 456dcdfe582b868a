// The device's side of an update over HTTP and MQTT (docs/firmware.md, "The device's side"), on both stores: the image
// is downloaded with Range, If-Range and ETag so a device resumes where it stopped, only by a device that is updating to
// it, at most Connectivity:MaxFirmwareDownloads at once; the pending notification and progress reports over HTTP; a
// malformed progress report over MQTT 5 is refused in its PUBACK without dropping the connection.
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using IoTHub.Tests.Infrastructure;
using MQTTnet;
using MQTTnet.Protocol;

namespace IoTHub.Tests.Firmware;

/// <summary>A device notified of an update, and what it was notified of.</summary>
internal sealed record NotifiedDevice(string Id, string Token, long CampaignId, long ArtifactId, byte[] Image, string Sha256)
{
    public string Url => $"/api/v1/devices/{Id}/firmware/{ArtifactId}";

    /// <summary>A new device in a started single-device campaign of a new image, once the hub has notified it.</summary>
    public static async Task<NotifiedDevice> StartAsync(HubHost hub, int size = 10_000, object? timeouts = null)
    {
        using var admin = await hub.AdminAsync();
        var u = Artifacts.Unique();
        var image = FirmwareCampaignTests.Image(size, u.GetHashCode());
        var artifact = await FirmwareCampaignTests.UploadAsync(admin, image, $"7.0.0-{u}");
        var (id, token) = await hub.CreateDeviceAsync($"fw-dl-{u}");
        var campaign = await FirmwareCampaignTests.CreateCampaignAsync(admin, new
        {
            name = "download " + u, artifactId = artifact["id"]!.GetValue<long>(), target = new { deviceIds = new[] { id } }, timeouts,
        });
        await FirmwareCampaignTests.ActAsync(admin, campaign, "start");
        await WaitFor.ConditionAsync(async () => await StateAsync(admin, campaign) == "notified", "the device is notified");
        return new NotifiedDevice(id, token, campaign, artifact["id"]!.GetValue<long>(), image, artifact["sha256"]!.GetValue<string>());
    }

    public static async Task<string> StateAsync(HttpClient admin, long campaign) =>
        (await admin.GetJsonAsync($"/api/v1/firmware-campaigns/{campaign}/devices"))["items"]![0]!["state"]!.GetValue<string>();

    public async Task<JsonNode> RowAsync(HubHost hub)
    {
        using var admin = await hub.AdminAsync();
        return (await admin.GetJsonAsync($"/api/v1/firmware-campaigns/{CampaignId}/devices"))["items"]![0]!;
    }

    public HttpRequestMessage Get(long? from = null, long? to = null, string? ifRange = null)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, Url);
        if (from is not null || to is not null) request.Headers.Range = new RangeHeaderValue(from, to);
        if (ifRange is not null) request.Headers.IfRange = new RangeConditionHeaderValue(new EntityTagHeaderValue(ifRange));
        return request;
    }
}

[TestFixture(Store.Sqlite)]
[TestFixture(Store.Postgres)]
public sealed class FirmwareDownloadTests(Store store) : HubFixture(store)
{
    [Test]
    public async Task A_range_request_gets_206_with_Content_Range_Accept_Ranges_and_the_SHA_256_as_ETag()
    {
        var d = await NotifiedDevice.StartAsync(Hub);
        using var http = Hub.WithBearer(d.Token);
        using var response = await http.SendAsync(d.Get(0, 99));

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.PartialContent));
        Assert.That(response.Content.Headers.ContentRange!.ToString(), Is.EqualTo($"bytes 0-99/{d.Image.Length}"));
        Assert.That(response.Headers.AcceptRanges, Does.Contain("bytes"));
        Assert.That(response.Headers.ETag!.Tag, Is.EqualTo($"\"{d.Sha256}\""));
        Assert.That(response.Headers.ETag.IsWeak, Is.False);
        Assert.That(await response.Content.ReadAsByteArrayAsync(), Is.EqualTo(d.Image[..100]));

        using var rest = await http.SendAsync(d.Get(100, null));
        Assert.That(rest.StatusCode, Is.EqualTo(HttpStatusCode.PartialContent));
        Assert.That(d.Image[..100].Concat(await rest.Content.ReadAsByteArrayAsync()).ToArray(), Is.EqualTo(d.Image), "resumed, the two ranges are the image");
    }

    [Test]
    public async Task A_request_without_a_range_gets_the_whole_image()
    {
        var d = await NotifiedDevice.StartAsync(Hub);
        using var http = Hub.WithBearer(d.Token);
        using var response = await http.SendAsync(d.Get());
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(response.Headers.AcceptRanges, Does.Contain("bytes"));
        Assert.That(response.Content.Headers.ContentType!.MediaType, Is.EqualTo("application/octet-stream"));
        var body = await response.Content.ReadAsByteArrayAsync();
        Assert.That(Convert.ToHexStringLower(SHA256.HashData(body)), Is.EqualTo(d.Sha256));
    }

    [Test]
    public async Task If_Range_with_the_ETag_resumes_and_with_another_ETag_starts_again_with_the_whole_image()
    {
        var d = await NotifiedDevice.StartAsync(Hub);
        using var http = Hub.WithBearer(d.Token);

        using var same = await http.SendAsync(d.Get(4096, 8191, $"\"{d.Sha256}\""));
        Assert.That(same.StatusCode, Is.EqualTo(HttpStatusCode.PartialContent));
        Assert.That(await same.Content.ReadAsByteArrayAsync(), Is.EqualTo(d.Image[4096..8192]));

        // The device holds the first half of another image: the range would splice two images, so it gets this one whole.
        using var other = await http.SendAsync(d.Get(4096, 8191, $"\"{new string('0', 64)}\""));
        Assert.That(other.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(await other.Content.ReadAsByteArrayAsync(), Is.EqualTo(d.Image));
    }

    [Test]
    public async Task A_range_past_the_end_is_416()
    {
        var d = await NotifiedDevice.StartAsync(Hub);
        using var http = Hub.WithBearer(d.Token);
        using var response = await http.SendAsync(d.Get(d.Image.Length, null));
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.RequestedRangeNotSatisfiable));
        Assert.That(response.Content.Headers.ContentRange?.Length, Is.EqualTo(d.Image.Length));
        using var far = await http.SendAsync(d.Get(d.Image.Length * 2L, d.Image.Length * 3L));
        Assert.That(far.StatusCode, Is.EqualTo(HttpStatusCode.RequestedRangeNotSatisfiable));
    }

    [Test]
    public async Task A_device_that_is_not_updating_to_the_image_gets_404_and_a_wrong_token_401()
    {
        var d = await NotifiedDevice.StartAsync(Hub);
        var (other, otherToken) = await Hub.CreateDeviceAsync();
        using (var http = Hub.WithBearer(otherToken))
        using (var response = await http.GetAsync($"/api/v1/devices/{other}/firmware/{d.ArtifactId}"))
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.NotFound), "another device, not in the campaign");
        using (var http = Hub.WithBearer(d.Token))
        using (var response = await http.GetAsync($"/api/v1/devices/{d.Id}/firmware/{d.ArtifactId + 1000}"))
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.NotFound), "an image it is not updating to");
        using (var http = Hub.WithBearer("not-the-token"))
        using (var response = await http.SendAsync(d.Get(0, 99)))
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized));
        using (var http = Hub.WithBearer(otherToken))
        using (var response = await http.SendAsync(d.Get(0, 99)))
            Assert.That((int)response.StatusCode, Is.EqualTo(401).Or.EqualTo(403), "another device's token");
        using (var http = Hub.Anonymous())
        using (var response = await http.SendAsync(d.Get(0, 99)))
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized));
    }

    [Test]
    public async Task Pending_is_the_notification_for_a_notified_device_and_204_for_any_other()
    {
        var d = await NotifiedDevice.StartAsync(Hub);
        using (var http = Hub.WithBearer(d.Token))
        {
            using var response = await http.GetAsync($"/api/v1/devices/{d.Id}/firmware/pending");
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
            Assert.That(response.Content.Headers.ContentType!.MediaType, Is.EqualTo("application/json"));
            var n = await response.ReadJsonAsync();
            Assert.That(n["campaignId"]!.GetValue<long>(), Is.EqualTo(d.CampaignId));
            Assert.That(n["version"]!.GetValue<string>(), Does.StartWith("7.0.0-"));
            Assert.That(n["url"]!.GetValue<string>(), Is.EqualTo(d.Url));
            Assert.That(n["sha256"]!.GetValue<string>(), Is.EqualTo(d.Sha256));
            Assert.That(n["size"]!.GetValue<long>(), Is.EqualTo(d.Image.Length));
            Assert.That(n["attempt"]!.GetValue<int>(), Is.EqualTo(1));
        }
        var (other, otherToken) = await Hub.CreateDeviceAsync();
        using (var http = Hub.WithBearer(otherToken))
        using (var response = await http.GetAsync($"/api/v1/devices/{other}/firmware/pending"))
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.NoContent));
        using (var http = Hub.WithBearer("not-the-token"))
        using (var response = await http.GetAsync($"/api/v1/devices/{d.Id}/firmware/pending"))
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized));
    }

    private static Task<HttpResponseMessage> ProgressAsync(HttpClient http, NotifiedDevice d, string json, string contentType = "application/json") =>
        http.PostAsync($"/api/v1/devices/{d.Id}/firmware/progress", Json.Body(json, contentType));

    [TestCase("not json", "JSON")]
    [TestCase("[]", "object")]
    [TestCase("""{"status": "downloading"}""", "campaignId")]
    [TestCase("""{"campaignId": CAMPAIGN, "status": "exploded"}""", "status")]
    [TestCase("""{"campaignId": CAMPAIGN, "status": "downloading", "bytes": -5}""", "bytes")]
    [TestCase("""{"campaignId": CAMPAIGN, "status": "failed", "reason": "gremlins"}""", "reason")]
    [TestCase("""{"campaignId": CAMPAIGN, "status": "\ud800"}""", "status")]
    [TestCase("""{"campaignId": 999999999, "status": "downloading"}""", "999999999")]
    public async Task A_bad_progress_report_over_HTTP_is_a_400_naming_the_problem_and_changes_nothing(string json, string mentions)
    {
        var d = await NotifiedDevice.StartAsync(Hub);
        using var http = Hub.WithBearer(d.Token);
        var response = await ProgressAsync(http, d, json.Replace("CAMPAIGN", d.CampaignId.ToString()));
        var text = await response.Content.ReadAsStringAsync();
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest), text);
        Assert.That(JsonNode.Parse(text)!["errors"]!["payload"]![0]!.GetValue<string>(), Does.Contain(mentions));
        Assert.That((await d.RowAsync(Hub))["state"]!.GetValue<string>(), Is.EqualTo("notified"));
    }

    [Test]
    public async Task A_progress_report_that_is_not_JSON_by_its_content_type_is_a_415()
    {
        var d = await NotifiedDevice.StartAsync(Hub);
        using var http = Hub.WithBearer(d.Token);
        var response = await ProgressAsync(http, d, $$"""{"campaignId": {{d.CampaignId}}, "status": "downloading"}""", "text/plain");
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.UnsupportedMediaType));
    }

    [Test]
    public async Task A_good_progress_report_over_HTTP_is_a_204_and_moves_the_device_s_row()
    {
        var d = await NotifiedDevice.StartAsync(Hub);
        using var http = Hub.WithBearer(d.Token);
        var response = await ProgressAsync(http, d, $$"""{"campaignId": {{d.CampaignId}}, "status": "downloading", "bytes": 4096}""");
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.NoContent), await response.Content.ReadAsStringAsync());
        var row = await d.RowAsync(Hub);
        Assert.That(row["state"]!.GetValue<string>(), Is.EqualTo("downloading"));
        Assert.That(row["bytes"]!.GetValue<long>(), Is.EqualTo(4096));
        using var admin = await Hub.AdminAsync();
        Assert.That((await FirmwareCampaignTests.CampaignAsync(admin, d.CampaignId))["funnel"]!["downloading"]!.GetValue<int>(), Is.EqualTo(1));

        // A device that refuses the update is done with it: nothing pending, and the image is no longer its to download.
        response = await ProgressAsync(http, d, $$"""{"campaignId": {{d.CampaignId}}, "status": "rejected", "detail": "battery low"}""");
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.NoContent));
        Assert.That((await d.RowAsync(Hub))["state"]!.GetValue<string>(), Is.EqualTo("rejected"));
        Assert.That((await http.GetAsync($"/api/v1/devices/{d.Id}/firmware/pending")).StatusCode, Is.EqualTo(HttpStatusCode.NoContent));
        Assert.That((await http.SendAsync(d.Get(0, 99))).StatusCode, Is.EqualTo(HttpStatusCode.NotFound));
    }

    [Test]
    public async Task A_malformed_progress_report_from_an_MQTT_5_device_gets_PUBACK_0x99_with_the_reason_and_the_connection_stays_up()
    {
        var d = await NotifiedDevice.StartAsync(Hub);
        using var client = await Hub.ConnectAsync(d.Id, d.Token);
        MqttApplicationMessage Progress(string payload) => new MqttApplicationMessageBuilder().WithTopic($"devices/{d.Id}/firmware/progress")
            .WithPayload(payload).WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build();

        foreach (var (payload, mentions) in new[]
                 {
                     ("downloading 50%", "JSON"),
                     ($$"""{"campaignId": {{d.CampaignId}}, "status": "exploded"}""", "status"),
                     ($$"""{"campaignId": {{d.CampaignId}}, "status": "\ud800"}""", "status"),
                     ($$"""{"campaignId": {{d.CampaignId}}, "status": "failed", "detail": "\udc00"}""", "detail"),
                     ("""{"campaignId": 999999999, "status": "downloading"}""", "999999999"),
                 })
        {
            var ack = await client.PublishAsync(Progress(payload));
            Assert.That(ack.ReasonCode, Is.EqualTo(MqttClientPublishReasonCode.PayloadFormatInvalid), payload);
            Assert.That(ack.ReasonString, Does.Contain(mentions), payload);
            Assert.That(client.IsConnected, Is.True);
        }
        Assert.That((await d.RowAsync(Hub))["state"]!.GetValue<string>(), Is.EqualTo("notified"), "nothing changed");

        var good = await client.PublishAsync(Progress($$"""{"campaignId": {{d.CampaignId}}, "status": "downloading", "bytes": 100}"""));
        Assert.That(good.ReasonCode, Is.AnyOf(MqttClientPublishReasonCode.Success, MqttClientPublishReasonCode.NoMatchingSubscribers), "taken");
        Assert.That((await d.RowAsync(Hub))["state"]!.GetValue<string>(), Is.EqualTo("downloading"), "the same connection goes on");
    }
}

/// <summary>A hub that serves one firmware download at a time.</summary>
[TestFixture(Store.Sqlite)]
[TestFixture(Store.Postgres)]
public sealed class FirmwareDownloadLimitTests(Store store) : HubFixture(store)
{
    protected override IDictionary<string, string?> Settings => new Dictionary<string, string?>
    {
        ["Connectivity:MaxFirmwareDownloads"] = "1",
    };

    [Test]
    public async Task While_the_only_download_slot_is_held_another_download_gets_503_with_Retry_After_and_works_once_it_is_free()
    {
        // Larger than what the sockets between hub and test can buffer, so the hub is still writing while nothing is read.
        var d = await NotifiedDevice.StartAsync(Hub, 48 * 1024 * 1024);
        using var slow = Hub.WithBearer(d.Token);
        using var other = Hub.WithBearer(d.Token);

        var held = await slow.SendAsync(d.Get(), HttpCompletionOption.ResponseHeadersRead);
        try
        {
            Assert.That(held.StatusCode, Is.EqualTo(HttpStatusCode.OK));
            using var refused = await other.SendAsync(d.Get(0, 99));
            Assert.That(refused.StatusCode, Is.EqualTo(HttpStatusCode.ServiceUnavailable));
            Assert.That(refused.Headers.RetryAfter?.Delta, Is.GreaterThan(TimeSpan.Zero));
            Assert.That(await refused.Content.ReadAsStringAsync(), Does.Contain("at most 1"));
        }
        finally
        {
            held.Dispose();
        }

        // The hub notices the download went away when its next write fails, and gives the slot back.
        HttpStatusCode status = 0;
        await WaitFor.ConditionAsync(async () =>
        {
            using var again = await other.SendAsync(d.Get(0, 99));
            status = again.StatusCode;
            return status == HttpStatusCode.PartialContent;
        }, "a download works again once the held one is disposed");

        // And a download that completes gives its slot back at once.
        using (var whole = await other.SendAsync(d.Get(0, 1023))) Assert.That(whole.StatusCode, Is.EqualTo(HttpStatusCode.PartialContent));
        using (var next = await other.SendAsync(d.Get(1024, 2047))) Assert.That(next.StatusCode, Is.EqualTo(HttpStatusCode.PartialContent));
    }
}
