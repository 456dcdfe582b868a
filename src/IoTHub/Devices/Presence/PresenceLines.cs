// A device in a reconnect loop (bad firmware, a stolen token) can make presence log lines at will: they are written
// through LogThrottle, once per interval and device, with a summary of the repeats. Every connection is still in
// the device's connection history.
using IoTHub.Contracts;

namespace IoTHub.Devices.Presence;

internal static class PresenceLines
{
    public static readonly LogKind<string, string, string?, string> Connected = new(LogLevel.Information, "device connections",
        "Device {DeviceId} connected over {Protocol} from {Remote} as {ClientId}");

    public static readonly LogKind<string, string, int> Disconnected = new(LogLevel.Information, "device disconnections",
        "Device {DeviceId} disconnected ({Reason}); {Remaining} connections left");
}
