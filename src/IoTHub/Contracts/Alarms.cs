// What the Alarms module needs from the others: which devices a rule's scope covers, and a way to tell apps on MQTT.
using Mediator;

namespace IoTHub.Contracts;

/// <summary>A device as an alarm rule's scope sees it: its id, profile and tags.</summary>
/// <param name="DeviceId">The device id.</param>
/// <param name="ProfileId">Its profile id, or null.</param>
/// <param name="Tags">Its tags.</param>
public sealed record DeviceScope(string DeviceId, string? ProfileId, IReadOnlyList<string> Tags);

/// <summary>Every registered device's scope (id, profile, tags), for the alarm evaluator's device map; or only that of
/// <paramref name="DeviceId"/> (empty when it does not exist).</summary>
public sealed record ListDeviceScopes(string? DeviceId = null) : IRequest<IReadOnlyList<DeviceScope>>;

/// <summary>A device's profile or tags changed (or it was enabled or disabled): caches keyed by them reload it.</summary>
public sealed record DeviceUpdated(string DeviceId) : INotification;

/// <summary>Publishes a hub message to app clients on <paramref name="Topic"/> at QoS 1 (e.g. <c>alarms/{deviceId}/{ruleId}</c>,
/// CONTRACT.md "MQTT"). Topics under <c>alarms/</c> are the hub's own: no client may publish there.</summary>
public sealed record PublishToApps(string Topic, ReadOnlyMemory<byte> Payload, bool Retain) : IRequest<Unit>;

/// <summary>The topic root of alarm transitions (<c>alarms/{deviceId}/{ruleId}</c>), reserved for the hub.</summary>
public static class AlarmTopics
{
    /// <summary><c>alarms</c>: the first level of every alarm topic.</summary>
    public const string Root = "alarms";

    /// <summary><c>alarms/{deviceId}/{ruleId}</c>.</summary>
    public static string Of(string deviceId, long ruleId) => $"{Root}/{deviceId}/{ruleId}";

    /// <summary>True when <paramref name="topic"/> is under <c>alarms/</c> (or is <c>alarms</c> itself).</summary>
    public static bool IsAlarmTopic(string topic) => topic == Root || topic.StartsWith(Root + "/", StringComparison.Ordinal);
}
