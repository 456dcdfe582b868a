// Decode + validate of one typical message (3 metrics, device timestamp): time and bytes allocated per call.
using System.Text;
using BenchmarkDotNet.Attributes;
using IoTHub.Validation.Decoding;

namespace IoTHub.Benchmarks;

[MemoryDiagnoser]
public class DecodeBenchmarks
{
    private readonly byte[] _flat = Encoding.UTF8.GetBytes("""{"temperature": 21.5, "humidity": 40.2, "heating": true}""");
    private readonly byte[] _timestamped = Encoding.UTF8.GetBytes($$$"""{"ts": {{{DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()}}}, "values": {"temperature": 21.5, "humidity": 40.2, "heating": true}}""");
    private readonly byte[] _invalid = Encoding.UTF8.GetBytes("""{"temperature": "banana", "humidity": 40.2, "heating": true}""");
    private readonly long _now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
    private TelemetryDecoder _decoder = null!;
    private DecodeLimits _limits;

    [GlobalSetup]
    public void Setup()
    {
        _decoder = new TelemetryDecoder(new MetricNames());
        _limits = new DecodeLimits(256 * 1024, 1000, 1024);
    }

    [Benchmark(Baseline = true)]
    public int Flat() => _decoder.Decode(_flat, _now, _limits).Count;

    [Benchmark]
    public int Timestamped() => _decoder.Decode(_timestamped, _now, _limits).Count;

    [Benchmark]
    public int WrongTypeStillDecodes() => _decoder.Decode(_invalid, _now, _limits).Count;
}
