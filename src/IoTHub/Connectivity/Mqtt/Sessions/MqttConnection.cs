// One network connection, from its CONNECT to its close. A session (SessionInfo) outlives its connections: each new
// connection that resumes it replaces SessionInfo.Connection. Everything MQTT scopes to "the Network Connection" lives
// here (topic aliases, flow-control quotas, the held PUBACKs); everything it scopes to the Session lives in SessionInfo.
using System.Collections.Concurrent;
using IoTHub.Connectivity.Mqtt.Flow;
using MQTTnet;

namespace IoTHub.Connectivity.Mqtt.Sessions;

internal sealed class MqttConnection
{
    private static long _next;

    /// <summary>The connection each CONNECT packet opened: MQTTnet's connect and disconnect events carry the packet, so
    /// an event is tied to its own connection even when another connection took the client id over meanwhile.</summary>
    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<MQTTnet.Packets.MqttConnectPacket, MqttConnection> ByPacket = new();

    public static void Bind(MQTTnet.Packets.MqttConnectPacket packet, MqttConnection connection) => ByPacket.AddOrUpdate(packet, connection);

    public static MqttConnection? Of(MQTTnet.Packets.MqttConnectPacket? packet) => packet is not null && ByPacket.TryGetValue(packet, out var c) ? c : null;

    /// <summary>Unique in this process; ties the connect, disconnect and presence events to this connection.</summary>
    public long Id { get; } = Interlocked.Increment(ref _next);

    public required MqttPrincipal Principal { get; init; }

    public required string ClientId { get; init; }

    public required bool IsV5 { get; init; }

    /// <summary>CleanSession (3.1.1) or Clean Start (5.0).</summary>
    public required bool CleanStart { get; init; }

    /// <summary>Seconds the session outlives this connection (0: it ends with it). 3.1.1 without clean session gets
    /// <c>Mqtt:MaxSessionExpirySeconds</c>; 5.0 its Session Expiry Interval, capped at that.</summary>
    public required uint SessionExpirySeconds { get; init; }

    /// <summary>5.0: the Session Expiry Interval to announce in CONNACK because the hub capped the client's; else null.</summary>
    public uint? AnnouncedSessionExpiry { get; init; }

    /// <summary>5.0: the keep-alive the hub imposes (Server Keep Alive in CONNACK); 0 when the client's stands.</summary>
    public ushort ServerKeepAlive { get; init; }

    public string? RemoteAddress { get; init; }

    /// <summary>The Will, taken from MQTTnet at CONNECT so that the hub publishes it (takeover, delay, ACL).</summary>
    public WillMessage? Will { get; init; }

    /// <summary>5.0: QoS 1/2 PUBLISHes the hub may still send before the client acknowledges one: its Receive Maximum
    /// (1..65535) at first [MQTT-3.3.4-9]; -1 on 3.1.1 (no limit). Guarded by <see cref="Flow"/>.</summary>
    public int SendQuota;

    /// <summary>PUBLISHes held back while <see cref="SendQuota"/> is 0, in order; sent as acknowledgements come in, while every
    /// other packet keeps flowing [MQTT-4.9.0-3]. Guarded by <see cref="Flow"/>.</summary>
    public Queue<MQTTnet.Packets.MqttPublishPacket> Deferred { get; } = new();

    /// <summary>A held-back PUBLISH is being sent now (its quota taken already). Guarded by <see cref="Flow"/>.</summary>
    public MQTTnet.Packets.MqttPublishPacket? Releasing;

    /// <summary>Held-back PUBLISHes are being sent. Guarded by <see cref="Flow"/>.</summary>
    public bool Draining;

    public Lock Flow { get; } = new();

    /// <summary>MQTTnet's connected client behind this connection, to send held-back PUBLISHes through (set once connected).</summary>
    public MQTTnet.Server.Internal.MqttConnectedClient? Client { get; set; }

    /// <summary>5.0 Request Problem Information: when false, acknowledgements carry no Reason String [MQTT-3.1.2-29].</summary>
    public bool RequestProblemInformation { get; init; } = true;

    /// <summary>PUBREL packet ids that matched no QoS 2 message: their PUBCOMP says 0x92 Packet Identifier not found.</summary>
    public HashSet<ushort> UnknownReleases { get; } = new();

    /// <summary>5.0: the client's Maximum Packet Size (0 = none); larger PUBLISHes are not sent to it [MQTT-3.1.2-25].</summary>
    public uint ClientMaximumPacketSize { get; init; }

    /// <summary>What the wire guard learned of this connection's bytes (protocol errors it cannot decode away).</summary>
    public WireState? Wire { get; init; }

    /// <summary>Set when the session was restored from the database at start (the hub restarted while the client was away).</summary>
    public bool ResumesStoredSession { get; set; }

    /// <summary>The session stored in the database for this client id when it connected (taken as its CONNACK left), or null.</summary>
    public StoredSession? Restored { get; set; }

    /// <summary>CONNACK's Session Present: an existing session was resumed.</summary>
    public bool SessionPresent { get; set; }

    // --- receive loop (one thread at a time) ---

    /// <summary>Packet identifier of the PUBLISH the receive loop is handling (set by the inbound packet interceptor).</summary>
    public ushort InboundPacketId { get; set; }

    /// <summary>The PUBLISH being handled is a QoS 2 resend whose packet id awaits PUBREL: acknowledge, do not process.</summary>
    public bool InboundIsResend { get; set; }

    /// <summary>The 5.0 Subscription Identifier of the SUBSCRIBE being handled (0: none).</summary>
    public uint SubscriptionIdentifier { get; set; }

    /// <summary>5.0 topic aliases the client set on this connection (alias → topic), at most Mqtt:TopicAliasMaximum.</summary>
    public Dictionary<ushort, string> TopicAliases { get; } = new();

    /// <summary>QoS 1/2 PUBLISHes received and not yet answered with PUBACK or PUBCOMP (5.0 Receive Maximum).</summary>
    public int InboundInFlight;

    /// <summary>Telemetry received but not yet committed, in arrival order: the receive loop adds, the send loop takes
    /// with <see cref="TryTakeAck"/> (each PUBACK waits for its message's commit). Single producer, single consumer, no lock.</summary>
    public PendingAckQueue PendingAcks { get; } = new();

    // The oldest pending ack, taken out of the queue by the send loop while it waits for its PUBACK (the queue has no
    // peek: a ConcurrentQueue once used here kept every item dequeued from a segment that had been peeked, up to 32
    // committed tickets per connection, 35,000 at 10,000 connections).
    private PendingAck? _ackHead;

    /// <summary>Send loop only: takes the oldest pending ack when the PUBACK being sent is its packet's (<paramref name="packetId"/>).</summary>
    public bool TryTakeAck(ushort packetId, out PendingAck ack)
    {
        if (_ackHead is null && PendingAcks.TryDequeue(out var next)) _ackHead = next;
        if (_ackHead is { } head && head.PacketId == packetId)
        {
            _ackHead = null;
            ack = head;
            return true;
        }
        ack = default;
        return false;
    }

    /// <summary>Outbound QoS 1/2 packet ids sent and not yet acknowledged by the client, each holding one unit of SendQuota.
    /// Sized for the few a device has in flight (the default table is ~600 bytes for each of 10,000 connections).</summary>
    public ConcurrentDictionary<ushort, byte> OutboundInFlight { get; } = new(concurrencyLevel: 1, capacity: 3);

    // --- lifecycle (any thread) ---

    // 0: connecting; 1: open; 2: ended before it was reported open; 3: closed after it was open. One word, changed by
    // compare-and-swap: MQTTnet may report a connection taken over (on the new connection's thread) while it is still
    // reporting it connected, and exactly one of the two must win.
    private int _state;

    /// <summary>Marks the connection open; false when it already ended (a takeover can end it before MQTTnet reports it connected).</summary>
    public bool TryOpen() => Interlocked.CompareExchange(ref _state, 1, 0) == 0;

    /// <summary>Marks the connection ended; true only the first time, and only when it was open.</summary>
    public bool TryEnd()
    {
        while (true)
        {
            var s = Volatile.Read(ref _state);
            if (s >= 2) return false;
            if (Interlocked.CompareExchange(ref _state, s == 0 ? 2 : 3, s) == s) return s == 1;
        }
    }

    public bool IsEnded => Volatile.Read(ref _state) >= 2;

    private int _closing;

    /// <summary>True only the first time: the hub decided to close this connection (a protocol error, a refused ack).
    /// MQTTnet stops a connection once; a second stop while the first is still sending its DISCONNECT closes the socket
    /// under it, and the client never learns the reason.</summary>
    public bool TryBeginClosing() => Interlocked.Exchange(ref _closing, 1) == 0;

    /// <summary>The hub is closing this connection: nothing more the client sends is processed [MQTT-4.13.1-1].</summary>
    public bool IsClosing => Volatile.Read(ref _closing) != 0;

    private readonly TaskCompletionSource _openAnnounced = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Completes once the "connected" of an open connection has been queued. Its "disconnected" waits for it: a
    /// takeover can end the connection on another thread between <see cref="TryOpen"/> and that queueing, and a
    /// "disconnected" queued first left the device online with a connection record never closed.</summary>
    public Task OpenAnnounced => _openAnnounced.Task;

    public void AnnouncedOpen() => _openAnnounced.TrySetResult();

    public string Protocol => IsV5 ? "mqtt5" : "mqtt3";
}

/// <summary>A QoS 1 telemetry message whose PUBACK must wait for <paramref name="Ticket"/>.</summary>
internal readonly record struct PendingAck(ushort PacketId, IoTHub.Contracts.IngestTicket Ticket);

/// <summary>A Will Message as the client sent it in CONNECT, with its 5.0 Will Delay Interval in seconds.</summary>
internal sealed record WillMessage(MqttApplicationMessage Message, uint DelaySeconds);
