using IoTHub.Connectivity.Mqtt;
using IoTHub.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using MQTTnet;

namespace IoTHub.Tests.Connectivity;

// Kestrel accepts connections before MQTTnet's hosted server has started (it starts on ApplicationStarted) and stops
// before it: both edges of the broker's life with devices connected.
[RunsAlone("times how long the broker takes to stop")]
public sealed class BrokerLifecycleTests
{
    [Test]
    public async Task Stopping_the_hub_with_devices_connected_disconnects_them_at_once_and_does_not_wait_out_the_shutdown_timeout()
    {
        await using var hub = await HubHost.StartAsync(Store.Sqlite);
        var (id, token) = await hub.CreateDeviceAsync();
        using var client = await hub.ConnectAsync(id, token);
        var reason = new TaskCompletionSource<MqttClientDisconnectReason>(TaskCreationOptions.RunContinuationsAsynchronously);
        client.DisconnectedAsync += e =>
        {
            reason.TrySetResult(e.Reason);
            return Task.CompletedTask;
        };

        var watch = System.Diagnostics.Stopwatch.StartNew();
        await hub.StopAppAsync();

        // It used to take the whole 30 s shutdown timeout (Kestrel waited for the open MQTT connection), after which
        // the validation workers and the telemetry writer had no time left to drain.
        Assert.That(watch.Elapsed, Is.LessThan(TimeSpan.FromSeconds(10)), "time to stop");
        Assert.That(await reason.Task.WaitAsync(TimeSpan.FromSeconds(5)), Is.EqualTo(MqttClientDisconnectReason.ServerShuttingDown));
    }

    [Test]
    public async Task A_device_that_connects_while_the_hub_is_still_starting_is_served_once_the_broker_is_up()
    {
        var early = new EarlyConnector();
        await using var hub = await HubHost.StartAsync(Store.Sqlite, configure: b => b.Services.AddSingleton<IHostedService>(s => early.Using(s)));
        var (id, token) = await hub.CreateDeviceAsync();
        early.Arm(hub.MqttOptions(id, token));

        await hub.RestartAsync();

        Assert.That(early.BrokerWasStarted, Is.False, "the device connected before the broker had started");
        Assert.That(await early.Result!, Is.EqualTo(MqttClientConnectResultCode.Success));
        using var admin = await hub.AdminAsync();
        await WaitFor.ConditionAsync(async () => (await admin.GetJsonAsync($"/api/v1/devices/{id}"))["status"]!.GetValue<string>() == "online",
            "the device shows online");
        await early.DisconnectAsync();
    }

    /// <summary>Runs after Kestrel listens and before ApplicationStarted: connects a device then, and holds the
    /// start back a moment so that the connection is in flight while the broker is not up yet.</summary>
    private sealed class EarlyConnector : IHostedLifecycleService, IDisposable
    {
        private IServiceProvider? _services;
        private MqttClientOptions? _options;
        private IMqttClient? _client;

        public bool? BrokerWasStarted { get; private set; }
        public Task<MqttClientConnectResultCode>? Result { get; private set; }

        public EarlyConnector Using(IServiceProvider services)
        {
            _services = services;
            return this;
        }

        public void Arm(MqttClientOptions options) => _options = options;

        public async Task StartedAsync(CancellationToken cancellationToken)
        {
            if (_options is null || Result is not null) return;
            BrokerWasStarted = _services!.GetRequiredService<MqttBroker>().Started.IsCompleted;
            _client = new MqttClientFactory().CreateMqttClient();
            Result = ConnectAsync(_client, _options);
            await Task.Delay(500, cancellationToken);
        }

        private static async Task<MqttClientConnectResultCode> ConnectAsync(IMqttClient client, MqttClientOptions options) =>
            (await client.ConnectAsync(options)).ResultCode;

        public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;
        public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;
        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
        public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;
        public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
        public async Task DisconnectAsync() => await _client!.DisconnectAsync();

        public void Dispose() => _client?.Dispose();
    }
}
