// SUBSCRIBE and UNSUBSCRIBE: who may subscribe to what (a device only to its own downstream topics, never to a shared
// subscription; apps anywhere within the topic limits), and what follows a subscription: the hub's own record of it
// (SessionSubscriptions), shared group membership, the stored copy of a persistent session, and commands queued for a
// device that just subscribed to its command topic.
using IoTHub.Connectivity.Mqtt.Sessions;
using IoTHub.Contracts;
using Microsoft.Extensions.Options;
using MQTTnet.Protocol;
using MQTTnet.Server;

namespace IoTHub.Connectivity.Mqtt.Subscriptions;

internal sealed class SubscriptionHandling(
    SessionSubscriptions subscriptions,
    SharedSubscriptions shared,
    StoredSessions stored,
    ModuleBridge modules,
    IOptions<MqttOptions> options,
    TimeProvider time,
    LogThrottle lines,
    ILogger<SubscriptionHandling> log)
{
    public Task InterceptAsync(InterceptingSubscriptionEventArgs e)
    {
        var session = SessionInfo.From(e.SessionItems);
        var filter = e.TopicFilter.Topic;
        var sharedFilter = SharedFilter.Parse(filter, out var malformed);
        if (malformed is not null)
        {
            Refuse(e, MqttSubscribeReasonCode.TopicFilterInvalid, malformed);
            return Task.CompletedTask;
        }
        var effective = sharedFilter?.Filter ?? filter;
        var o = options.Value;
        if (effective.Length > o.MaxTopicLength || effective.AsSpan().Count('/') + 1 > o.MaxTopicLevels)
        {
            Refuse(e, MqttSubscribeReasonCode.TopicFilterInvalid, $"topic filter longer than {o.MaxTopicLength} characters or deeper than {o.MaxTopicLevels} levels");
            return Task.CompletedTask;
        }
        if (session is { DeviceId: { } device })
        {
            if (sharedFilter is not null)
                Refuse(e, MqttSubscribeReasonCode.NotAuthorized, "devices may not use shared subscriptions");
            else if (!DeviceTopic.DeviceMaySubscribe(device, filter))
                Refuse(e, MqttSubscribeReasonCode.NotAuthorized, $"device may subscribe only to its own downstream topics (devices/{device}/...)");
        }
        return Task.CompletedTask;
    }

    private void Refuse(InterceptingSubscriptionEventArgs e, MqttSubscribeReasonCode code, string why)
    {
        e.ProcessSubscription = false;
        e.Response.ReasonCode = code;
        e.Response.ReasonString = why;
        lines.Write(log, RefusalLines.Subscription, e.ClientId, MqttText.Printable(e.ClientId), MqttText.Printable(e.TopicFilter.Topic), why);
    }

    public Task SubscribedAsync(ClientSubscribedTopicEventArgs e)
    {
        if (SessionInfo.From(e.SessionItems) is not { } session) return Task.CompletedTask;
        var filter = e.TopicFilter;
        var identifier = session.Connection.SubscriptionIdentifier;
        subscriptions.Added(e.ClientId, !session.IsDevice, filter, identifier);
        if (SharedFilter.Parse(filter.Topic, out _) is { } sharedFilter)
            shared.Join(sharedFilter, e.ClientId, session, filter.QualityOfServiceLevel, filter.RetainAsPublished, identifier);
        if (session.DeviceId is { } device && IsCommandFilter(device, filter.Topic)) modules.Background(new DeviceReadyForCommands(device));
        Persist(e.ClientId, session);
        return Task.CompletedTask;
    }

    public Task UnsubscribedAsync(ClientUnsubscribedTopicEventArgs e)
    {
        subscriptions.Removed(e.ClientId, e.TopicFilter);
        if (SharedFilter.Parse(e.TopicFilter, out _) is { } sharedFilter) shared.Leave(sharedFilter, e.ClientId);
        if (SessionInfo.From(e.SessionItems) is { } session) Persist(e.ClientId, session);
        return Task.CompletedTask;
    }

    /// <summary>A persistent session's subscriptions are stored, so that they survive a hub restart.</summary>
    public void Persist(string clientId, SessionInfo session)
    {
        var c = session.Connection;
        if (c.SessionExpirySeconds == 0) return;
        stored.Save(clientId, session.Principal, c.SessionExpirySeconds, c.IsEnded ? time.NowMs() : null,
            subscriptions.Of(clientId).Select(s => StoredSubscription.Of(s.Filter)));
    }

    /// <summary>Can this client take commands for <paramref name="deviceId"/>: subscribed to its command topics?</summary>
    public bool HasCommandSubscription(string clientId, string deviceId) =>
        subscriptions.Has(clientId, $"devices/{deviceId}/commands/+") || subscriptions.Has(clientId, $"devices/{deviceId}/commands/#");

    private static bool IsCommandFilter(string deviceId, string filter) =>
        filter.Length == "devices/".Length + deviceId.Length + "/commands/+".Length && filter.StartsWith("devices/", StringComparison.Ordinal)
        && filter.AsSpan("devices/".Length, deviceId.Length).SequenceEqual(deviceId) && filter.AsSpan("devices/".Length + deviceId.Length) is "/commands/+" or "/commands/#";
}
