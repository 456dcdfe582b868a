// Firmware campaigns end to end, on both stores: real MQTT devices (FirmwareDevice) take the update over real HTTP
// range requests, and the hub moves the campaign wave by wave, halts it when the image is bad, and proves every
// success by the version a device reports after it came back.
using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using IoTHub.Firmware.Campaigns;
using IoTHub.Firmware.Rollout;
using IoTHub.Tests.Infrastructure;
using IoTHub.Tests.Webhooks;

namespace IoTHub.Tests.Firmware;

[TestFixture(Store.Sqlite)]
[TestFixture(Store.Postgres)]
public sealed class FirmwareCampaignTests(Store store) : HubFixture(store)
{
    private WebhookReceiver _receiver = null!;

    protected override IDictionary<string, string?> Settings => new Dictionary<string, string?>
    {
        ["Firmware:TickInterval"] = "00:00:00.100",
        ["Webhooks:AllowPrivateNetworks"] = "true",
        ["Devices:RateLimitPerSecond"] = "1000",
    };

    [OneTimeSetUp]
    public async Task StartReceiver() => _receiver = await WebhookReceiver.StartAsync();

    [OneTimeTearDown]
    public async Task StopReceiver() => await _receiver.DisposeAsync();

    internal static byte[] Image(int size, int seed)
    {
        var bytes = new byte[size];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    internal static async Task<JsonNode> UploadAsync(HttpClient admin, byte[] image, string version, string query = "")
    {
        var content = new ByteArrayContent(image);
        content.Headers.ContentType = new("application/octet-stream");
        var response = await admin.PostAsync($"/api/v1/firmware?version={version}{query}", content);
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Created), await response.Content.ReadAsStringAsync());
        return await response.ReadJsonAsync();
    }

    internal static async Task<List<(string Id, string Token)>> CreateDevicesAsync(HttpClient admin, string tag, int count)
    {
        var list = new List<(string, string)>();
        for (var i = 0; i < count; i++)
        {
            var response = await admin.PostAsJsonAsync("/api/v1/devices", new { id = $"{tag}-{i:000}", tags = new[] { tag } });
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Created));
            var body = await response.ReadJsonAsync();
            list.Add((body["id"]!.GetValue<string>(), body["token"]!.GetValue<string>()));
        }
        return list;
    }

    internal static async Task<long> CreateCampaignAsync(HttpClient admin, object definition)
    {
        var response = await admin.PostAsync("/api/v1/firmware-campaigns", Json.Of(definition));
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Created), await response.Content.ReadAsStringAsync());
        return (await response.ReadJsonAsync())["id"]!.GetValue<long>();
    }

    internal static async Task<JsonNode> CampaignAsync(HttpClient admin, long id) => await admin.GetJsonAsync($"/api/v1/firmware-campaigns/{id}");

    internal static async Task<JsonNode> ActAsync(HttpClient admin, long id, string action)
    {
        var response = await admin.PostAsync($"/api/v1/firmware-campaigns/{id}/{action}", null);
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), await response.Content.ReadAsStringAsync());
        return await response.ReadJsonAsync();
    }

    [Test]
    public async Task A_campaign_over_100_devices_with_a_good_image_completes_wave_by_wave_and_every_device_reports_the_new_version()
    {
        using var admin = await Hub.AdminAsync();
        var tag = "fw-good-" + Guid.NewGuid().ToString("N")[..6];
        var image = Image(20_000, 1);
        var artifact = await UploadAsync(admin, image, "2.0.0", "&hardwareModel=m1");
        Assert.That(artifact["sha256"]!.GetValue<string>(), Is.EqualTo(Convert.ToHexStringLower(SHA256.HashData(image))));
        var ids = await CreateDevicesAsync(admin, tag, 100);
        var devices = new List<FirmwareDevice>();
        foreach (var (id, token) in ids) devices.Add(await FirmwareDevice.ConnectAsync(Hub, id, token));
        try
        {
            var campaign = await CreateCampaignAsync(admin, new
            {
                name = "good", artifactId = artifact["id"]!.GetValue<long>(), target = new { tag },
                waves = new object[] { new { percent = 10 }, new { percent = 50 }, new { percent = 100 } },
            });
            var preview = await (await admin.PostAsync("/api/v1/firmware-campaigns/preview", Json.Of(new
            {
                name = "good", artifactId = artifact["id"]!.GetValue<long>(), target = new { tag },
                waves = new object[] { new { percent = 10 }, new { percent = 50 }, new { percent = 100 } },
            }))).ReadJsonAsync();
            Assert.That(preview["waves"]!.AsArray().Select(w => w!["devices"]!.GetValue<int>()), Is.EqualTo(new[] { 10, 40, 50 }));

            await ActAsync(admin, campaign, "start");
            var seenWaves = new HashSet<int>();
            await WaitFor.ConditionAsync(async () =>
            {
                var c = await CampaignAsync(admin, campaign);
                seenWaves.Add(c["currentWave"]!.GetValue<int>());
                // A later wave never has devices moving while an earlier one is unfinished.
                var waves = c["waveStates"]!.AsArray();
                for (var w = 1; w < waves.Count; w++)
                    if (waves[w]!["inProgress"]!.GetValue<int>() + waves[w]!["succeeded"]!.GetValue<int>() > 0)
                        Assert.That(waves[w - 1]!["succeeded"]!.GetValue<int>(), Is.EqualTo(waves[w - 1]!["devices"]!.GetValue<int>()), $"wave {w} before wave {w + 1}");
                return c["state"]!.GetValue<string>() == "completed";
            }, "the campaign completes", TimeSpan.FromSeconds(90));

            var done = await CampaignAsync(admin, campaign);
            Assert.That(done["funnel"]!["succeeded"]!.GetValue<int>(), Is.EqualTo(100));
            Assert.That(seenWaves, Does.Contain(1).And.Contain(3));
            Assert.That(devices.Select(d => d.Version), Is.All.EqualTo("2.0.0"));
            var history = await admin.GetJsonAsync($"/api/v1/devices/{ids[0].Id}/firmware");
            Assert.That(history["version"]!.GetValue<string>(), Is.EqualTo("2.0.0"));
            Assert.That(history["history"]![0]!["state"]!.GetValue<string>(), Is.EqualTo("succeeded"));
        }
        finally
        {
            foreach (var d in devices) await d.DisposeAsync();
        }
    }

    [Test]
    public async Task A_bad_image_failing_on_30_percent_pauses_the_campaign_after_the_first_wave_raises_an_alarm_and_sends_one_webhook()
    {
        using var admin = await Hub.AdminAsync();
        var hook = await admin.PostAsJsonAsync("/api/v1/webhooks", new { url = _receiver.Url("fw-halt"), eventTypes = new[] { "firmware.campaign_halted" } });
        Assert.That(hook.StatusCode, Is.EqualTo(HttpStatusCode.Created), await hook.Content.ReadAsStringAsync());
        var hookId = (await hook.ReadJsonAsync())["webhook"]!["id"]!.GetValue<long>();
        try
        {
            var tag = "fw-bad-" + Guid.NewGuid().ToString("N")[..6];
            var artifact = await UploadAsync(admin, Image(8_000, 2), "3.0.0-" + tag);
            var ids = await CreateDevicesAsync(admin, tag, 100);
            var waves = new object[] { new { percent = 10, successThreshold = 90 }, new { percent = 100 } };
            var campaign = await CreateCampaignAsync(admin, new
            {
                name = "bad", artifactId = artifact["id"]!.GetValue<long>(), target = new { tag }, waves,
                failureThreshold = new { percent = 20, minFinished = 5, action = "pause" },
            });
            // 30 % of the fleet fails, 3 of them in the first wave (the hub's wave plan is deterministic for a campaign).
            var plan = WavePlan.Assign(campaign, ids.Select(d => d.Id).ToList(), null, [new CampaignWave(10, 90, 0, false), new CampaignWave(100, 100, 0, false)]);
            var first = plan.Where(p => p.Wave == 1).Select(p => p.DeviceId).ToList();
            var failing = first.Take(3).Concat(plan.Where(p => p.Wave == 2).Select(p => p.DeviceId).Take(27)).ToHashSet();
            var devices = new List<FirmwareDevice>();
            foreach (var (id, token) in ids)
                devices.Add(await FirmwareDevice.ConnectAsync(Hub, id, token, behaviour: failing.Contains(id) ? FirmwareBehaviour.FailInstall : FirmwareBehaviour.Good));
            try
            {
                await ActAsync(admin, campaign, "start");
                await WaitFor.ConditionAsync(async () => (await CampaignAsync(admin, campaign))["state"]!.GetValue<string>() == "paused", "the campaign pauses itself",
                    TimeSpan.FromSeconds(60));
                // Let anything in flight land, then check that nothing beyond the first wave was touched.
                await WaitFor.ConditionAsync(async () => (await CampaignAsync(admin, campaign))["funnel"]!["rebooting"]!.GetValue<int>() == 0, "updates in flight finish");
                var c = await CampaignAsync(admin, campaign);
                Assert.That(c["haltReason"]!.GetValue<string>(), Does.Contain("failure threshold").Or.Contain("success threshold"));
                Assert.That(c["waveStates"]![1]!["inProgress"]!.GetValue<int>() + c["waveStates"]![1]!["succeeded"]!.GetValue<int>() + c["waveStates"]![1]!["failed"]!.GetValue<int>(),
                    Is.Zero, "no device of the second wave was touched");
                Assert.That(devices.Where(d => !first.Contains(d.Id)).Sum(d => d.Notifications.Count), Is.Zero, "no device outside the first wave was notified");
                Assert.That(c["funnel"]!["failed"]!.GetValue<int>(), Is.EqualTo(3));

                // The alarm is raised just after the campaign's state commits.
                await WaitFor.ConditionAsync(async () => (await admin.GetJsonAsync("/api/v1/alarms?state=active"))["items"]!.AsArray()
                    .Any(a => a!["metric"]?.GetValue<string>() == "firmware" && a["rule"]!.ToJsonString().Contains("bad")), "the halt raises an alarm");
                var alarms = await admin.GetJsonAsync("/api/v1/alarms?state=active");
                Assert.That(alarms["items"]!.AsArray().Count(a => a!["metric"]?.GetValue<string>() == "firmware" && a["rule"]!.ToJsonString().Contains("bad")), Is.EqualTo(1),
                    alarms.ToJsonString());
                var received = await _receiver.WaitForAsync(r => r.Any(x => x.Path == "/fw-halt"), what: "the halt webhook");
                await Task.Delay(500); // a second one would have been sent by now
                var halts = _receiver.At("fw-halt").Where(w => w.Data["campaignId"]!.GetValue<long>() == campaign).ToList();
                Assert.That(halts, Has.Count.EqualTo(1));
                Assert.That(halts[0].Type, Is.EqualTo("firmware.campaign_halted"));

                // Aborting clears the alarm.
                await ActAsync(admin, campaign, "abort");
                await WaitFor.ConditionAsync(async () => !(await admin.GetJsonAsync("/api/v1/alarms?state=active"))["items"]!.AsArray()
                    .Any(a => a!["metric"]?.GetValue<string>() == "firmware" && a["rule"]!.ToJsonString().Contains("bad")), "aborting clears the alarm");
            }
            finally
            {
                foreach (var d in devices) await d.DisposeAsync();
            }
        }
        finally
        {
            await admin.DeleteAsync($"/api/v1/webhooks/{hookId}");
        }
    }

    [TestCase(FirmwareBehaviour.RollBack, "failed", "rolled back")]
    [TestCase(FirmwareBehaviour.Corrupt, "failed", "checksum")]
    [TestCase(FirmwareBehaviour.PowerLoss, "succeeded", null)]
    public async Task A_device_s_update_ends_as_its_behaviour_says(FirmwareBehaviour behaviour, string state, string? reason)
    {
        using var admin = await Hub.AdminAsync();
        var tag = "fw-one-" + Guid.NewGuid().ToString("N")[..6];
        var image = Image(10_000, 3);
        var artifact = await UploadAsync(admin, image, "4.0.0-" + tag);
        var (id, token) = (await CreateDevicesAsync(admin, tag, 1))[0];
        await using var device = await FirmwareDevice.ConnectAsync(Hub, id, token, behaviour: behaviour);
        var campaign = await CreateCampaignAsync(admin, new { name = behaviour.ToString(), artifactId = artifact["id"]!.GetValue<long>(), target = new { deviceIds = new[] { id } } });
        await ActAsync(admin, campaign, "start");
        JsonNode row = null!;
        await WaitFor.ConditionAsync(async () =>
        {
            row = (await admin.GetJsonAsync($"/api/v1/firmware-campaigns/{campaign}/devices"))["items"]![0]!;
            return row["state"]!.GetValue<string>() is "succeeded" or "failed" or "timed-out";
        }, "the update finishes", TimeSpan.FromSeconds(30));
        Assert.That(row["state"]!.GetValue<string>(), Is.EqualTo(state), row.ToJsonString());
        Assert.That(row["reason"]?.GetValue<string>(), Is.EqualTo(reason));
        if (behaviour == FirmwareBehaviour.PowerLoss)
        {
            Assert.That(device.Connections, Is.GreaterThanOrEqualTo(3), "connected, lost power, rebooted");
            Assert.That(device.RangesRequested, Does.Contain("4096-8191"), "the download resumed after the first range instead of starting again");
            Assert.That(device.RangesRequested.Count(r => r.StartsWith("0-", StringComparison.Ordinal)), Is.EqualTo(1));
        }
    }
}
