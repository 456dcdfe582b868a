// What a simulated device does besides publishing telemetry: it answers commands on devices/{id}/commands/+,
// follows its desired state (devices/{id}/state/desired), reporting back what it applied, and takes firmware updates
// (devices/{id}/firmware, see DeviceFirmware).
using System.Buffers;
using System.Text;
using System.Text.Json.Nodes;
using IoTHub.Simulator.Firmware;
using MQTTnet;
using MQTTnet.Protocol;

namespace IoTHub.Simulator;

/// <summary>A device's answers to what the hub sends it: commands, desired state and firmware notifications.</summary>
/// <param name="client">The device's client.</param>
/// <param name="deviceId">Its id.</param>
/// <param name="payloads">Its telemetry model, whose set-point commands and the desired state change.</param>
/// <param name="firmware">Its firmware: the version it reports and the updates it takes.</param>
public sealed class DeviceBehaviour(IMqttClient client, string deviceId, PayloadFactory payloads, DeviceFirmware firmware)
{
    public long CommandsAnswered;
    public long DesiredApplied;

    /// <summary>Answers what arrives on the client, over every connection it makes.</summary>
    public void Attach()
    {
        client.ApplicationMessageReceivedAsync += e =>
        {
            var topic = e.ApplicationMessage.Topic;
            if (topic == firmware.Topic)
            {
                firmware.OnNotification(e.ApplicationMessage.Payload.ToArray());
                return Task.CompletedTask;
            }
            var body = Parse(e.ApplicationMessage.Payload.ToArray());
            // Answer off the receive handler: awaiting a PUBACK inside it would stall the client's packet loop.
            _ = Task.Run(() => topic.EndsWith("/state/desired", StringComparison.Ordinal) ? ApplyDesiredAsync(body) : AnswerAsync(topic, body), CancellationToken.None);
            return Task.CompletedTask;
        };
    }

    /// <summary>Subscribes to its commands, desired state and firmware notifications and reports its state, with the
    /// firmware version it runs: after each connect, since the client starts a clean session (and after a firmware
    /// update's reboot, that report is the proof the hub waits for).</summary>
    public async Task SubscribeAsync(CancellationToken ct)
    {
        await client.SubscribeAsync(new MqttClientSubscribeOptionsBuilder()
            .WithTopicFilter($"devices/{deviceId}/commands/+", MqttQualityOfServiceLevel.AtLeastOnce)
            .WithTopicFilter($"devices/{deviceId}/state/desired", MqttQualityOfServiceLevel.AtLeastOnce)
            .WithTopicFilter(firmware.Topic, MqttQualityOfServiceLevel.AtLeastOnce).Build(), ct);
        var model = payloads.Model.ToString().ToLowerInvariant();
        await ReportAsync(new JsonObject { ["model"] = model, ["firmwareVersion"] = firmware.Version, ["hardwareModel"] = model, ["setpoint"] = payloads.Setpoint });
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
