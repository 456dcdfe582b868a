// The cluster at ConnectionStrings:RabbitMq: one AMQP URI per node, separated by commas. The hub connects to the first
// node that answers, the nodes tried in random order so that several hub nodes spread over the cluster.
using RabbitMQ.Client;

namespace IoTHub.Connectivity.RabbitMq;

/// <summary>The parsed connection string and a way to connect.</summary>
internal sealed class RabbitMqCluster
{
    /// <summary>The configuration key of the cluster's address: <c>ConnectionStrings:RabbitMq</c>.</summary>
    public const string ConnectionStringKey = "ConnectionStrings:RabbitMq";

    private readonly ConnectionFactory _factory;
    private readonly List<AmqpTcpEndpoint> _endpoints = [];

    public RabbitMqCluster(IConfiguration config)
    {
        var text = config[ConnectionStringKey];
        var uris = (text ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        _factory = new ConnectionFactory { ClientProvidedName = "iothub " + Environment.MachineName, AutomaticRecoveryEnabled = false, TopologyRecoveryEnabled = false };
        if (uris.Length == 0) return;
        _factory.Uri = new Uri(uris[0]);
        foreach (var uri in uris) _endpoints.Add(new AmqpTcpEndpoint(new Uri(uri)));
        Nodes = string.Join(", ", _endpoints.Select(e => $"{e.HostName}:{e.Port}"));
    }

    /// <summary>Validates the connection string's shape: null when it is fine, else why not.</summary>
    public static string? Problem(IConfiguration config)
    {
        var text = config[ConnectionStringKey];
        if (string.IsNullOrWhiteSpace(text)) return $"Broker:Mode RabbitMq needs the cluster's address in {ConnectionStringKey} (e.g. amqp://iothub:secret@127.0.0.1:5672/)";
        foreach (var uri in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            if (!Uri.TryCreate(uri, UriKind.Absolute, out var u) || u.Scheme is not ("amqp" or "amqps"))
                return $"{ConnectionStringKey} must be AMQP URIs separated by commas (amqp://user:password@host:5672/vhost); '{Redacted(uri)}' is not one";
        return null;
    }

    /// <summary>The virtual host of the first URI (<c>/</c> when it names none).</summary>
    public string VirtualHost => _factory.VirtualHost;

    /// <summary>host:port of each node, for messages (no credentials).</summary>
    public string Nodes { get; } = "";

    /// <summary>Opens a connection to one of the nodes (random order). Throws <see cref="RabbitMQ.Client.Exceptions.BrokerUnreachableException"/>
    /// when none answers.</summary>
    public Task<IConnection> ConnectAsync(string purpose, CancellationToken ct)
    {
        var order = _endpoints.OrderBy(_ => Random.Shared.Next()).ToList();
        return _factory.CreateConnectionAsync(order, $"iothub {Environment.MachineName} {purpose}", ct);
    }

    private static string Redacted(string uri) => System.Text.RegularExpressions.Regex.Replace(uri, "//[^@/]*@", "//***@");
}
