using IoTHub.Connectivity.Mqtt;
using IoTHub.Contracts;

namespace IoTHub.Connectivity;

/// <summary>The other modules' way to devices through the broker tier, whichever it is (<c>Broker:Mode</c>): the embedded
/// broker (<see cref="MqttBroker"/>) or a RabbitMQ cluster (<see cref="RabbitMq.RabbitMqBroker"/>).</summary>
internal interface IBrokerLink
{
    /// <summary>Publishes on <c>devices/{id}/{subtopic}</c> at QoS 1; false when it reached no subscriber of the device
    /// (for a command: the device is not subscribed to its commands, so it stays queued or fails).</summary>
    Task<bool> DeliverAsync(DeliverToDevice d, CancellationToken ct);

    /// <summary>Publishes a hub message for apps (alarm transitions) at QoS 1.</summary>
    Task PublishToAppsAsync(PublishToApps p, CancellationToken ct);

    /// <summary>Is a command sent now likely to reach the device? The embedded broker knows its subscriptions; with
    /// RabbitMQ, the device is online (its recorded presence) and RabbitMQ's return of a mandatory publish says the rest.</summary>
    ValueTask<bool> CanReceiveCommandsAsync(string deviceId);

    /// <summary>Drops every live connection of a device (token rotated, disabled); its sessions stay for when it is back.</summary>
    Task DisconnectDeviceAsync(string deviceId);

    /// <summary>Ends every session of a principal that no longer exists (device deleted, API key revoked).</summary>
    Task EndSessionsAsync(MqttPrincipal principal);

    /// <summary>A new device takes back the client ids of its namespace from whoever held them.</summary>
    Task DeviceCreatedAsync(string deviceId);
}
