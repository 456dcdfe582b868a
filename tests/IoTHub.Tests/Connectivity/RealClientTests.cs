using IoTHub.Tests.Infrastructure;

namespace IoTHub.Tests.Connectivity;

/// <summary>mosquitto_pub, a client nobody here wrote, against the embedded broker (3.1.1 and 5.0).</summary>
[TestFixture(Store.Sqlite)]
public sealed class RealClientTests(Store store) : HubFixture(store)
{
    [TestCase("mqttv311")]
    [TestCase("mqttv5")]
    public async Task Mosquitto_pub_telemetry_is_stored(string version)
    {
        var (id, token) = await Hub.CreateDeviceAsync();

        var (code, output) = await ExternalTool.RunAsync("mosquitto_pub", "-h", "127.0.0.1", "-p", Hub.MqttPort.ToString(), "-V", version, "-q", "1",
            "-i", id, "-u", id, "-P", token, "-t", $"devices/{id}/telemetry", "-m", """{"temperature": 21.5}""", "-d");

        Assert.That(code, Is.EqualTo(0), output);
        Assert.That(output, Does.Contain("received PUBACK"));
        using var admin = await Hub.AdminAsync();
        var latest = await admin.GetJsonAsync($"/api/v1/devices/{id}/telemetry/latest");
        Assert.That(latest["values"]!.AsArray().Single()!["value"]!.GetValue<double>(), Is.EqualTo(21.5));
    }

    [Test]
    public async Task Mosquitto_pub_without_a_client_id_is_assigned_one_on_3_1_1_and_5_0([Values("mqttv311", "mqttv5")] string version)
    {
        // The most common command line there is: no -i. MQTT-3.1.3-6 lets a 3.1.1 server assign an id to a clean session.
        var (id, token) = await Hub.CreateDeviceAsync();
        var (code, output) = await ExternalTool.RunAsync("mosquitto_pub", "-h", "127.0.0.1", "-p", Hub.MqttPort.ToString(), "-V", version, "-q", "1",
            "-u", id, "-P", token, "-t", $"devices/{id}/telemetry", "-m", """{"t": 1}""");
        Assert.That(code, Is.EqualTo(0), output);
        using var admin = await Hub.AdminAsync();
        var latest = await admin.GetJsonAsync($"/api/v1/devices/{id}/telemetry/latest");
        Assert.That(latest["values"]!.AsArray().Select(v => v!["metric"]!.GetValue<string>()), Is.EqualTo(new[] { "t" }));
        await WaitFor.ConditionAsync(async () => (await admin.GetJsonAsync($"/api/v1/devices/{id}/connections"))["items"]!.AsArray().Count > 0, "the connection is recorded");
        var connections = await admin.GetJsonAsync($"/api/v1/devices/{id}/connections");
        Assert.That(connections["items"]![0]!["clientId"]!.GetValue<string>(), Does.StartWith(id + ":"), "the assigned id is in the device's namespace");
    }

    [Test]
    public async Task Mosquitto_pub_with_a_wrong_token_is_refused()
    {
        var (id, _) = await Hub.CreateDeviceAsync();
        var (code, output) = await ExternalTool.RunAsync("mosquitto_pub", "-h", "127.0.0.1", "-p", Hub.MqttPort.ToString(), "-V", "mqttv5", "-q", "1",
            "-u", id, "-P", "wrong", "-t", $"devices/{id}/telemetry", "-m", """{"t": 1}""");
        Assert.That(code, Is.Not.EqualTo(0));
        Assert.That(output, Does.Contain("Bad User Name or Password").IgnoreCase);
    }

    [Test]
    public async Task Mosquitto_pub_banana_gets_reason_0x99()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        await ExternalTool.RunAsync("mosquitto_pub", "-h", "127.0.0.1", "-p", Hub.MqttPort.ToString(), "-V", "mqttv5", "-q", "1",
            "-u", id, "-P", token, "-t", $"devices/{id}/telemetry", "-m", """{"temperature": 20}""");

        var (_, output) = await ExternalTool.RunAsync("mosquitto_pub", "-h", "127.0.0.1", "-p", Hub.MqttPort.ToString(), "-V", "mqttv5", "-q", "1",
            "-u", id, "-P", token, "-t", $"devices/{id}/telemetry", "-m", """{"temperature": "banana"}""", "-d");

        Assert.That(output, Does.Contain("RC:153"), output);
    }
}
