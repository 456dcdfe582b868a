// Which principal owns each client id's session. MQTTnet lets any connection with a session's client id take it over
// (clean start) or resume it with the subscriptions, queued messages and session items of whoever made it; the hub
// allows either only to the principal that owns the session [CONTRACT.md, MQTT]. A claim is made at CONNECT, before
// MQTTnet creates or resumes the session, so two principals racing for one id cannot both pass; it becomes durable once
// the connection is attached to its session (CONNACK), and is released when that session ends. A claim that never got
// a session (the connection failed between CONNECT and CONNACK) lapses after the connect timeout. Each principal may
// hold a bounded number of sessions (Mqtt:MaxSessionsPerDevice, MaxSessionsPerApiKey): persistent sessions cost memory
// for as long as they last, and one device's token must not be able to fill the hub with them.
using System.Collections.Concurrent;
using IoTHub.Connectivity.Mqtt.Connect;
using IoTHub.Contracts;
using Microsoft.Extensions.Options;

namespace IoTHub.Connectivity.Mqtt.Sessions;

/// <summary>What came of claiming a client id.</summary>
internal enum ClaimOutcome { Claimed, OwnedByAnother, TooManySessions }

internal sealed class SessionOwnership(TimeProvider time, IOptions<MqttOptions> options)
{
    private sealed record Claim(MqttPrincipal Principal, SessionInfo? Session, bool Stored, long AtMs)
    {
        public bool Durable => Session is not null || Stored;
    }

    private readonly ConcurrentDictionary<string, Claim> _claims = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<MqttPrincipal, ConcurrentDictionary<string, byte>> _byPrincipal = new();

    // A device principal owns one or two client ids: a small table rather than the default ~600 bytes per device.
    private static ConcurrentDictionary<string, byte> NewOwned(MqttPrincipal _) => new(concurrencyLevel: 1, capacity: 3, StringComparer.Ordinal);

    /// <summary>Claims <paramref name="clientId"/> for <paramref name="principal"/>.</summary>
    public ClaimOutcome TryClaim(string clientId, MqttPrincipal principal)
    {
        var o = options.Value;
        var lapseMs = o.ConnectTimeoutSeconds * 1000L;
        var owned = _byPrincipal.GetOrAdd(principal, NewOwned);
        var max = principal.IsDevice ? o.MaxSessionsPerDevice : o.MaxSessionsPerApiKey;
        if (!owned.ContainsKey(clientId) && owned.Count >= max)
        {
            // Claims whose connection never got a session lapse; only the principal's own few are looked at.
            var now = time.NowMs();
            foreach (var id in owned.Keys)
                if (!_claims.TryGetValue(id, out var c) || c.Principal != principal || !c.Durable && now - c.AtMs >= lapseMs)
                {
                    if (c is not null && c.Principal == principal) _claims.TryRemove(new KeyValuePair<string, Claim>(id, c));
                    owned.TryRemove(id, out _);
                }
            if (owned.Count >= max) return ClaimOutcome.TooManySessions;
        }
        while (true)
        {
            var now = time.NowMs();
            var mine = new Claim(principal, null, false, now);
            var current = _claims.GetOrAdd(clientId, mine);
            if (ReferenceEquals(current, mine) || current.Principal == principal)
            {
                owned[clientId] = 0;
                return ClaimOutcome.Claimed;
            }
            if (current.Durable || now - current.AtMs < lapseMs) return ClaimOutcome.OwnedByAnother;
            if (_claims.TryUpdate(clientId, mine, current))
            {
                Forget(current.Principal, clientId);
                owned[clientId] = 0;
                return ClaimOutcome.Claimed;
            }
        }
    }

    /// <summary>The connection is attached to <paramref name="session"/> (new or resumed): the claim holds until it ends.</summary>
    public void Attach(string clientId, SessionInfo session)
    {
        _claims[clientId] = new Claim(session.Principal, session, false, time.NowMs());
        _byPrincipal.GetOrAdd(session.Principal, NewOwned)[clientId] = 0;
    }

    /// <summary>A session restored from the database at start, not yet resumed by its client.</summary>
    public void AttachStored(string clientId, MqttPrincipal principal)
    {
        _claims[clientId] = new Claim(principal, null, true, time.NowMs());
        _byPrincipal.GetOrAdd(principal, NewOwned)[clientId] = 0;
    }

    /// <summary>The session ended: its client id is free again, unless a newer session already took the claim.</summary>
    public void Release(string clientId, SessionInfo? session)
    {
        if (_claims.TryGetValue(clientId, out var c) && (ReferenceEquals(c.Session, session) || (session is null && c.Session is null))
            && _claims.TryRemove(new KeyValuePair<string, Claim>(clientId, c)))
            Forget(c.Principal, clientId);
    }

    private void Forget(MqttPrincipal principal, string clientId)
    {
        if (_byPrincipal.TryGetValue(principal, out var owned))
        {
            owned.TryRemove(clientId, out _);
            if (owned.IsEmpty) _byPrincipal.TryRemove(new KeyValuePair<MqttPrincipal, ConcurrentDictionary<string, byte>>(principal, owned));
        }
    }

    /// <summary>Client ids of the sessions owned by <paramref name="principal"/> (for revocation).</summary>
    public List<string> OwnedBy(MqttPrincipal principal) =>
        _byPrincipal.TryGetValue(principal, out var owned) ? owned.Keys.ToList() : [];

    /// <summary>Client ids in <paramref name="deviceId"/>'s namespace that another principal holds (a device created after an
    /// app took its id); there are few non-device principals, so this looks at theirs only.</summary>
    public List<string> HeldByOthersIn(string deviceId) => _byPrincipal
        .Where(kv => !kv.Key.IsDevice)
        .SelectMany(kv => kv.Value.Keys)
        .Where(id => ClientIdRules.DeviceNamespaceOf(id) == deviceId)
        .ToList();

    public MqttPrincipal? OwnerOf(string clientId) => _claims.TryGetValue(clientId, out var c) ? c.Principal : null;
}
