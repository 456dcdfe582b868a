// The firmware pages against the real hub: an image uploaded through the page (streamed by the browser to
// POST /api/v1/firmware with the cookie and the antiforgery token) shows the size and SHA-256 of the file; the wizard
// previews the waves of a tag and starts the campaign; the campaign page's funnel follows a device over MQTT through
// download, install, reboot and the version report that proves it; pause; an image in use cannot be deleted; a
// failing device halts a campaign by itself and the page says why; viewers read only; every page fits 375 px.
using System.Collections.Concurrent;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using IoTHub.Tests.Infrastructure;
using Microsoft.Playwright;
using MQTTnet;
using MQTTnet.Protocol;
using static Microsoft.Playwright.Assertions;

namespace IoTHub.Tests.Web;

[TestFixture(Store.Sqlite)]
public sealed class FirmwarePagesTests(Store store) : BrowserFixture(store)
{
    private static string Unique() => Guid.NewGuid().ToString("N")[..8];

    /// <summary>A version no other test uses (the same version for the same model and profile is a 409).</summary>
    private static string NewVersion() => $"{Random.Shared.Next(2, 99)}.{Random.Shared.Next(0, 999)}.{Random.Shared.Next(0, 9999)}";

    private static ILocator ArtifactRow(IPage page, string version) =>
        page.Locator("tr[data-artifact]").Filter(new() { Has = page.GetByTestId("artifact-version").GetByText(version, new() { Exact = true }) });

    /// <summary>Uploads an image over the API (as a script would) and returns its id.</summary>
    private async Task<long> UploadAsync(string version, byte[] image, string? hardwareModel = null)
    {
        using var admin = await Hub.AdminAsync();
        var content = new ByteArrayContent(image);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        var url = $"/api/v1/firmware?version={Uri.EscapeDataString(version)}" + (hardwareModel is null ? "" : $"&hardwareModel={hardwareModel}");
        var response = await admin.PostAsync(url, content);
        Assert.That((int)response.StatusCode, Is.EqualTo(201), await response.Content.ReadAsStringAsync());
        return (await response.ReadJsonAsync())["id"]!.GetValue<long>();
    }

    /// <summary>Devices with a tag of their own, connected over MQTT, each having reported version 1.0.0.</summary>
    private async Task<(string Tag, List<FirmwareDevice> Devices)> TaggedDevicesAsync(int count)
    {
        var tag = "fw-" + Unique();
        using var admin = await Hub.AdminAsync();
        var devices = new List<FirmwareDevice>();
        for (var i = 0; i < count; i++)
        {
            var id = $"{tag}-{i}";
            var created = await admin.PostAsJsonAsync("/api/v1/devices", new { id, tags = new[] { tag } });
            Assert.That((int)created.StatusCode, Is.EqualTo(201), await created.Content.ReadAsStringAsync());
            var device = await FirmwareDevice.ConnectAsync(Hub, id, (await created.ReadJsonAsync())["token"]!.GetValue<string>());
            await device.ReportVersionAsync("1.0.0");
            devices.Add(device);
        }
        // The reports are stored asynchronously: wait until the hub has them all.
        foreach (var d in devices)
            await WaitFor.ConditionAsync(async () => (await admin.GetAsync($"/api/v1/devices/{d.Id}/firmware")) is { IsSuccessStatusCode: true } r
                && (await r.ReadJsonAsync())["version"]?.GetValue<string>() == "1.0.0", $"{d.Id} reports 1.0.0");
        return (tag, devices);
    }

    [Test]
    public async Task An_operator_uploads_an_image_through_the_page_and_sees_its_size_and_sha256()
    {
        var image = RandomNumberGenerator.GetBytes(2 * 1024 * 1024 + 12_345);
        var sha = Convert.ToHexStringLower(SHA256.HashData(image));
        var file = Path.Combine(Path.GetTempPath(), $"fw-{Unique()}.bin");
        await File.WriteAllBytesAsync(file, image);
        var version = NewVersion();
        var model = "board-" + Unique();
        try
        {
            var page = await SignedInAsync();
            await page.GetByRole(AriaRole.Navigation, new() { Name = "Main" }).GetByRole(AriaRole.Link, new() { Name = "Firmware" }).ClickAsync();
            await ExpectAddressAsync(page, "/firmware");
            await WaitForCircuitAsync(page);

            await page.GetByLabel("Image file").SetInputFilesAsync(file);
            await Expect(page.GetByTestId("chosen-file")).ToContainTextAsync("2.01 MiB");
            await page.GetByTestId("version").FillAsync(version);
            await page.GetByTestId("hardware-model").FillAsync(model);
            await page.GetByTestId("notes").FillAsync("Uploaded by the browser test");
            // At 1 MiB/s the 2 MiB go up in about two seconds: long enough to see the bar move.
            var cdp = await page.Context.NewCDPSessionAsync(page);
            await cdp.SendAsync("Network.enable");
            await cdp.SendAsync("Network.emulateNetworkConditions", new Dictionary<string, object>
            {
                ["offline"] = false, ["latency"] = 0, ["downloadThroughput"] = -1, ["uploadThroughput"] = 1024 * 1024,
            });
            await page.GetByRole(AriaRole.Button, new() { Name = "Upload", Exact = true }).ClickAsync();
            // Read in the page in one step: the bar goes when the upload ends, and a locator read between a count and the
            // attribute would wait its whole timeout for an element that is gone.
            await WaitFor.ConditionAsync(async () => await page.EvaluateAsync<double>(
                    "() => document.querySelector('[data-testid=upload-progress] progress')?.value ?? -1") is > 0 and < 100,
                "the progress bar shows part of the upload");
            await Expect(page.GetByRole(AriaRole.Button, new() { Name = "Cancel upload" })).ToBeVisibleAsync();

            var row = ArtifactRow(page, version);
            await Expect(row).ToBeVisibleAsync(new() { Timeout = 30_000 });
            await Expect(page.GetByTestId("upload-error")).ToHaveCountAsync(0);
            await Expect(row.GetByTestId("artifact-size")).ToHaveTextAsync("2.01 MiB");
            Assert.That(await row.GetByTestId("artifact-size").GetAttributeAsync("data-bytes"), Is.EqualTo(image.Length.ToString(System.Globalization.CultureInfo.InvariantCulture)));
            Assert.That(await row.GetByTestId("artifact-sha256").GetAttributeAsync("title"), Is.EqualTo(sha), "the full SHA-256 on hover");
            await Expect(row.GetByTestId("artifact-sha256")).ToHaveTextAsync(sha[..12] + "…");
            await Expect(row.GetByTestId("artifact-for")).ToContainTextAsync(model);
            await Expect(row.GetByTestId("artifact-signed")).ToHaveTextAsync("unsigned");
            await Expect(page.GetByTestId("upload-progress")).ToHaveCountAsync(0);
            await ScreenshotAsync(page, "firmware-uploaded");

            await row.GetByRole(AriaRole.Button, new() { Name = "Copy" }).ClickAsync();
            // The page writes the clipboard asynchronously after the click: read it until it is there (seen empty once in CI).
            var copied = "";
            for (var i = 0; i < 50 && copied != sha; i++)
            {
                copied = await page.EvaluateAsync<string>("() => navigator.clipboard.readText()");
                if (copied != sha) await page.WaitForTimeoutAsync(100);
            }
            Assert.That(copied, Is.EqualTo(sha));

            // What the page uploaded is the file, byte for byte, as the API says.
            using var admin = await Hub.AdminAsync();
            var listed = (await admin.GetJsonAsync("/api/v1/firmware"))["items"]!.AsArray()
                .Single(a => a!["version"]!.GetValue<string>() == version && a["hardwareModel"]?.GetValue<string>() == model)!;
            Assert.That(listed["sha256"]!.GetValue<string>(), Is.EqualTo(sha));
            Assert.That(listed["size"]!.GetValue<long>(), Is.EqualTo(image.Length));
            Assert.That(listed["notes"]!.GetValue<string>(), Is.EqualTo("Uploaded by the browser test"));
            Assert.That(listed["createdBy"]?.GetValue<string>(), Is.EqualTo("admin"));
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Test]
    public async Task An_upload_can_be_canceled_and_an_image_over_kestrels_default_body_limit_goes_up_whole()
    {
        // 40 MiB: more than Kestrel's default 30 MB request body, which the upload endpoint raises to Firmware:MaxArtifactBytes.
        var image = RandomNumberGenerator.GetBytes(40 * 1024 * 1024);
        var sha = Convert.ToHexStringLower(SHA256.HashData(image));
        var file = Path.Combine(Path.GetTempPath(), $"fw-{Unique()}.bin");
        await File.WriteAllBytesAsync(file, image);
        var version = NewVersion();
        try
        {
            var page = await SignedInAsync();
            await page.GotoAsync("/firmware");
            await WaitForCircuitAsync(page);
            await page.GetByLabel("Image file").SetInputFilesAsync(file);
            await page.GetByTestId("version").FillAsync(version);

            var cdp = await page.Context.NewCDPSessionAsync(page);
            await cdp.SendAsync("Network.enable");
            await cdp.SendAsync("Network.emulateNetworkConditions", new Dictionary<string, object>
            {
                ["offline"] = false, ["latency"] = 0, ["downloadThroughput"] = -1, ["uploadThroughput"] = 1024 * 1024,
            });
            await page.GetByRole(AriaRole.Button, new() { Name = "Upload", Exact = true }).ClickAsync();
            await Expect(page.GetByTestId("upload-progress")).ToBeVisibleAsync();
            await page.GetByRole(AriaRole.Button, new() { Name = "Cancel upload" }).ClickAsync();
            await Expect(page.GetByTestId("upload-error")).ToContainTextAsync("Upload canceled");
            await Expect(ArtifactRow(page, version)).ToHaveCountAsync(0);

            await cdp.SendAsync("Network.emulateNetworkConditions", new Dictionary<string, object>
            {
                ["offline"] = false, ["latency"] = 0, ["downloadThroughput"] = -1, ["uploadThroughput"] = -1,
            });
            await page.GetByRole(AriaRole.Button, new() { Name = "Upload", Exact = true }).ClickAsync();
            var row = ArtifactRow(page, version);
            await Expect(row).ToBeVisibleAsync(new() { Timeout = 60_000 });
            await Expect(row.GetByTestId("artifact-size")).ToHaveTextAsync("40 MiB");
            Assert.That(await row.GetByTestId("artifact-sha256").GetAttributeAsync("title"), Is.EqualTo(sha));
            await Expect(page.GetByTestId("upload-error")).ToHaveCountAsync(0);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Test]
    public async Task The_wizard_previews_the_waves_starts_the_campaign_and_the_funnel_follows_a_device_until_paused()
    {
        var image = RandomNumberGenerator.GetBytes(64 * 1024 + 7);
        var version = NewVersion();
        var artifactId = await UploadAsync(version, image);
        var (tag, devices) = await TaggedDevicesAsync(3);
        try
        {
            var page = await SignedInAsync();
            await page.GotoAsync($"/firmware/campaigns/new?artifact={artifactId}");
            await WaitForCircuitAsync(page);
            await Expect(page.GetByTestId("artifact")).ToHaveValueAsync(artifactId.ToString(System.Globalization.CultureInfo.InvariantCulture));
            var name = "Browser test " + version;
            await page.GetByTestId("name").FillAsync(name);
            await page.GetByRole(AriaRole.Button, new() { Name = "Canary 1 device → 10 % → 50 % → 100 %" }).ClickAsync();
            await page.GetByTestId("target-tag").FillAsync(tag);
            await page.GetByTestId("target-tag").PressAsync("Tab");

            // The preview: the three tagged devices, one of them alone in the canary wave, every one in some wave.
            await Expect(page.GetByTestId("preview-total")).ToContainTextAsync("3 devices to update");
            await Expect(page.GetByTestId("preview-wave")).ToHaveCountAsync(4);
            await Expect(page.GetByTestId("preview-wave").First).ToContainTextAsync("Canary");
            var counts = (await page.GetByTestId("preview-wave-devices").AllInnerTextsAsync()).Select(int.Parse).ToList();
            Assert.That(counts[0], Is.EqualTo(1), "the canary wave");
            Assert.That(counts.Sum(), Is.EqualTo(3), "every device in exactly one wave");
            await ScreenshotAsync(page, "firmware-wizard-preview");

            await page.GetByRole(AriaRole.Button, new() { Name = "Create and start" }).ClickAsync();
            await ExpectAddressAsync(page, "/firmware/campaigns/", numberedPage: true);
            await WaitForCircuitAsync(page);
            await Expect(page.GetByTestId("campaign-state")).ToHaveTextAsync("running");
            await Expect(page.Locator("h1")).ToHaveTextAsync(name);
            await Expect(page.GetByTestId("wave")).ToHaveCountAsync(4);

            // The canary (whichever device the shuffle put there) is notified on its retained topic.
            var canary = await FirmwareDevice.FirstNotifiedAsync(devices);
            var note = canary.Notifications.Last();
            var campaignId = note["campaignId"]!.GetValue<long>();
            Assert.That(page.Url, Does.EndWith($"/firmware/campaigns/{campaignId}"));
            Assert.That(note["version"]!.GetValue<string>(), Is.EqualTo(version));
            await Expect(page.GetByTestId("funnel-notified")).ToHaveAttributeAsync("data-count", "1");
            await Expect(page.GetByTestId("funnel-queued")).ToHaveAttributeAsync("data-count", "2");

            var downloaded = await canary.DownloadAsync(Hub, note["url"]!.GetValue<string>());
            Assert.That(Convert.ToHexStringLower(SHA256.HashData(downloaded)), Is.EqualTo(note["sha256"]!.GetValue<string>()));

            // Each report moves the live funnel, without a reload.
            await canary.ProgressAsync(campaignId, "downloading", 4096);
            await Expect(page.GetByTestId("funnel-downloading")).ToHaveAttributeAsync("data-count", "1");
            await Expect(page.GetByTestId("funnel-notified")).ToHaveAttributeAsync("data-count", "0");
            await Expect(page.Locator($"[data-testid=campaign-device][data-device='{canary.Id}']")).ToHaveAttributeAsync("data-state", "downloading");
            await canary.ProgressAsync(campaignId, "verifying", image.Length);
            await canary.ProgressAsync(campaignId, "installing", image.Length);
            await Expect(page.GetByTestId("funnel-installing")).ToHaveAttributeAsync("data-count", "1");
            await canary.ProgressAsync(campaignId, "rebooting", image.Length);
            await Expect(page.GetByTestId("funnel-rebooting")).ToHaveAttributeAsync("data-count", "1");
            await ScreenshotAsync(page, "firmware-campaign-rebooting");

            // Succeeded only once it is back with the new version.
            await canary.ReconnectAsync(Hub);
            await canary.ReportVersionAsync(version);
            await Expect(page.GetByTestId("funnel-succeeded")).ToHaveAttributeAsync("data-count", "1", new() { Timeout = 15_000 });
            await Expect(page.GetByTestId("wave").First.GetByTestId("wave-succeeded")).ToHaveTextAsync("1");
            await ScreenshotAsync(page, "firmware-campaign-canary-succeeded");

            await page.GetByRole(AriaRole.Button, new() { Name = "Pause" }).ClickAsync();
            await Expect(page.GetByTestId("campaign-state")).ToHaveTextAsync("paused");
            await Expect(page.GetByRole(AriaRole.Button, new() { Name = "Resume" })).ToBeVisibleAsync();
            await Expect(page.GetByRole(AriaRole.Button, new() { Name = "Pause" })).ToHaveCountAsync(0);
            using var admin = await Hub.AdminAsync();
            Assert.That((await admin.GetJsonAsync($"/api/v1/firmware-campaigns/{campaignId}"))["state"]!.GetValue<string>(), Is.EqualTo("paused"));

            // The list shows it paused too; the image it uses cannot be deleted, and the page says why.
            await page.GotoAsync("/firmware/campaigns");
            await WaitForCircuitAsync(page);
            await Expect(page.Locator($"tr[data-campaign='{campaignId}']").GetByTestId("campaign-state")).ToHaveTextAsync("paused");
            await page.GotoAsync("/firmware");
            await WaitForCircuitAsync(page);
            await ArtifactRow(page, version).GetByRole(AriaRole.Button, new() { Name = "Delete" }).ClickAsync();
            await page.Locator(".rz-dialog").GetByRole(AriaRole.Button, new() { Name = "Delete", Exact = true }).ClickAsync();
            await Expect(page.GetByTestId("delete-error")).ToContainTextAsync("still used");
            await Expect(ArtifactRow(page, version)).ToBeVisibleAsync();

            // The device page shows the new version and the update.
            await page.GotoAsync($"/devices/{canary.Id}");
            await WaitForCircuitAsync(page);
            await Expect(page.GetByTestId("firmware-version")).ToHaveTextAsync(version);
            await Expect(page.GetByTestId("firmware-update").First).ToContainTextAsync(name);
            await Expect(page.GetByTestId("update-state").First).ToHaveTextAsync("succeeded");
        }
        finally
        {
            foreach (var d in devices) await d.DisposeAsync();
        }
    }

    [Test]
    public async Task A_failing_device_halts_the_campaign_and_the_page_says_why()
    {
        var version = NewVersion();
        var artifactId = await UploadAsync(version, RandomNumberGenerator.GetBytes(4096));
        var (tag, devices) = await TaggedDevicesAsync(1);
        try
        {
            using var admin = await Hub.AdminAsync();
            var created = await admin.PostAsJsonAsync("/api/v1/firmware-campaigns", new
            {
                name = "Halts " + version, artifactId, target = new { tag },
                waves = new[] { new { percent = 100, successThreshold = 100 } },
                failureThreshold = new { percent = 0, minFinished = 1, action = "pause" },
            });
            Assert.That((int)created.StatusCode, Is.EqualTo(201), await created.Content.ReadAsStringAsync());
            var id = (await created.ReadJsonAsync())["id"]!.GetValue<long>();

            var page = await SignedInAsync();
            await page.GotoAsync($"/firmware/campaigns/{id}");
            await WaitForCircuitAsync(page);
            await Expect(page.GetByTestId("campaign-state")).ToHaveTextAsync("draft");
            await Expect(page.GetByTestId("waves-draft")).ToBeVisibleAsync();
            await page.GetByRole(AriaRole.Button, new() { Name = "Start" }).ClickAsync();
            await Expect(page.GetByTestId("campaign-state")).ToHaveTextAsync("running");

            var device = await FirmwareDevice.FirstNotifiedAsync(devices);
            await device.ProgressAsync(id, "downloading", 1024);
            await device.ProgressAsync(id, "failed", 2048, reason: "checksum", detail: "SHA-256 mismatch");

            await Expect(page.GetByTestId("campaign-state")).ToHaveTextAsync("paused", new() { Timeout = 15_000 });
            await Expect(page.GetByTestId("halt-reason")).ToBeVisibleAsync();
            await Expect(page.GetByTestId("funnel-failed")).ToHaveAttributeAsync("data-count", "1");
            await page.GetByTestId("device-filter-state").SelectOptionAsync("failed");
            var row = page.Locator($"[data-testid=campaign-device][data-device='{device.Id}']");
            await Expect(row).ToHaveAttributeAsync("data-state", "failed");
            await Expect(row.GetByTestId("device-reason")).ToContainTextAsync("checksum");
            await page.GetByTestId("device-filter-state").SelectOptionAsync("succeeded");
            await Expect(page.GetByTestId("devices-empty")).ToBeVisibleAsync();
            await ScreenshotAsync(page, "firmware-campaign-halted");

            await page.GetByRole(AriaRole.Button, new() { Name = "Abort" }).ClickAsync();
            await page.Locator(".rz-dialog").GetByRole(AriaRole.Button, new() { Name = "Abort", Exact = true }).ClickAsync();
            await Expect(page.GetByTestId("campaign-state")).ToHaveTextAsync("aborted");
            await Expect(page.GetByRole(AriaRole.Button, new() { Name = "Resume" })).ToHaveCountAsync(0);
        }
        finally
        {
            foreach (var d in devices) await d.DisposeAsync();
        }
    }

    [Test]
    public async Task A_viewer_reads_the_firmware_pages_but_gets_no_upload_form_buttons_or_wizard()
    {
        using var admin = await Hub.AdminAsync();
        var name = "view" + Unique();
        var user = await admin.PostAsJsonAsync("/api/v1/users", new { username = name, password = "only-looking-1", role = "viewer" });
        Assert.That(user.IsSuccessStatusCode, Is.True, await user.Content.ReadAsStringAsync());
        var version = NewVersion();
        await UploadAsync(version, RandomNumberGenerator.GetBytes(1000));

        var page = await SignedInAsync(name, "only-looking-1");
        await page.GetByRole(AriaRole.Navigation, new() { Name = "Main" }).GetByRole(AriaRole.Link, new() { Name = "Firmware" }).ClickAsync();
        await ExpectAddressAsync(page, "/firmware");
        await WaitForCircuitAsync(page);
        await Expect(ArtifactRow(page, version)).ToBeVisibleAsync();
        await Expect(page.GetByLabel("Image file")).ToHaveCountAsync(0);
        await Expect(ArtifactRow(page, version).GetByRole(AriaRole.Button, new() { Name = "Delete" })).ToHaveCountAsync(0);
        await Expect(page.GetByRole(AriaRole.Link, new() { Name = "New campaign" })).ToHaveCountAsync(0);

        await page.GotoAsync("/firmware/campaigns/new");
        await ExpectLoginAsync(page);
    }

    [Test]
    public async Task The_firmware_pages_fit_375_px_without_sideways_scrolling()
    {
        var version = NewVersion();
        var artifactId = await UploadAsync(version, RandomNumberGenerator.GetBytes(300_000), hardwareModel: "a-rather-long-hardware-model-name-" + Unique());
        var (tag, devices) = await TaggedDevicesAsync(2);
        try
        {
            using var admin = await Hub.AdminAsync();
            var created = await admin.PostAsJsonAsync("/api/v1/firmware-campaigns", new
            {
                name = "A campaign with a long name to see how it wraps on a phone " + version, artifactId,
                target = new { tag, deviceIds = devices.Select(d => d.Id).ToArray() }, canaryCount = 1,
                waves = new object[] { new { percent = 50, successThreshold = 90, soakSeconds = 600, requireApproval = true }, new { percent = 100, successThreshold = 95 } },
            });
            Assert.That((int)created.StatusCode, Is.EqualTo(201), await created.Content.ReadAsStringAsync());
            var id = (await created.ReadJsonAsync())["id"]!.GetValue<long>();
            Assert.That((await admin.PostAsync($"/api/v1/firmware-campaigns/{id}/start", null)).IsSuccessStatusCode, Is.True);

            var page = await SignedInAsync(width: 375);
            foreach (var (url, ready) in new[]
                     {
                         ("/firmware", "artifacts"), ("/firmware/campaigns", "campaigns"), ($"/firmware/campaigns/{id}", "waves"),
                         ($"/firmware/campaigns/new?artifact={artifactId}", "artifact"), ($"/devices/{devices[0].Id}", "firmware-version"),
                     })
            {
                await page.GotoAsync(url);
                await WaitForCircuitAsync(page);
                await Expect(page.GetByTestId(ready).First).ToBeVisibleAsync();
                await AssertNoSidewaysScrollAsync(page, $"{url} at 375 px");
                await ScreenshotAsync(page, "firmware-375px" + url.Replace('/', '-').Replace('?', '-').Replace('=', '-'));
            }
            // The wizard with a preview shown and every section open.
            await page.GotoAsync($"/firmware/campaigns/new?artifact={artifactId}");
            await WaitForCircuitAsync(page);
            await page.GetByTestId("target-tag").FillAsync(tag);
            await page.GetByTestId("target-tag").PressAsync("Tab");
            await Expect(page.GetByTestId("preview-total")).ToContainTextAsync("2 devices");
            await page.GetByTestId("window-on").CheckAsync();
            await page.GetByText("Timeouts and retries").ClickAsync();
            await AssertNoSidewaysScrollAsync(page, "the wizard with its preview at 375 px");

            // What the module's validator says about the definition is shown, and nothing is saved.
            await page.GetByTestId("wave-percent").First.FillAsync("100");
            await page.GetByTestId("wave-percent").First.PressAsync("Tab");
            await page.GetByRole(AriaRole.Button, new() { Name = "Save as draft" }).ClickAsync();
            await Expect(page.GetByTestId("wizard-errors")).ToContainTextAsync("must increase");
            Assert.That(page.Url, Does.Contain("/firmware/campaigns/new"));
            await AssertNoSidewaysScrollAsync(page, "the wizard's errors at 375 px");
        }
        finally
        {
            foreach (var d in devices) await d.DisposeAsync();
        }
    }

    /// <summary>A device taking part in firmware updates over MQTT (docs/firmware.md, "The device's side").</summary>
    private sealed class FirmwareDevice : IAsyncDisposable
    {
        private IMqttClient _client;
        private readonly string _token;

        public string Id { get; }

        /// <summary>The non-empty notifications received on devices/{id}/firmware, oldest first.</summary>
        public ConcurrentQueue<JsonNode> Notifications { get; } = new();

        private FirmwareDevice(string id, string token, IMqttClient client)
        {
            Id = id;
            _token = token;
            _client = client;
        }

        public static async Task<FirmwareDevice> ConnectAsync(HubHost hub, string id, string token)
        {
            var device = new FirmwareDevice(id, token, null!);
            device._client = await device.ConnectClientAsync(hub);
            return device;
        }

        private async Task<IMqttClient> ConnectClientAsync(HubHost hub)
        {
            var client = new MqttClientFactory().CreateMqttClient();
            client.ApplicationMessageReceivedAsync += e =>
            {
                if (e.ApplicationMessage.Payload.Length > 0 && e.ApplicationMessage.Topic == $"devices/{Id}/firmware")
                    Notifications.Enqueue(JsonNode.Parse(Encoding.UTF8.GetString(e.ApplicationMessage.Payload))!);
                return Task.CompletedTask;
            };
            var connected = await client.ConnectAsync(hub.MqttOptions(Id, _token));
            Assert.That(connected.ResultCode, Is.EqualTo(MqttClientConnectResultCode.Success));
            await client.SubscribeAsync($"devices/{Id}/firmware", MqttQualityOfServiceLevel.AtLeastOnce);
            return client;
        }

        /// <summary>The first of the devices to be notified (a campaign's first wave is picked by a shuffle).</summary>
        public static async Task<FirmwareDevice> FirstNotifiedAsync(IReadOnlyList<FirmwareDevice> devices)
        {
            await WaitFor.ConditionAsync(() => devices.Any(d => !d.Notifications.IsEmpty), "a device is notified", TimeSpan.FromSeconds(15));
            return devices.First(d => !d.Notifications.IsEmpty);
        }

        public Task ReportVersionAsync(string version) =>
            PublishAsync($"devices/{Id}/state/reported", new JsonObject { ["firmwareVersion"] = version });

        public Task ProgressAsync(long campaignId, string status, long bytes, string? reason = null, string? detail = null)
        {
            var body = new JsonObject { ["campaignId"] = campaignId, ["status"] = status, ["bytes"] = bytes };
            if (reason is not null) body["reason"] = reason;
            if (detail is not null) body["detail"] = detail;
            return PublishAsync($"devices/{Id}/firmware/progress", body);
        }

        private async Task PublishAsync(string topic, JsonNode body)
        {
            var result = await _client.PublishAsync(new MqttApplicationMessageBuilder().WithTopic(topic).WithPayload(body.ToJsonString())
                .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
            Assert.That(result.IsSuccess, Is.True, $"{topic}: {result.ReasonCode} {result.ReasonString}");
        }

        public async Task<byte[]> DownloadAsync(HubHost hub, string url)
        {
            using var http = hub.Anonymous();
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", _token);
            var response = await http.GetAsync(url);
            Assert.That((int)response.StatusCode, Is.EqualTo(200), await response.Content.ReadAsStringAsync());
            return await response.Content.ReadAsByteArrayAsync();
        }

        /// <summary>Drops the connection and connects again, as a device does after it rebooted into the new image.</summary>
        public async Task ReconnectAsync(HubHost hub)
        {
            await _client.DisconnectAsync();
            _client.Dispose();
            _client = await ConnectClientAsync(hub);
        }

        public async ValueTask DisposeAsync()
        {
            if (_client.IsConnected) await _client.DisconnectAsync();
            _client.Dispose();
        }
    }
}
