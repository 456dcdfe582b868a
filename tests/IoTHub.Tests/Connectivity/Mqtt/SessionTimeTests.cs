// Issue #15 §4: the parts of MQTT sessions that are about time (Session Expiry, Message Expiry, Will Delay), with the
// hub's clock faked: the host runs on a FakeTimeProvider and each test moves it forward, nothing is slept through.
using System.Collections.Concurrent;
using System.Text;
using IoTHub.Connectivity.Mqtt.Sessions;
using IoTHub.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using MQTTnet;
using MQTTnet.Formatter;
using MQTTnet.Protocol;

namespace IoTHub.Tests.Connectivity.Mqtt;

[TestFixture(Store.Sqlite)]
[TestFixture(Store.Postgres)]
[RunsAlone("moves a faked clock and gives the hub's timers 300 ms to act")]
public sealed class SessionTimeTests(Store store) : HubFixture(store)
{
    private readonly FakeTimeProvider _time = new(DateTimeOffset.UtcNow);

    protected override IDictionary<string, string?> Settings => new Dictionary<string, string?> { ["Mqtt:MaxSessionExpirySeconds"] = "600" };

    protected override void Configure(Microsoft.AspNetCore.Builder.WebApplicationBuilder builder) => builder.Services.AddSingleton<TimeProvider>(_time);

    private MqttClientOptions AppOptions(string key, string clientId, MqttProtocolVersion version, bool cleanStart, uint sessionExpiry) =>
        new MqttClientOptionsBuilder().WithTcpServer("127.0.0.1", Hub.MqttPort).WithProtocolVersion(version).WithClientId(clientId)
            .WithCredentials("apikey", key).WithCleanStart(cleanStart).WithSessionExpiryInterval(sessionExpiry).WithTimeout(TimeSpan.FromSeconds(10)).Build();

    /// <summary>Waits until the hub has taken the client's disconnect in (its session waits to expire, its Will for its delay).</summary>
    private Task DisconnectSeenAsync(string clientId, bool will = false) => WaitFor.ConditionAsync(() =>
        Hub.Services.GetRequiredService<SessionLifecycle>().IsExpiring(clientId) && (!will || Hub.Services.GetRequiredService<WillMessages>().IsPending(clientId)),
        $"the hub saw {clientId} disconnect");

    /// <summary>Moves the hub's clock and lets the timers it fired finish their work.</summary>
    private async Task AdvanceAsync(TimeSpan by)
    {
        _time.Advance(by);
        await Task.Delay(300);
    }

    /// <summary>A viewer app that records what is published on the device's reported-state topic (where its Will goes).</summary>
    private async Task<(IMqttClient Watcher, ConcurrentQueue<string> Wills)> WatchReportedStateAsync(string deviceId)
    {
        var watcher = new MqttClientFactory().CreateMqttClient();
        var wills = new ConcurrentQueue<string>();
        watcher.ApplicationMessageReceivedAsync += e =>
        {
            wills.Enqueue(Encoding.UTF8.GetString(e.ApplicationMessage.Payload));
            return Task.CompletedTask;
        };
        await watcher.ConnectAsync(AppOptions(await Hub.CreateApiKeyAsync("viewer"), "w-" + Guid.NewGuid().ToString("N")[..8], MqttProtocolVersion.V500, true, 0));
        await watcher.SubscribeAsync($"devices/{deviceId}/state/reported", MqttQualityOfServiceLevel.AtLeastOnce);
        return (watcher, wills);
    }

    [Test]
    public async Task A_session_ends_when_its_session_expiry_interval_has_passed_and_not_before([Values(MqttProtocolVersion.V311, MqttProtocolVersion.V500)] MqttProtocolVersion version)
    {
        // 5.0 asks for 60 s; 3.1.1 cannot ask and gets Mqtt:MaxSessionExpirySeconds (600 here).
        var expiry = version == MqttProtocolVersion.V500 ? TimeSpan.FromSeconds(60) : TimeSpan.FromSeconds(600);
        var key = await Hub.CreateApiKeyAsync("operator");
        var clientId = "exp-" + Guid.NewGuid().ToString("N")[..8];
        using var client = new MqttClientFactory().CreateMqttClient();
        await client.ConnectAsync(AppOptions(key, clientId, version, cleanStart: false, sessionExpiry: 60));
        await client.SubscribeAsync($"apps/{clientId}/x", MqttQualityOfServiceLevel.AtLeastOnce);
        await client.DisconnectAsync();
        await DisconnectSeenAsync(clientId);

        await AdvanceAsync(expiry - TimeSpan.FromSeconds(1));
        Assert.That((await client.ConnectAsync(AppOptions(key, clientId, version, cleanStart: false, sessionExpiry: 60))).IsSessionPresent, Is.True, "still there a second before");
        await client.DisconnectAsync();
        await DisconnectSeenAsync(clientId);

        await AdvanceAsync(expiry + TimeSpan.FromSeconds(1));
        Assert.That((await client.ConnectAsync(AppOptions(key, clientId, version, cleanStart: false, sessionExpiry: 60))).IsSessionPresent, Is.False, "gone once it expired");
    }

    [Test]
    public async Task A_session_restored_after_a_restart_still_expires_when_its_client_stays_away()
    {
        var key = await Hub.CreateApiKeyAsync("operator");
        var clientId = "rx-" + Guid.NewGuid().ToString("N")[..8];
        using var client = new MqttClientFactory().CreateMqttClient();
        await client.ConnectAsync(AppOptions(key, clientId, MqttProtocolVersion.V500, cleanStart: false, sessionExpiry: 120));
        await client.SubscribeAsync($"apps/{clientId}/x", MqttQualityOfServiceLevel.AtLeastOnce);
        await client.DisconnectAsync();
        await DisconnectSeenAsync(clientId);

        await Hub.RestartAsync(); // the session comes back from the database, its client still away
        await AdvanceAsync(TimeSpan.FromSeconds(121));

        Assert.That((await client.ConnectAsync(AppOptions(key, clientId, MqttProtocolVersion.V500, cleanStart: false, sessionExpiry: 120))).IsSessionPresent,
            Is.False, "it expired 120 s after its client left, restart or not");
    }

    [Test]
    public async Task A_session_expiry_above_the_maximum_is_capped_and_the_client_told()
    {
        var key = await Hub.CreateApiKeyAsync("operator");
        using var client = new MqttClientFactory().CreateMqttClient();
        var result = await client.ConnectAsync(AppOptions(key, "cap-" + Guid.NewGuid().ToString("N")[..8], MqttProtocolVersion.V500, cleanStart: false, sessionExpiry: uint.MaxValue));
        Assert.That(result.SessionExpiryInterval, Is.EqualTo(600), "CONNACK Session Expiry Interval (MQTT 5 §3.2.2.3.2)");
    }

    [Test]
    public async Task A_queued_message_is_dropped_once_its_expiry_passes_and_the_others_carry_what_is_left_of_theirs()
    {
        var key = await Hub.CreateApiKeyAsync("operator");
        var clientId = "mx-" + Guid.NewGuid().ToString("N")[..8];
        var topic = $"apps/{clientId}/x";
        using var subscriber = new MqttClientFactory().CreateMqttClient();
        var received = new ConcurrentQueue<MqttApplicationMessage>();
        subscriber.ApplicationMessageReceivedAsync += e =>
        {
            received.Enqueue(e.ApplicationMessage);
            return Task.CompletedTask;
        };
        await subscriber.ConnectAsync(AppOptions(key, clientId, MqttProtocolVersion.V500, cleanStart: false, sessionExpiry: 300));
        await subscriber.SubscribeAsync(topic, MqttQualityOfServiceLevel.AtLeastOnce);
        await subscriber.DisconnectAsync();
        await DisconnectSeenAsync(clientId);

        using var publisher = await Hub.ConnectAsync("apikey", key);
        foreach (var (payload, expiry) in new[] { ("short", 10u), ("long", 100u), ("none", 0u) })
        {
            var b = new MqttApplicationMessageBuilder().WithTopic(topic).WithPayload(payload).WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce);
            if (expiry > 0) b = b.WithMessageExpiryInterval(expiry);
            await publisher.PublishAsync(b.Build());
        }
        await AdvanceAsync(TimeSpan.FromSeconds(30));

        await subscriber.ConnectAsync(AppOptions(key, clientId, MqttProtocolVersion.V500, cleanStart: false, sessionExpiry: 300));
        await WaitFor.ConditionAsync(() => received.Count >= 2, "the unexpired messages arrive");
        await Task.Delay(300);
        Assert.That(received.Select(m => Encoding.UTF8.GetString(m.Payload)), Is.EqualTo(new[] { "long", "none" }), "[MQTT-3.3.2-5]: the expired one is not sent");
        Assert.That(received.First().MessageExpiryInterval, Is.EqualTo(70), "[MQTT-3.3.2-6]: the interval left");
        Assert.That(received.Last().MessageExpiryInterval, Is.Zero);
    }

    [Test]
    public async Task A_will_with_a_delay_is_published_when_the_delay_passes_and_not_if_the_session_resumes_first()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        var (watcher, wills) = await WatchReportedStateAsync(id);
        using var _ = watcher;
        var will = $"devices/{id}/state/reported";

        // Dropped, then back within the delay: no will.
        var (first, _, _) = await RawMqttClient.ConnectAsync(Hub.MqttPort, id, id, token, cleanStart: false, sessionExpiry: 120, willTopic: will, willPayload: """{"gone": 1}""", willDelay: 30);
        first.Abort();
        await DisconnectSeenAsync(id, will: true);
        await AdvanceAsync(TimeSpan.FromSeconds(20));
        var (back, _, connAck) = await RawMqttClient.ConnectAsync(Hub.MqttPort, id, id, token, cleanStart: false, sessionExpiry: 120, willTopic: will, willPayload: """{"gone": 2}""", willDelay: 30);
        Assert.That(connAck[0] & 1, Is.EqualTo(1), "the session resumed");
        await AdvanceAsync(TimeSpan.FromSeconds(60));
        Assert.That(wills, Is.Empty, "the session resumed within the will delay (MQTT 5 §3.1.3.2.2)");

        // Dropped and not back: the will goes out when the delay has passed, not before.
        back.Abort();
        await DisconnectSeenAsync(id, will: true);
        await AdvanceAsync(TimeSpan.FromSeconds(29));
        Assert.That(wills, Is.Empty);
        await AdvanceAsync(TimeSpan.FromSeconds(2));
        await WaitFor.ConditionAsync(() => wills.Count == 1, "the will is published after its delay");
        Assert.That(wills.Single(), Is.EqualTo("""{"gone": 2}"""));
    }

    [Test]
    public async Task A_will_delay_longer_than_the_session_is_cut_short_by_the_session_end()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        var (watcher, wills) = await WatchReportedStateAsync(id);
        using var _ = watcher;
        var (client, _, _) = await RawMqttClient.ConnectAsync(Hub.MqttPort, id, id, token, cleanStart: false, sessionExpiry: 10,
            willTopic: $"devices/{id}/state/reported", willPayload: """{"gone": true}""", willDelay: 100);
        client.Abort();
        await DisconnectSeenAsync(id, will: true);
        await AdvanceAsync(TimeSpan.FromSeconds(11));
        await WaitFor.ConditionAsync(() => wills.Count == 1, "the will is published when the session ends, before its delay");
    }
}
