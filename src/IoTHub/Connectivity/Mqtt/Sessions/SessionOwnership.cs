// Which principal owns each client id's session. MQTTnet lets any connection with a session's client id take it over
// (clean start) or resume it with the subscriptions, queued messages and session items of whoever made it; the hub
// allows either only to the principal that owns the session [CONTRACT.md, MQTT]. A claim is made at CONNECT, before
// MQTTnet creates or resumes the session, so two principals racing for one id cannot both pass; it becomes durable once
// the connection is attached to its session (CONNACK), and is released when that session ends. A claim that never got
// a session (the connection failed between CONNECT and CONNACK) lapses after the connect timeout.
using System.Collections.Concurrent;
using IoTHub.Contracts;
using Microsoft.Extensions.Options;

namespace IoTHub.Connectivity.Mqtt.Sessions;

internal sealed class SessionOwnership(TimeProvider time, IOptions<MqttOptions> options)
{
    private sealed record Claim(MqttPrincipal Principal, SessionInfo? Session, bool Stored, long AtMs)
    {
        public bool Durable => Session is not null || Stored;
    }

    private readonly ConcurrentDictionary<string, Claim> _claims = new(StringComparer.Ordinal);

    /// <summary>Claims <paramref name="clientId"/> for <paramref name="principal"/>; false when another principal owns it.</summary>
    public bool TryClaim(string clientId, MqttPrincipal principal)
    {
        var lapseMs = options.Value.ConnectTimeoutSeconds * 1000L;
        while (true)
        {
            var now = time.NowMs();
            var mine = new Claim(principal, null, false, now);
            var current = _claims.GetOrAdd(clientId, mine);
            if (ReferenceEquals(current, mine) || current.Principal == principal) return true;
            if (current.Durable || now - current.AtMs < lapseMs) return false;
            if (_claims.TryUpdate(clientId, mine, current)) return true;
        }
    }

    /// <summary>The connection is attached to <paramref name="session"/> (new or resumed): the claim holds until it ends.</summary>
    public void Attach(string clientId, SessionInfo session) =>
        _claims[clientId] = new Claim(session.Principal, session, false, time.NowMs());

    /// <summary>A session restored from the database at start, not yet resumed by its client.</summary>
    public void AttachStored(string clientId, MqttPrincipal principal) =>
        _claims[clientId] = new Claim(principal, null, true, time.NowMs());

    /// <summary>The session ended: its client id is free again, unless a newer session already took the claim.</summary>
    public void Release(string clientId, SessionInfo? session)
    {
        if (_claims.TryGetValue(clientId, out var c) && (ReferenceEquals(c.Session, session) || (session is null && c.Session is null)))
            _claims.TryRemove(new KeyValuePair<string, Claim>(clientId, c));
    }

    /// <summary>Client ids of the sessions owned by <paramref name="principal"/> (for revocation).</summary>
    public List<string> OwnedBy(MqttPrincipal principal) =>
        _claims.Where(kv => kv.Value.Principal == principal).Select(kv => kv.Key).ToList();

    public MqttPrincipal? OwnerOf(string clientId) => _claims.TryGetValue(clientId, out var c) ? c.Principal : null;
}
