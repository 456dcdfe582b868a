// A device as a test drives it: a real MQTTnet client that subscribes to its downstream topics, records what the
// hub sends, and (optionally) answers commands the way a device's firmware would.
using System.Collections.Concurrent;
using System.Text;
using System.Text.Json.Nodes;
using MQTTnet;
using MQTTnet.Formatter;
using MQTTnet.Protocol;

namespace IoTHub.Tests.Infrastructure;

public sealed class TestDevice : IAsyncDisposable
{
    public IMqttClient Client { get; }
    public string Id { get; }
    public ConcurrentQueue<(string CommandId, JsonNode Body)> Commands { get; } = new();
    public ConcurrentQueue<JsonNode> DesiredStates { get; } = new();

    /// <summary>What the device answers; null: it stays silent.</summary>
    public Func<JsonNode, JsonNode?>? Answer { get; set; } = body => new JsonObject { ["status"] = "ok", ["result"] = new JsonObject { ["did"] = body["name"]!.GetValue<string>() } };

    private TestDevice(IMqttClient client, string id)
    {
        Client = client;
        Id = id;
        client.ApplicationMessageReceivedAsync += OnMessageAsync;
    }

    public static async Task<TestDevice> ConnectAsync(HubHost hub, string id, string token, MqttProtocolVersion version = MqttProtocolVersion.V500,
        Func<JsonNode, JsonNode?>? answer = null, bool silent = false)
    {
        var client = new MqttClientFactory().CreateMqttClient();
        var device = new TestDevice(client, id);
        if (silent) device.Answer = null;
        else if (answer is not null) device.Answer = answer;
        var result = await client.ConnectAsync(hub.MqttOptions(id, token, version));
        Assert.That(result.ResultCode, Is.EqualTo(MqttClientConnectResultCode.Success));
        var sub = await client.SubscribeAsync(new MqttClientSubscribeOptionsBuilder()
            .WithTopicFilter($"devices/{id}/commands/+", MqttQualityOfServiceLevel.AtLeastOnce)
            .WithTopicFilter($"devices/{id}/state/desired", MqttQualityOfServiceLevel.AtLeastOnce).Build());
        Assert.That(sub.Items.Select(i => (int)i.ResultCode), Is.All.LessThanOrEqualTo(2));
        return device;
    }

    private Task OnMessageAsync(MqttApplicationMessageReceivedEventArgs e)
    {
        var topic = e.ApplicationMessage.Topic;
        var body = JsonNode.Parse(Encoding.UTF8.GetString(e.ApplicationMessage.Payload))!;
        if (topic.EndsWith("/state/desired", StringComparison.Ordinal))
        {
            DesiredStates.Enqueue(body);
            return Task.CompletedTask;
        }
        var commandId = topic[(topic.LastIndexOf('/') + 1)..];
        Commands.Enqueue((commandId, body));
        if (Answer?.Invoke(body) is { } answer)
        {
            // Answer off the receive handler: awaiting our own PUBACK inside it would stall the client's packet loop.
            _ = Task.Run(() => Client.PublishAsync(new MqttApplicationMessageBuilder().WithTopic($"{topic}/response").WithPayload(answer.ToJsonString())
                .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build()));
        }
        return Task.CompletedTask;
    }

    public async ValueTask DisposeAsync()
    {
        if (Client.IsConnected) await Client.DisconnectAsync();
        Client.Dispose();
    }
}
