namespace IoTHub.Devices.Presence;

/// <summary>A connect or disconnect as the database records it (online flag, last seen, connection history).</summary>
internal sealed record PresenceEvent(bool IsConnect, string DeviceId, string ClientId, long At, string? Protocol, string? RemoteAddress,
    bool Online, long LastSeen, string? Reason);
