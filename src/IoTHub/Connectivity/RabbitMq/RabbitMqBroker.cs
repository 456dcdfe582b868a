// The broker tier when devices connect to a RabbitMQ cluster (Broker:Mode = RabbitMq). RabbitMQ is just another
// protocol adapter in front of the same pipeline:
//   upstream   each shard queue (RabbitMqTopology) is consumed with a single active consumer across the hub nodes; a
//              device's telemetry goes through the ingest gate like an MQTT message, and the delivery is acknowledged to
//              RabbitMQ only once the batch holding it has committed (or it was dead-lettered). Acks go out in delivery
//              order, many at once (basic.ack multiple). When this node dies, RabbitMQ hands its unacknowledged messages
//              and the shard to another node; what was already stored is stored once (device, metric, timestamp).
//   events     connections opened and closed and subscriptions made (rabbitmq_event_exchange, one active consumer) become
//              presence, and a device subscribing to its desired state, firmware or commands is sent what waits for it
//              (RabbitMQ 3.10 keeps retained messages on one node only, so the hub does not rely on them).
//   downstream commands, desired state, firmware notifications and alarm transitions are published to amq.topic with
//              publisher confirms; a command is published "mandatory", so RabbitMQ says when no subscription of the
//              device takes it, and the command stays queued.
// Losing the connection ends the session: every channel is dropped with its unacknowledged deliveries (RabbitMQ
// redelivers them), and the hub connects again, to any node of the cluster.
using System.Collections.Concurrent;
using System.Text;
using System.Text.RegularExpressions;
using System.Threading.Channels;
using IoTHub.Connectivity.Mqtt;
using IoTHub.Connectivity.Mqtt.Connect;
using IoTHub.Contracts;
using Microsoft.Extensions.Options;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;
using RabbitMQ.Client.Exceptions;

namespace IoTHub.Connectivity.RabbitMq;

internal sealed partial class RabbitMqBroker(
    RabbitMqCluster cluster,
    IngestGate gate,
    ModuleBridge modules,
    RabbitMqManagement management,
    IOptions<RabbitMqOptions> options,
    IOptions<MqttOptions> mqtt,
    LogThrottle lines,
    TimeProvider time,
    ILogger<RabbitMqBroker> log) : IHostedService, IBrokerLink
{
    private readonly CancellationTokenSource _stopping = new();
    private readonly SemaphoreSlim _publishLock = new(1, 1);
    private Session? _session;
    private Task? _loop;

    /// <summary>A connection and what runs on it; ends when the connection does.</summary>
    private sealed class Session(IConnection connection)
    {
        public IConnection Connection { get; } = connection;
        public IChannel? Publisher;
        public readonly List<(IChannel Channel, Channel<Pending> Acks, Task AckLoop, string ConsumerTag)> Shards = [];
        public IChannel? Events;
        public readonly TaskCompletionSource Closed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    /// <summary>A delivery waiting for its outcome: true to acknowledge it, false when the hub is stopping (left to RabbitMQ).</summary>
    private readonly record struct Pending(ulong Tag, Task<bool> Done);

    /// <summary>True while connected, with the topology declared and the consumers running (readiness).</summary>
    public bool IsConnected => _session is { Connection.IsOpen: true };

    public async Task StartAsync(CancellationToken ct)
    {
        try
        {
            _session = await OpenAsync(ct);
        }
        catch (BrokerUnreachableException ex)
        {
            throw new StartupProblem($"RabbitMQ at {cluster.Nodes} ({RabbitMqCluster.ConnectionStringKey}) cannot be reached or refused the hub's login: {ex.InnerException?.Message ?? ex.Message}.", ex);
        }
        catch (OperationInterruptedException ex)
        {
            throw new StartupProblem($"RabbitMQ at {cluster.Nodes} refused the hub's topology ({ex.ShutdownReason?.ReplyText ?? ex.Message}); "
                + "enable the plugins rabbitmq_mqtt, rabbitmq_consistent_hash_exchange and rabbitmq_event_exchange (deploy/rabbitmq/enabled_plugins).", ex);
        }
        _loop = Task.Run(() => KeepConnectedAsync(_stopping.Token), CancellationToken.None);
    }

    public async Task StopAsync(CancellationToken ct)
    {
        await _stopping.CancelAsync();
        if (_loop is not null) await _loop.WaitAsync(ct).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        if (_session is { } s) await CloseAsync(s, drain: true);
        _session = null;
    }

    private async Task KeepConnectedAsync(CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            var s = _session;
            if (s is not null)
            {
                try { await s.Closed.Task.WaitAsync(ct); }
                catch (OperationCanceledException) { return; }
                log.LogWarning("Lost the connection to RabbitMQ; connecting again (unacknowledged messages are redelivered)");
                _session = null;
                await CloseAsync(s, drain: false);
            }
            try
            {
                await Task.Delay(options.Value.ReconnectDelay, time, ct);
                _session = await OpenAsync(ct);
                log.LogInformation("Connected to RabbitMQ again");
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested) { return; }
            catch (Exception ex)
            {
                log.LogWarning("Cannot connect to RabbitMQ at {Nodes}: {Reason}", cluster.Nodes, ex.InnerException?.Message ?? ex.Message);
            }
        }
    }

    private async Task<Session> OpenAsync(CancellationToken ct)
    {
        var connection = await cluster.ConnectAsync("broker", ct);
        var s = new Session(connection);
        connection.ConnectionShutdownAsync += (_, _) =>
        {
            s.Closed.TrySetResult();
            return Task.CompletedTask;
        };
        try
        {
            await using (var setup = await connection.CreateChannelAsync(cancellationToken: ct))
                await RabbitMqTopology.DeclareAsync(setup, options.Value.Shards, ct);
            s.Publisher = await connection.CreateChannelAsync(new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true), ct);
            for (var i = 0; i < options.Value.Shards; i++) s.Shards.Add(await ConsumeShardAsync(connection, i, ct));
            s.Events = await ConsumeEventsAsync(connection, ct);
            log.LogInformation("Consuming {Shards} shard queues on RabbitMQ at {Node} (one active consumer per shard across the hub nodes)",
                options.Value.Shards, connection.Endpoint.ToString());
            return s;
        }
        catch
        {
            await CloseAsync(s, drain: false);
            throw;
        }
    }

    /// <summary>Stops consuming; with <paramref name="drain"/> (the hub stopping) waits for the deliveries in flight to be
    /// committed and acknowledges them first, then closes the connection.</summary>
    private async Task CloseAsync(Session s, bool drain)
    {
        foreach (var (channel, acks, ackLoop, tag) in s.Shards)
        {
            try
            {
                if (drain && channel.IsOpen) await channel.BasicCancelAsync(tag);
            }
            catch (Exception ex) when (ex is AlreadyClosedException or OperationInterruptedException) { }
            acks.Writer.TryComplete();
            if (drain) await ackLoop.WaitAsync(TimeSpan.FromSeconds(30)).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
        try
        {
            await s.Connection.CloseAsync(TimeSpan.FromSeconds(5));
        }
        catch (Exception ex) when (ex is AlreadyClosedException or OperationInterruptedException or IOException or TimeoutException) { }
        s.Connection.Dispose();
    }

    private async Task<(IChannel, Channel<Pending>, Task, string)> ConsumeShardAsync(IConnection connection, int shard, CancellationToken ct)
    {
        var channel = await connection.CreateChannelAsync(cancellationToken: ct);
        await channel.BasicQosAsync(0, (ushort)options.Value.Prefetch, global: false, ct);
        var acks = Channel.CreateUnbounded<Pending>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        var consumer = new AsyncEventingBasicConsumer(channel);
        consumer.ReceivedAsync += async (_, e) =>
        {
            try
            {
                await OnUpstreamAsync(e, acks.Writer);
            }
            catch (Exception ex)
            {
                // Never acknowledged (a later basic.ack "multiple" would cover it): it stays with RabbitMQ.
                acks.Writer.TryWrite(new Pending(e.DeliveryTag, Task.FromResult(false)));
                if (!_stopping.IsCancellationRequested) log.LogError(ex, "Taking a message from RabbitMQ on {RoutingKey} failed", e.RoutingKey);
            }
        };
        var ackLoop = Task.Run(() => AcknowledgeAsync(channel, acks.Reader), CancellationToken.None);
        var tag = await channel.BasicConsumeAsync(RabbitMqTopology.Shard(shard), autoAck: false, consumer, ct);
        return (channel, acks, ackLoop, tag);
    }

    /// <summary>One upstream message: into the pipeline, its acknowledgement queued in delivery order. Returns once it is
    /// handed over (telemetry) or handled (the rest), so the next delivery of the shard is read meanwhile.</summary>
    private async Task OnUpstreamAsync(BasicDeliverEventArgs e, ChannelWriter<Pending> acks)
    {
        var topic = RabbitMqTopology.Topic(e.RoutingKey);
        var parsed = DeviceTopic.Parse(topic);
        Task<bool> done;
        if (parsed.DeviceId is not { } device || !parsed.IsUpstream)
        {
            done = Task.FromResult(true); // not ours to store (the bindings route nothing else here): acknowledged, dropped
        }
        else if (e.Body.Length > mqtt.Value.MaxPacketBytes)
        {
            // What the embedded broker refuses at the wire (Mqtt:MaxPacketBytes); deploy/rabbitmq sets max_message_size.
            lines.Write(log, RefusalLines.DeviceMessage, device, MqttText.Printable(topic), device, $"larger than {mqtt.Value.MaxPacketBytes} bytes (Mqtt:MaxPacketBytes)");
            done = Task.FromResult(true);
        }
        else
        {
            var payload = e.Body.ToArray(); // the body is only valid during this call
            switch (parsed.Kind)
            {
                case TopicKind.Telemetry:
                    var ticket = new IngestTicket();
                    done = await gate.EnqueueAsync(device, TelemetryProtocol.Mqtt, PayloadFormat.Json, payload, ticket, _stopping.Token)
                        ? Committed(ticket)
                        : Task.FromResult(false);
                    break;
                case TopicKind.StateReported:
                    await modules.SendAsync(new ReportDeviceState(device, payload));
                    done = Task.FromResult(true);
                    break;
                case TopicKind.CommandResponse:
                    await modules.SendAsync(new RecordCommandResponse(device, DeviceTopic.CommandIdOf(topic), payload));
                    done = Task.FromResult(true);
                    break;
                default:
                    await modules.SendAsync(new RecordFirmwareProgress(device, payload));
                    done = Task.FromResult(true);
                    break;
            }
        }
        acks.TryWrite(new Pending(e.DeliveryTag, done));

        static async Task<bool> Committed(IngestTicket ticket) => (await ticket.Task).Status != IngestStatus.Unavailable;
    }

    /// <summary>Acknowledges in delivery order: waits for the oldest, then takes every later one already done, and acks
    /// them all with one basic.ack (multiple). Stops at the first delivery the hub could not take (stopping).</summary>
    private async Task AcknowledgeAsync(IChannel channel, ChannelReader<Pending> acks)
    {
        try
        {
            while (await acks.WaitToReadAsync())
            {
                while (acks.TryRead(out var head))
                {
                    if (!await head.Done) return;
                    var last = head.Tag;
                    while (acks.TryPeek(out var next) && next.Done.IsCompletedSuccessfully && next.Done.Result)
                    {
                        acks.TryRead(out _);
                        last = next.Tag;
                    }
                    await channel.BasicAckAsync(last, multiple: true);
                }
            }
        }
        catch (Exception ex) when (ex is AlreadyClosedException or OperationInterruptedException or ObjectDisposedException)
        {
            // The channel went with the connection: RabbitMQ redelivers what was not acknowledged.
        }
    }

    private async Task<IChannel> ConsumeEventsAsync(IConnection connection, CancellationToken ct)
    {
        var channel = await connection.CreateChannelAsync(cancellationToken: ct);
        await channel.BasicQosAsync(0, 100, global: false, ct);
        var consumer = new AsyncEventingBasicConsumer(channel);
        consumer.ReceivedAsync += async (_, e) =>
        {
            try
            {
                await OnEventAsync(e);
            }
            catch (Exception ex)
            {
                log.LogError(ex, "Handling RabbitMQ event {Event} failed", e.RoutingKey);
            }
            await channel.BasicAckAsync(e.DeliveryTag, multiple: false);
        };
        await channel.BasicConsumeAsync(RabbitMqTopology.EventsQueue, autoAck: false, consumer, ct);
        return channel;
    }

    // MQTT connections by their RabbitMQ connection name: connection.closed names only the connection.
    private readonly ConcurrentDictionary<string, (string DeviceId, string ClientId)> _connections = new(StringComparer.Ordinal);

    private async Task OnEventAsync(BasicDeliverEventArgs e)
    {
        var headers = e.BasicProperties.Headers;
        if (headers is null) return;
        var at = Header(headers, "timestamp_in_ms") is { } ms && long.TryParse(ms, out var unixMs) ? DateTimeOffset.FromUnixTimeMilliseconds(unixMs) : time.GetUtcNow();
        switch (e.RoutingKey)
        {
            case "connection.created":
                if (Header(headers, "protocol") is not { } protocol || !protocol.Contains("MQTT", StringComparison.Ordinal)) return;
                if (Header(headers, "user") is not { } user || user == MqttBroker.AppUserName || !Identifier.IsValid(user)) return;
                if (Header(headers, "name") is not { } name) return;
                var clientId = ClientIdOf(headers) ?? user;
                _connections[name] = (user, clientId);
                await modules.PublishAsync(new DeviceConnected(user, clientId, "mqtt3", Header(headers, "peer_host"), at));
                return;
            case "connection.closed":
                if (Header(headers, "name") is { } closed && _connections.TryRemove(closed, out var c))
                    await modules.PublishAsync(new DeviceDisconnected(c.DeviceId, c.ClientId, "connection closed", at, SessionKept: true));
                return;
            case "binding.created":
                if (Header(headers, "source_name") != RabbitMqTopology.TopicExchange) return;
                if (Header(headers, "destination_name") is not { } queue || !queue.StartsWith("mqtt-subscription-", StringComparison.Ordinal)) return;
                if (Header(headers, "routing_key") is not { } key) return;
                await SubscribedAsync(queue, RabbitMqTopology.Topic(key).Replace('*', '+'));
                return;
        }
    }

    /// <summary>A device subscribed: what the embedded broker would send as a retained message (desired state, firmware
    /// notification) goes out now, and queued commands once it listens for commands.</summary>
    private async Task SubscribedAsync(string queue, string filter)
    {
        var parsed = DeviceTopic.Parse(filter);
        if (parsed.DeviceId is not { } device) return;
        // Only the device's own session counts (an app may subscribe to device topics too): its queue is
        // mqtt-subscription-{client id}qos0|1 and the client id is the device's (ClientIdRules).
        if (queue.Length < "mqtt-subscription-qos0".Length + 1) return;
        var clientId = queue["mqtt-subscription-".Length..^"qos0".Length];
        if (ClientIdRules.DeviceRuleBroken(device, clientId) is not null) return;
        if (filter == $"devices/{device}/state/desired")
        {
            if (await modules.SendAsync(new GetDesiredStateMessage(device)) is { } desired)
                await DeliverAsync(new DeliverToDevice(device, "state/desired", desired, Retain: true), CancellationToken.None);
        }
        else if (filter == $"devices/{device}/firmware")
        {
            if (await modules.SendAsync(new GetPendingFirmware(device)) is { } firmware)
                await DeliverAsync(new DeliverToDevice(device, "firmware", firmware, Retain: true), CancellationToken.None);
        }
        else if (filter.StartsWith($"devices/{device}/commands/", StringComparison.Ordinal))
        {
            modules.Background(new DeviceReadyForCommands(device));
        }
    }

    private static string? Header(IDictionary<string, object?> headers, string name) => headers.TryGetValue(name, out var v) ? v switch
    {
        byte[] b => Encoding.UTF8.GetString(b),
        null => null,
        _ => Convert.ToString(v, System.Globalization.CultureInfo.InvariantCulture),
    } : null;

    /// <summary>The MQTT client id, which the event carries only as Erlang text: <c>#{&lt;&lt;"client_id"&gt;&gt; =&gt; &lt;&lt;"d1"&gt;&gt;}</c>.</summary>
    private static string? ClientIdOf(IDictionary<string, object?> headers)
    {
        foreach (var name in new[] { "variable_map", "client_properties" })
            if (Header(headers, name) is { } text && ClientIdText().Match(text) is { Success: true } m) return m.Groups[1].Value;
        return null;
    }

    [GeneratedRegex("client_id\\W+(?:longstr,)?<<\"([^\"]*)\">>")]
    private static partial Regex ClientIdText();

    public async Task<bool> DeliverAsync(DeliverToDevice d, CancellationToken ct)
    {
        // A '.' in the id would be read as a topic level (devices.a.commands.x is also device "a"'s commands topic);
        // such devices cannot log in through RabbitMQ, and nothing is published for them.
        if (d.DeviceId.Contains('.')) return false;
        var isCommand = d.Subtopic.StartsWith("commands/", StringComparison.Ordinal);
        var expiry = d.ExpiresIn is { } e ? ((long)Math.Max(1, e.TotalMilliseconds)).ToString(System.Globalization.CultureInfo.InvariantCulture) : null;
        return await PublishAsync(RabbitMqTopology.RoutingKey($"devices/{d.DeviceId}/{d.Subtopic}"), d.Payload, mandatory: isCommand, expiry, ct);
    }

    public async Task PublishToAppsAsync(PublishToApps p, CancellationToken ct) =>
        await PublishAsync(RabbitMqTopology.RoutingKey(p.Topic), p.Payload, mandatory: false, expiration: null, ct);

    /// <summary>Publishes to amq.topic and waits for RabbitMQ's confirm; false when it was returned (mandatory, no queue
    /// took it) or there is no connection.</summary>
    private async Task<bool> PublishAsync(string routingKey, ReadOnlyMemory<byte> payload, bool mandatory, string? expiration, CancellationToken ct)
    {
        await _publishLock.WaitAsync(ct);
        try
        {
            if (_session?.Publisher is not { IsOpen: true } channel) return false;
            var props = new BasicProperties { Persistent = true, ContentType = "application/json", Expiration = expiration };
            await channel.BasicPublishAsync(RabbitMqTopology.TopicExchange, routingKey, mandatory, props, payload, ct);
            return true;
        }
        catch (PublishException ex) when (ex.IsReturn)
        {
            return false;
        }
        catch (Exception ex) when (ex is AlreadyClosedException or OperationInterruptedException or PublishException)
        {
            log.LogWarning("Could not publish on {RoutingKey} to RabbitMQ: {Reason}", routingKey, ex.Message);
            return false;
        }
        finally
        {
            _publishLock.Release();
        }
    }

    /// <summary>Online as its presence says (recorded from RabbitMQ's events, in the database every node reads): an
    /// app subscribed to the device's commands must not make a command to an offline device count as sent. Whether the
    /// device itself listens, RabbitMQ says by returning a mandatory command no subscription takes.</summary>
    public async ValueTask<bool> CanReceiveCommandsAsync(string deviceId) => await modules.SendAsync(new IsDeviceOnline(deviceId));

    public Task DisconnectDeviceAsync(string deviceId) => management.CloseConnectionsOfAsync(deviceId, "credentials revoked");

    /// <summary>A deleted device's connections close. For a revoked API key, every app connection closes: RabbitMQ knows
    /// them all as user "apikey", so the others log in again and only the revoked key is refused.</summary>
    public Task EndSessionsAsync(MqttPrincipal principal) =>
        management.CloseConnectionsOfAsync(principal.DeviceId ?? MqttBroker.AppUserName, principal.IsDevice ? "device deleted" : "API key revoked");

    public Task DeviceCreatedAsync(string deviceId) => Task.CompletedTask;
}
