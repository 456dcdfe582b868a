using System.Globalization;
using IoTHub.Contracts;

namespace IoTHub.Connectivity.Mqtt;

/// <summary>What a connection authenticated as.</summary>
internal enum PrincipalKind : byte { Device, ApiKey, Anonymous }

/// <summary>Who a connection authenticated as: the only source of its rights (CONTRACT.md, MQTT: "A connection's rights
/// come only from the credentials it authenticated with"). Two connections are the same principal when they are the same
/// device, the same API key, or both anonymous; only the same principal may take over or resume a session.</summary>
/// <param name="Kind">Device, API key or anonymous.</param>
/// <param name="Id">The device id, the API key's id, or empty for anonymous.</param>
/// <param name="Role">For API keys and anonymous clients: <c>admin</c>, <c>operator</c> or <c>viewer</c>; null for devices.</param>
internal sealed record MqttPrincipal(PrincipalKind Kind, string Id, string? Role)
{
    public static readonly MqttPrincipal Anonymous = new(PrincipalKind.Anonymous, "", Roles.Viewer);

    public static MqttPrincipal Device(string deviceId) => new(PrincipalKind.Device, deviceId, null);

    public static MqttPrincipal ApiKey(long keyId, string role) => new(PrincipalKind.ApiKey, keyId.ToString(CultureInfo.InvariantCulture), role);

    /// <summary>The device id when this is a device, else null.</summary>
    public string? DeviceId => Kind == PrincipalKind.Device ? Id : null;

    public bool IsDevice => Kind == PrincipalKind.Device;

    /// <summary>Operator and admin keys may publish outside device upstream topics; viewers only subscribe.</summary>
    public bool MayWrite => Role is Roles.Admin or Roles.Operator;

    /// <summary>The same principal: the same kind and id (a key's role cannot change).</summary>
    public bool Equals(MqttPrincipal? other) => other is not null && Kind == other.Kind && Id == other.Id;

    public override int GetHashCode() => HashCode.Combine(Kind, Id);

    public override string ToString() => Kind switch
    {
        PrincipalKind.Device => "device " + Id,
        PrincipalKind.ApiKey => $"API key {Id} ({Role})",
        _ => "anonymous",
    };
}
