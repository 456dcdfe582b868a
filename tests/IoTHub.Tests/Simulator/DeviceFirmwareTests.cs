// A simulated device's firmware update end to end on its own side: a plain in-process MQTT broker stands in for the
// hub's (it holds the retained notification and records what the device publishes) and ImageServer for the download
// endpoint, so these run without the hub's Firmware module.
using System.Buffers;
using System.Collections.Concurrent;
using System.Text;
using System.Text.Json.Nodes;
using IoTHub.Simulator;
using IoTHub.Simulator.Firmware;
using IoTHub.Tests.Infrastructure;
using MQTTnet;
using MQTTnet.Formatter;
using MQTTnet.Protocol;
using MQTTnet.Server;

namespace IoTHub.Tests.Simulator;

public sealed class DeviceFirmwareTests
{
    private const string DeviceId = "sim-0";
    private const int ImageSize = 10_000;

    private MqttServer _broker = null!;
    private int _port;
    private ImageServer _images = null!;
    private readonly ConcurrentQueue<(string Topic, JsonNode? Body)> _published = new();
    private int _connections;
    private CancellationTokenSource _stop = null!;
    private FirmwareFleet? _fleet;
    private DeviceLink? _link;

    [SetUp]
    public async Task StartAsync()
    {
        // NUnit runs every spec of a fixture on one instance: start each from nothing.
        _published.Clear();
        _connections = 0;
        _stop = new CancellationTokenSource();
        _port = HubHost.FreeTcpPort();
        _broker = new MqttServerFactory().CreateMqttServer(new MqttServerOptionsBuilder().WithDefaultEndpoint().WithDefaultEndpointPort(_port).Build());
        _broker.InterceptingPublishAsync += e =>
        {
            var payload = e.ApplicationMessage.Payload.ToArray();
            _published.Enqueue((e.ApplicationMessage.Topic, payload.Length == 0 ? null : JsonNode.Parse(payload)));
            return Task.CompletedTask;
        };
        _broker.ClientConnectedAsync += _ =>
        {
            Interlocked.Increment(ref _connections);
            return Task.CompletedTask;
        };
        await _broker.StartAsync();
        _images = await ImageServer.StartAsync(ImageSize);
    }

    [TearDown]
    public async Task StopAsync()
    {
        await _stop.CancelAsync();
        if (_link is not null) await _link.CloseAsync();
        _fleet?.Dispose();
        await _images.DisposeAsync();
        await _broker.StopAsync();
        _broker.Dispose();
        _stop.Dispose();
    }

    [Test]
    public async Task A_notified_device_downloads_in_ranges_installs_reboots_and_comes_back_reporting_the_new_version()
    {
        await StartDeviceAsync(new FirmwareOptions { InitialVersion = "1.0.0" });
        await WaitForReportedAsync("1.0.0");

        await NotifyAsync(_images.Sha256);
        await WaitForReportedAsync("1.4.0");

        Assert.That(Statuses(), Is.EqualTo(new[] { "downloading", "downloading", "downloading", "downloading", "verifying", "installing", "succeeded" }));
        Assert.That(Progress().Where(p => p["status"]!.GetValue<string>() == "downloading").Select(p => p["bytes"]!.GetValue<long>()),
            Is.EqualTo(new long[] { 0, 4096, 8192, ImageSize }));
        Assert.That(Progress().Select(p => p["campaignId"]!.GetValue<long>()), Is.All.EqualTo(7));
        Assert.That(_images.Ranges, Is.EqualTo(new[] { "bytes=0-4095", "bytes=4096-8191", "bytes=8192-9999" }));
        Assert.That(_images.Authorizations, Is.All.EqualTo("Bearer token-0"));
        Assert.That(_connections, Is.EqualTo(2), "the reboot is a new connection");
        var first = Reported().First();
        Assert.That(first["hardwareModel"]!.GetValue<string>(), Is.EqualTo("thermostat"));
        Assert.That(first.AsObject().ContainsKey("firmware"), Is.False, "firmwareVersion replaces the old key");
        // The retained notification came again after the reboot: the device had finished that campaign and attempt.
        var expected = new FirmwareTally(Notified: 1, Succeeded: 1, Failed: 0, RolledBack: 0, PowerLosses: 0, Busy: 0);
        await WaitFor.ConditionAsync(() => _fleet!.Counters.Snapshot() == expected, "the fleet's tally settles");
        await Task.Delay(300); // room for a second run of the campaign, were the retained notification taken again
        Assert.That(_fleet!.Counters.Snapshot(), Is.EqualTo(expected));
        Assert.That(Statuses().Count(s => s == "succeeded"), Is.EqualTo(1));
    }

    [Test]
    public async Task A_device_that_loses_power_mid_download_reconnects_and_resumes_from_the_byte_it_had()
    {
        await StartDeviceAsync(new FirmwareOptions { PowerLossRate = 1 });
        await WaitForReportedAsync("1.0.0");

        await NotifyAsync(_images.Sha256);
        await WaitForReportedAsync("1.4.0");

        Assert.That(_images.Ranges, Is.EqualTo(new[] { "bytes=0-4095", "bytes=4096-8191", "bytes=8192-9999" }), "no byte asked for twice");
        Assert.That(_connections, Is.EqualTo(3), "back after the power loss, then after the reboot");
        Assert.That(Reported().Select(r => r["firmwareVersion"]!.GetValue<string>()), Is.EqualTo(new[] { "1.0.0", "1.0.0", "1.4.0" }));
        Assert.That(Statuses().Last(), Is.EqualTo("succeeded"));
        Assert.That(_fleet!.Counters.Snapshot() is { PowerLosses: 1, Succeeded: 1, Notified: 1 });
    }

    [Test]
    public async Task An_image_that_does_not_match_its_SHA_256_is_reported_failed_with_reason_checksum_and_not_installed()
    {
        await StartDeviceAsync(new FirmwareOptions());
        await WaitForReportedAsync("1.0.0");

        await NotifyAsync(new string('0', 64));
        await WaitFor.ConditionAsync(() => Statuses().LastOrDefault() == "failed", "the device reports the failure");

        var failed = Progress().Last();
        Assert.That(failed["reason"]!.GetValue<string>(), Is.EqualTo("checksum"));
        Assert.That(failed["detail"]!.GetValue<string>(), Does.Contain(_images.Sha256));
        Assert.That(Statuses(), Does.Not.Contain("installing"));
        Assert.That(_connections, Is.EqualTo(1), "no reboot");
        // The device counts its failure once its report is sent, a moment after the broker has it.
        await WaitFor.ConditionAsync(() => _fleet!.Counters.Snapshot() is { Failed: 1 }, "the fleet counts the failure");
        Assert.That(_fleet!.Counters.Snapshot() is { Failed: 1, Succeeded: 0 });
    }

    [Test]
    public async Task A_device_picked_to_fail_the_install_reports_failed_with_reason_install_and_stays_on_its_version()
    {
        await StartDeviceAsync(new FirmwareOptions { FailRate = 1 });
        await WaitForReportedAsync("1.0.0");

        await NotifyAsync(_images.Sha256);
        await WaitFor.ConditionAsync(() => Statuses().LastOrDefault() == "failed", "the device reports the failure");

        Assert.That(Statuses(), Is.SupersetOf(new[] { "verifying", "installing" }));
        Assert.That(Progress().Last()["reason"]!.GetValue<string>(), Is.EqualTo("install"));
        Assert.That(_connections, Is.EqualTo(1), "no reboot");
    }

    [Test]
    public async Task A_device_picked_to_roll_back_reports_succeeded_then_comes_back_on_its_old_version()
    {
        await StartDeviceAsync(new FirmwareOptions { RollbackRate = 1 });
        await WaitForReportedAsync("1.0.0");

        await NotifyAsync(_images.Sha256);
        await WaitFor.ConditionAsync(() => _connections == 2 && Reported().Count() == 2, "the device is back from its reboot");

        Assert.That(Statuses().Last(), Is.EqualTo("succeeded"));
        Assert.That(Reported().Select(r => r["firmwareVersion"]!.GetValue<string>()), Is.All.EqualTo("1.0.0"));
        Assert.That(_fleet!.Counters.Snapshot() is { RolledBack: 1, Succeeded: 0 });
    }

    [Test]
    public async Task An_empty_notification_is_nothing_to_do_and_a_new_attempt_of_the_same_campaign_is_taken()
    {
        await StartDeviceAsync(new FirmwareOptions());
        await WaitForReportedAsync("1.0.0");

        await PublishRetainedAsync([]);
        await NotifyAsync(new string('0', 64), attempt: 1);
        await WaitFor.ConditionAsync(() => Statuses().Count(s => s == "failed") == 1, "the first attempt fails");
        await NotifyAsync(_images.Sha256, attempt: 2);
        await WaitForReportedAsync("1.4.0");

        Assert.That(_fleet!.Counters.Snapshot() is { Notified: 2, Failed: 1, Succeeded: 1 });
    }

    [Test]
    public async Task A_fleet_at_fail_rate_0_3_fails_exactly_3_of_10_devices_and_counts_its_updates_in_the_progress_line_and_summary()
    {
        var devices = Enumerable.Range(0, 10).Select(i => new SimDevice($"fleet-{i}", $"token-{i}")).ToList();
        foreach (var device in devices) await NotifyAsync(_images.Sha256, deviceId: device.Id);
        var progress = new ConcurrentQueue<LoadProgress>();

        var result = await LoadGenerator.RunAsync(devices, new LoadOptions("127.0.0.1", _port, _images.Address, "mqtt", 1, 1, TimeSpan.FromSeconds(4),
            DeviceModel.Thermostat, Interactive: true, Progress: progress.Enqueue, ProgressInterval: TimeSpan.FromSeconds(1),
            Firmware: Quick(new FirmwareOptions { FailRate = 0.3 })), CancellationToken.None);

        Assert.That(result.Firmware, Is.EqualTo(new FirmwareTally(Notified: 10, Succeeded: 7, Failed: 3, RolledBack: 0, PowerLosses: 0, Busy: 0)));
        Assert.That(result.ToString(), Does.EndWith("; firmware: 10 notified, 0 updating, 7 succeeded, 3 failed, 0 rolled back"));
        Assert.That(progress.Last().ToString(), Does.Contain("; firmware: 10 notified"));
        Assert.That(Progress().Count(p => p["reason"]?.GetValue<string>() == "install"), Is.EqualTo(3));
    }

    private static FirmwareOptions Quick(FirmwareOptions options) => options with
    {
        ChunkSize = 4096, InstallTime = TimeSpan.FromMilliseconds(50), OffTime = TimeSpan.FromMilliseconds(50), ProgressInterval = TimeSpan.Zero,
    };

    private async Task StartDeviceAsync(FirmwareOptions options)
    {
        // Quick steps, so that each spec takes about a second.
        _fleet = new FirmwareFleet(Quick(options), _images.Address, _stop.Token);
        var device = new SimDevice(DeviceId, "token-0");
        var client = new MqttClientFactory().CreateMqttClient();
        var connect = new MqttClientOptionsBuilder().WithTcpServer("127.0.0.1", _port).WithProtocolVersion(MqttProtocolVersion.V500)
            .WithClientId(DeviceId).WithCredentials(DeviceId, device.Token).Build();
        DeviceBehaviour? behaviour = null;
        _link = new DeviceLink(client, connect, ct => behaviour!.SubscribeAsync(ct), _stop.Token);
        behaviour = new DeviceBehaviour(client, DeviceId, new PayloadFactory(DeviceModel.Thermostat, 0), new DeviceFirmware(_link, device, _fleet));
        behaviour.Attach();
        await _link.ConnectAsync(CancellationToken.None);
    }

    private Task NotifyAsync(string sha256, int attempt = 1, string deviceId = DeviceId) => PublishRetainedAsync(Encoding.UTF8.GetBytes(new JsonObject
    {
        ["campaignId"] = 7, ["version"] = "1.4.0", ["url"] = ImageServer.Path, ["sha256"] = sha256, ["size"] = ImageSize, ["attempt"] = attempt,
    }.ToJsonString()), deviceId);

    private Task PublishRetainedAsync(byte[] payload, string deviceId = DeviceId) => _broker.InjectApplicationMessage(new InjectedMqttApplicationMessage(
        new MqttApplicationMessageBuilder().WithTopic($"devices/{deviceId}/firmware").WithPayload(payload).WithRetainFlag()
            .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build()) { SenderClientId = "hub" });

    private Task WaitForReportedAsync(string version) =>
        WaitFor.ConditionAsync(() => Reported().LastOrDefault()?["firmwareVersion"]?.GetValue<string>() == version, $"the device reports firmware {version}");

    private IEnumerable<JsonNode> Reported() => _published.Where(p => p.Topic == $"devices/{DeviceId}/state/reported" && p.Body is not null).Select(p => p.Body!);

    private List<JsonNode> Progress() => _published.Where(p => p.Topic.EndsWith("/firmware/progress", StringComparison.Ordinal)).Select(p => p.Body!).ToList();

    private List<string> Statuses() => Progress().Select(p => p["status"]!.GetValue<string>()).ToList();
}
