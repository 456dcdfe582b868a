using System.Diagnostics.Metrics;
using IoTHub.Contracts;

namespace IoTHub.Connectivity.Mqtt;

/// <summary>The broker's counters, exported on <c>/metrics</c>.</summary>
internal static class MqttMetrics
{
    /// <summary>Messages not queued for a session because its queue held Mqtt:MaxQueuedMessagesPerSession already.</summary>
    public static readonly Counter<long> QueueRefused = HubMeter.Meter.CreateCounter<long>("iothub_mqtt_session_queue_refused_total",
        description: "Messages not queued for an MQTT session because its queue was full (Mqtt:MaxQueuedMessagesPerSession)");

    /// <summary>Queued messages never sent: their Message Expiry Interval passed, or they exceed the client's Maximum Packet Size.</summary>
    public static readonly Counter<long> Discarded = HubMeter.Meter.CreateCounter<long>("iothub_mqtt_messages_discarded_total",
        description: "Messages for MQTT clients discarded unsent: expired (Message Expiry Interval) or larger than the client's Maximum Packet Size");

    /// <summary>Connections closed for a protocol error (DISCONNECT with a reason code ≥ 0x80 on 5.0).</summary>
    public static readonly Counter<long> ProtocolErrors = HubMeter.Meter.CreateCounter<long>("iothub_mqtt_protocol_errors_total",
        description: "MQTT connections closed for a protocol error");

    /// <summary>Sessions that ended because their Session Expiry Interval passed.</summary>
    public static readonly Counter<long> SessionsExpired = HubMeter.Meter.CreateCounter<long>("iothub_mqtt_sessions_expired_total",
        description: "Persistent MQTT sessions ended by their Session Expiry Interval");
}
