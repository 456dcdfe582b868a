using System.ComponentModel.DataAnnotations;

namespace IoTHub.Connectivity;

/// <summary>Section <c>Mqtt</c>: the embedded broker's listeners and rules.</summary>
public sealed class MqttOptions
{
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
}

/// <summary>Section <c>Connectivity</c>: limits shared by every device protocol.</summary>
public sealed class ConnectivityOptions
{
    public const string SectionName = "Connectivity";

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
