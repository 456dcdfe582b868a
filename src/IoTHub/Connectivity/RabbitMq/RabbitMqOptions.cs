using System.ComponentModel.DataAnnotations;

namespace IoTHub.Connectivity.RabbitMq;

/// <summary>Which MQTT broker devices connect to (<c>Broker:Mode</c>).</summary>
public enum BrokerMode
{
    /// <summary>The hub's own broker (MQTTnet) on <c>Mqtt:Port</c>, <c>Mqtt:TlsPort</c> and <c>Mqtt:WebSocketPath</c>: one machine.</summary>
    Embedded,

    /// <summary>A RabbitMQ cluster (3.10 or later, with its MQTT plugin) at <c>ConnectionStrings:RabbitMq</c>: devices connect
    /// to RabbitMQ, which asks this hub who they are and what they may do (<c>rabbitmq_auth_backend_http</c>); several hub
    /// nodes share the work and one PostgreSQL database. The embedded broker's listeners are off.</summary>
    RabbitMq,
}

/// <summary>Section <c>Broker</c>.</summary>
public sealed class BrokerOptions
{
    /// <summary>The configuration section: <c>Broker</c> (environment: <c>IOTHUB_Broker__Mode</c>).</summary>
    public const string SectionName = "Broker";

    /// <summary><c>Embedded</c> (default) or <c>RabbitMq</c>.</summary>
    public BrokerMode Mode { get; set; } = BrokerMode.Embedded;
}

/// <summary>Section <c>RabbitMq</c>: how the hub uses a RabbitMQ cluster when <c>Broker:Mode</c> is <c>RabbitMq</c>. The
/// cluster itself is at <c>ConnectionStrings:RabbitMq</c>: one AMQP URI per node, separated by commas
/// (<c>amqp://iothub:secret@10.0.0.1:5672/,amqp://iothub:secret@10.0.0.2:5672/</c>); the first one's user, password and
/// virtual host are used for all, and the hub connects to the first node that answers, in random order.</summary>
public sealed class RabbitMqOptions
{
    /// <summary>The configuration section: <c>RabbitMq</c>.</summary>
    public const string SectionName = "RabbitMq";

    /// <summary>Quorum queues the upstream messages are sharded over (a consistent-hash exchange on the routing key: one
    /// device's messages on one topic stay in one queue, in order). Each shard has one active consumer at a time across
    /// the hub nodes. Changing it later moves devices between shards.</summary>
    [Range(1, 256)]
    public int Shards { get; set; } = 8;

    /// <summary>Unacknowledged messages a shard's consumer holds at most (AMQP basic.qos prefetch, per consumer). Messages
    /// are acknowledged after the batch holding them has committed, so this bounds what is in flight per shard.</summary>
    [Range(1, 65535)]
    public int Prefetch { get; set; } = 2000;

    /// <summary>Addresses allowed to call the authentication endpoints (<c>/rabbitmq/auth/*</c>): the RabbitMQ nodes. Any
    /// other caller gets 403. Default: loopback only.</summary>
    public string[] AuthAllowedAddresses { get; set; } = ["127.0.0.1", "::1"];

    /// <summary>RabbitMQ's management API (<c>http://user:password@host:15672</c>, the management plugin), used to close a
    /// device's live connections at once when its token is rotated, or it is disabled or deleted. Without it such a device
    /// is refused at its next connect, and its open connection lasts until then.</summary>
    public string? ManagementUri { get; set; }

    /// <summary>How long the hub waits before connecting again after it lost its connection to the cluster.</summary>
    public TimeSpan ReconnectDelay { get; set; } = TimeSpan.FromSeconds(1);
}

/// <summary>Reads <c>Broker:Mode</c> where the host is composed (before options are bound).</summary>
internal static class RabbitMqMode
{
    /// <summary>True when <c>Broker:Mode</c> is <c>RabbitMq</c> (case-insensitive).</summary>
    public static bool IsOn(IConfiguration config) =>
        string.Equals(config[BrokerOptions.SectionName + ":Mode"], nameof(BrokerMode.RabbitMq), StringComparison.OrdinalIgnoreCase);
}
