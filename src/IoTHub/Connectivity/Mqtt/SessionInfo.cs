using System.Collections;
using System.Collections.Concurrent;
using IoTHub.Contracts;

namespace IoTHub.Connectivity.Mqtt;

/// <summary>Who is behind an MQTT session, kept in MQTTnet's session items from CONNECT on (a new one per connection).</summary>
/// <param name="SessionKept">The broker keeps the session (subscriptions, queued messages) after this connection ends:
/// 3.1.1 with CleanSession = 0, or 5.0 with a session expiry interval.</param>
internal sealed record SessionInfo(string? DeviceId, string? AppRole, bool IsV5, string ClientId, bool SessionKept = false, bool CleanStart = true)
{
    private const string Key = "iothub.session";

    public bool IsDevice => DeviceId is not null;

    public bool MayWrite => AppRole is Contracts.Roles.Admin or Contracts.Roles.Operator;

    /// <summary>Packet identifier of the PUBLISH this connection's receive loop is handling (set by the inbound packet interceptor).</summary>
    public ushort InboundPacketId { get; set; }

    /// <summary>Telemetry received but not yet committed, in arrival order: the receive loop adds, the send loop takes
    /// (each PUBACK waits for its message's commit). Single producer, single consumer, no lock.</summary>
    public ConcurrentQueue<PendingAck> PendingAcks { get; } = new();

    public void Store(IDictionary items) => items[Key] = this;

    public static SessionInfo? From(IDictionary? items) => items?[Key] as SessionInfo;
}

/// <summary>A QoS 1 telemetry message whose PUBACK must wait for <paramref name="Ticket"/>.</summary>
internal readonly record struct PendingAck(ushort PacketId, IngestTicket Ticket);
