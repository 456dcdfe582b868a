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

    /// <summary>TLS listener, used when <c>Mqtt:CertificatePath</c> is set; 0 disables it.</summary>
    [Range(0, 65535)]
    public int TlsPort { get; set; } = 8883;

    /// <summary>MQTT over WebSocket on the HTTP port; empty disables it.</summary>
    public string WebSocketPath { get; set; } = "/mqtt";

    /// <summary>Let clients without credentials in, as viewers (subscribe only).</summary>
    public bool AllowAnonymous { get; set; }

    /// <summary>Keep-alive the broker grants when a client asks for none, in seconds.</summary>
    [Range(0, 65535)]
    public int DefaultKeepAliveSeconds { get; set; } = 60;
}

/// <summary>Section <c>Connectivity</c>: limits shared by every device protocol.</summary>
public sealed class ConnectivityOptions
{
    public const string SectionName = "Connectivity";

    /// <summary>Largest telemetry body accepted over HTTP and CoAP, in bytes (MQTT has its own check).</summary>
    [Range(64, 16 * 1024 * 1024)]
    public int MaxPayloadBytes { get; set; } = 256 * 1024;
}
