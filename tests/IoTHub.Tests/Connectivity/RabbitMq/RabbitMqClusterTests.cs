// Past one machine, as the README's "Growing past one machine" sets it up, on loopback: a three-node RabbitMQ cluster,
// two IoTHub nodes on one PostgreSQL database (node A a process of its own, so it can be killed as a crash would; node B
// in this process), and twenty devices (MQTTnet, MQTT 3.1.1) spread over the RabbitMQ nodes that publish QoS 1 and, as
// devices do, resend what was not acknowledged after reconnecting to another node.
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using IoTHub.Testing;
using IoTHub.Tests.Infrastructure;
using MQTTnet;
using MQTTnet.Formatter;
using Microsoft.Extensions.DependencyInjection;
using MQTTnet.Protocol;

namespace IoTHub.Tests.Connectivity.RabbitMq;

[RunsAlone("starts a three-node RabbitMQ cluster and stops its nodes")]
public sealed class RabbitMqClusterTests
{
    private readonly List<RabbitMqNode> _rabbit = [];
    private HubProcess? _hubA;
    private HubHost _hubB = null!;
    private string _home = null!;
    private string? _postgres;

    [OneTimeSetUp]
    public async Task Start()
    {
        TestRabbitMq.RequireInstalled();
        TestPostgres.RequireAvailable();
        var portB = HubHost.FreeTcpPort();
        _home = Path.Combine(Path.GetTempPath(), "iothub-rabbitmq", "cluster-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(_home);
        // Every RabbitMQ node asks hub node B, which this test keeps alive (in production: a load balancer in front).
        // Each node is kept as soon as it runs, so that the tear-down stops it even when another one failed to start.
        await Task.WhenAll(Enumerable.Range(0, 3).Select(async _ =>
        {
            var node = await RabbitMqNode.StartAsync(portB, _home);
            lock (_rabbit) _rabbit.Add(node);
        }));
        foreach (var node in _rabbit.Skip(1)) await node.JoinAsync(_rabbit[0]);

        var postgres = _postgres = await TestPostgres.CreateDatabaseAsync();
        var data = Path.Combine(_home, "hub-a");
        // Broker:Mode RabbitMq turns the embedded broker's MQTT listeners off; HTTP, CoAP and DTLS still listen.
        _hubA = HubProcess.Start(HubPorts.Free(),
        [
            $"--DataDirectory={data}", $"--Bootstrap:AdminPassword={HubHost.AdminPassword}", "--Storage:Provider=Postgres",
            $"--ConnectionStrings:Postgres={postgres}", "--Broker:Mode=RabbitMq", $"--ConnectionStrings:RabbitMq={_rabbit[0].AmqpUri}",
            "--RabbitMq:Shards=6", "--Logging:LogLevel:Default=Warning",
        ]);
        (await _hubA.ReadyAsync()).Dispose();

        _hubB = await HubHost.StartAsync(Store.Postgres, new Dictionary<string, string?>
        {
            ["urls"] = $"http://127.0.0.1:{portB}",
            ["ConnectionStrings:Postgres"] = postgres,
            ["Broker:Mode"] = "RabbitMq",
            ["ConnectionStrings:RabbitMq"] = $"{_rabbit[1].AmqpUri},{_rabbit[2].AmqpUri}",
            ["RabbitMq:ManagementUri"] = _rabbit[1].ManagementUri,
            ["RabbitMq:Shards"] = "6",
        });
    }

    [OneTimeTearDown]
    public async Task Stop()
    {
        _hubA?.Dispose();
        if (_hubB is not null) await _hubB.DisposeAsync();
        foreach (var node in _rabbit) await node.DisposeAsync();
        if (_postgres is not null) await TestPostgres.DropDatabaseAsync(_postgres);
        try { Directory.Delete(_home, recursive: true); } catch (IOException) { }
    }

    /// <summary>A device that publishes QoS 1 telemetry one message at a time and keeps what was acknowledged; when its
    /// RabbitMQ node goes away it connects to the next one and resends the message that was not acknowledged.</summary>
    private sealed class Device(string id, string token, IReadOnlyList<RabbitMqNode> nodes, int first)
    {
        public string Id { get; } = id;
        public ConcurrentBag<long> Acked { get; } = [];
        public int Reconnects;
        private int _node = first;

        public async Task RunAsync(long firstTs, Func<bool> more)
        {
            using var client = new MqttClientFactory().CreateMqttClient();
            var ts = firstTs;
            while (more())
            {
                try
                {
                    if (!client.IsConnected)
                    {
                        var node = nodes[_node % nodes.Count];
                        await client.ConnectAsync(new MqttClientOptionsBuilder().WithTcpServer("127.0.0.1", node.MqttPort).WithProtocolVersion(MqttProtocolVersion.V311)
                            .WithClientId(Id).WithCredentials(Id, token).WithCleanSession().WithTimeout(TimeSpan.FromSeconds(5)).Build());
                    }
                    var payload = new JsonObject { ["ts"] = ts, ["values"] = new JsonObject { ["v"] = ts % 1000 } }.ToJsonString();
                    var result = await client.PublishAsync(new MqttApplicationMessageBuilder().WithTopic($"devices/{Id}/telemetry").WithPayload(payload)
                        .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
                    if (result.IsSuccess)
                    {
                        Acked.Add(ts);
                        ts++;
                    }
                }
                catch (Exception ex) when (ex is MQTTnet.Exceptions.MqttCommunicationException or OperationCanceledException or InvalidOperationException)
                {
                    Interlocked.Increment(ref Reconnects);
                    _node++; // the next node of the cluster; the same message again
                    await Task.Delay(100);
                }
            }
            if (client.IsConnected) await client.DisconnectAsync();
        }
    }

    private Task<int> StoredAsync(string deviceId, long from, long to) => _hubB.RawPointCountAsync(deviceId, "v", from, to);

    [Test]
    public async Task Every_acked_message_is_stored_once_through_a_hub_node_crash_and_a_rabbitmq_node_stop()
    {
        var devices = new List<Device>();
        for (var i = 0; i < 20; i++)
        {
            var (id, token) = await _hubB.CreateDeviceAsync();
            devices.Add(new Device(id, token, _rabbit, i));
        }
        var from = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() - 3_600_000;
        var phase = 0; // 0: both hub nodes; 1: node A killed; 2: a RabbitMQ node stopped too; 3: done
        var running = devices.Select(d => Task.Run(() => d.RunAsync(from, () => Volatile.Read(ref phase) < 3))).ToList();

        await Task.Delay(3000);
        var jobs = _hubB.Services.GetRequiredService<IoTHub.Contracts.IJobLeadership>();
        Assert.That(jobs.IsLeader, Is.False, "node A, started first, holds the one-at-a-time jobs' lock");
        await _hubA!.KillAsync(); // SIGKILL: its unacknowledged deliveries and its shards go to node B
        Volatile.Write(ref phase, 1);
        var killedAt = Stopwatch.StartNew();
        var ackedAtKill = devices.ToDictionary(d => d.Id, d => d.Acked.Count);
        // Node B has taken every shard when each device's messages acknowledged after the kill are stored.
        await WaitFor.ConditionAsync(async () =>
        {
            foreach (var d in devices)
                if (d.Acked.Count <= ackedAtKill[d.Id] + 2 || await StoredAsync(d.Id, from, from + ackedAtKill[d.Id] + 2) < ackedAtKill[d.Id] + 2) return false;
            return true;
        }, "hub node B stores what every device sends after node A died", TimeSpan.FromSeconds(30));
        TestContext.Out.WriteLine($"hub node B took over every shard within {killedAt.Elapsed.TotalSeconds:F1} s of node A's SIGKILL");
        Assert.That(killedAt.Elapsed, Is.LessThan(TimeSpan.FromSeconds(10)), "the other hub node takes over within 10 s");

        await WaitFor.ConditionAsync(() => jobs.IsLeader, "node B takes the one-at-a-time jobs over", TimeSpan.FromSeconds(10));

        await _rabbit[2].CtlAsync("stop_app"); // devices on it reconnect to another node
        Volatile.Write(ref phase, 2);
        await Task.Delay(3000);
        Volatile.Write(ref phase, 3);
        await Task.WhenAll(running);

        Assert.That(devices.Sum(d => d.Reconnects), Is.GreaterThan(0), "devices on the stopped RabbitMQ node reconnected elsewhere");
        foreach (var d in devices)
        {
            var acked = d.Acked.Distinct().Count();
            await WaitFor.ConditionAsync(async () => await StoredAsync(d.Id, from, from + 1_000_000) >= acked, $"every message {d.Id} had acked is stored", TimeSpan.FromSeconds(30));
            var stored = await StoredAsync(d.Id, from, from + 1_000_000);
            Assert.That(stored, Is.InRange(acked, acked + 1), $"{d.Id}: acked {acked}, stored {stored} (one more: a message stored whose PUBACK the stop cut off)");
        }
        TestContext.Out.WriteLine($"{devices.Sum(d => d.Acked.Count)} messages acked, {devices.Sum(d => d.Reconnects)} reconnects");
    }

    [Test]
    public async Task A_command_from_hub_node_b_reaches_a_device_on_another_rabbitmq_node_and_its_response_comes_back()
    {
        var (id, token) = await _hubB.CreateDeviceAsync();
        _hubB.DeviceMqttPort = _rabbit[0].MqttPort; // hub node B talks AMQP to nodes 2 and 3; the device is on node 1
        await using var device = await TestDevice.ConnectAsync(_hubB, id, token, MqttProtocolVersion.V311);
        using var admin = await _hubB.AdminAsync();
        // Through RabbitMQ a device is online once its connection event is recorded (every hub node reads it).
        await WaitFor.ConditionAsync(async () => (await admin.GetJsonAsync($"/api/v1/devices/{id}"))["status"]!.GetValue<string>() == "online", "online");

        var response = await admin.PostAsJsonAsync($"/api/v1/devices/{id}/commands", new { name = "blink", timeoutSeconds = 15 });

        Assert.That(response.IsSuccessStatusCode, Is.True, await response.Content.ReadAsStringAsync());
        Assert.That((await response.ReadJsonAsync())["response"]!["result"]!["did"]!.GetValue<string>(), Is.EqualTo("blink"));
    }
}
