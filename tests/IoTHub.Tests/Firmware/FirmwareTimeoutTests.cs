// Timeouts of a rollout (docs/firmware.md, "timeouts" and "retries") on a hub whose clock is a FakeTimeProvider, on both
// stores: a device that never answers its notification times out instead of holding the campaign forever, and is
// notified again first when the campaign allows a timeout retry. The rollout loop waits on the hub's TimeProvider, so
// moving the clock on also runs the loop; the test moves it by the minute the device stays silent instead of sleeping.
using System.Text.Json.Nodes;
using IoTHub.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace IoTHub.Tests.Firmware;

[TestFixture(Store.Sqlite)]
[TestFixture(Store.Postgres)]
public sealed class FirmwareTimeoutTests(Store store) : HubFixture(store)
{
    private static readonly TimeSpan Tick = TimeSpan.FromMilliseconds(100);
    private readonly FakeTimeProvider _time = new(DateTimeOffset.UtcNow);

    protected override IDictionary<string, string?> Settings => new Dictionary<string, string?>
    {
        ["Firmware:TickInterval"] = "00:00:00.100",
        ["Devices:RateLimitPerSecond"] = "1000",
    };

    protected override void Configure(Microsoft.AspNetCore.Builder.WebApplicationBuilder builder) => builder.Services.AddSingleton<TimeProvider>(_time);

    /// <summary>Moves the clock on a tick at a time (each runs the rollout loop once) until <paramref name="condition"/> holds;
    /// at most 100 ticks (10 s of the hub's time), so that a test's own periods are not overrun.</summary>
    private async Task TickUntilAsync(Func<Task<bool>> condition, string what)
    {
        for (var i = 0; i < 100; i++)
        {
            if (await condition()) return;
            _time.Advance(Tick);
            await Task.Delay(50);
        }
        Assert.Fail($"the hub's clock moved on 100 ticks and still not: {what}");
    }

    /// <summary>A few ticks of the loop, in which nothing must happen.</summary>
    private async Task IdleTicksAsync()
    {
        for (var i = 0; i < 5; i++)
        {
            _time.Advance(Tick);
            await Task.Delay(60);
        }
    }

    private sealed record Setup(long Campaign, FirmwareDevice Device, string Token, HttpClient Admin);

    /// <summary>A silent device in a started campaign of its own, once it holds its notification.</summary>
    private async Task<Setup> StartAsync(object definition)
    {
        var admin = await Hub.AdminAsync();
        var u = Artifacts.Unique();
        var artifact = await FirmwareCampaignTests.UploadAsync(admin, FirmwareCampaignTests.Image(5000, 41), $"8.0.0-{u}");
        var (id, token) = await Hub.CreateDeviceAsync($"fw-to-{u}");
        var device = await FirmwareDevice.ConnectAsync(Hub, id, token, behaviour: FirmwareBehaviour.Silent);
        var json = JsonNode.Parse(System.Text.Json.JsonSerializer.Serialize(definition))!.AsObject();
        json["name"] = "timeout " + u;
        json["artifactId"] = artifact["id"]!.GetValue<long>();
        json["target"] = new JsonObject { ["deviceIds"] = new JsonArray(id) };
        var campaign = await FirmwareCampaignTests.CreateCampaignAsync(admin, json);
        await FirmwareCampaignTests.ActAsync(admin, campaign, "start");
        await WaitFor.ConditionAsync(() => !device.Notifications.IsEmpty, "the device is notified");
        Assert.That(Attempts(device), Is.EqualTo(new[] { 1 }), Seen(device));
        return new Setup(campaign, device, token, admin);
    }

    /// <summary>The attempts the device was notified of, in order, each once (QoS 1 may deliver a message twice).</summary>
    private static int[] Attempts(FirmwareDevice device) => device.Notifications.Select(n => n["attempt"]!.GetValue<int>()).Distinct().ToArray();

    private static string Seen(FirmwareDevice device) => "notifications: " + string.Join(" ", device.Notifications.Select(n => n.ToJsonString()));

    private static async Task<JsonNode> RowAsync(Setup s) =>
        (await s.Admin.GetJsonAsync($"/api/v1/firmware-campaigns/{s.Campaign}/devices"))["items"]![0]!;

    private static async Task<string> CampaignStateAsync(Setup s) => (await FirmwareCampaignTests.CampaignAsync(s.Admin, s.Campaign))["state"]!.GetValue<string>();

    [Test]
    public async Task A_device_that_never_answers_times_out_after_notifiedSeconds_and_its_campaign_completes()
    {
        // Thresholds that let a campaign of one failed device complete: the timeout is what is under test here, not the halt.
        var s = await StartAsync(new
        {
            waves = new[] { new { percent = 100, successThreshold = 0 } }, failureThreshold = new { percent = 100 }, timeouts = new { notifiedSeconds = 60 },
        });
        await using var device = s.Device;
        using var admin = s.Admin;

        _time.Advance(TimeSpan.FromSeconds(59));
        await IdleTicksAsync();
        Assert.That((await RowAsync(s))["state"]!.GetValue<string>(), Is.EqualTo("notified"), "not yet: 59.5 s of 60");

        _time.Advance(TimeSpan.FromSeconds(1.5));
        await TickUntilAsync(async () => (await RowAsync(s))["state"]!.GetValue<string>() == "timed-out", "the device times out");
        var row = await RowAsync(s);
        Assert.That(row["reason"]!.GetValue<string>(), Is.EqualTo("timeout"));
        Assert.That(row["detail"]!.GetValue<string>(), Does.Contain("notified").And.Contain("60 s"));
        Assert.That(row["attempt"]!.GetValue<int>(), Is.EqualTo(1));

        await TickUntilAsync(async () => await CampaignStateAsync(s) == "completed", "the campaign completes");
        var campaign = await FirmwareCampaignTests.CampaignAsync(admin, s.Campaign);
        Assert.That(campaign["funnel"]!["timed-out"]!.GetValue<int>(), Is.EqualTo(1));
        Assert.That(campaign["finishedAt"], Is.Not.Null);
        Assert.That(Attempts(device), Is.EqualTo(new[] { 1 }), "never notified again; " + Seen(device));
    }

    [Test]
    public async Task With_one_timeout_retry_the_device_is_notified_again_as_attempt_2_and_times_out_after_the_second_period()
    {
        var s = await StartAsync(new
        {
            waves = new[] { new { percent = 100, successThreshold = 0 } }, failureThreshold = new { percent = 100 }, timeouts = new { notifiedSeconds = 60 },
            retries = new { timeout = 1 },
        });
        await using var device = s.Device;
        using var admin = s.Admin;

        _time.Advance(TimeSpan.FromSeconds(61));
        await TickUntilAsync(() => Task.FromResult(Attempts(device).Contains(2)), "the device is notified again");
        var again = device.Notifications.Last(n => n["attempt"]!.GetValue<int>() == 2);
        Assert.That(Attempts(device), Is.EqualTo(new[] { 1, 2 }), Seen(device));
        Assert.That(again["campaignId"]!.GetValue<long>(), Is.EqualTo(s.Campaign));
        var row = await RowAsync(s);
        Assert.That(row["state"]!.GetValue<string>(), Is.EqualTo("notified"), row.ToJsonString());
        Assert.That(row["attempt"]!.GetValue<int>(), Is.EqualTo(2), row.ToJsonString());
        Assert.That(row["reason"]!.GetValue<string>(), Is.EqualTo("timeout"), "why it was notified again");
        using (var http = Hub.WithBearer(s.Token))
        {
            var pending = await (await http.GetAsync($"/api/v1/devices/{device.Id}/firmware/pending")).ReadJsonAsync();
            Assert.That(pending["attempt"]!.GetValue<int>(), Is.EqualTo(2), "the retained notification an HTTP device polls is the new attempt too");
        }
        Assert.That(await CampaignStateAsync(s), Is.EqualTo("running"));

        // A full period from the second notification, not from the first.
        _time.Advance(TimeSpan.FromSeconds(50));
        await IdleTicksAsync();
        Assert.That((await RowAsync(s))["state"]!.GetValue<string>(), Is.EqualTo("notified"), "50 s into the second period");

        _time.Advance(TimeSpan.FromSeconds(11));
        await TickUntilAsync(async () => (await RowAsync(s))["state"]!.GetValue<string>() == "timed-out", "the device times out after the second period");
        Assert.That((await RowAsync(s))["attempt"]!.GetValue<int>(), Is.EqualTo(2));
        await TickUntilAsync(async () => await CampaignStateAsync(s) == "completed", "the campaign completes");
        Assert.That(Attempts(device), Is.EqualTo(new[] { 1, 2 }), "no third attempt; " + Seen(device));
    }

    [Test]
    public async Task A_timed_out_device_counts_against_the_failure_threshold_and_halts_the_campaign_by_default()
    {
        var s = await StartAsync(new { timeouts = new { notifiedSeconds = 60 } });
        await using var device = s.Device;
        using var admin = s.Admin;

        _time.Advance(TimeSpan.FromSeconds(61));
        await TickUntilAsync(async () => await CampaignStateAsync(s) == "paused", "the campaign pauses itself");
        var campaign = await FirmwareCampaignTests.CampaignAsync(admin, s.Campaign);
        Assert.That(campaign["haltReason"]!.GetValue<string>(), Does.Contain("failure threshold"));
        Assert.That((await RowAsync(s))["state"]!.GetValue<string>(), Is.EqualTo("timed-out"));
    }
}
