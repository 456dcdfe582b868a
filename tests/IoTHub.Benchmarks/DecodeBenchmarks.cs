// Decode + validate of one typical message (3 metrics): time and bytes allocated per call. The Validate* benchmarks
// run the validation worker's whole step per message, as the hot path does: presence, decode, clock drift and
// policy, the device's profile rules and the series-type check.
using System.Text;
using BenchmarkDotNet.Attributes;
using IoTHub.Contracts;
using IoTHub.Devices.Presence;
using IoTHub.Validation;
using IoTHub.Validation.Decoding;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace IoTHub.Benchmarks;

[MemoryDiagnoser]
public class DecodeBenchmarks
{
    private const string Plain = "thermostat-0001", Profiled = "thermostat-0002";
    private readonly byte[] _flat = Encoding.UTF8.GetBytes("""{"temperature": 21.5, "humidity": 40.2, "heating": true}""");
    private readonly byte[] _timestamped = Encoding.UTF8.GetBytes($$$"""{"ts": {{{DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()}}}, "values": {"temperature": 21.5, "humidity": 40.2, "heating": true}}""");
    private readonly byte[] _invalid = Encoding.UTF8.GetBytes("""{"temperature": "banana", "humidity": 40.2, "heating": true}""");
    private readonly long _now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
    private TelemetryDecoder _decoder = null!;
    private DecodeLimits _limits;
    private ValidationWorkers _worker = null!;
    private RawTelemetry _plainFlat, _profiledTimestamped;

    [GlobalSetup]
    public void Setup()
    {
        _decoder = new TelemetryDecoder(new MetricNames());
        _limits = new DecodeLimits(256 * 1024, 1000, 1024);

        var presence = new DevicePresence();
        var profiles = new ProfileRules();
        profiles.Load(new TelemetryProfiles(
            [new TelemetryProfile("thermostat", RejectUnknownMetrics: true, ClockPolicy.ServerTime,
                [new MetricRule("temperature", ValueKind.Number, "°C", -40, 85), new MetricRule("humidity", ValueKind.Number, "%", 0, 100),
                 new MetricRule("heating", ValueKind.Boolean, null, null, null)])],
            [(Profiled, "thermostat")]));
        var types = new SeriesTypes();
        types.Load([new SeriesKind(Plain, "temperature", ValueKind.Number), new SeriesKind(Plain, "humidity", ValueKind.Number),
            new SeriesKind(Plain, "heating", ValueKind.Boolean)]);
        _worker = new ValidationWorkers(new IngestChannels(1, 1), _decoder, types, profiles, new DeviceClocks(), presence, presence,
            scopes: null!, Options.Create(new ValidationOptions()), NullLogger<ValidationWorkers>.Instance);
        _plainFlat = new RawTelemetry(Plain, TelemetryProtocol.Mqtt, PayloadFormat.Json, _flat, _now, 1, null);
        _profiledTimestamped = new RawTelemetry(Profiled, TelemetryProtocol.Mqtt, PayloadFormat.Json, _timestamped, _now, 1, null);
        if (ValidatePlain() != 3 || ValidateProfiledTimestamped() != 3) throw new InvalidOperationException("the benchmark's messages must be valid");
    }

    [Benchmark(Baseline = true)]
    public int Flat() => _decoder.Decode(_flat, _now, 1, _limits).Count;

    [Benchmark]
    public int Timestamped() => _decoder.Decode(_timestamped, _now, 1, _limits).Count;

    [Benchmark]
    public int WrongTypeStillDecodes() => _decoder.Decode(_invalid, _now, 1, _limits).Count;

    /// <summary>The worker's step for a device without a profile: the first values fixed its series' types.</summary>
    [Benchmark]
    public int ValidatePlain() => _worker.Validate(_plainFlat).PointCount;

    /// <summary>The worker's step for a timestamped message of a device with a profile (ranges, units, clock policy).</summary>
    [Benchmark]
    public int ValidateProfiledTimestamped() => _worker.Validate(_profiledTimestamped).PointCount;
}
