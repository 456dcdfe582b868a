// IoTHub stays the authority on devices and topics when devices connect to RabbitMQ: RabbitMQ's HTTP auth backend
// (rabbitmq_auth_backend_http, deploy/rabbitmq/) asks these questions, and the answers follow the contract's rules for
// the embedded broker (CONTRACT.md, MQTT), reused from it:
//   user      a device logs in with its id and token, an app with "apikey" and an API key; disabled, deleted and rotated
//             devices are refused; a device's client id must be its own (ClientIdRules); ids with '.' are refused,
//             since RabbitMQ turns '/' into '.' in routing keys and devices/a.b/telemetry would read as another topic;
//   vhost     the hub's virtual host only;
//   resource  amq.topic (read, write) and the client's own MQTT subscription queues (mqtt-subscription-{client id}qos0|1);
//   topic     a device publishes only on its own upstream topics and subscribes only to its own downstream ones; apps
//             never publish on a device's upstream topics, viewers never publish (PublishRules).
// An app's role travels as a tag RabbitMQ attaches to the user at login ("iothub-operator") and sends with every later
// question: the later questions carry no password, and the user name of every app is "apikey".
using IoTHub.Connectivity.Mqtt;
using IoTHub.Connectivity.Mqtt.Connect;
using IoTHub.Connectivity.Mqtt.Publish;
using IoTHub.Contracts;
using Microsoft.Extensions.Options;

namespace IoTHub.Connectivity.RabbitMq;

/// <summary>The answers to RabbitMQ's four questions. Each returns true for <c>allow</c>; the user question also the tags.</summary>
internal sealed class RabbitMqAuthorization(
    IDeviceAuthenticator devices,
    IAppKeyVerifier keys,
    IOptions<MqttOptions> mqtt,
    RabbitMqCluster cluster,
    LogThrottle lines,
    ILogger<RabbitMqAuthorization> log)
{
    private const string RoleTagPrefix = "iothub-";

    /// <summary>Login (user_path): null when refused, else the tags to answer with <c>allow</c>.</summary>
    public async Task<string?> UserAsync(string username, string password, string? clientId, CancellationToken ct)
    {
        if (username == MqttBroker.AppUserName)
        {
            if (await keys.VerifyAsync(password, ct) is not { } key) return Refused(username, clientId, "unknown or revoked API key");
            if (clientId is not null && ClientIdRules.DeviceNamespaceOf(clientId) is { } ns && await devices.FindAsync(ns, ct) is not null)
                return Refused(username, clientId, $"client id {clientId} is in device {ns}'s namespace");
            return RoleTagPrefix + key.Role;
        }
        if (!Identifier.IsValid(username)) return Refused(username, clientId, "not a device id");
        if (username.Contains('.')) return Refused(username, clientId, "device ids with '.' cannot connect through RabbitMQ, which reads '.' as a topic level");
        if (await devices.AuthenticateAsync(username, password, ct) is not { } device) return Refused(username, clientId, "bad user name or password");
        if (!device.Enabled) return Refused(username, clientId, "device is disabled");
        if (clientId is not null && ClientIdRules.DeviceRuleBroken(username, clientId) is { } why) return Refused(username, clientId, why);
        return RoleTagPrefix + "device";
    }

    /// <summary>Virtual host access (vhost_path): the hub's virtual host only.</summary>
    public bool Vhost(string vhost) => vhost == cluster.VirtualHost;

    /// <summary>Exchange and queue access (resource_path). <paramref name="permission"/> is configure, write or read.</summary>
    public bool Resource(string vhost, string resource, string name, string permission, string? clientId) =>
        Vhost(vhost) && resource switch
        {
            "exchange" => name == RabbitMqTopology.TopicExchange && permission is "read" or "write",
            "queue" => clientId is { Length: > 0 } && (name == $"mqtt-subscription-{clientId}qos0" || name == $"mqtt-subscription-{clientId}qos1"),
            _ => false,
        };

    /// <summary>Topic access (topic_path) on amq.topic: publishing (write) on a routing key, or subscribing (read) with a
    /// binding key, as the contract's MQTT rules say. <paramref name="tags"/> are those the login answered with.</summary>
    public bool Topic(string username, string vhost, string exchange, string permission, string routingKey, string tags)
    {
        if (!Vhost(vhost) || exchange != RabbitMqTopology.TopicExchange) return false;
        var topic = RabbitMqTopology.Topic(routingKey);
        var principal = PrincipalOf(username, tags);
        if (principal is null) return false;
        string? why = permission switch
        {
            "write" => PublishRules.WhyRefused(principal, topic, mqtt.Value),
            "read" => principal.DeviceId is { } device
                ? DeviceTopic.DeviceMaySubscribe(device, topic.Replace('*', '+')) ? null : $"device {device} may subscribe only to its own downstream topics"
                : null,
            _ => "unknown permission " + permission,
        };
        if (why is null) return true;
        lines.Write(log, RefusalLines.RabbitMqTopic, username, MqttText.Printable(username), permission, MqttText.Printable(routingKey), why);
        return false;
    }

    private static MqttPrincipal? PrincipalOf(string username, string tags)
    {
        if (username != MqttBroker.AppUserName) return Identifier.IsValid(username) ? MqttPrincipal.Device(username) : null;
        foreach (var tag in tags.Split([' ', ','], StringSplitOptions.RemoveEmptyEntries))
            if (tag.StartsWith(RoleTagPrefix, StringComparison.Ordinal) && tag[RoleTagPrefix.Length..] is Roles.Admin or Roles.Operator or Roles.Viewer)
                return MqttPrincipal.ApiKey(0, tag[RoleTagPrefix.Length..]);
        return null;
    }

    private string? Refused(string username, string? clientId, string why)
    {
        lines.Write(log, RefusalLines.RabbitMqLogin, username, MqttText.Printable(username), MqttText.Printable(clientId ?? ""), why);
        return null;
    }
}
