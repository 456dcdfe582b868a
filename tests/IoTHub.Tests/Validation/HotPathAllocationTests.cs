using System.Text;
using IoTHub.Contracts;
using IoTHub.Devices.Presence;
using IoTHub.Validation;
using IoTHub.Validation.Decoding;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace IoTHub.Tests.Validation;

/// <summary>The validation worker's step adds no allocation to decoding: a valid message costs its point array only.</summary>
public sealed class HotPathAllocationTests
{
    [Test]
    public void Validating_a_valid_message_of_a_profiled_device_allocates_nothing_beyond_its_points()
    {
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var payload = Encoding.UTF8.GetBytes($$$"""{"ts": {{{now}}}, "values": {"temperature": 21.5, "humidity": 40.2, "heating": true}}""");
        var decoder = new TelemetryDecoder(new MetricNames());
        var profiles = new ProfileRules();
        profiles.Load(new TelemetryProfiles(
            [new TelemetryProfile("thermostat", RejectUnknownMetrics: true, ClockPolicy.ServerTime,
                [new MetricRule("temperature", ValueKind.Number, "°C", -40, 85), new MetricRule("humidity", ValueKind.Number, "%", 0, 100),
                 new MetricRule("heating", ValueKind.Boolean, null, null, null)])],
            [("t-1", "thermostat")]));
        var presence = new DevicePresence();
        var worker = new ValidationWorkers(new IngestChannels(1, 1), decoder, new SeriesTypes(), profiles, new DeviceClocks(), presence, presence,
            scopes: null!, Options.Create(new ValidationOptions()), NullLogger<ValidationWorkers>.Instance);
        var raw = new RawTelemetry("t-1", TelemetryProtocol.Mqtt, PayloadFormat.Json, payload, now, 1, null);

        long Allocated(Func<int> step)
        {
            for (var i = 0; i < 1_000; i++) step();
            var before = GC.GetAllocatedBytesForCurrentThread();
            for (var i = 0; i < 100; i++) step();
            return GC.GetAllocatedBytesForCurrentThread() - before;
        }
        var decoding = Allocated(() => decoder.Decode(payload, now, 1, worker.Limits).Count);
        var validating = Allocated(() => worker.Validate(raw).PointCount);

        Assert.That(worker.Validate(raw).PointCount, Is.EqualTo(3), "the message is valid");
        Assert.That(validating, Is.EqualTo(decoding), $"100 messages: decoding allocates {decoding} B, the whole step {validating} B");
    }
}
