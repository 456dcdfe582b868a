using System.Net;
using System.Net.Http.Json;
using IoTHub.Tests.Infrastructure;
using MQTTnet;
using MQTTnet.Protocol;

namespace IoTHub.Tests.Validation;

[TestFixture(Store.Sqlite)]
[TestFixture(Store.Postgres)]
public sealed class ProfileAndClockTests(Store store) : HubFixture(store)
{
    private async Task<string> CreateProfileAsync(string unknownMetrics = "allow", string clockPolicy = "reject")
    {
        var id = "prof-" + Guid.NewGuid().ToString("N")[..8];
        using var admin = await Hub.AdminAsync();
        var response = await admin.PostAsJsonAsync("/api/v1/profiles", new
        {
            id, name = "Thermostat", unknownMetrics, clockPolicy, reportIntervalSeconds = 60,
            metrics = new object[]
            {
                new { name = "temperature", type = "number", unit = "°C", min = -40, max = 85 },
                new { name = "heating", type = "boolean" },
                new { name = "mode", type = "string" },
            },
        });
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Created), await response.Content.ReadAsStringAsync());
        return id;
    }

    private async Task<(string Id, string Token)> DeviceWithProfileAsync(string profile)
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        using var admin = await Hub.AdminAsync();
        var patch = await admin.PatchAsJsonAsync($"/api/v1/devices/{id}", new { profile });
        Assert.That(patch.StatusCode, Is.EqualTo(HttpStatusCode.OK), await patch.Content.ReadAsStringAsync());
        return (id, token);
    }

    private static MqttApplicationMessage Telemetry(string id, string json) => new MqttApplicationMessageBuilder()
        .WithTopic($"devices/{id}/telemetry").WithPayload(json).WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build();

    [TestCase("""{"temperature": 120}""", "above the maximum 85 °C")]
    [TestCase("""{"temperature": -41}""", "below the minimum -40 °C")]
    [TestCase("""{"temperature": "warm"}""", "expected a number")]
    [TestCase("""{"heating": 1}""", "expected a boolean")]
    public async Task Values_that_break_the_profile_are_dead_lettered_with_the_reason(string payload, string reason)
    {
        var (id, token) = await DeviceWithProfileAsync(await CreateProfileAsync());
        using var client = await Hub.ConnectAsync(id, token);

        var ack = await client.PublishAsync(Telemetry(id, payload));

        Assert.That(ack.ReasonCode, Is.EqualTo(MqttClientPublishReasonCode.PayloadFormatInvalid));
        Assert.That(ack.ReasonString, Does.Contain(reason));
        using var admin = await Hub.AdminAsync();
        var dead = await admin.GetJsonAsync($"/api/v1/dead-letters?deviceId={id}");
        Assert.That(dead["items"]!.AsArray().Single()!["reason"]!.GetValue<string>(), Does.Contain(reason));
    }

    [Test]
    public async Task Valid_values_pass_and_unknown_metrics_follow_the_profile_setting()
    {
        var (allowing, t1) = await DeviceWithProfileAsync(await CreateProfileAsync("allow"));
        var (rejecting, t2) = await DeviceWithProfileAsync(await CreateProfileAsync("reject"));
        using var c1 = await Hub.ConnectAsync(allowing, t1);
        using var c2 = await Hub.ConnectAsync(rejecting, t2);

        var ok = await c1.PublishAsync(Telemetry(allowing, """{"temperature": 21, "heating": true, "mode": "eco", "battery": 88}"""));
        var refused = await c2.PublishAsync(Telemetry(rejecting, """{"temperature": 21, "battery": 88}"""));

        Assert.That(ok.ReasonCode, Is.EqualTo(MqttClientPublishReasonCode.Success), ok.ReasonString);
        Assert.That(refused.ReasonCode, Is.EqualTo(MqttClientPublishReasonCode.PayloadFormatInvalid));
        Assert.That(refused.ReasonString, Does.Contain("'battery' is not a metric of profile"));
    }

    [Test]
    public async Task A_changed_profile_applies_at_once()
    {
        var profile = await CreateProfileAsync();
        var (id, token) = await DeviceWithProfileAsync(profile);
        using var admin = await Hub.AdminAsync();
        var put = await admin.PutAsJsonAsync($"/api/v1/profiles/{profile}", new
        {
            metrics = new object[] { new { name = "temperature", type = "number", min = 0, max = 30 } },
        });
        Assert.That(put.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        using var client = await Hub.ConnectAsync(id, token);

        var ack = await client.PublishAsync(Telemetry(id, """{"temperature": 50}"""));

        Assert.That(ack.ReasonString, Does.Contain("above the maximum 30"));
    }

    [Test]
    public async Task Profiles_are_validated_and_unknown_profiles_cannot_be_assigned()
    {
        using var admin = await Hub.AdminAsync();
        var bad = await admin.PostAsJsonAsync("/api/v1/profiles", new { id = "p1", metrics = new object[] { new { name = "x", type = "color" } } });
        Assert.That(bad.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        var create = await admin.PostAsJsonAsync("/api/v1/devices", new { profile = "no-such-profile" });
        Assert.That(create.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        var (id, _) = await Hub.CreateDeviceAsync();
        var patch = await admin.PatchAsJsonAsync($"/api/v1/devices/{id}", new { profile = "no-such-profile" });
        Assert.That(patch.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        Assert.That(await patch.Content.ReadAsStringAsync(), Does.Contain("no profile 'no-such-profile'"));
        var profile = await CreateProfileAsync();
        await DeviceWithProfileAsync(profile);
        Assert.That((await admin.DeleteAsync($"/api/v1/profiles/{profile}")).StatusCode, Is.EqualTo(HttpStatusCode.Conflict), "in use");
    }

    private async Task<(string Id, string Token)> DeviceWithClockPolicyAsync(string policy)
    {
        var profile = await CreateProfileAsync(clockPolicy: policy);
        return await DeviceWithProfileAsync(profile);
    }

    private static string Fast(double value) =>
        $$$"""{"ts": {{{DateTimeOffset.UtcNow.AddMinutes(10).ToUnixTimeMilliseconds()}}}, "values": {"temperature": {{{value}}}}}""";

    [Test]
    public async Task A_clock_ten_minutes_fast_is_flagged_and_rejected_under_reject()
    {
        var (id, token) = await DeviceWithClockPolicyAsync("reject");
        using var client = await Hub.ConnectAsync(id, token);

        var ack = await client.PublishAsync(Telemetry(id, Fast(20)));

        Assert.That(ack.ReasonCode, Is.EqualTo(MqttClientPublishReasonCode.PayloadFormatInvalid));
        Assert.That(ack.ReasonString, Does.Contain("ahead of the hub's clock"));
        using var admin = await Hub.AdminAsync();
        var device = await admin.GetJsonAsync($"/api/v1/devices/{id}");
        Assert.That(device["clockDriftFlagged"]!.GetValue<bool>(), Is.True);
        Assert.That(device["clockDriftMs"]!.GetValue<long>(), Is.InRange(590_000, 610_000));
    }

    [Test]
    public async Task Under_serverTime_the_hub_time_is_stored_and_the_device_time_kept()
    {
        var (id, token) = await DeviceWithClockPolicyAsync("serverTime");
        using var client = await Hub.ConnectAsync(id, token);
        var before = DateTimeOffset.UtcNow;

        var ack = await client.PublishAsync(Telemetry(id, Fast(20)));

        Assert.That(ack.ReasonCode, Is.EqualTo(MqttClientPublishReasonCode.Success), ack.ReasonString);
        using var admin = await Hub.AdminAsync();
        var point = (await admin.GetJsonAsync($"/api/v1/devices/{id}/telemetry?metric=temperature&resolution=raw"))["points"]!.AsArray().Single()!;
        Assert.That(point["ts"]!.GetValue<DateTimeOffset>(), Is.EqualTo(before).Within(TimeSpan.FromSeconds(10)));
        Assert.That(point["deviceTs"]!.GetValue<DateTimeOffset>(), Is.EqualTo(before.AddMinutes(10)).Within(TimeSpan.FromSeconds(10)));
        Assert.That((await admin.GetJsonAsync($"/api/v1/devices/{id}"))["clockDriftFlagged"]!.GetValue<bool>(), Is.True);
    }

    [Test]
    public async Task Under_accept_the_device_time_is_stored_and_the_device_flagged()
    {
        var (id, token) = await DeviceWithClockPolicyAsync("accept");
        using var client = await Hub.ConnectAsync(id, token);

        var ack = await client.PublishAsync(Telemetry(id, Fast(20)));

        Assert.That(ack.ReasonCode, Is.EqualTo(MqttClientPublishReasonCode.Success), ack.ReasonString);
        using var admin = await Hub.AdminAsync();
        var from = Uri.EscapeDataString(DateTimeOffset.UtcNow.AddHours(-1).ToString("O"));
        var to = Uri.EscapeDataString(DateTimeOffset.UtcNow.AddHours(1).ToString("O"));
        var point = (await admin.GetJsonAsync($"/api/v1/devices/{id}/telemetry?metric=temperature&resolution=raw&from={from}&to={to}"))["points"]!.AsArray().Single()!;
        Assert.That(point["ts"]!.GetValue<DateTimeOffset>(), Is.EqualTo(DateTimeOffset.UtcNow.AddMinutes(10)).Within(TimeSpan.FromSeconds(10)));
        Assert.That((await admin.GetJsonAsync($"/api/v1/devices/{id}"))["clockDriftFlagged"]!.GetValue<bool>(), Is.True);
    }

    [Test]
    public async Task One_outlier_does_not_flag_a_good_clock()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        using var client = await Hub.ConnectAsync(id, token);
        for (var i = 0; i < 4; i++)
            await client.PublishAsync(Telemetry(id, $$$"""{"ts": {{{DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()}}}, "values": {"t": {{{i}}}}}"""));

        var outlier = await client.PublishAsync(Telemetry(id, $$$"""{"ts": {{{DateTimeOffset.UtcNow.AddHours(-2).ToUnixTimeMilliseconds()}}}, "values": {"t": 9}}"""));

        Assert.That(outlier.ReasonCode, Is.EqualTo(MqttClientPublishReasonCode.Success), "a buffered old point is backfill, not drift");
        using var admin = await Hub.AdminAsync();
        var device = await admin.GetJsonAsync($"/api/v1/devices/{id}");
        Assert.That(device["clockDriftFlagged"]!.GetValue<bool>(), Is.False);
        Assert.That(Math.Abs(device["clockDriftMs"]!.GetValue<long>()), Is.LessThan(5_000));
    }

    [Test]
    public async Task A_device_sending_hours_of_buffered_readings_after_an_outage_is_not_flagged()
    {
        // One message per reading, two hours old down to one: the median of the last 15 is hours behind. It was flagged
        // as clock drift although the device's clock is right; only the data is late.
        var (id, token) = await Hub.CreateDeviceAsync();
        using var client = await Hub.ConnectAsync(id, token);
        var now = DateTimeOffset.UtcNow;
        for (var i = 0; i < 20; i++)
        {
            var ts = now.AddHours(-2).AddMinutes(3 * i).ToUnixTimeMilliseconds();
            var ack = await client.PublishAsync(Telemetry(id, $$$"""{"ts": {{{ts}}}, "values": {"t": {{{i}}}}}"""));
            Assert.That(ack.ReasonCode, Is.EqualTo(MqttClientPublishReasonCode.Success), ack.ReasonString);
        }

        using var admin = await Hub.AdminAsync();
        var device = await admin.GetJsonAsync($"/api/v1/devices/{id}");
        Assert.That(device["clockDriftMs"]!.GetValue<long>(), Is.LessThan(-3_000_000), "the estimate says the data is late");
        Assert.That(device["clockDriftFlagged"]!.GetValue<bool>(), Is.False);
    }
}
