namespace IoTHub.Connectivity.Mqtt.Sessions;

/// <summary>Whether the broker is being stopped with the hub. Set before its clients are disconnected: the host signals
/// ApplicationStopping only after the lifecycle services' StoppingAsync, where the broker stops.</summary>
internal sealed class BrokerLifetime
{
    private volatile bool _stopping;

    public bool Stopping => _stopping;

    public void Stop() => _stopping = true;
}
