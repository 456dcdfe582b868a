using System.Net;
using IoTHub.Simulator;
using IoTHub.Tests.Infrastructure;

namespace IoTHub.Tests.Simulator;

[TestFixture(Store.Sqlite)]
[RunsAlone("counts the simulator's progress lines a second")]
public sealed class SimulatorTests(Store store) : HubFixture(store)
{
    [Test]
    public async Task Simulated_devices_publish_answer_commands_and_follow_their_desired_state()
    {
        var devices = new List<SimDevice>();
        for (var i = 0; i < 3; i++)
        {
            var (id, token) = await Hub.CreateDeviceAsync();
            devices.Add(new SimDevice(id, token));
        }
        // Stopped (as Ctrl+C stops it) once the device has followed its desired state and 50 messages are acknowledged: a
        // fixed run could end, on a loaded machine, before the device had applied the state. 60 s is only the bound.
        using var end = new CancellationTokenSource();
        var progress = new System.Collections.Concurrent.ConcurrentQueue<LoadProgress>();
        var run = LoadGenerator.RunAsync(devices, new LoadOptions("127.0.0.1", Hub.MqttPort, Hub.BaseAddress, "mqtt", 1, 5, TimeSpan.FromSeconds(60),
            DeviceModel.Thermostat, Interactive: true, Progress: progress.Enqueue, ProgressInterval: TimeSpan.FromSeconds(1)), end.Token);
        var target = devices[0].Id;
        using var admin = await Hub.AdminAsync();
        await WaitFor.ConditionAsync(async () => (await admin.GetJsonAsync($"/api/v1/devices/{target}"))["status"]!.GetValue<string>() == "online", "the fleet is up");
        await WaitFor.ConditionAsync(async () => (await admin.GetJsonAsync($"/api/v1/devices/{target}/state"))["reported"]!["version"]!.GetValue<long>() > 0,
            "the device reports its state after subscribing");

        var command = await admin.PostAsync($"/api/v1/devices/{target}/commands", Json.Of(new { name = "setSetpoint", @params = new { value = 23.5 }, timeoutSeconds = 5 }));
        var unknown = await admin.PostAsync($"/api/v1/devices/{target}/commands", Json.Of(new { name = "selfDestruct", timeoutSeconds = 5 }));
        var desired = await admin.PutAsync($"/api/v1/devices/{target}/state", Json.Of(new { desired = new { setpoint = 22.0 } }));
        await WaitFor.ConditionAsync(async () => (await admin.GetJsonAsync($"/api/v1/devices/{target}/state"))["reported"]!["state"]?["appliedVersion"]?.GetValue<long>() == 1,
            "the device applies its desired state and reports so", TimeSpan.FromSeconds(30));
        await WaitFor.ConditionAsync(() => progress.LastOrDefault() is { Acked: > 50 }, "50 messages are acknowledged", TimeSpan.FromSeconds(30));
        await end.CancelAsync();
        var result = await run;

        Assert.That(command.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That((await command.ReadJsonAsync())["state"]!.GetValue<string>(), Is.EqualTo("succeeded"));
        Assert.That((await unknown.ReadJsonAsync())["state"]!.GetValue<string>(), Is.EqualTo("failed"));
        Assert.That(desired.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        var state = await admin.GetJsonAsync($"/api/v1/devices/{target}/state");
        Assert.That(state["reported"]!["state"]!["setpoint"]!.GetValue<double>(), Is.EqualTo(22.0));
        Assert.That(state["reported"]!["state"]!["appliedVersion"]!.GetValue<long>(), Is.EqualTo(1));
        Assert.That(state["delta"]!.AsObject(), Is.Empty);
        Assert.That(result.Acked, Is.GreaterThan(50));
        Assert.That(result.CommandsAnswered, Is.EqualTo(2));
        var latest = await admin.GetJsonAsync($"/api/v1/devices/{target}/telemetry/latest");
        Assert.That(latest["values"]!.AsArray().Select(v => v!["metric"]!.GetValue<string>()), Does.Contain("temperature"));
    }

    [Test]
    public async Task The_fleet_reconnects_with_back_off_when_the_hub_restarts_and_carries_on_reporting_progress()
    {
        // Its own hub: this one is restarted under the fleet.
        await using var hub = await HubHost.StartAsync(Store);
        var devices = new List<SimDevice>();
        for (var i = 0; i < 3; i++)
        {
            var (id, token) = await hub.CreateDeviceAsync();
            devices.Add(new SimDevice(id, token));
        }
        var progress = new System.Collections.Concurrent.ConcurrentQueue<LoadProgress>();
        // Stopped (as Ctrl+C stops it) once everything below was seen; 60 s is only the bound.
        using var end = new CancellationTokenSource();
        var run = LoadGenerator.RunAsync(devices, new LoadOptions("127.0.0.1", hub.MqttPort, hub.BaseAddress, "mqtt", 1, 10, TimeSpan.FromSeconds(60),
            DeviceModel.Thermostat, Interactive: true, Progress: progress.Enqueue, ProgressInterval: TimeSpan.FromSeconds(1)), end.Token);
        await WaitFor.ConditionAsync(() => Task.FromResult(progress.LastOrDefault() is { Acked: > 20, Connected: 3 }), "the fleet publishes", TimeSpan.FromSeconds(15));

        await hub.RestartAsync();
        var ackedAtRestart = progress.Last().Acked;
        await WaitFor.ConditionAsync(() => Task.FromResult(progress.LastOrDefault() is { Connected: 3, Reconnects: >= 3 } p && p.Acked > ackedAtRestart + 20),
            "every device is back and its messages are acknowledged again", TimeSpan.FromSeconds(30));
        // They subscribed again after reconnecting: a command still reaches one and is answered.
        using var admin = await hub.AdminAsync();
        var command = await admin.PostAsync($"/api/v1/devices/{devices[0].Id}/commands", Json.Of(new { name = "ping", timeoutSeconds = 5 }));
        await end.CancelAsync();
        var result = await run;

        Assert.That((await command.ReadJsonAsync())["state"]!.GetValue<string>(), Is.EqualTo("succeeded"));
        Assert.That(result.Reconnects, Is.GreaterThanOrEqualTo(3));
        Assert.That(result.Acked, Is.GreaterThan(ackedAtRestart + 20));
        Assert.That(progress.Select(p => p.Elapsed), Is.Ordered);
        var seconds = (int)result.Elapsed.TotalSeconds;
        Assert.That(seconds, Is.GreaterThanOrEqualTo(3), "it ran through a restart");
        Assert.That(progress.Count, Is.InRange(seconds - 2, seconds + 1), $"a line a second for {result.Elapsed}");
        Assert.That(progress.Last().ToString(), Does.Match(@"^\s*\d+ s: sent [\d,]+ \(\d+/s\), acked [\d,]+, errors [\d,]+, connected 3/3, reconnects \d+$"));
    }

    [Test]
    public async Task Simulated_devices_send_over_CoAP_and_every_message_is_answered_2_04()
    {
        var devices = new List<SimDevice>();
        for (var i = 0; i < 3; i++)
        {
            var (id, token) = await Hub.CreateDeviceAsync();
            devices.Add(new SimDevice(id, token));
        }
        var result = await LoadGenerator.RunAsync(devices, new LoadOptions("127.0.0.1", Hub.MqttPort, Hub.BaseAddress, "coap", 1, 5, TimeSpan.FromSeconds(4),
            DeviceModel.Thermostat, CoapHost: "127.0.0.1", CoapPort: Hub.CoapPort), CancellationToken.None);
        Assert.That(result.Acked, Is.GreaterThan(20));
        Assert.That(result.Failed, Is.Zero);
        using var admin = await Hub.AdminAsync();
        var latest = await admin.GetJsonAsync($"/api/v1/devices/{devices[0].Id}/telemetry/latest");
        Assert.That(latest["values"]!.AsArray().Select(v => v!["metric"]!.GetValue<string>()), Does.Contain("temperature"));
    }
}
