// dotnet run -c Release --project tests/IoTHub.Benchmarks -- ingest [--devices 1000] [--seconds 10] [--inflight 10] [--warmup 20]
//     [--only reference,reference-qos1,bare,postgres,sqlite,postgres-rules,sqlite-rules,postgres-r2r,postgres-cold,postgres-cold-r2r,rabbitmq,rabbitmq-2] [--hub-r2r DIR]
// dotnet run -c Release --project tests/IoTHub.Benchmarks -- micro
// dotnet run -c Release --project tests/IoTHub.Benchmarks -- query [--calls 50] [--days 30] [--series 1]
// dotnet run -c Release --project tests/IoTHub.Benchmarks -- store [--batches 40] [--devices 1000]
// dotnet run -c Release --project tests/IoTHub.Benchmarks -- soak [--minutes 30] [--store Sqlite|Postgres] [--devices 1000] [--inflight 10]
// dotnet run -c Release --project tests/IoTHub.Benchmarks -- connections [--devices 10000] [--seconds 60] [--store Sqlite|Postgres]
// dotnet run -c Release --project tests/IoTHub.Benchmarks -- coap [--devices 50] [--seconds 20] [--store Sqlite|Postgres]
// dotnet run -c Release --project tests/IoTHub.Benchmarks -- overload [--devices 200] [--seconds 30] [--store Sqlite|Postgres]
using BenchmarkDotNet.Running;
using IoTHub.Benchmarks;

var mode = args.FirstOrDefault() ?? "ingest";
var options = args.Skip(1).Chunk(2).Where(p => p.Length == 2).ToDictionary(p => p[0].TrimStart('-'), p => p[1]);
// --hub-dir DIR: every mode starts the hub published in DIR (e.g. ReadyToRun) instead of the Release build's output.
if (options.TryGetValue("hub-dir", out var hubDir)) HubProcess.BuildDirectory = Path.GetFullPath(hubDir);
switch (mode)
{
    case "bare-server":
        // The bare MQTTnet contender of `ingest`, run in its own process as the hub runs in its own: the load generator's
        // GC and thread pool do not share the server's.
        return await BareServer.RunAsync(int.Parse(options["port"]));
    case "reference-subscriber":
        // The subscriber of the mosquitto references of `ingest`, in its own process so its CPU is counted apart.
        return await ReferenceSubscriber.RunAsync(int.Parse(options["port"]), options["shape"], options["postgres"]);
    case "micro":
        BenchmarkRunner.Run<DecodeBenchmarks>(args: args.Skip(1).ToArray());
        return 0;
    case "ingest":
        var postgres = PostgresAdmin;
        return await new IngestBenchmark(int.Parse(options.GetValueOrDefault("devices", "1000")),
            TimeSpan.FromSeconds(double.Parse(options.GetValueOrDefault("seconds", "10"), System.Globalization.CultureInfo.InvariantCulture)),
            TimeSpan.FromSeconds(double.Parse(options.GetValueOrDefault("warmup", "20"), System.Globalization.CultureInfo.InvariantCulture)),
            int.Parse(options.GetValueOrDefault("inflight", "10")), postgres,
            options.GetValueOrDefault("only", "").Split(',', StringSplitOptions.RemoveEmptyEntries), options.GetValueOrDefault("hub-r2r")).RunAsync();
    case "query":
        var pg = PostgresAdmin;
        return await new QueryBenchmark(pg, int.Parse(options.GetValueOrDefault("calls", "50")), int.Parse(options.GetValueOrDefault("days", "30")),
            int.Parse(options.GetValueOrDefault("series", "1"))).RunAsync();
    case "store":
        return await new StoreBenchmark(options.GetValueOrDefault("store", "Postgres"), PostgresAdmin, int.Parse(options.GetValueOrDefault("batches", "40")),
            int.Parse(options.GetValueOrDefault("devices", "1000")), int.Parse(options.GetValueOrDefault("report", "100"))).RunAsync();
    case "soak":
        return await new SoakBenchmark(options.GetValueOrDefault("store", "Postgres"), PostgresAdmin, int.Parse(options.GetValueOrDefault("devices", "1000")),
            TimeSpan.FromMinutes(double.Parse(options.GetValueOrDefault("minutes", "30"), System.Globalization.CultureInfo.InvariantCulture)),
            int.Parse(options.GetValueOrDefault("inflight", "10"))).RunAsync();
    case "coap":
        return await new FleetBenchmark(options.GetValueOrDefault("store", "Postgres"), PostgresAdmin).CoapAsync(int.Parse(options.GetValueOrDefault("devices", "50")),
            TimeSpan.FromSeconds(double.Parse(options.GetValueOrDefault("seconds", "20"), System.Globalization.CultureInfo.InvariantCulture)));
    case "connections":
    case "overload":
        var admin = PostgresAdmin;
        var fleet = new FleetBenchmark(options.GetValueOrDefault("store", "Postgres"), admin);
        var seconds = TimeSpan.FromSeconds(double.Parse(options.GetValueOrDefault("seconds", mode == "connections" ? "60" : "30"), System.Globalization.CultureInfo.InvariantCulture));
        return mode == "connections"
            ? await fleet.ConnectionsAsync(int.Parse(options.GetValueOrDefault("devices", "10000")), seconds)
            : await fleet.OverloadAsync(int.Parse(options.GetValueOrDefault("devices", "200")), seconds);
    default:
        Console.WriteLine("usage: IoTHub.Benchmarks ingest [--devices N] [--seconds S] | micro | query [--calls N] [--days D] [--series N] | store [--batches N] [--store S] [--report N] | soak [--minutes M] [--store S] | connections [--devices N] [--seconds S] [--store S] | coap [--devices N] [--seconds S] [--store S] | overload [...]");
        return 2;
}

// Every contender talks to the same local PostgreSQL the same way; TLS on loopback (Npgsql's default "prefer"
// when the server has ssl = on, as Debian's has) would only add encryption cost to both sides.
internal static partial class Program
{
    private static string PostgresAdmin => Environment.GetEnvironmentVariable("IOTHUB_BENCH_POSTGRES") ?? "Host=127.0.0.1;Port=5432;Username=postgres;Password=postgres;SSL Mode=Disable";
}
