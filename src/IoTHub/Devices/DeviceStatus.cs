// A device's status as the API and the UI show it, and the devices list's status filter. On the wire both are the
// contract's lower-case words ("online", "offline", "never"; the filter also "inactive"), never numbers; inside the
// hub they are enums, so a misspelt state does not compile.
using System.Text.Json.Serialization;

namespace IoTHub.Devices;

/// <summary>Whether a device is connected to the broker (CONTRACT.md, "Presence"): the <c>status</c> of a device in
/// the API, serialised as <c>"online"</c>, <c>"offline"</c> or <c>"never"</c>.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<DeviceStatus>))]
public enum DeviceStatus
{
    /// <summary><c>"online"</c>: it has a live MQTT connection now.</summary>
    [JsonStringEnumMemberName("online")] Online,

    /// <summary><c>"offline"</c>: no live connection, but it has been heard from (<c>lastSeen</c> says when).</summary>
    [JsonStringEnumMemberName("offline")] Offline,

    /// <summary><c>"never"</c>: nothing has been heard from it since it was registered.</summary>
    [JsonStringEnumMemberName("never")] Never,
}

/// <summary>The <c>status</c> filter of the devices list (<c>GET /api/v1/devices?status=</c> and the UI's filter): a
/// <see cref="DeviceStatus"/>, or <see cref="DeviceStatusFilter.Inactive"/>, which is not a status but a silence (see <see cref="DeviceView"/>).</summary>
public enum DeviceStatusFilter
{
    /// <summary><c>online</c>: devices that are <see cref="DeviceStatus.Online"/>.</summary>
    Online,

    /// <summary><c>offline</c>: devices that are <see cref="DeviceStatus.Offline"/>.</summary>
    Offline,

    /// <summary><c>never</c>: devices that are <see cref="DeviceStatus.Never"/>.</summary>
    Never,

    /// <summary><c>inactive</c>: devices of any status whose profile's report interval has passed twice without a word.</summary>
    Inactive,
}

/// <summary>The wire words of <see cref="DeviceStatus"/> and <see cref="DeviceStatusFilter"/>.</summary>
public static class DeviceStatusNames
{
    /// <summary>The words the <c>status</c> filter accepts, in the order error messages list them.</summary>
    public static readonly IReadOnlyList<string> Filters = ["online", "offline", "never", "inactive"];

    /// <summary>The status as the API writes it: <c>online</c>, <c>offline</c> or <c>never</c> (the UI shows the same
    /// word and uses it as a CSS class).</summary>
    public static string Name(this DeviceStatus status) => status switch
    {
        DeviceStatus.Online => "online",
        DeviceStatus.Offline => "offline",
        _ => "never",
    };

    /// <summary>The filter a word names (exact, lower case), or null for null, empty or an unknown word.</summary>
    public static DeviceStatusFilter? ParseFilter(string? word) => word switch
    {
        "online" => DeviceStatusFilter.Online,
        "offline" => DeviceStatusFilter.Offline,
        "never" => DeviceStatusFilter.Never,
        "inactive" => DeviceStatusFilter.Inactive,
        _ => null,
    };
}
