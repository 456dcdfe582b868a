// The host starts its hosted services in registration order and stops them in reverse: the telemetry stages must start
// downstream first and stop upstream first (HubApp.cs explains the order), or a message could be handed to a stage that
// is not running, or left in one that stopped before draining.
using IoTHub.Aggregation;
using IoTHub.Alarms.Evaluation;
using IoTHub.Connectivity.Mqtt.Sessions;
using IoTHub.Devices.Presence;
using IoTHub.Storage;
using IoTHub.Storage.Write;
using IoTHub.Validation;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace IoTHub.Tests.Architecture;

public sealed class StageOrderTests
{
    [Test]
    public async Task Telemetry_stages_start_downstream_first_and_so_stop_upstream_first()
    {
        var data = Path.Combine(Path.GetTempPath(), "iothub-tests", Guid.NewGuid().ToString("N")[..12]);
        await using var app = HubApp.Build(["--DataDirectory=" + data, "--Bootstrap:AdminPassword=order-test-password", "--Mqtt:Port=0", "--urls=http://127.0.0.1:0"]);
        var order = app.Services.GetServices<IHostedService>().Select(s => s.GetType()).ToList();
        int At<T>() => order.IndexOf(typeof(T)) is var i and >= 0 ? i : throw new AssertionException($"{typeof(T).Name} is not a hosted service");
        var broker = order.FindIndex(t => t.Name == "MqttHostedServer");
        Assert.That(broker, Is.GreaterThanOrEqualTo(0));

        Assert.That(At<SchemaMigrator>(), Is.LessThan(At<TelemetryWriter>()), "the schema is there before anything writes");
        Assert.That(At<TelemetryWriter>(), Is.LessThan(At<ValidationWorkers>()), "the writer runs before validation feeds it, and drains after");
        Assert.That(At<PresenceWriter>(), Is.LessThan(At<ConnectionTracker>()), "presence is written until the broker's last disconnects are in");
        Assert.That(At<ValidationWorkers>(), Is.LessThan(broker), "validation runs before devices can send, and drains after they are gone");
        Assert.That(At<WindowTracker>(), Is.LessThan(broker));
        Assert.That(At<TelemetryWriter>(), Is.LessThan(At<AlarmEvaluator>()), "the evaluator's queue is completed by the writer when it stops, after the last batch");
        Assert.That(At<AlarmEvaluator>(), Is.LessThan(broker), "rules are loaded before a device can send");
        Assert.That(At<StoredSessions>(), Is.LessThan(broker), "stored sessions are loaded before a client can resume one");
        Assert.That(At<ConnectionTracker>(), Is.LessThan(broker));
        Assert.That(At<ValidationWorkers>(), Is.LessThan(At<IoTHub.Connectivity.Coap.CoapServer>()), "validation runs before CoAP devices can send, and drains after");
        Assert.That(At<IoTHub.Connectivity.Coap.CoapPresence>(), Is.LessThan(At<IoTHub.Connectivity.Coap.CoapServer>()), "CoAP presence is recorded until the server stops");
        try { Directory.Delete(data, recursive: true); } catch (IOException) { }
    }
}
