// Two fleet-scale runs against IoTHub's Release build, each printing the machine and its figures:
//   connections  N devices connected at once (default 10,000), each publishing QoS 1 every 10 s: hub RSS and ack p50/p99
//   overload     devices publishing QoS 0 as fast as they can, more than the store takes: hub RSS sampled every
//                second stays flat (bounded channels, backpressure to the sockets), and what was sent vs stored
using System.Diagnostics;
using IoTHub.Simulator;
using Npgsql;

namespace IoTHub.Benchmarks;

internal sealed class FleetBenchmark(string provider, string postgresAdmin)
{
    public async Task<int> ConnectionsAsync(int devices, TimeSpan duration)
    {
        Console.WriteLine($"machine: {Machine.Describe()}");
        Console.WriteLine($"connections: {devices:N0} devices on IoTHub ({provider}), each publishing QoS 1 every 10 s for {duration.TotalSeconds:0} s");
        await using var hub = await StartAsync("iothub_bench_fleet");
        var fleet = await ProvisionAsync(hub, devices);
        var idle = Machine.RssMiB(hub.Pid);
        var watch = Stopwatch.StartNew();
        var run = LoadGenerator.RunAsync(fleet, new LoadOptions("127.0.0.1", hub.MqttPort, null, "mqtt", 1, 0.1, duration, DeviceModel.Thermostat), CancellationToken.None);
        var heap = SampleHeapAsync(hub.BaseAddress, run);
        var peak = await SampleRssAsync(hub.Pid, run);
        var load = await run;
        Console.WriteLine($"  {load}");
        Console.WriteLine();
        Console.WriteLine($"hub RSS every 5 s (MiB): {string.Join(' ', peak.Samples.Where((_, i) => i % 5 == 0).Select(s => s.ToString("0")))}");
        Console.WriteLine($"hub GC heap every 5 s (MiB): {string.Join(' ', (await heap).Where((_, i) => i % 5 == 0).Select(s => s.ToString("0")))}");
        var steady = peak.Samples.Skip(peak.Samples.Count / 2).DefaultIfEmpty(double.NaN).ToList();
        Console.WriteLine($"hub RSS before connecting: {idle:0} MiB; peak with {devices:N0} connected: {peak.Max:0} MiB, second half {steady.Min():0}-{steady.Max():0} MiB (target <= 400)");
        Console.WriteLine($"ack latency p50 {load.Percentile(50):0.0} ms, p99 {load.Percentile(99):0.0} ms (target p99 <= 100); {load.Failed:N0} failed; run {watch.Elapsed.TotalSeconds:0} s including connecting");
        return 0;
    }

    public async Task<int> OverloadAsync(int devices, TimeSpan duration)
    {
        Console.WriteLine($"machine: {Machine.Describe()}");
        Console.WriteLine($"overload: {devices} devices publishing QoS 0 as fast as they can on IoTHub ({provider}) for {duration.TotalSeconds:0} s");
        await using var hub = await StartAsync("iothub_bench_overload");
        var fleet = await ProvisionAsync(hub, devices);
        var run = LoadGenerator.RunAsync(fleet, new LoadOptions("127.0.0.1", hub.MqttPort, null, "mqtt", 0, 0, duration, DeviceModel.Thermostat), CancellationToken.None);
        var heap = SampleHeapAsync(hub.BaseAddress, run);
        var rss = await SampleRssAsync(hub.Pid, run);
        var load = await run;
        await Task.Delay(2000); // let the last batches commit
        using var http = new HttpClient { BaseAddress = hub.BaseAddress };
        var metrics = await http.GetStringAsync("/metrics");
        var stored = metrics.Split('\n').Where(l => l.StartsWith("iothub_telemetry_messages_total", StringComparison.Ordinal))
            .Sum(l => double.Parse(l.Split(' ')[^1], System.Globalization.CultureInfo.InvariantCulture));
        Console.WriteLine($"  sent {load.Sent:N0} ({load.SentPerSecond:N0}/s offered); stored {stored:N0} ({stored / load.Elapsed.TotalSeconds:N0}/s)");
        Console.WriteLine();
        Console.WriteLine($"hub RSS per second (MiB): {string.Join(' ', rss.Samples.Select(s => s.ToString("0")))}");
        Console.WriteLine($"hub GC heap per second (MiB): {string.Join(' ', (await heap).Select(s => s.ToString("0")))}");
        var secondHalf = rss.Samples.Skip(rss.Samples.Count / 2).ToList();
        Console.WriteLine($"RSS first sample {rss.Samples.FirstOrDefault():0} MiB, max {rss.Max:0} MiB, second half {secondHalf.DefaultIfEmpty().Min():0}-{secondHalf.DefaultIfEmpty().Max():0} MiB");
        Console.WriteLine("QoS 0 has no acks: what the hub could not take waited in the devices' sockets (TCP backpressure), not in the hub's memory.");
        return 0;
    }

    /// <summary>CoAP CON telemetry beside MQTT QoS 1 on the same hub in the same run: each device sends its next message once
    /// the last one is acknowledged (durably stored), first over MQTT, then over CoAP.</summary>
    public async Task<int> CoapAsync(int devices, TimeSpan duration)
    {
        Console.WriteLine($"machine: {Machine.Describe()}");
        Console.WriteLine($"coap: {devices} devices, each one message in flight (closed loop), {duration.TotalSeconds:0} s per protocol, on IoTHub ({provider})");
        await using var hub = await StartAsync("iothub_bench_coap");
        var fleet = await ProvisionAsync(hub, devices);
        // A short warm-up of both paths, so that neither pays for the JIT in its measured run.
        await LoadGenerator.RunAsync(fleet, new LoadOptions("127.0.0.1", hub.MqttPort, null, "mqtt", 1, 0, TimeSpan.FromSeconds(5), DeviceModel.Thermostat), CancellationToken.None);
        await LoadGenerator.RunAsync(fleet, new LoadOptions("127.0.0.1", hub.MqttPort, null, "coap", 1, 0, TimeSpan.FromSeconds(5), DeviceModel.Thermostat,
            CoapHost: "127.0.0.1", CoapPort: hub.CoapPort), CancellationToken.None);
        var mqtt = await LoadGenerator.RunAsync(fleet, new LoadOptions("127.0.0.1", hub.MqttPort, null, "mqtt", 1, 0, duration, DeviceModel.Thermostat), CancellationToken.None);
        var coap = await LoadGenerator.RunAsync(fleet, new LoadOptions("127.0.0.1", hub.MqttPort, null, "coap", 1, 0, duration, DeviceModel.Thermostat,
            CoapHost: "127.0.0.1", CoapPort: hub.CoapPort), CancellationToken.None);
        Console.WriteLine($"  MQTT QoS 1: {mqtt.Acked / mqtt.Elapsed.TotalSeconds:N0} acks/s, p50 {mqtt.Percentile(50):0.0} ms, p99 {mqtt.Percentile(99):0.0} ms, {mqtt.Failed:N0} failed");
        Console.WriteLine($"  CoAP CON:   {coap.Acked / coap.Elapsed.TotalSeconds:N0} acks/s, p50 {coap.Percentile(50):0.0} ms, p99 {coap.Percentile(99):0.0} ms, {coap.Failed:N0} failed");
        Console.WriteLine($"  CoAP / MQTT: {coap.Acked / coap.Elapsed.TotalSeconds / (mqtt.Acked / mqtt.Elapsed.TotalSeconds):0.00}");
        return 0;
    }

    private async Task<HubProcess> StartAsync(string database)
    {
        var postgres = provider == "Postgres" ? await HubProcess.CreateDatabaseAsync(postgresAdmin, database) : null;
        return await HubProcess.StartAsync(provider, postgres);
    }

    private static async Task<List<SimDevice>> ProvisionAsync(HubProcess hub, int devices)
    {
        var watch = Stopwatch.StartNew();
        using var http = new HttpClient { BaseAddress = hub.BaseAddress, Timeout = TimeSpan.FromMinutes(10) };
        var bearer = await Provisioning.LoginAsync(http, "admin", HubProcess.Password, CancellationToken.None);
        var fleet = await Provisioning.CreateAsync(http, bearer, "fleet", devices, CancellationToken.None);
        Console.WriteLine($"  provisioned {fleet.Count:N0} devices in {watch.Elapsed.TotalSeconds:0.0} s (one CSV import)");
        return fleet;
    }

    private static async Task<List<double>> SampleHeapAsync(Uri hub, Task until)
    {
        using var http = new HttpClient { BaseAddress = hub };
        var samples = new List<double>();
        while (!until.IsCompleted)
        {
            var line = (await http.GetStringAsync("/metrics")).Split('\n').FirstOrDefault(l => l.StartsWith("dotnet_gc_heap_bytes ", StringComparison.Ordinal));
            if (line is not null) samples.Add(double.Parse(line.Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture) / 1024 / 1024);
            await Task.WhenAny(until, Task.Delay(1000));
        }
        return samples;
    }

    private static async Task<(List<double> Samples, double Max)> SampleRssAsync(int pid, Task until)
    {
        var samples = new List<double>();
        while (!until.IsCompleted)
        {
            samples.Add(Machine.RssMiB(pid));
            await Task.WhenAny(until, Task.Delay(1000));
        }
        return (samples, samples.DefaultIfEmpty(double.NaN).Max());
    }
}
