// The topic ACL of the contract: a device publishes only on its own upstream topics and subscribes only to its
// own downstream ones; apps never publish on a device's upstream topics.
namespace IoTHub.Connectivity.Mqtt;

internal enum TopicKind { Other, Telemetry, StateReported, StateDesired, Command, CommandResponse, Firmware, FirmwareProgress }

internal readonly record struct DeviceTopic(TopicKind Kind, string? DeviceId)
{
    public bool IsDeviceTopic => DeviceId is not null;

    public bool IsUpstream => Kind is TopicKind.Telemetry or TopicKind.StateReported or TopicKind.CommandResponse or TopicKind.FirmwareProgress;

    /// <summary>Classifies a concrete topic (no wildcards) under <c>devices/</c>.</summary>
    public static DeviceTopic Parse(string topic)
    {
        if (!topic.StartsWith("devices/", StringComparison.Ordinal)) return new(TopicKind.Other, null);
        var rest = topic.AsSpan("devices/".Length);
        var slash = rest.IndexOf('/');
        if (slash <= 0) return new(TopicKind.Other, rest.ToString());
        var id = rest[..slash].ToString();
        var tail = rest[(slash + 1)..];
        var kind = tail switch
        {
            "telemetry" => TopicKind.Telemetry,
            "state/reported" => TopicKind.StateReported,
            "state/desired" => TopicKind.StateDesired,
            "firmware" => TopicKind.Firmware,
            "firmware/progress" => TopicKind.FirmwareProgress,
            _ when tail.StartsWith("commands/") && tail.EndsWith("/response") && tail.Count('/') == 2 => TopicKind.CommandResponse,
            _ when tail.StartsWith("commands/") && tail.Count('/') == 1 && tail.Length > "commands/".Length => TopicKind.Command,
            _ => TopicKind.Other,
        };
        return new(kind, id);
    }

    /// <summary>The command id of <c>devices/{id}/commands/{commandId}</c> or <c>.../{commandId}/response</c>.</summary>
    public static string CommandIdOf(string topic)
    {
        var at = topic.IndexOf("/commands/", StringComparison.Ordinal) + "/commands/".Length;
        var end = topic.IndexOf('/', at);
        return end < 0 ? topic[at..] : topic[at..end];
    }

    /// <summary>May device <paramref name="deviceId"/> publish on <paramref name="topic"/>?</summary>
    public static bool DeviceMayPublish(string deviceId, in DeviceTopic topic) => topic.DeviceId == deviceId && topic.IsUpstream;

    /// <summary>May a device subscribe to this filter? Only its own downstream topics, wildcards only after <c>commands/</c>.</summary>
    public static bool DeviceMaySubscribe(string deviceId, string filter)
    {
        var own = "devices/" + deviceId + "/";
        if (!filter.StartsWith(own, StringComparison.Ordinal)) return false;
        var tail = filter.AsSpan(own.Length);
        if (tail is "state/desired" or "firmware" or "commands/#" or "commands/+") return true;
        return tail.StartsWith("commands/") && tail.Count('/') == 1 && tail.IndexOfAny('+', '#') < 0 && tail.Length > "commands/".Length;
    }
}
