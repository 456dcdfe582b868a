// dotnet run -c Release --project tests/IoTHub.Benchmarks -- ingest [--devices 1000] [--seconds 10]
// dotnet run -c Release --project tests/IoTHub.Benchmarks -- micro
// dotnet run -c Release --project tests/IoTHub.Benchmarks -- query [--calls 50]
using BenchmarkDotNet.Running;
using IoTHub.Benchmarks;

var mode = args.FirstOrDefault() ?? "ingest";
var options = args.Skip(1).Chunk(2).Where(p => p.Length == 2).ToDictionary(p => p[0].TrimStart('-'), p => p[1]);
switch (mode)
{
    case "micro":
        BenchmarkRunner.Run<DecodeBenchmarks>(args: args.Skip(1).ToArray());
        return 0;
    case "ingest":
        var postgres = Environment.GetEnvironmentVariable("IOTHUB_BENCH_POSTGRES") ?? "Host=127.0.0.1;Port=5432;Username=postgres;Password=postgres";
        return await new IngestBenchmark(int.Parse(options.GetValueOrDefault("devices", "1000")),
            TimeSpan.FromSeconds(double.Parse(options.GetValueOrDefault("seconds", "10"), System.Globalization.CultureInfo.InvariantCulture)), postgres).RunAsync();
    case "query":
        var pg = Environment.GetEnvironmentVariable("IOTHUB_BENCH_POSTGRES") ?? "Host=127.0.0.1;Port=5432;Username=postgres;Password=postgres";
        return await new QueryBenchmark(pg, int.Parse(options.GetValueOrDefault("calls", "50"))).RunAsync();
    default:
        Console.WriteLine("usage: IoTHub.Benchmarks ingest [--devices N] [--seconds S] | micro | query [--calls N]");
        return 2;
}
