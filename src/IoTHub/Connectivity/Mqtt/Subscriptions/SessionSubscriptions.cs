// What every session is subscribed to, as the hub needs to know it (MQTTnet keeps its own copy, private): to store a
// persistent session's subscriptions, to know whether any app listens to device telemetry at all (if none does,
// telemetry skips MQTTnet's dispatch, which walks every session per message), and whether a device can take a command.
// Changes arrive on MQTTnet's subscribe events; they are rare next to messages, so the read side used per message is
// a copy-on-write array read without a lock.
using System.Collections.Concurrent;
using MQTTnet;
using MQTTnet.Packets;

namespace IoTHub.Connectivity.Mqtt.Subscriptions;

/// <summary>One subscription: its filter as MQTTnet holds it, and the 5.0 Subscription Identifier it was made with (0: none).</summary>
internal sealed record Subscription(MqttTopicFilter Filter, uint Identifier);

internal sealed class SessionSubscriptions
{
    private readonly ConcurrentDictionary<string, ConcurrentDictionary<string, Subscription>> _byClient = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, bool> _appClients = new(StringComparer.Ordinal);
    private readonly Lock _refresh = new();
    private volatile string[] _appFilters = [];

    public void Added(string clientId, bool isApp, MqttTopicFilter filter, uint identifier)
    {
        _byClient.GetOrAdd(clientId, _ => new(StringComparer.Ordinal))[filter.Topic] = new Subscription(filter, identifier);
        if (isApp)
        {
            _appClients[clientId] = true;
            if (MayMatchDeviceTopics(filter.Topic)) RefreshAppFilters();
        }
    }

    public void Removed(string clientId, string filter)
    {
        if (_byClient.TryGetValue(clientId, out var subs) && subs.TryRemove(filter, out _) && _appClients.ContainsKey(clientId)) RefreshAppFilters();
    }

    /// <summary>The session ended, or a new one replaced it: none of its subscriptions remain.</summary>
    public IReadOnlyCollection<Subscription> Forget(string clientId)
    {
        var removed = _byClient.TryRemove(clientId, out var subs) ? subs.Values.ToList() : [];
        if (_appClients.TryRemove(clientId, out _) && removed.Count > 0) RefreshAppFilters();
        return removed;
    }

    public IReadOnlyCollection<Subscription> Of(string clientId) =>
        _byClient.TryGetValue(clientId, out var subs) ? subs.Values.ToList() : [];

    public bool Has(string clientId, string filter) => _byClient.TryGetValue(clientId, out var subs) && subs.ContainsKey(filter);

    /// <summary>Does any app (not a device) hold a plain subscription matching <paramref name="topic"/>? Per message, no lock, no allocation.</summary>
    public bool HasAppSubscriber(string topic)
    {
        foreach (var filter in _appFilters)
            if (MqttTopicFilterComparer.Compare(topic, filter) == MqttTopicFilterCompareResult.IsMatch) return true;
        return false;
    }

    private static bool MayMatchDeviceTopics(string filter) =>
        filter.StartsWith("devices/", StringComparison.Ordinal) || filter.StartsWith('+') || filter.StartsWith('#');

    private void RefreshAppFilters()
    {
        lock (_refresh)
        {
            _appFilters = _appClients.Keys
                .SelectMany(c => _byClient.TryGetValue(c, out var subs) ? subs.Keys : (IEnumerable<string>)[])
                .Where(MayMatchDeviceTopics).Distinct().ToArray();
        }
    }
}
