using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using IoTHub.Tests.Infrastructure;
using MQTTnet;
using MQTTnet.Formatter;
using MQTTnet.Protocol;

namespace IoTHub.Tests.Gateway;

/// <summary>The contract's limits at their real (low) values: per API key, per address, per device, failed logins.</summary>
[TestFixture(Store.Sqlite)]
[RunsAlone("counts what gets through a limit within one second")]
public sealed class RateLimitTests(Store store) : HubFixture(store)
{
    protected override IDictionary<string, string?> Settings => new Dictionary<string, string?>
    {
        ["Connectivity:DeviceMessagesPerSecond"] = "20",
        ["Connectivity:FailedAuthMaxDelayMilliseconds"] = "5000",
        ["RateLimits:ApiKeyRequestsPerSecond"] = "50",
        ["RateLimits:UserRequestsPerSecond"] = "1000",
        ["RateLimits:AnonymousRequestsPerSecond"] = "5",
    };

    [Test]
    public async Task An_api_key_over_50_requests_a_second_gets_429_with_retry_after_and_others_are_unaffected()
    {
        using var greedy = Hub.WithApiKey(await Hub.CreateApiKeyAsync("viewer"));
        using var polite = Hub.WithApiKey(await Hub.CreateApiKeyAsync("viewer"));

        var statuses = await Task.WhenAll(Enumerable.Range(0, 120).Select(_ => greedy.GetAsync("/api/v1/devices")));

        var limited = statuses.Where(r => r.StatusCode == HttpStatusCode.TooManyRequests).ToList();
        Assert.That(limited, Is.Not.Empty);
        Assert.That(statuses.Count(r => r.StatusCode == HttpStatusCode.OK), Is.EqualTo(50), "a second's budget, spent by the burst");
        Assert.That(limited[0].Headers.RetryAfter, Is.Not.Null);
        Assert.That(limited[0].Content.Headers.ContentType!.MediaType, Is.EqualTo("application/problem+json"));
        Assert.That((await polite.GetAsync("/api/v1/devices")).StatusCode, Is.EqualTo(HttpStatusCode.OK), "another key has its own budget");
        await Task.Delay(1300);
        Assert.That((await greedy.GetAsync("/api/v1/devices")).StatusCode, Is.EqualTo(HttpStatusCode.OK), "the budget refills once the burst leaves the window");
    }

    [Test]
    public async Task Password_guessing_from_one_address_is_limited()
    {
        using var http = Hub.Anonymous();
        var watch = System.Diagnostics.Stopwatch.StartNew();
        var attempts = await Task.WhenAll(Enumerable.Range(0, 40).Select(i =>
            http.PostAsJsonAsync("/api/v1/auth/token", new { username = "admin", password = "guess-" + i })));
        var elapsed = watch.Elapsed.TotalSeconds;

        // 5 in any second: a permit comes back only when its attempt is a second old, whatever the heartbeat's timing.
        var through = attempts.Count(r => r.StatusCode != HttpStatusCode.TooManyRequests);
        Assert.That(through, Is.LessThanOrEqualTo(5 * (1 + (int)Math.Floor(elapsed))), $"{through} attempts got through in {elapsed:0.0} s");
        Assert.That(attempts.Count(r => r.StatusCode == HttpStatusCode.TooManyRequests), Is.GreaterThan(0));
        await Task.Delay(1300);
        Assert.That((await http.PostAsJsonAsync("/api/v1/auth/token", new { username = "admin", password = HubHost.AdminPassword })).StatusCode,
            Is.EqualTo(HttpStatusCode.OK));
    }

    [Test]
    public async Task A_caller_idle_for_a_while_gets_one_seconds_budget_in_a_burst_not_two()
    {
        // The bug: a token bucket left full by an idle caller refilled all of it at the first heartbeat after the
        // burst drained it, so 10 and more of 5 got through within half a second.
        using var http = Hub.Anonymous();
        await http.GetAsync("/health/live");
        await Task.Delay(1500);

        var through = 0;
        var watch = Stopwatch.StartNew();
        while (watch.ElapsedMilliseconds < 600) // spans several 100 ms heartbeats, all within the second
        {
            if ((await http.GetAsync("/health/live")).StatusCode != HttpStatusCode.TooManyRequests) through++;
            await Task.Delay(20);
        }

        Assert.That(through, Is.EqualTo(5), $"{through} requests got through in {watch.Elapsed.TotalSeconds:0.00} s with a limit of 5 a second");
    }

    [Test]
    public async Task A_device_over_its_rate_gets_429_over_http_and_0x96_over_mqtt5()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        using var http = Hub.WithBearer(token);
        using var mqtt = await Hub.ConnectAsync(id, token);

        var posts = await Task.WhenAll(Enumerable.Range(0, 40).Select(i => http.PostAsync($"/api/v1/devices/{id}/telemetry", Json.Body($$"""{"n": {{i}}}"""))));
        await Task.Delay(1100);
        // All 40 in flight at once, as the HTTP posts: the rate is counted per second of the clock, and publishes each
        // awaiting its commit-gated PUBACK could spread over seconds and stay under the limit in every one.
        var acks = await Task.WhenAll(Enumerable.Range(0, 40).Select(i => mqtt.PublishAsync(new MqttApplicationMessageBuilder()
            .WithTopic($"devices/{id}/telemetry").WithPayload($$"""{"n": {{i}}}""").WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build())));

        Assert.That(posts.Count(r => r.StatusCode == HttpStatusCode.TooManyRequests), Is.GreaterThan(0));
        Assert.That(posts.First(r => r.StatusCode == HttpStatusCode.TooManyRequests).Headers.RetryAfter, Is.Not.Null);
        var refused = acks.Where(a => (int)a.ReasonCode == 0x96).ToList();
        Assert.That(refused, Is.Not.Empty);
        Assert.That(refused[0].ReasonString, Does.Contain("message rate too high"));
        Assert.That(mqtt.IsConnected, Is.True);
        var (other, otherToken) = await Hub.CreateDeviceAsync();
        using var otherHttp = Hub.WithBearer(otherToken);
        Assert.That((await otherHttp.PostAsync($"/api/v1/devices/{other}/telemetry", Json.Body("""{"n": 1}"""))).StatusCode, Is.EqualTo(HttpStatusCode.Accepted));
    }

    [Test]
    public async Task A_mqtt311_device_over_its_rate_is_slowed_down_and_loses_nothing()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        using var mqtt = await Hub.ConnectAsync(id, token, MqttProtocolVersion.V311);
        var t0 = DateTimeOffset.UtcNow.AddMinutes(-5).ToUnixTimeMilliseconds();
        var watch = Stopwatch.StartNew();

        for (var i = 0; i < 50; i++)
            await mqtt.PublishAsync(new MqttApplicationMessageBuilder().WithTopic($"devices/{id}/telemetry").WithPayload($$$"""{"ts": {{{t0 + i}}}, "values": {"n": {{{i}}}}}""")
                .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());

        Assert.That(watch.Elapsed, Is.GreaterThan(TimeSpan.FromSeconds(1)), "50 messages at 20 a second span three one-second windows");
        using var admin = await Hub.AdminAsync();
        var points = await admin.GetJsonAsync($"/api/v1/devices/{id}/telemetry?metric=n&resolution=raw&from={Uri.EscapeDataString(DateTimeOffset.FromUnixTimeMilliseconds(t0 - 1000).ToString("O"))}");
        Assert.That(points["points"]!.AsArray(), Has.Count.EqualTo(50));
        Assert.That(mqtt.IsConnected, Is.True);
    }

    [Test]
    public async Task Failed_device_logins_from_one_address_are_slowed_exponentially_but_a_right_token_is_not()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        var delays = new List<TimeSpan>();
        for (var i = 0; i < 5; i++)
        {
            using var bad = new MqttClientFactory().CreateMqttClient();
            var watch = Stopwatch.StartNew();
            Assert.That(await MqttConnect.TryAsync(bad, Hub.MqttOptions(id, "wrong-" + i)), Is.EqualTo(MqttClientConnectResultCode.BadUserNameOrPassword));
            delays.Add(watch.Elapsed);
        }
        var good = Stopwatch.StartNew();
        using var client = await Hub.ConnectAsync(id, token);

        // Each bound on its own attempt (the hub waits after that attempt's CONNECT): a ratio between two attempts broke
        // when load slowed the first connect more than the fifth.
        for (var i = 0; i < delays.Count; i++)
            Assert.That(delays[i].TotalMilliseconds, Is.GreaterThanOrEqualTo((100 << i) - TimerSlack.Milliseconds), $"failure {i + 1} waits 100 ms doubled {i} times");
        Assert.That(good.Elapsed, Is.LessThan(TimeSpan.FromSeconds(3.2)), "the legitimate device is not locked out (a sixth failure would wait 3.2 s)");
    }
}
