// The hub as a separate process, SIGKILLed after an event was committed to the outbox and before it reached the
// receiver (which is down): after a restart the event arrives, exactly once, with the same webhook-id.
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using IoTHub.Tests.Infrastructure;
using MQTTnet;

namespace IoTHub.Tests.Webhooks;

[TestFixture(Store.Sqlite)]
[TestFixture(Store.Postgres)]
public sealed class WebhookCrashTests(Store store)
{
    private string _data = null!;
    private string? _postgres;
    private HubPorts _ports = null!;

    [OneTimeSetUp]
    public async Task Prepare()
    {
        _data = Path.Combine(Path.GetTempPath(), "iothub-hookcrash-" + Guid.NewGuid().ToString("N")[..8]);
        if (store == Store.Postgres) _postgres = await TestPostgres.CreateDatabaseAsync();
        _ports = HubPorts.Free();
    }

    [OneTimeTearDown]
    public async Task CleanUp()
    {
        if (_postgres is not null) await TestPostgres.DropDatabaseAsync(_postgres);
        if (Directory.Exists(_data)) Directory.Delete(_data, true);
    }

    private HubProcess StartHub() => HubProcess.Start(_ports,
    [
        $"--DataDirectory={_data}", $"--Bootstrap:AdminPassword={HubHost.AdminPassword}", $"--Storage:Provider={store}",
        $"--ConnectionStrings:Postgres={_postgres}", "--Logging:LogLevel:Default=Warning", "--Coap:Port=0",
        "--Webhooks:AllowPrivateNetworks=true", "--Webhooks:RetryBaseDelay=00:00:00.3", "--Webhooks:RetryBackoffFactor=1",
        "--Webhooks:PollInterval=00:00:00.3",
    ]);

    /// <summary>A client on the ready hub, signed in as the admin.</summary>
    private static async Task<HttpClient> SignedInAsync(HubProcess hub)
    {
        var http = await hub.ReadyAsync();
        var r = await http.PostAsJsonAsync("/api/v1/auth/token", new { username = "admin", password = HubHost.AdminPassword });
        var token = (await r.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("token").GetString();
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return http;
    }

    [Test]
    public async Task An_event_committed_before_a_sigkill_is_delivered_once_after_the_restart()
    {
        var receiverPort = HubHost.FreeTcpPort(); // nobody listens there yet: every attempt before the kill fails
        string secret, deviceId;
        long endpoint;
        string messageId;
        using var hub = StartHub();
        try
        {
            using var http = await SignedInAsync(hub);
            var created = await (await http.PostAsJsonAsync("/api/v1/webhooks",
                new { url = $"http://127.0.0.1:{receiverPort}/hook", eventTypes = new[] { "device.online" } })).Content.ReadFromJsonAsync<JsonElement>();
            secret = created.GetProperty("secret").GetString()!;
            endpoint = created.GetProperty("webhook").GetProperty("id").GetInt64();
            var device = await (await http.PostAsJsonAsync("/api/v1/devices", new { id = "crash-hook" })).Content.ReadFromJsonAsync<JsonElement>();
            deviceId = device.GetProperty("id").GetString()!;
            using var client = new MqttClientFactory().CreateMqttClient();
            await client.ConnectAsync(new MqttClientOptionsBuilder().WithTcpServer("127.0.0.1", _ports.Mqtt).WithClientId(deviceId)
                .WithCredentials(deviceId, device.GetProperty("token").GetString()).Build());

            // Committed and tried (and failed) at least once: the event is owed, and only the database knows it.
            JsonElement delivery = default;
            for (var i = 0; i < 200; i++)
            {
                var items = (await http.GetFromJsonAsync<JsonElement>($"/api/v1/webhooks/{endpoint}/deliveries")).GetProperty("items");
                if (items.GetArrayLength() > 0 && (delivery = items[0]).GetProperty("status").GetString() == "retrying") break;
                await Task.Delay(50);
            }
            Assert.That(delivery.GetProperty("status").GetString(), Is.EqualTo("retrying"));
            messageId = delivery.GetProperty("messageId").GetString()!;
            await hub.KillAsync(); // SIGKILL
        }
        finally
        {
            await hub.KillAsync();
        }

        await using var receiver = await WebhookReceiver.StartAsync(receiverPort);
        using var restarted = StartHub();
        try
        {
            using var http = await SignedInAsync(restarted);
            var got = await receiver.WaitForAsync(all => all.Count > 0, TimeSpan.FromSeconds(30), "the delivery after the restart");
            await Task.Delay(2000); // and nothing more
            var all = receiver.Received;
            Assert.That(all, Has.Count.EqualTo(1), "delivered exactly once");
            Assert.Multiple(() =>
            {
                Assert.That(all[0].Id, Is.EqualTo(messageId));
                Assert.That(all[0].Type, Is.EqualTo("device.online"));
                Assert.That(all[0].Data["deviceId"]!.GetValue<string>(), Is.EqualTo(deviceId));
                Assert.That(StandardWebhooksVerifier.Verify(secret, all[0].Id, all[0].Timestamp, all[0].Body, all[0].Signature, DateTimeOffset.UtcNow), Is.True);
            });
            // The receiver records the request before it answers; the hub records "succeeded" once it has the answer.
            var log = default(JsonElement);
            await WaitFor.ConditionAsync(async () =>
                (log = (await http.GetFromJsonAsync<JsonElement>($"/api/v1/webhooks/{endpoint}/deliveries")).GetProperty("items")).GetArrayLength() == 1
                && log[0].GetProperty("status").GetString() == "succeeded", "the delivery log says succeeded");
            Assert.That(log.GetArrayLength(), Is.EqualTo(1));
        }
        finally
        {
            await restarted.KillAsync();
        }
    }
}
