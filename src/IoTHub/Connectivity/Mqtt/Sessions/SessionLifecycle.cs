// A session's life around its connections (MQTT 3.1.1 §3.1.2.4, MQTT 5 §3.1.2.11, §4.1):
//   - connected: presence, a Will still waiting is cancelled (the session resumed) or published (a clean start ended
//     the old session), the expiry clock stops; a session restored from the database gets its subscriptions back before its CONNACK
//     leaves (TakeStoredAsync, from OutboundPackets);
//   - disconnected: presence, the Will, and for a session that outlives its connection the expiry clock starts;
//   - deleted (expired, clean, revoked): its client id is free, its stored copy and the hub's records of it go.
// MQTTnet keeps persistent sessions for ever (EnablePersistentSessions has no expiry): the hub deletes each one when its
// Session Expiry Interval (5.0) or Mqtt:MaxSessionExpirySeconds (3.1.1, and the cap for 5.0) has passed.
using System.Collections.Concurrent;
using IoTHub.Connectivity.Mqtt.Subscriptions;
using IoTHub.Contracts;
using MQTTnet.Protocol;
using MQTTnet.Server;

namespace IoTHub.Connectivity.Mqtt.Sessions;

internal sealed class SessionLifecycle(
    ConnectionTracker tracker,
    WillMessages wills,
    SessionOwnership owners,
    StoredSessions stored,
    SessionSubscriptions subscriptions,
    SharedSubscriptions shared,
    SubscriptionHandling subscriptionHandling,
    ModuleBridge modules,
    Microsoft.Extensions.Options.IOptions<MqttOptions> options,
    BrokerLifetime lifetime,
    Flow.RefusedConnections refused,
    TimeProvider time,
    ILogger<SessionLifecycle> log)
{
    private readonly ConcurrentDictionary<string, ITimer> _expiries = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, byte> _restoring = new(StringComparer.Ordinal);

    /// <summary>Is the hub giving this client's new session its stored subscriptions back (no retained messages for those)?</summary>
    public bool IsRestoring(string clientId) => !_restoring.IsEmpty && _restoring.ContainsKey(clientId);
    private MqttServer? _server;

    public void Attach(MqttServer server) => _server = server;

    /// <summary>The broker has started (after every hosted service, so the stored sessions are loaded): sessions
    /// restored from the database whose clients do not come back expire like any other.</summary>
    public void BrokerStarted()
    {
        foreach (var s in stored.Waiting)
        {
            var left = s.DisconnectedAtMs + s.ExpirySeconds * 1000L - time.NowMs();
            ScheduleExpiry(s.ClientId, TimeSpan.FromMilliseconds(Math.Max(0, left)));
        }
    }

    /// <summary>Takes this client id's session stored in the database, if any (a clean start ends it), and when the
    /// client resumes it gives MQTTnet's new session the stored subscriptions. Called while the CONNACK is being sent,
    /// before the client can read it or send its first packet.</summary>
    public async Task TakeStoredAsync(MqttConnection c)
    {
        var restored = c.Restored = stored.Take(c.ClientId);
        if (restored is not null && c.ResumesStoredSession && _server is not null)
        {
            // MQTTnet made a new session; give it what the stored one had.
            // These are not new subscriptions: no retained messages are sent for them (RestoringSubscriptions).
            var filters = restored.Subscriptions.Select(s => s.ToFilter()).ToList();
            if (filters.Count > 0)
            {
                _restoring[c.ClientId] = 0;
                try
                {
                    await _server.SubscribeAsync(c.ClientId, filters);
                }
                finally
                {
                    _restoring.TryRemove(c.ClientId, out _);
                }
            }
            log.LogInformation("Client {ClientId} resumed its stored session with {Count} subscriptions", MqttText.Printable(c.ClientId), filters.Count);
        }
    }

    public async Task ConnectedAsync(ClientConnectedEventArgs e)
    {
        if (SessionInfo.From(e.SessionItems) is not { } session) return;
        var c = MqttConnection.Of(MqttInternals.ConnectPacket(e)) ?? session.Connection;
        if (_server is not null)
        {
            try { c.Client = MqttInternals.SessionsManager(_server).GetClient(c.ClientId); }
            catch (InvalidOperationException) { } // taken over already
        }
        CancelExpiry(c.ClientId);
        if (c.SessionPresent) wills.SessionResumed(c.ClientId);
        else wills.SessionEnded(c.ClientId);

        var restored = c.Restored;
        if (c.SessionExpirySeconds > 0) subscriptionHandling.Persist(c.ClientId, session);
        else if (restored is not null || !c.SessionPresent) stored.Delete(c.ClientId);

        await tracker.OpenedAsync(c);
        if (c.Principal.DeviceId is { } device && c.SessionPresent && subscriptionHandling.HasCommandSubscription(c.ClientId, device))
            modules.Background(new DeviceReadyForCommands(device)); // a resumed session keeps its subscriptions: no SUBSCRIBE will say so
    }

    public async Task DisconnectedAsync(ClientDisconnectedEventArgs e)
    {
        var session = SessionInfo.From(e.SessionItems);
        if (MqttConnection.Of(MqttInternals.ConnectPacket(e)) is not { } c) return;
        var takeover = e.DisconnectType == MqttClientDisconnectType.Takeover;
        var expiry = c.SessionExpirySeconds;
        // A 5.0 client may set a new Session Expiry Interval in its DISCONNECT (not from 0, MQTT 5 §3.14.2.2.2).
        if (c.IsV5 && e.SessionExpiryInterval > 0 && expiry > 0) expiry = Math.Min(e.SessionExpiryInterval, (uint)options.Value.MaxSessionExpirySeconds);
        var kept = expiry > 0 && !takeover;
        var reason = lifetime.Stopping ? "server shutting down" : e.DisconnectType switch
        {
            MqttClientDisconnectType.Clean => "clean disconnect",
            MqttClientDisconnectType.Takeover => "taken over by a new connection",
            _ => refused.Take(c.RemoteAddress) ?? (e.ReasonCode is { } rc ? $"connection lost ({rc})" : "connection lost or keep-alive timeout"),
        };
        var willWanted = e.DisconnectType != MqttClientDisconnectType.Clean || e.ReasonCode == MqttDisconnectReasonCode.DisconnectWithWillMessage;
        await tracker.ClosedAsync(c, reason, kept);
        wills.ConnectionEnded(c, willWanted, takeover ? c.SessionExpirySeconds : expiry);
        if (kept && session is not null && ReferenceEquals(session.Connection, c))
        {
            ScheduleExpiry(c.ClientId, TimeSpan.FromSeconds(expiry));
            subscriptionHandling.Persist(c.ClientId, session);
        }
    }

    public Task SessionDeletedAsync(SessionDeletedEventArgs e)
    {
        var session = SessionInfo.From(e.SessionItems);
        CancelExpiry(e.Id);
        owners.Release(e.Id, session);
        subscriptions.Forget(e.Id);
        shared.Forget(e.Id);
        stored.Delete(e.Id);
        wills.SessionEnded(e.Id);
        return Task.CompletedTask;
    }

    /// <summary>Ends every session of <paramref name="principal"/> and closes its connections (credentials revoked, device deleted).</summary>
    public async Task EndSessionsOfAsync(MqttPrincipal principal, bool deleteSessions, string reason)
    {
        if (_server is null) return;
        foreach (var clientId in owners.OwnedBy(principal))
        {
            try
            {
                if (deleteSessions && stored.Take(clientId) is not null)
                {
                    stored.Delete(clientId);
                    owners.Release(clientId, null);
                    continue;
                }
                var status = await _server.GetSessionAsync(clientId);
                if (deleteSessions) await status.DeleteAsync(); // also closes its connection
                else if (SessionInfo.From(status.Items)?.Connection is { IsEnded: false } c)
                    Flow.ServerDisconnect.Close(_server, c, MqttDisconnectReasonCode.NotAuthorized, reason, log); // nothing it sends from now is processed
            }
            catch (InvalidOperationException)
            {
                // no such session or client any more
            }
        }
    }

    /// <summary>Is the session of this client id waiting to expire (its client away)?</summary>
    public bool IsExpiring(string clientId) => _expiries.ContainsKey(clientId);

    /// <summary>A device was created: sessions another principal holds in its namespace (an app that took the id before
    /// the device existed) end, so that the device can use its own id.</summary>
    public async Task DeviceCreatedAsync(string deviceId)
    {
        if (_server is null) return;
        foreach (var clientId in owners.HeldByOthersIn(deviceId))
        {
            log.LogWarning("Ending the session of client {ClientId}: device {DeviceId} now owns that client id", MqttText.Printable(clientId), deviceId);
            if (stored.Take(clientId) is not null)
            {
                stored.Delete(clientId);
                owners.Release(clientId, null);
                continue;
            }
            try
            {
                await (await _server.GetSessionAsync(clientId)).DeleteAsync();
            }
            catch (InvalidOperationException)
            {
                // gone already
            }
        }
    }

    private void ScheduleExpiry(string clientId, TimeSpan after)
    {
        var timer = time.CreateTimer(_ => _ = ExpireAsync(clientId), null, after, Timeout.InfiniteTimeSpan);
        if (_expiries.TryGetValue(clientId, out var old)) old.Dispose();
        _expiries[clientId] = timer;
    }

    private void CancelExpiry(string clientId)
    {
        if (_expiries.TryRemove(clientId, out var timer)) timer.Dispose();
    }

    private async Task ExpireAsync(string clientId)
    {
        _expiries.TryRemove(clientId, out _);
        if (_server is null) return;
        try
        {
            if (stored.Take(clientId) is not null)
            {
                // restored at start, never came back
                stored.Delete(clientId);
                owners.Release(clientId, null);
                wills.SessionEnded(clientId);
                MqttMetrics.SessionsExpired.Add(1);
                return;
            }
            var status = await _server.GetSessionAsync(clientId);
            if (SessionInfo.From(status.Items) is { } s && !s.Connection.IsEnded) return; // resumed meanwhile
            MqttMetrics.SessionsExpired.Add(1);
            log.LogInformation("Session of client {ClientId} expired", MqttText.Printable(clientId));
            await status.DeleteAsync();
        }
        catch (InvalidOperationException)
        {
            // already gone
        }
        catch (Exception ex)
        {
            log.LogWarning(ex, "Could not end the expired session of client {ClientId}", MqttText.Printable(clientId));
        }
    }
}
