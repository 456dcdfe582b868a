// The answers IoTHub gives RabbitMQ's HTTP auth backend, as fast specs: the contract's MQTT rules, over routing keys.
using IoTHub.Connectivity;
using IoTHub.Connectivity.RabbitMq;
using IoTHub.Contracts;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace IoTHub.Tests.Connectivity.RabbitMq;

public sealed class RabbitMqAuthorizationSpecs
{
    private sealed class Devices : IDeviceAuthenticator
    {
        public ValueTask<DeviceIdentity?> AuthenticateAsync(string deviceId, string token, CancellationToken ct) => ValueTask.FromResult<DeviceIdentity?>(
            (deviceId, token) switch
            {
                ("d1", "t1") or ("d.1", "t1") or ("apikey2", "t1") => new DeviceIdentity(deviceId, null, true),
                ("off", "t1") => new DeviceIdentity(deviceId, null, false),
                _ => null,
            });

        public ValueTask<DeviceIdentity?> AuthenticateTokenAsync(string token, CancellationToken ct) => ValueTask.FromResult<DeviceIdentity?>(null);

        public ValueTask<DeviceIdentity?> FindAsync(string deviceId, CancellationToken ct) =>
            ValueTask.FromResult<DeviceIdentity?>(deviceId is "d1" or "off" ? new DeviceIdentity(deviceId, null, true) : null);

        public ValueTask<byte[]?> PskAsync(string deviceId, CancellationToken ct) => ValueTask.FromResult<byte[]?>(null);

        public ValueTask<DeviceIdentity?> AuthenticateCertificateAsync(string deviceId, string sha256Thumbprint, CancellationToken ct) =>
            ValueTask.FromResult<DeviceIdentity?>(null);
    }

    private sealed class Keys : IAppKeyVerifier
    {
        public ValueTask<AppKeyIdentity?> VerifyAsync(string key, CancellationToken ct) => ValueTask.FromResult(key switch
        {
            "viewer-key" => new AppKeyIdentity(1, Roles.Viewer),
            "operator-key" => new AppKeyIdentity(2, Roles.Operator),
            _ => (AppKeyIdentity?)null,
        });
    }

    private static readonly RabbitMqAuthorization Auth = new(new Devices(), new Keys(), Options.Create(new MqttOptions()),
        new RabbitMqCluster(new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            [RabbitMqCluster.ConnectionStringKey] = "amqp://iothub:x@127.0.0.1:5672/",
        }).Build()),
        new LogThrottle(TimeProvider.System, Options.Create(new LogThrottleOptions())), NullLogger<RabbitMqAuthorization>.Instance);

    [TestCase("d1", "t1", "d1", ExpectedResult = "iothub-device")]
    [TestCase("d1", "t1", "d1:second", ExpectedResult = "iothub-device")]
    [TestCase("d1", "t1", null, ExpectedResult = "iothub-device")]
    [TestCase("d1", "wrong", "d1", ExpectedResult = null)]
    [TestCase("d1", "t1", "d2", ExpectedResult = null)]
    [TestCase("d1", "t1", "mqtt-random", ExpectedResult = null)]
    [TestCase("off", "t1", "off", ExpectedResult = null)]
    [TestCase("d.1", "t1", "d.1", ExpectedResult = null)]
    [TestCase("nobody", "t1", "nobody", ExpectedResult = null)]
    [TestCase("apikey", "viewer-key", "dashboard", ExpectedResult = "iothub-viewer")]
    [TestCase("apikey", "operator-key", "worker", ExpectedResult = "iothub-operator")]
    [TestCase("apikey", "operator-key", "d1:squat", ExpectedResult = null)]
    [TestCase("apikey", "revoked-key", "worker", ExpectedResult = null)]
    public Task<string?> A_login_is_allowed_with_its_role_tag_only_for_valid_credentials_and_an_own_client_id(string user, string password, string? clientId) =>
        Auth.UserAsync(user, password, clientId, CancellationToken.None);

    [TestCase("d1", "write", "devices.d1.telemetry", ExpectedResult = true)]
    [TestCase("d1", "write", "devices.d1.state.reported", ExpectedResult = true)]
    [TestCase("d1", "write", "devices.d1.commands.c7.response", ExpectedResult = true)]
    [TestCase("d1", "write", "devices.d1.firmware.progress", ExpectedResult = true)]
    [TestCase("d1", "write", "devices.d2.telemetry", ExpectedResult = false)]
    [TestCase("d1", "write", "devices.d1.state.desired", ExpectedResult = false)]
    [TestCase("d1", "write", "devices.d1.commands.c7", ExpectedResult = false)]
    [TestCase("d1", "write", "devices.d1.telemetry.extra", ExpectedResult = false)]
    [TestCase("d1", "write", "alarms.d1.1", ExpectedResult = false)]
    [TestCase("d1", "write", "other.topic", ExpectedResult = false)]
    [TestCase("d1", "read", "devices.d1.commands.*", ExpectedResult = true)]
    [TestCase("d1", "read", "devices.d1.commands.#", ExpectedResult = true)]
    [TestCase("d1", "read", "devices.d1.state.desired", ExpectedResult = true)]
    [TestCase("d1", "read", "devices.d1.firmware", ExpectedResult = true)]
    [TestCase("d1", "read", "devices.d2.commands.*", ExpectedResult = false)]
    [TestCase("d1", "read", "devices.*.commands.*", ExpectedResult = false)]
    [TestCase("d1", "read", "#", ExpectedResult = false)]
    [TestCase("d1", "read", "devices.d1.#", ExpectedResult = false)]
    [TestCase("d1", "read", "devices.d1.telemetry", ExpectedResult = false)]
    public bool A_device_publishes_only_upstream_and_subscribes_only_downstream_on_its_own_topics(string device, string permission, string routingKey) =>
        Auth.Topic(device, "/", "amq.topic", permission, routingKey, "iothub-device");

    [TestCase("iothub-viewer", "read", "devices.*.telemetry", ExpectedResult = true)]
    [TestCase("iothub-viewer", "read", "#", ExpectedResult = true)]
    [TestCase("iothub-viewer", "write", "factory.line1", ExpectedResult = false)]
    [TestCase("iothub-operator", "write", "factory.line1", ExpectedResult = true)]
    [TestCase("iothub-operator", "write", "devices.d1.commands.c1", ExpectedResult = true)]
    [TestCase("iothub-operator", "write", "devices.d1.telemetry", ExpectedResult = false)]
    [TestCase("iothub-operator", "write", "alarms.d1.1", ExpectedResult = false)]
    [TestCase("", "read", "#", ExpectedResult = false)]
    [TestCase("administrator", "write", "factory.line1", ExpectedResult = false)]
    public bool An_app_keeps_its_roles_rights_and_never_writes_a_devices_upstream_topic(string tags, string permission, string routingKey) =>
        Auth.Topic("apikey", "/", "amq.topic", permission, routingKey, tags);

    [Test]
    public void Only_amq_topic_on_the_hubs_virtual_host_is_answered_allow()
    {
        Assert.That(Auth.Topic("d1", "other", "amq.topic", "write", "devices.d1.telemetry", "iothub-device"), Is.False);
        Assert.That(Auth.Topic("d1", "/", "amq.direct", "write", "devices.d1.telemetry", "iothub-device"), Is.False);
        Assert.That(Auth.Vhost("/"), Is.True);
        Assert.That(Auth.Vhost("tenant-b"), Is.False);
    }

    [TestCase("exchange", "amq.topic", "write", "d1", ExpectedResult = true)]
    [TestCase("exchange", "amq.topic", "read", "d1", ExpectedResult = true)]
    [TestCase("exchange", "amq.topic", "configure", "d1", ExpectedResult = false)]
    [TestCase("exchange", "iothub.upstream", "write", "d1", ExpectedResult = false)]
    [TestCase("exchange", "amq.default", "write", "d1", ExpectedResult = false)]
    [TestCase("queue", "mqtt-subscription-d1qos1", "configure", "d1", ExpectedResult = true)]
    [TestCase("queue", "mqtt-subscription-d1qos0", "read", "d1", ExpectedResult = true)]
    [TestCase("queue", "mqtt-subscription-d2qos1", "read", "d1", ExpectedResult = false)]
    [TestCase("queue", "iothub.upstream.0", "read", "d1", ExpectedResult = false)]
    [TestCase("queue", "mqtt-subscription-d1qos1", "read", null, ExpectedResult = false)]
    public bool A_client_reaches_only_amq_topic_and_its_own_subscription_queues(string resource, string name, string permission, string? clientId) =>
        Auth.Resource("/", resource, name, permission, clientId);
}
