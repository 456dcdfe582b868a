using System.Collections;

namespace IoTHub.Connectivity.Mqtt;

/// <summary>Who is behind an MQTT session, kept in MQTTnet's session items from CONNECT on.</summary>
internal sealed record SessionInfo(string? DeviceId, string? AppRole, bool IsV5, string ClientId)
{
    private const string Key = "iothub.session";

    public bool IsDevice => DeviceId is not null;

    public bool MayWrite => AppRole is Contracts.Roles.Admin or Contracts.Roles.Operator;

    public void Store(IDictionary items) => items[Key] = this;

    public static SessionInfo? From(IDictionary? items) => items?[Key] as SessionInfo;
}
