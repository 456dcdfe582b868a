// Which client identifiers a principal may use. MQTTnet keys sessions by client id alone, so the id decides whose
// session a connection takes over or resumes: a device may not be able to pick another device's id, or park on it
// to lock that device out. The rule (README, "Client identifiers"):
//   - a device's client id is its device id, or its device id followed by ':' and a suffix of its choosing (a second
//     connection of the same device);
//   - an app (API key) or anonymous client may use any id that is not in a registered device's namespace;
//   - an empty id is assigned one: "{deviceId}:{random}" for a device, "app~{random}" otherwise ('~' is never in a
//     device id, so an assigned app id can never be a device's). MQTT 5 tells the client in CONNACK (Assigned Client
//     Identifier); 3.1.1 with clean session accepts the empty id and assigns one, as [MQTT-3.1.3-6] allows.
using IoTHub.Contracts;

namespace IoTHub.Connectivity.Mqtt.Connect;

internal static class ClientIdRules
{
    /// <summary>Separates a device id from the suffix of its other connections' client ids.</summary>
    public const char DeviceSuffixSeparator = ':';

    /// <summary>Why <paramref name="clientId"/> is not one of device <paramref name="deviceId"/>'s, or null when it is.</summary>
    public static string? DeviceRuleBroken(string deviceId, string clientId)
    {
        if (clientId == deviceId) return null;
        if (clientId.Length > deviceId.Length + 1 && clientId[deviceId.Length] == DeviceSuffixSeparator && clientId.StartsWith(deviceId, StringComparison.Ordinal))
            return null;
        return $"a device's client id must be its device id ({deviceId}) or start with \"{deviceId}{DeviceSuffixSeparator}\"";
    }

    /// <summary>The device whose namespace <paramref name="clientId"/> is in, if it has the shape of one (the part before
    /// the first ':' is a valid device id); the caller checks that such a device exists.</summary>
    public static string? DeviceNamespaceOf(string clientId)
    {
        var at = clientId.IndexOf(DeviceSuffixSeparator);
        var head = at < 0 ? clientId.AsSpan() : clientId.AsSpan(0, at);
        return Identifier.IsValid(head) ? head.ToString() : null;
    }

    /// <summary>A fresh client id for a client that sent an empty one.</summary>
    public static string Assign(MqttPrincipal principal) =>
        (principal.DeviceId is { } device ? device + DeviceSuffixSeparator : "app~") + Secret.New()[..16];
}
