using MQTTnet;

namespace IoTHub.Tests.Infrastructure;

public static class MqttConnect
{
    /// <summary>The CONNACK result; MQTTnet 5 reports a refused connection as a result, not an exception.</summary>
    public static async Task<MqttClientConnectResultCode> TryAsync(IMqttClient client, MqttClientOptions options) =>
        (await client.ConnectAsync(options)).ResultCode;
}
