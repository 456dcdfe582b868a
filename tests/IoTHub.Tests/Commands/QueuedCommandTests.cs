// Commands queued for an offline device (deliverWhenOnline), on a hub whose clock is a FakeTimeProvider: the test moves
// it on by the 30 s or 1.5 s the device stays away instead of sleeping through them.
using System.Net;
using IoTHub.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using MQTTnet.Formatter;

namespace IoTHub.Tests.Commands;

[TestFixture(Store.Sqlite)]
[TestFixture(Store.Postgres)]
public sealed class QueuedCommandTests(Store store) : HubFixture(store)
{
    private readonly FakeTimeProvider _time = new(DateTimeOffset.UtcNow);

    /// <summary>The expiry check runs on its own (wall-clock) timer and reads the hub's clock: often, so a test waits
    /// for it no longer than it takes.</summary>
    protected override IDictionary<string, string?> Settings => new Dictionary<string, string?> { ["Commands:ExpiryCheckInterval"] = "00:00:00.100" };

    protected override void Configure(Microsoft.AspNetCore.Builder.WebApplicationBuilder builder) => builder.Services.AddSingleton<TimeProvider>(_time);

    private Task<HttpResponseMessage> SendAsync(string deviceId, object body) => CommandTests.SendAsync(Hub, deviceId, body);

    private async Task<string> StateAsync(string deviceId, string commandId)
    {
        using var admin = await Hub.AdminAsync();
        return (await admin.GetJsonAsync($"/api/v1/devices/{deviceId}/commands/{commandId}"))["state"]!.GetValue<string>();
    }

    [Test]
    public async Task Commands_for_an_offline_device_are_delivered_in_order_once_when_it_connects_30_s_later()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        var first = await SendAsync(id, new { name = "setSetpoint", @params = new { value = 19 }, deliverWhenOnline = true, expiresInSeconds = 600 });
        var second = await SendAsync(id, new { name = "setSetpoint", @params = new { value = 21 }, deliverWhenOnline = true, expiresInSeconds = 600 });
        var shortLived = await SendAsync(id, new { name = "setSetpoint", @params = new { value = 0 }, deliverWhenOnline = true, expiresInSeconds = 20 });
        Assert.That(first.StatusCode, Is.EqualTo(HttpStatusCode.Accepted));
        Assert.That(second.StatusCode, Is.EqualTo(HttpStatusCode.Accepted));
        var firstId = (await first.ReadJsonAsync())["id"]!.GetValue<string>();
        var secondId = (await second.ReadJsonAsync())["id"]!.GetValue<string>();
        var shortLivedId = (await shortLived.ReadJsonAsync())["id"]!.GetValue<string>();
        Assert.That(first.Headers.Location!.ToString(), Does.EndWith(firstId));

        _time.Advance(TimeSpan.FromSeconds(30));
        // The command that could wait only 20 s expires: the expiry check has run at the later time and kept the others.
        await WaitFor.ConditionAsync(async () => await StateAsync(id, shortLivedId) == "expired", "the 20 s command expires");
        await using (var device = await TestDevice.ConnectAsync(Hub, id, token, MqttProtocolVersion.V311))
        {
            await WaitFor.ConditionAsync(() => device.Commands.Count >= 2, "both queued commands arrive");
            Assert.That(device.Commands.Select(c => c.CommandId), Is.EqualTo(new[] { firstId, secondId }));
            Assert.That(device.Commands.Select(c => c.Body["params"]!["value"]!.GetValue<int>()), Is.EqualTo(new[] { 19, 21 }));
            // The device answers each command on its own task, so the two responses may be recorded in either order.
            await WaitFor.ConditionAsync(async () => await StateAsync(id, firstId) == "succeeded" && await StateAsync(id, secondId) == "succeeded",
                "both commands succeed");
        }

        await using var again = await TestDevice.ConnectAsync(Hub, id, token);
        await Task.Delay(1000);
        Assert.That(again.Commands, Is.Empty, "a delivered command is never delivered again");
    }

    [Test]
    public async Task An_expired_queued_command_is_never_delivered()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        var queued = await SendAsync(id, new { name = "unlock", deliverWhenOnline = true, expiresInSeconds = 1 });
        var commandId = (await queued.ReadJsonAsync())["id"]!.GetValue<string>();
        // Queued after it, delivered after it would be: once this one arrives, the expired one is known not to.
        var later = await SendAsync(id, new { name = "lock", deliverWhenOnline = true, expiresInSeconds = 600 });
        var laterId = (await later.ReadJsonAsync())["id"]!.GetValue<string>();

        _time.Advance(TimeSpan.FromSeconds(1.5));
        await using var device = await TestDevice.ConnectAsync(Hub, id, token);
        await WaitFor.ConditionAsync(() => !device.Commands.IsEmpty, "the command queued after it arrives");

        Assert.That(device.Commands.Select(c => c.CommandId), Is.EqualTo(new[] { laterId }));
        await WaitFor.ConditionAsync(async () => await StateAsync(id, commandId) == "expired", "the command is marked expired");
    }
}
