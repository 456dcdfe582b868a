// What the hub declares on the cluster before it lets any device in, and how MQTT topics map to AMQP routing keys.
// RabbitMQ's MQTT plugin publishes a device's message to amq.topic with the topic's '/' turned into '.'; a message that
// no binding routes is confirmed to the device (PUBACK) and dropped, so every upstream topic a device may publish on
// (RabbitMqAuthorization allows no other) is bound, exchange to exchange, to a consistent-hash exchange that spreads
// them by routing key (so by device) over the shard queues. The shards are quorum queues (replicated, confirmed only
// once a majority has the message: the PUBACK then means it is safe) with a single active consumer each.
using RabbitMQ.Client;

namespace IoTHub.Connectivity.RabbitMq;

internal static class RabbitMqTopology
{
    /// <summary>Where the MQTT plugin publishes (<c>mqtt.exchange</c>, its default).</summary>
    public const string TopicExchange = "amq.topic";

    /// <summary>The consistent-hash exchange (<c>rabbitmq_consistent_hash_exchange</c>) in front of the shards.</summary>
    public const string UpstreamExchange = "iothub.upstream";

    /// <summary>The events queue: connections opened and closed, subscriptions made (<c>rabbitmq_event_exchange</c>).</summary>
    public const string EventsQueue = "iothub.events";

    /// <summary>RabbitMQ's event exchange.</summary>
    public const string EventExchange = "amq.rabbitmq.event";

    /// <summary>The device upstream topics of CONTRACT.md as routing keys (devices/{id}/telemetry, .../state/reported,
    /// .../commands/{commandId}/response, .../firmware/progress).</summary>
    public static readonly string[] UpstreamKeys =
        ["devices.*.telemetry", "devices.*.state.reported", "devices.*.commands.*.response", "devices.*.firmware.progress"];

    /// <summary>The events the hub listens to.</summary>
    public static readonly string[] EventKeys = ["connection.created", "connection.closed", "binding.created"];

    /// <summary>Shard queue <paramref name="i"/>.</summary>
    public static string Shard(int i) => $"iothub.upstream.{i}";

    /// <summary>Declares the exchanges, the shard queues and the events queue with their bindings (idempotent: every node
    /// declares the same at start). Throws <see cref="RabbitMQ.Client.Exceptions.OperationInterruptedException"/> when a
    /// plugin the hub needs is not enabled.</summary>
    public static async Task DeclareAsync(IChannel channel, int shards, CancellationToken ct)
    {
        await channel.ExchangeDeclareAsync(UpstreamExchange, "x-consistent-hash", durable: true, autoDelete: false, cancellationToken: ct);
        var quorum = new Dictionary<string, object?> { ["x-queue-type"] = "quorum", ["x-single-active-consumer"] = true };
        for (var i = 0; i < shards; i++)
        {
            await channel.QueueDeclareAsync(Shard(i), durable: true, exclusive: false, autoDelete: false, quorum, cancellationToken: ct);
            await channel.QueueBindAsync(Shard(i), UpstreamExchange, "1", cancellationToken: ct); // weight 1 on the hash ring
        }
        foreach (var key in UpstreamKeys) await channel.ExchangeBindAsync(UpstreamExchange, TopicExchange, key, cancellationToken: ct);
        await channel.QueueDeclareAsync(EventsQueue, durable: true, exclusive: false, autoDelete: false, quorum, cancellationToken: ct);
        foreach (var key in EventKeys) await channel.QueueBindAsync(EventsQueue, EventExchange, key, cancellationToken: ct);
    }

    /// <summary>The routing key of an MQTT topic as RabbitMQ's MQTT plugin makes it: '/' becomes '.' (a '.' in a topic is
    /// not escaped, which is why device ids with '.' are refused in this mode).</summary>
    public static string RoutingKey(string topic) => topic.Replace('/', '.');

    /// <summary>The MQTT topic of a routing key (the plugin's reverse mapping).</summary>
    public static string Topic(string routingKey) => routingKey.Replace('.', '/');
}
