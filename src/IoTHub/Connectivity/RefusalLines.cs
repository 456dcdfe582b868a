// The Connectivity log lines that a device or a stranger can make the hub write again and again. They are written
// through LogThrottle: the first of a kind and key (address, device, client) in an interval, then one summary line.
using System.Net;
using IoTHub.Contracts;

namespace IoTHub.Connectivity;

internal static class RefusalLines
{
    public static readonly LogKind<IPAddress, int> AddressCap = new(LogLevel.Warning, "MQTT connections refused over the per-address cap",
        "Refused an MQTT connection from {Remote}: more than {Max} connections from that address");

    public static readonly LogKind<EndPoint?, string> Packet = new(LogLevel.Warning, "MQTT connections closed for a refused packet",
        "Closed the MQTT connection from {Remote}: it sent {What}");

    public static readonly LogKind<EndPoint?, string> ConnectRefused = new(LogLevel.Warning, "MQTT CONNECTs refused at the wire",
        "Refused the MQTT connection from {Remote}: {Why}");

    public static readonly LogKind<string, EndPoint?, string> MqttLogin = new(LogLevel.Warning, "MQTT logins refused",
        "Refused MQTT connection of {UserName} from {Remote}: {Why}");

    public static readonly LogKind<string, string, EndPoint?, string> MqttClientId = new(LogLevel.Warning, "MQTT connections refused for their client id",
        "Refused MQTT connection of {UserName} with client id {ClientId} from {Remote}: {Why}");

    public static readonly LogKind<string, EndPoint?> DisabledDevice = new(LogLevel.Warning, "MQTT logins of a disabled device refused",
        "Refused MQTT connection of disabled device {DeviceId} from {Remote}");

    public static readonly LogKind<string, string> ProtocolError = new(LogLevel.Warning, "MQTT connections closed for a protocol error",
        "Closing the MQTT connection of client {ClientId}: {Reason}");

    public static readonly LogKind<string, string?, string> DeviceMessage = new(LogLevel.Warning, "device messages refused",
        "Refused {Topic} from device {DeviceId}: {Why}");

    public static readonly LogKind<string, string> Publish = new(LogLevel.Warning, "MQTT publishes refused",
        "Refused publish of client {ClientId}: {Why}");

    public static readonly LogKind<string, string, string> Subscription = new(LogLevel.Warning, "MQTT subscriptions refused",
        "Refused subscription of client {ClientId} to {Filter}: {Why}");

    public static readonly LogKind<string, string> WillPublished = new(LogLevel.Information, "Wills published",
        "Published the Will of client {ClientId} on {Topic}");

    public static readonly LogKind<string, string?, string> HttpDeviceLogin = new(LogLevel.Warning, "HTTP device requests refused",
        "Refused an HTTP request of device {DeviceId} from {Remote}: {Why}");

    public static readonly LogKind<string, int> DeviceRate = new(LogLevel.Warning, "device messages over the rate limit",
        "Device {DeviceId} sent more than {Limit} messages in a second: the excess is refused (MQTT 3.1.1: slowed down)");

    public static readonly LogKind<string, string, string> RabbitMqLogin = new(LogLevel.Warning, "logins through RabbitMQ refused",
        "Refused the RabbitMQ login of {UserName} with client id {ClientId}: {Why}");

    public static readonly LogKind<string, string, string, string> RabbitMqTopic = new(LogLevel.Warning, "topic access through RabbitMQ refused",
        "Refused {UserName} {Permission} access to routing key {RoutingKey}: {Why}");
}
