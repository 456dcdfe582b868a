using System.Collections;

namespace IoTHub.Connectivity.Mqtt;

/// <summary>Who is behind an MQTT session, kept in MQTTnet's session items from CONNECT on.</summary>
/// <param name="SessionKept">The broker keeps the session (subscriptions, queued messages) after this connection ends:
/// 3.1.1 with CleanSession = 0, or 5.0 with a session expiry interval.</param>
internal sealed record SessionInfo(string? DeviceId, string? AppRole, bool IsV5, string ClientId, bool SessionKept = false, bool CleanStart = true)
{
    private const string Key = "iothub.session";

    public bool IsDevice => DeviceId is not null;

    public bool MayWrite => AppRole is Contracts.Roles.Admin or Contracts.Roles.Operator;

    public void Store(IDictionary items) => items[Key] = this;

    public static SessionInfo? From(IDictionary? items) => items?[Key] as SessionInfo;
}
