// A CoAP device is online while it talks; when the hub stops, its connection is closed as the hub shutting down, as an
// MQTT device's is.
using IoTHub.Tests.Infrastructure;

namespace IoTHub.Tests.Connectivity.Coap;

[TestFixture(Store.Sqlite)]
[TestFixture(Store.Postgres)]
[OwnHost("restarts the hub")]
public sealed class CoapPresenceTests(Store store) : HubFixture(store)
{
    private const string Client = "coap-client-openssl";

    private string Uri(string path) => $"coap://127.0.0.1:{Hub.CoapPort}/{path}";

    private Task<(int Code, string Output)> CoapAsync(params string[] args) => ExternalTool.RunAsync(Client, ["-B", "10", .. args]);

    [Test]
    public async Task A_coap_device_online_when_the_hub_stops_is_closed_in_its_history_as_the_hub_shutting_down()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        var (code, output) = await CoapAsync("-m", "post", "-t", "json", "-e", """{"temperature": 21.5}""", Uri($"devices/{id}/telemetry?token={token}"));
        Assert.That(code, Is.Zero, output);
        using (var admin = await Hub.AdminAsync())
            await WaitFor.ConditionAsync(async () => (await admin.GetJsonAsync($"/api/v1/devices/{id}"))["status"]!.GetValue<string>() == "online", "the device is online");

        await Hub.RestartAsync();

        using var again = await Hub.AdminAsync();
        var row = (await again.GetJsonAsync($"/api/v1/devices/{id}/connections"))["items"]!.AsArray().Single()!;
        Assert.That(row["protocol"]!.GetValue<string>(), Is.EqualTo("coap"));
        Assert.That(row["disconnectReason"]?.GetValue<string>(), Is.EqualTo("server shutting down"), "closed by the stop, not found open at the next start");
        Assert.That((await again.GetJsonAsync($"/api/v1/devices/{id}"))["status"]!.GetValue<string>(), Is.EqualTo("offline"));
    }
}
