using System.ComponentModel.DataAnnotations;

namespace IoTHub.Connectivity;

/// <summary>Section <c>Mqtt</c>: the embedded broker's listeners and rules.</summary>
public sealed class MqttOptions
{
    /// <summary>The configuration section: <c>Mqtt</c> (environment: <c>IOTHUB_Mqtt__Port</c>, ...).</summary>
    public const string SectionName = "Mqtt";

    /// <summary>Address the MQTT listeners bind to; empty means every interface.</summary>
    public string? Host { get; set; }

    /// <summary>Plain TCP listener; 0 disables it.</summary>
    [Range(0, 65535)]
    public int Port { get; set; } = 1883;

    /// <summary>MQTT over TLS, served when <c>Tls:CertificatePath</c> is set; 0 disables it.</summary>
    [Range(0, 65535)]
    public int TlsPort { get; set; } = 8883;

    /// <summary>MQTT over WebSocket on the HTTP port; empty disables it.</summary>
    public string WebSocketPath { get; set; } = "/mqtt";

    /// <summary>Let clients without credentials in, as viewers (subscribe only).</summary>
    public bool AllowAnonymous { get; set; }

    /// <summary>How long the broker waits for a client's CONNECT (and for any single packet read or write) before it
    /// closes the connection; half-open connections cost no more than this.</summary>
    [Range(1, 600)]
    public int ConnectTimeoutSeconds { get; set; } = 10;

    /// <summary>Largest MQTT packet (fixed header's remaining length) on the TCP and TLS listeners; a connection declaring
    /// a larger one is closed before any of it is buffered. A connection's socket reads at most this plus 64 KiB ahead.</summary>
    [Range(1024, 256 * 1024 * 1024)]
    public int MaxPacketBytes { get; set; } = 256 * 1024;

    /// <summary>Most concurrent MQTT connections from one IP address (devices behind one NAT count together).</summary>
    [Range(1, 1_000_000)]
    public int MaxConnectionsPerAddress { get; set; } = 1000;

    /// <summary>Longest topic name or filter, in characters.</summary>
    [Range(16, 65535)]
    public int MaxTopicLength { get; set; } = 256;

    /// <summary>Most levels (segments between '/') in a topic name or filter.</summary>
    [Range(2, 128)]
    public int MaxTopicLevels { get; set; } = 16;

    /// <summary>A packet must arrive whole within this many seconds of its first byte, or the connection is closed
    /// (a byte dripped every few seconds would otherwise hold a connection open for ever).</summary>
    [Range(1, 3600)]
    public int PacketTimeoutSeconds { get; set; } = 30;

    /// <summary>Longest client identifier accepted, in characters; longer ones get CONNACK 0x85 (3.1.1: 0x02).</summary>
    [Range(23, 256)]
    public int MaxClientIdLength { get; set; } = 128;

    /// <summary>MQTT 5 Receive Maximum the hub advertises: QoS 1 and 2 messages a client may have unacknowledged at once;
    /// one more closes the connection with DISCONNECT 0x93. Telemetry PUBACKs wait for the commit, so a device that
    /// pipelines messages needs a few; 3.1.1 has no such limit.</summary>
    [Range(1, 65535)]
    public int ReceiveMaximum { get; set; } = 100;

    /// <summary>MQTT 5 Topic Alias Maximum the hub advertises (0: clients may not use topic aliases). An alias of 0 or
    /// above it closes the connection with DISCONNECT 0x94.</summary>
    [Range(0, 65535)]
    public int TopicAliasMaximum { get; set; } = 16;

    /// <summary>MQTT 5 clients asking for no keep-alive, or a longer one, are given this (Server Keep Alive); 0 leaves
    /// the client's. 3.1.1 cannot be told.</summary>
    [Range(0, 65535)]
    public int MaxKeepAliveSeconds { get; set; } = 3600;

    /// <summary>Longest a persistent session outlives its connection, in seconds: 3.1.1 sessions without clean session
    /// last this long, 5.0 Session Expiry Intervals are capped at it (and the client told in CONNACK).</summary>
    [Range(1, int.MaxValue)]
    public int MaxSessionExpirySeconds { get; set; } = 7 * 24 * 3600;

    /// <summary>Sessions one device may hold at once (connected or persistent); one more is refused with CONNACK 0x97.</summary>
    [Range(1, 10_000)]
    public int MaxSessionsPerDevice { get; set; } = 8;

    /// <summary>Sessions one API key (or all anonymous clients together) may hold at once; one more is refused with 0x97.</summary>
    [Range(1, 1_000_000)]
    public int MaxSessionsPerApiKey { get; set; } = 1000;

    /// <summary>Subscriptions one session may hold; more are refused in SUBACK (0x97 quota exceeded, 3.1.1 0x80).</summary>
    [Range(1, 100_000)]
    public int MaxSubscriptionsPerSession { get; set; } = 100;

    /// <summary>Messages queued for one session (QoS 1 and 2 while its client is away or slow); more are refused and
    /// counted in <c>iothub_mqtt_session_queue_refused_total</c>.</summary>
    [Range(1, 1_000_000)]
    public int MaxQueuedMessagesPerSession { get; set; } = 1000;
}

/// <summary>Section <c>Connectivity</c>: limits shared by every device protocol.</summary>
public sealed class ConnectivityOptions
{
    /// <summary>The configuration section: <c>Connectivity</c>.</summary>
    public const string SectionName = "Connectivity";

    /// <summary>Firmware downloads served at once (<c>GET /api/v1/devices/{id}/firmware/{artifactId}</c>); more get <c>503</c>
    /// with <c>Retry-After</c>. Default 100 (1 to 100,000).</summary>
    [System.ComponentModel.DataAnnotations.Range(1, 100_000)]
    public int MaxFirmwareDownloads { get; set; } = 100;

    /// <summary>Seconds a device is told to wait (<c>Retry-After</c>) when firmware downloads are at their cap. Default 5 (1 to 3,600).</summary>
    [System.ComponentModel.DataAnnotations.Range(1, 3600)]
    public int FirmwareDownloadRetryAfterSeconds { get; set; } = 5;

    /// <summary>Largest telemetry body accepted over HTTP and CoAP, in bytes (MQTT has its own check).</summary>
    [Range(64, 16 * 1024 * 1024)]
    public int MaxPayloadBytes { get; set; } = 256 * 1024;

    /// <summary>Messages a device may send per second over all protocols (telemetry, state, responses). Above it MQTT 5
    /// gets PUBACK 0x96 "message rate too high", HTTP 429; a 3.1.1 device, which cannot be told, is slowed down instead.</summary>
    [Range(1, 1_000_000)]
    public int DeviceMessagesPerSecond { get; set; } = 100;

    /// <summary>Failed device logins from one address are answered after 100 ms, doubling per failure up to this.</summary>
    [Range(0, 60_000)]
    public int FailedAuthMaxDelayMilliseconds { get; set; } = 5000;
}
