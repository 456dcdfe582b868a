// MQTT 5 shared subscriptions (§4.8.2), `$share/{ShareName}/{filter}`, for app clients (and 3.1.1 clients, as
// mosquitto allows). MQTTnet 5.2 refuses them outright. The hub rewrites such a filter to an internal form MQTTnet
// accepts and never matches (`$iothub-share/...`: no client may publish on a '$' topic), so MQTTnet keeps it in the
// session (and SUBACKs, unsubscribes and persists it) but never delivers through it; the hub delivers instead, each
// message to exactly one member of each matching group, preferring members that are connected, round robin. Retained
// messages are not sent on subscribing to a shared subscription, as the specification says.
using System.Collections.Concurrent;
using IoTHub.Connectivity.Mqtt.Sessions;
using MQTTnet;
using MQTTnet.Protocol;
using MQTTnet.Server;

namespace IoTHub.Connectivity.Mqtt.Subscriptions;

/// <summary>A parsed shared subscription filter.</summary>
internal readonly record struct SharedFilter(string ShareName, string Filter)
{
    public const string Prefix = "$share/";
    public const string InternalPrefix = "$iothub-share/";

    /// <summary>Parses <c>$share/{ShareName}/{filter}</c> (or its internal form); null when <paramref name="topic"/> is not
    /// one; <paramref name="error"/> says why a <c>$share/</c> filter is malformed.</summary>
    public static SharedFilter? Parse(string topic, out string? error)
    {
        error = null;
        var prefix = topic.StartsWith(Prefix, StringComparison.Ordinal) ? Prefix
            : topic.StartsWith(InternalPrefix, StringComparison.Ordinal) ? InternalPrefix : null;
        if (prefix is null) return null;
        var slash = topic.IndexOf('/', prefix.Length);
        if (slash <= prefix.Length || slash == topic.Length - 1)
        {
            error = "a shared subscription is $share/{ShareName}/{filter}";
            return null;
        }
        var name = topic[prefix.Length..slash];
        if (name.AsSpan().IndexOfAny('+', '#') >= 0)
        {
            error = "a share name may not contain '+' or '#'";
            return null;
        }
        return new SharedFilter(name, topic[(slash + 1)..]);
    }

    public string Internal => InternalPrefix + ShareName + "/" + Filter;
}

internal sealed class SharedSubscriptions
{
    private sealed class Member(string clientId, SessionInfo session, MqttQualityOfServiceLevel qos, bool retainAsPublished, uint identifier)
    {
        public string ClientId { get; } = clientId;
        public SessionInfo Session { get; } = session;
        public MqttQualityOfServiceLevel Qos { get; } = qos;
        public bool RetainAsPublished { get; } = retainAsPublished;
        public uint Identifier { get; } = identifier;
        public MqttSessionStatus? Status;
    }

    private sealed class Group(string filter)
    {
        public string Filter { get; } = filter;
        public volatile Member[] Members = [];
        public int Next;
    }

    private readonly ConcurrentDictionary<(string Share, string Filter), Group> _groups = new();
    private volatile Group[] _all = [];
    private readonly Lock _change = new();
    private MqttServer? _server;

    public void Attach(MqttServer server) => _server = server;

    public bool Any => _all.Length > 0;

    public void Join(SharedFilter shared, string clientId, SessionInfo session, MqttQualityOfServiceLevel qos, bool retainAsPublished, uint identifier)
    {
        lock (_change)
        {
            var group = _groups.GetOrAdd((shared.ShareName, shared.Filter), k => new Group(k.Filter));
            group.Members = group.Members.Where(m => m.ClientId != clientId)
                .Append(new Member(clientId, session, qos, retainAsPublished, identifier)).ToArray();
            _all = _groups.Values.ToArray();
        }
    }

    public void Leave(SharedFilter shared, string clientId)
    {
        lock (_change)
        {
            if (!_groups.TryGetValue((shared.ShareName, shared.Filter), out var group)) return;
            group.Members = group.Members.Where(m => m.ClientId != clientId).ToArray();
            if (group.Members.Length == 0) _groups.TryRemove((shared.ShareName, shared.Filter), out _);
            _all = _groups.Values.ToArray();
        }
    }

    /// <summary>Does any shared subscription match <paramref name="topic"/>? Per message, no lock.</summary>
    public bool Matches(string topic)
    {
        foreach (var g in _all)
            if (MqttTopicFilterComparer.Compare(topic, g.Filter) == MqttTopicFilterCompareResult.IsMatch) return true;
        return false;
    }

    /// <summary>Queues <paramref name="message"/> for one member of each group whose filter matches its topic.</summary>
    public async Task DeliverAsync(MqttApplicationMessage message)
    {
        foreach (var group in _all)
        {
            if (MqttTopicFilterComparer.Compare(message.Topic, group.Filter) != MqttTopicFilterCompareResult.IsMatch) continue;
            var member = Choose(group);
            if (member is null || _server is null) continue;
            try
            {
                member.Status ??= await _server.GetSessionAsync(member.ClientId);
            }
            catch (InvalidOperationException)
            {
                continue; // the session ended a moment ago; its Leave is on its way
            }
            var copy = new MqttApplicationMessage
            {
                Topic = message.Topic,
                Payload = message.Payload,
                QualityOfServiceLevel = (MqttQualityOfServiceLevel)Math.Min((int)message.QualityOfServiceLevel, (int)member.Qos),
                Retain = member.RetainAsPublished && message.Retain,
                ContentType = message.ContentType,
                CorrelationData = message.CorrelationData,
                ResponseTopic = message.ResponseTopic,
                PayloadFormatIndicator = message.PayloadFormatIndicator,
                MessageExpiryInterval = message.MessageExpiryInterval,
                UserProperties = message.UserProperties, // the same list: its expiry deadline travels with it (MessageExpiry)
                SubscriptionIdentifiers = member.Identifier > 0 ? [member.Identifier] : null,
            };
            if (!member.Status.TryEnqueueApplicationMessage(copy, out _)) MqttMetrics.QueueRefused.Add(1);
        }
    }

    private static Member? Choose(Group group)
    {
        var members = group.Members;
        if (members.Length == 0) return null;
        var start = (int)((uint)Interlocked.Increment(ref group.Next) % (uint)members.Length);
        // Prefer a member whose connection is up; a group whose members are all away queues in one of their sessions.
        for (var i = 0; i < members.Length; i++)
        {
            var m = members[(start + i) % members.Length];
            if (!m.Session.Connection.IsEnded) return m;
        }
        return members[start];
    }

    /// <summary>Drops a member's cached session status (its session was replaced).</summary>
    public void Forget(string clientId)
    {
        lock (_change)
        {
            foreach (var (key, group) in _groups)
            {
                group.Members = group.Members.Where(m => m.ClientId != clientId).ToArray();
                if (group.Members.Length == 0) _groups.TryRemove(key, out _);
            }
            _all = _groups.Values.ToArray();
        }
    }
}
