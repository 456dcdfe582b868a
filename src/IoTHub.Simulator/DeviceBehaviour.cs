// What a simulated device does besides publishing telemetry: it answers commands on devices/{id}/commands/+
// and follows its desired state (devices/{id}/state/desired), reporting back what it applied.
using System.Buffers;
using System.Text;
using System.Text.Json.Nodes;
using MQTTnet;
using MQTTnet.Protocol;

namespace IoTHub.Simulator;

public sealed class DeviceBehaviour(IMqttClient client, string deviceId, PayloadFactory payloads)
{
    public long CommandsAnswered;
    public long DesiredApplied;

    /// <summary>Answers what arrives on the client, over every connection it makes.</summary>
    public void Attach()
    {
        client.ApplicationMessageReceivedAsync += e =>
        {
            var topic = e.ApplicationMessage.Topic;
            var body = Parse(e.ApplicationMessage.Payload.ToArray());
            // Answer off the receive handler: awaiting a PUBACK inside it would stall the client's packet loop.
            _ = Task.Run(() => topic.EndsWith("/state/desired", StringComparison.Ordinal) ? ApplyDesiredAsync(body) : AnswerAsync(topic, body), CancellationToken.None);
            return Task.CompletedTask;
        };
    }

    /// <summary>Subscribes to its commands and desired state and reports its state: after each connect, since the
    /// client starts a clean session.</summary>
    public async Task SubscribeAsync(CancellationToken ct)
    {
        await client.SubscribeAsync(new MqttClientSubscribeOptionsBuilder()
            .WithTopicFilter($"devices/{deviceId}/commands/+", MqttQualityOfServiceLevel.AtLeastOnce)
            .WithTopicFilter($"devices/{deviceId}/state/desired", MqttQualityOfServiceLevel.AtLeastOnce).Build(), ct);
        await ReportAsync(new JsonObject { ["model"] = payloads.Model.ToString().ToLowerInvariant(), ["firmware"] = "sim-1.0", ["setpoint"] = payloads.Setpoint });
    }

    private async Task AnswerAsync(string topic, JsonNode? command)
    {
        var name = command?["name"]?.GetValue<string>();
        JsonObject answer = name switch
        {
            "ping" => Ok(new JsonObject { ["pong"] = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() }),
            "reboot" => Ok(new JsonObject { ["rebootedAt"] = DateTimeOffset.UtcNow.ToString("O") }),
            "setSetpoint" when command?["params"]?["value"] is JsonValue v && v.TryGetValue<double>(out var setpoint) => SetSetpoint(setpoint),
            _ => new JsonObject { ["status"] = "error", ["result"] = $"unknown command '{name}'" },
        };
        await client.PublishAsync(new MqttApplicationMessageBuilder().WithTopic(topic + "/response").WithPayload(answer.ToJsonString())
            .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
        Interlocked.Increment(ref CommandsAnswered);
    }

    private JsonObject SetSetpoint(double value)
    {
        payloads.Setpoint = value;
        return Ok(new JsonObject { ["setpoint"] = value });
    }

    private async Task ApplyDesiredAsync(JsonNode? desired)
    {
        if (desired?["state"] is not JsonObject state) return;
        if (state["setpoint"] is JsonValue v && v.TryGetValue<double>(out var setpoint)) payloads.Setpoint = setpoint;
        var applied = state.DeepClone().AsObject();
        applied["appliedVersion"] = desired["version"]?.GetValue<long>();
        await ReportAsync(applied);
        Interlocked.Increment(ref DesiredApplied);
    }

    private Task ReportAsync(JsonObject reported) =>
        client.PublishAsync(new MqttApplicationMessageBuilder().WithTopic($"devices/{deviceId}/state/reported").WithPayload(reported.ToJsonString())
            .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());

    private static JsonObject Ok(JsonObject result) => new() { ["status"] = "ok", ["result"] = result };

    private static JsonNode? Parse(byte[] payload)
    {
        try { return JsonNode.Parse(Encoding.UTF8.GetString(payload)); }
        catch (System.Text.Json.JsonException) { return null; }
    }
}
