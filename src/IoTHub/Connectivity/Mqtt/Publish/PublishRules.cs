// Who may publish where (CONTRACT.md, MQTT): a device only on its own upstream topics; operator and admin keys
// anywhere outside device upstream topics; viewers nowhere. The same rule applies to a Will, checked at CONNECT.
// Topic names starting with '$' are the server's (MQTT 5 §4.7.2): no client publishes there; nor under alarms/, where the
// hub tells apps of alarm transitions (a client could otherwise forge an alarm).
namespace IoTHub.Connectivity.Mqtt.Publish;

internal static class PublishRules
{
    /// <summary>Why <paramref name="principal"/> may not publish on <paramref name="topic"/>, or null when it may.</summary>
    public static string? WhyRefused(MqttPrincipal principal, string topic, MqttOptions limits)
    {
        if (topic.Length > limits.MaxTopicLength) return $"topic longer than {limits.MaxTopicLength} characters";
        if (topic.AsSpan().Count('/') + 1 > limits.MaxTopicLevels) return $"topic deeper than {limits.MaxTopicLevels} levels";
        if (topic.StartsWith('$')) return "topics starting with '$' are reserved for the server";
        if (Contracts.AlarmTopics.IsAlarmTopic(topic)) return "topics under alarms/ are reserved for the hub's alarm transitions";
        var parsed = DeviceTopic.Parse(topic);
        if (principal.DeviceId is { } device)
            return DeviceTopic.DeviceMayPublish(device, parsed) ? null : $"device {device} may not publish on {topic}";
        if (!principal.MayWrite) return $"{principal.Role} clients may only subscribe";
        return parsed.IsDeviceTopic && parsed.IsUpstream ? $"apps may not publish on a device's upstream topic {topic}" : null;
    }
}
