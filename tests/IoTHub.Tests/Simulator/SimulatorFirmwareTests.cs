// The README's demonstration, as a test: the simulator's fleet against the real hub, with an image whose install
// fails on 30 % of devices and power lost mid-download on 20 %. The campaign stops itself after its canary wave.
using IoTHub.Simulator;
using IoTHub.Simulator.Firmware;
using IoTHub.Tests.Firmware;
using IoTHub.Tests.Infrastructure;

namespace IoTHub.Tests.Simulator;

[TestFixture(Store.Sqlite)]
[TestFixture(Store.Postgres)]
public sealed class SimulatorFirmwareTests(Store store) : HubFixture(store)
{
    protected override IDictionary<string, string?> Settings => new Dictionary<string, string?> { ["Firmware:TickInterval"] = "00:00:00.200" };

    [Test]
    public async Task A_bad_image_halts_itself_after_the_canary_wave_of_a_simulated_fleet()
    {
        using var admin = await Hub.AdminAsync();
        var tag = "simfw-" + Guid.NewGuid().ToString("N")[..6];
        var devices = (await FirmwareCampaignTests.CreateDevicesAsync(admin, tag, 20)).Select(d => new SimDevice(d.Id, d.Token)).ToList();
        var artifact = await FirmwareCampaignTests.UploadAsync(admin, FirmwareCampaignTests.Image(100_000, 7), "1.1.0-" + tag);
        using var stop = new CancellationTokenSource();
        var run = LoadGenerator.RunAsync(devices, new LoadOptions("127.0.0.1", Hub.MqttPort, Hub.BaseAddress, "mqtt", 1, 0.2, TimeSpan.FromSeconds(60),
            DeviceModel.Thermostat, Interactive: true, Firmware: new FirmwareOptions { FailRate = 0.3, PowerLossRate = 0.2, ChunkSize = 16 * 1024 }), stop.Token);
        try
        {
            await WaitFor.ConditionAsync(async () => (await admin.GetJsonAsync($"/api/v1/devices/{devices[^1].Id}/firmware"))["version"] is not null,
                "the fleet reports its firmware", TimeSpan.FromSeconds(30));
            var campaign = await FirmwareCampaignTests.CreateCampaignAsync(admin, new
            {
                name = "bad", artifactId = artifact["id"]!.GetValue<long>(), target = new { tag }, canaryCount = 4,
                waves = new object[] { new { percent = 50, successThreshold = 90 }, new { percent = 100 } },
                failureThreshold = new { percent = 20, minFinished = 3 },
            });
            await FirmwareCampaignTests.ActAsync(admin, campaign, "start");
            await WaitFor.ConditionAsync(async () => (await FirmwareCampaignTests.CampaignAsync(admin, campaign))["state"]!.GetValue<string>() == "paused",
                "the campaign halts itself", TimeSpan.FromSeconds(45));
            var c = await FirmwareCampaignTests.CampaignAsync(admin, campaign);
            Assert.That(c["currentWave"]!.GetValue<int>(), Is.EqualTo(1), c.ToJsonString());
            Assert.That(c["funnel"]!["queued"]!.GetValue<int>(), Is.GreaterThanOrEqualTo(16), "the devices after the canary were never notified");
            Assert.That(c["funnel"]!["failed"]!.GetValue<int>(), Is.GreaterThanOrEqualTo(1));
        }
        finally
        {
            await stop.CancelAsync();
            try { await run; } catch (OperationCanceledException) { }
        }
    }
}
