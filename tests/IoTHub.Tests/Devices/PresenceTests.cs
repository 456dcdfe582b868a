using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text;
using IoTHub.Devices.Presence;
using IoTHub.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using MQTTnet;
using MQTTnet.Protocol;

namespace IoTHub.Tests.Devices;

[TestFixture(Store.Sqlite)]
[TestFixture(Store.Postgres)]
[OwnHost("restarts the hub, and times a keep-alive to the second")]
[RunsAlone("times a keep-alive to the second")]
public sealed class PresenceTests(Store store) : HubFixture(store)
{
    private async Task<(IMqttClient Watcher, List<string> Wills)> WatchAsync(string id)
    {
        var wills = new List<string>();
        var watcher = await Hub.ConnectAsync("apikey", await Hub.CreateApiKeyAsync("viewer"));
        watcher.ApplicationMessageReceivedAsync += e =>
        {
            lock (wills) wills.Add(Encoding.UTF8.GetString(e.ApplicationMessage.Payload));
            return Task.CompletedTask;
        };
        await watcher.SubscribeAsync($"devices/{id}/state/reported", MqttQualityOfServiceLevel.AtLeastOnce);
        return (watcher, wills);
    }

    private async Task<string> StatusAsync(string id)
    {
        using var admin = await Hub.AdminAsync();
        return (await admin.GetJsonAsync($"/api/v1/devices/{id}"))["status"]!.GetValue<string>();
    }

    [Test]
    public async Task A_silent_connection_is_dropped_within_one_and_a_half_keep_alives_and_its_last_will_is_published()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        var (watcher, wills) = await WatchAsync(id);
        using var _ = watcher;
        using var tcp = new TcpClient();
        await tcp.ConnectAsync("127.0.0.1", Hub.MqttPort);
        var stream = tcp.GetStream();
        await stream.WriteAsync(RawMqtt.Connect(id + ":raw", id, token, keepAliveSeconds: 2, $"devices/{id}/state/reported", """{"connected": false}"""));
        var connack = new byte[4];
        await stream.ReadExactlyAsync(connack);
        Assert.That(connack, Is.EqualTo(new byte[] { 0x20, 2, 0, 0 }), "CONNACK accepted");
        await WaitFor.ConditionAsync(async () => await StatusAsync(id) == "online", "the device is online");
        var silentSince = DateTime.UtcNow;

        // Say nothing more, keep the socket open: only the keep-alive can notice.
        await WaitFor.ConditionAsync(async () => await StatusAsync(id) == "offline", "the device goes offline", TimeSpan.FromSeconds(10));
        var offlineAfter = DateTime.UtcNow - silentSince;

        Assert.That(offlineAfter, Is.LessThan(TimeSpan.FromSeconds(2 * 1.5 + 1)), "1.5 × keep-alive, plus a second for the broker's check and the status write");
        await WaitFor.ConditionAsync(() => { lock (wills) return wills.Count == 1; }, "the last will reaches a subscriber");
        Assert.That(wills.Single(), Does.Contain("\"connected\": false"));
        using var admin = await Hub.AdminAsync();
        await WaitFor.ConditionAsync(async () =>
            (await admin.GetJsonAsync($"/api/v1/devices/{id}/state"))["reported"]!["state"]!["connected"]?.GetValue<bool>() == false,
            "the will on state/reported is merged into the reported state");
    }

    [Test]
    public async Task A_killed_tcp_connection_marks_the_device_offline_and_publishes_its_will()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        var (watcher, wills) = await WatchAsync(id);
        using var _ = watcher;
        var tcp = new TcpClient();
        await tcp.ConnectAsync("127.0.0.1", Hub.MqttPort);
        await tcp.GetStream().WriteAsync(RawMqtt.Connect(id + ":raw", id, token, keepAliveSeconds: 60, $"devices/{id}/state/reported", """{"connected": false}"""));
        await tcp.GetStream().ReadExactlyAsync(new byte[4]);
        await WaitFor.ConditionAsync(async () => await StatusAsync(id) == "online", "the device is online");

        tcp.Client.LingerState = new LingerOption(true, 0); // RST, no DISCONNECT
        tcp.Dispose();

        await WaitFor.ConditionAsync(async () => await StatusAsync(id) == "offline", "the device goes offline", TimeSpan.FromSeconds(5));
        await WaitFor.ConditionAsync(() => { lock (wills) return wills.Count == 1; }, "the last will reaches a subscriber");
        using var admin = await Hub.AdminAsync();
        var history = await admin.GetJsonAsync($"/api/v1/devices/{id}/connections");
        Assert.That(history["items"]![0]!["disconnectReason"]!.GetValue<string>(), Does.Contain("connection lost"));
    }

    [Test]
    public async Task A_will_outside_the_devices_own_topics_is_refused_at_connect_and_never_published()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        var (victim, _) = await Hub.CreateDeviceAsync();
        var (watcher, wills) = await WatchAsync(victim);
        using var _ = watcher;
        using var tcp = new TcpClient();
        await tcp.ConnectAsync("127.0.0.1", Hub.MqttPort);
        await tcp.GetStream().WriteAsync(RawMqtt.Connect(id + ":raw", id, token, keepAliveSeconds: 60, $"devices/{victim}/state/reported", """{"hacked": true}"""));
        var connAck = new byte[4];
        await tcp.GetStream().ReadExactlyAsync(connAck);
        Assert.That(connAck[3], Is.EqualTo(0x05), "CONNACK 0x05 not authorized: the will names another device's topic");

        tcp.Client.LingerState = new LingerOption(true, 0);
        tcp.Close();
        await Task.Delay(500);
        lock (wills) Assert.That(wills, Is.Empty);
        using var admin = await Hub.AdminAsync();
        Assert.That((await admin.GetJsonAsync($"/api/v1/devices/{victim}/state"))["reported"]!["version"]!.GetValue<long>(), Is.Zero);
        Assert.That(await StatusAsync(id), Is.Not.EqualTo("online"));
    }

    [Test]
    public async Task Connection_history_records_protocol_address_and_a_clean_disconnect()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        using (var client = await Hub.ConnectAsync(id, token))
        {
            await WaitFor.ConditionAsync(async () => await StatusAsync(id) == "online", "the device is online");
            await client.DisconnectAsync();
        }
        await WaitFor.ConditionAsync(async () => await StatusAsync(id) == "offline", "the device is offline");

        using var admin = await Hub.AdminAsync();
        var row = (await admin.GetJsonAsync($"/api/v1/devices/{id}/connections"))["items"]!.AsArray().Single()!;
        Assert.That(row["protocol"]!.GetValue<string>(), Is.EqualTo("mqtt5"));
        Assert.That(row["remoteAddress"]!.GetValue<string>(), Does.Contain("127.0.0.1"));
        Assert.That(row["disconnectReason"]!.GetValue<string>(), Is.EqualTo("clean disconnect"));
        Assert.That(row["disconnectedAt"]!.GetValue<DateTimeOffset>(), Is.GreaterThanOrEqualTo(row["connectedAt"]!.GetValue<DateTimeOffset>()));
    }

    [Test]
    public async Task Last_seen_and_clock_drift_taken_by_a_flush_the_stop_cancels_are_written_by_the_next_one()
    {
        var presence = Hub.Services.GetRequiredService<DevicePresence>();
        var flusher = Hub.Services.GetRequiredService<LastSeenFlusher>();
        var id = "flush-" + Guid.NewGuid().ToString("N")[..8];
        presence.Seen(id, 1_000);
        presence.Drift(id, 5_000, flagged: true);

        using var stopped = new CancellationTokenSource();
        await stopped.CancelAsync();
        Assert.That(async () => await flusher.FlushAsync(final: true, stopped.Token), Throws.InstanceOf<OperationCanceledException>());

        // Taken, not written: both are still to write (they were marked written, and the final flush skipped them).
        Assert.That(presence.TakeUnflushed(0), Does.Contain((id, 1_000L)));
        Assert.That(presence.TakeDriftChanges(), Does.Contain((id, 5_000L, true)));
    }

    [Test]
    public async Task A_connection_closed_by_the_hub_stopping_says_so_in_the_history([Values] bool overWebSocket)
    {
        // Over WebSocket the connection is an HTTP request, which the host's stop could end before the broker records it.
        var (id, token) = await Hub.CreateDeviceAsync();
        using var client = overWebSocket ? new MqttClientFactory().CreateMqttClient() : await Hub.ConnectAsync(id, token);
        if (overWebSocket)
            await client.ConnectAsync(new MqttClientOptionsBuilder().WithWebSocketServer(o => o.WithUri($"ws://127.0.0.1:{Hub.BaseAddress.Port}/mqtt"))
                .WithCredentials(id, token).WithClientId(id).Build());
        await WaitFor.ConditionAsync(async () => await StatusAsync(id) == "online", "the device is online");

        await Hub.RestartAsync();

        using var admin = await Hub.AdminAsync();
        var row = (await admin.GetJsonAsync($"/api/v1/devices/{id}/connections"))["items"]!.AsArray().Single()!;
        Assert.That(row["disconnectReason"]!.GetValue<string>(), Is.EqualTo("server shutting down"));
        Assert.That(await StatusAsync(id), Is.EqualTo("offline"));
    }

    [Test]
    public async Task A_device_reconnecting_hundreds_of_times_has_each_connection_closed_and_its_history_capped()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        const int cycles = ListConnectionsHandler.KeptPerDevice + 5;
        for (var i = 0; i < cycles; i++)
        {
            using var client = await Hub.ConnectAsync(id, token);
            await client.DisconnectAsync();
        }
        // The presence writer takes the 1,010 events in the batches they arrive in, so the device's status goes offline
        // and online again on the way (a batch may end with a disconnect): only the end state says anything. A slow
        // store on a busy machine takes some seconds for them (CI once took more than 10), and the connection rows and
        // the device's status are two writes: CI once read every row closed and the status not yet offline.
        using var admin = await Hub.AdminAsync();
        await WaitFor.ConditionAsync(async () =>
        {
            var page = await admin.GetJsonAsync($"/api/v1/devices/{id}/connections?limit=500");
            var items = page["items"]!.AsArray();
            return items.Count == ListConnectionsHandler.KeptPerDevice && page["next"] is null && items.All(r => r!["disconnectedAt"] is not null)
                && await StatusAsync(id) == "offline";
        }, $"the newest {ListConnectionsHandler.KeptPerDevice} connections are kept, every one closed, and the device offline", TimeSpan.FromSeconds(30));
        Assert.That(await StatusAsync(id), Is.EqualTo("offline"), "and it stays offline");
    }

    [Test]
    public async Task A_device_silent_for_twice_its_report_interval_is_flagged_inactive()
    {
        using var admin = await Hub.AdminAsync();
        var profile = "every-second-" + Guid.NewGuid().ToString("N")[..6];
        Assert.That((await admin.PostAsJsonAsync("/api/v1/profiles", new { id = profile, reportIntervalSeconds = 1 })).IsSuccessStatusCode);
        var (id, token) = await Hub.CreateDeviceAsync();
        Assert.That((await admin.PatchAsJsonAsync($"/api/v1/devices/{id}", new { profile })).IsSuccessStatusCode);
        using var device = Hub.WithBearer(token);

        Assert.That((await device.PostAsync($"/api/v1/devices/{id}/telemetry", Json.Body("""{"t": 1}"""))).IsSuccessStatusCode);
        Assert.That((await admin.GetJsonAsync($"/api/v1/devices/{id}"))["inactive"]!.GetValue<bool>(), Is.False);

        await WaitFor.ConditionAsync(async () => (await admin.GetJsonAsync($"/api/v1/devices/{id}"))["inactive"]!.GetValue<bool>(), "the device is flagged inactive");
        var listed = await admin.GetJsonAsync($"/api/v1/devices?search={id}");
        Assert.That(listed["items"]![0]!["inactive"]!.GetValue<bool>(), Is.True);
        var filtered = await admin.GetJsonAsync($"/api/v1/devices?search={id}&status=inactive");
        Assert.That(filtered["items"]!.AsArray().Select(d => d!["id"]!.GetValue<string>()), Is.EqualTo(new[] { id }), "the inactive filter finds it");

        Assert.That((await device.PostAsync($"/api/v1/devices/{id}/telemetry", Json.Body("""{"t": 2}"""))).IsSuccessStatusCode);
        Assert.That((await admin.GetJsonAsync($"/api/v1/devices/{id}"))["inactive"]!.GetValue<bool>(), Is.False, "reporting again clears the flag");
        Assert.That((await admin.GetJsonAsync($"/api/v1/devices?search={id}&status=inactive"))["items"]!.AsArray(), Is.Empty, "and the filter drops it");
    }
}
