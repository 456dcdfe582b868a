// A fleet of simulated devices: each one a real MQTT connection (or HTTP client) that publishes at a set rate,
// or as fast as its acks come back (rate 0), and records ack latency. Used by the simulator and the benchmarks.
using System.Diagnostics;
using System.Net.Http.Headers;
using IoTHub.Simulator.Firmware;
using MQTTnet;
using MQTTnet.Formatter;
using MQTTnet.Protocol;

namespace IoTHub.Simulator;

public sealed record SimDevice(string Id, string Token);

public sealed record LoadOptions(
    string MqttHost, int MqttPort, Uri? HttpBase, string Protocol, int Qos, double RatePerDevice, TimeSpan Duration,
    DeviceModel Model, bool UseCredentials = true, string TopicPrefix = "devices", bool Interactive = false, int InFlight = 1,
    Action<LoadProgress>? Progress = null, TimeSpan ProgressInterval = default, DeviceFault Fault = DeviceFault.None,
    FirmwareOptions? Firmware = null, string? CoapHost = null, int CoapPort = 5683, Action? Started = null,
    MqttProtocolVersion MqttVersion = MqttProtocolVersion.V500);

/// <summary>The run so far, reported every <see cref="LoadOptions.ProgressInterval"/>.</summary>
/// <param name="Elapsed">Since publishing began.</param>
/// <param name="Sent">Messages sent so far.</param>
/// <param name="Acked">Messages acknowledged (QoS 1; HTTP 202).</param>
/// <param name="Failed">Messages refused, or lost with their connection.</param>
/// <param name="SentPerSecond">Messages sent per second since the last report.</param>
/// <param name="Connected">Devices connected now (MQTT; null over HTTP, which has no connection to keep).</param>
/// <param name="Devices">Devices in the fleet.</param>
/// <param name="Reconnects">Times a device's connection came back after it was lost (a firmware reboot or power loss too).</param>
/// <param name="Firmware">Firmware updates so far (MQTT with interactive devices; null otherwise).</param>
public sealed record LoadProgress(TimeSpan Elapsed, long Sent, long Acked, long Failed, double SentPerSecond, int? Connected, int Devices, long Reconnects,
    FirmwareTally? Firmware = null)
{
    public override string ToString() =>
        $"{Elapsed.TotalSeconds,5:0} s: sent {Sent:N0} ({SentPerSecond:N0}/s), acked {Acked:N0}, errors {Failed:N0}"
        + (Connected is { } c ? $", connected {c}/{Devices}" : $", {Devices} devices") + (Reconnects > 0 ? $", reconnects {Reconnects:N0}" : "")
        + (Firmware is { Notified: > 0 } f ? $"; {f}" : "");
}

public sealed class LoadResult
{
    public long Sent;
    public long Acked;
    public long Failed;
    public long CommandsAnswered;
    public long DesiredApplied;
    public long Reconnects;
    /// <summary>Firmware updates the devices took (none over HTTP or without interactive devices).</summary>
    public FirmwareTally Firmware = new(0, 0, 0, 0, 0, 0);
    public TimeSpan Elapsed;
    public readonly List<double> LatenciesMs = new();
    /// <summary>Messages acknowledged per device, in the fleet's order.</summary>
    public long[] AckedByDevice = [];

    /// <summary>Counts one acknowledged message of the fleet's <paramref name="device"/>-th device.</summary>
    internal void CountAck(int device)
    {
        Interlocked.Increment(ref Acked);
        Interlocked.Increment(ref AckedByDevice[device]);
    }

    public double AcksPerSecond => Acked / Elapsed.TotalSeconds;
    public double SentPerSecond => Sent / Elapsed.TotalSeconds;

    public double Percentile(double p)
    {
        if (LatenciesMs.Count == 0) return double.NaN;
        var sorted = LatenciesMs.ToArray();
        Array.Sort(sorted);
        return sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(p / 100 * sorted.Length) - 1)];
    }

    public override string ToString() =>
        $"sent {Sent:N0}, acked {Acked:N0}, failed {Failed:N0} in {Elapsed.TotalSeconds:0.0} s: {AcksPerSecond:N0} acks/s, latency p50 {Percentile(50):0.0} ms, p99 {Percentile(99):0.0} ms"
        + (Reconnects > 0 ? $"; {Reconnects:N0} reconnects" : "")
        + (CommandsAnswered + DesiredApplied > 0 ? $"; answered {CommandsAnswered} commands, applied {DesiredApplied} desired states" : "")
        + (Firmware.Notified > 0 ? $"; {Firmware}" : "");
}

public static class LoadGenerator
{
    public static async Task<LoadResult> RunAsync(IReadOnlyList<SimDevice> devices, LoadOptions o, CancellationToken ct)
    {
        var result = new LoadResult { AckedByDevice = new long[devices.Count] };
        var perDevice = new List<double>[devices.Count];
        if (o.Protocol == "http") return await RunHttpAsync(devices, o, result, ct);
        if (o.Protocol == "coap") return await CoapLoad.RunAsync(devices, o, result, ct);

        var links = new DeviceLink[devices.Count];
        var payloadFactories = Enumerable.Range(0, devices.Count).Select(i => new PayloadFactory(o.Model, i, o.Fault)).ToArray();
        var behaviours = new DeviceBehaviour?[devices.Count];
        var factory = new MqttClientFactory();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        using var firmware = new FirmwareFleet(o.Firmware ?? new FirmwareOptions(), o.HttpBase, stop.Token);
        await Parallel.ForEachAsync(Enumerable.Range(0, devices.Count), new ParallelOptions { MaxDegreeOfParallelism = 32, CancellationToken = ct }, async (i, token) =>
        {
            var client = factory.CreateMqttClient();
            var b = new MqttClientOptionsBuilder().WithTcpServer(o.MqttHost, o.MqttPort).WithProtocolVersion(o.MqttVersion)
                .WithClientId(devices[i].Id).WithTimeout(TimeSpan.FromSeconds(60)).WithKeepAlivePeriod(TimeSpan.FromSeconds(60));
            if (o.UseCredentials) b = b.WithCredentials(devices[i].Id, devices[i].Token);
            // The behaviour needs the link (a firmware update reboots it) and the link the behaviour (it subscribes after
            // each connect): the link takes a callback that finds the behaviour once both exist.
            links[i] = new DeviceLink(client, b.Build(), o.Interactive ? connected => behaviours[i]!.SubscribeAsync(connected) : null, stop.Token);
            if (o.Interactive)
            {
                behaviours[i] = new DeviceBehaviour(client, devices[i].Id, payloadFactories[i], new DeviceFirmware(links[i], devices[i], firmware));
                behaviours[i]!.Attach();
            }
            await links[i].ConnectAsync(token);
        });

        var stopwatch = Stopwatch.StartNew();
        stop.CancelAfter(o.Duration);
        o.Started?.Invoke();
        var reporting = ReportProgressAsync(o, result, stopwatch, () => links.Count(l => l.IsConnected), devices.Count, () => links.Sum(l => l.Reconnects), stop.Token,
            o.Interactive ? firmware.Counters.Snapshot : null);
        // Each device keeps up to InFlight messages unacknowledged (as paho's max_inflight does): that many publishing
        // loops share its connection, each at rate / InFlight.
        var inFlight = Math.Max(1, o.InFlight);
        for (var i = 0; i < perDevice.Length; i++) perDevice[i] = new List<double>(1024);
        var tasks = Enumerable.Range(0, devices.Count * inFlight).Select(w => Task.Run(async () =>
        {
            var i = w / inFlight;
            var latencies = new List<double>(1024);
            var payloads = payloadFactories[i];
            var topic = $"{o.TopicPrefix}/{devices[i].Id}/telemetry";
            var qos = (MqttQualityOfServiceLevel)o.Qos;
            var interval = o.RatePerDevice > 0 ? TimeSpan.FromSeconds(inFlight / o.RatePerDevice) : TimeSpan.Zero;
            var next = Stopwatch.GetTimestamp() + (long)(Random.Shared.NextDouble() * interval.TotalSeconds * Stopwatch.Frequency);
            while (!stop.IsCancellationRequested)
            {
                if (interval > TimeSpan.Zero)
                {
                    var wait = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), next);
                    if (wait > TimeSpan.Zero)
                    {
                        try { await Task.Delay(wait, stop.Token); } catch (OperationCanceledException) { break; }
                    }
                    next += (long)(interval.TotalSeconds * Stopwatch.Frequency);
                }
                var message = new MqttApplicationMessageBuilder().WithTopic(topic)
                    .WithPayload(payloads.Next(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds())).WithQualityOfServiceLevel(qos).Build();
                var started = Stopwatch.GetTimestamp();
                Interlocked.Increment(ref result.Sent);
                try
                {
                    var ack = await links[i].Client.PublishAsync(message, CancellationToken.None);
                    if (qos == MqttQualityOfServiceLevel.AtMostOnce) continue;
                    if (ack.IsSuccess)
                    {
                        result.CountAck(i);
                        latencies.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
                    }
                    else Interlocked.Increment(ref result.Failed);
                }
                catch (Exception)
                {
                    // Lost with its connection (the hub went away): the device waits for its link to come back.
                    Interlocked.Increment(ref result.Failed);
                    if (!await links[i].WaitUntilConnectedAsync(stop.Token)) break;
                    next = Stopwatch.GetTimestamp(); // resume at the set rate, not with a burst of the messages the outage skipped
                }
            }
            lock (perDevice[i]) perDevice[i].AddRange(latencies);
        }, CancellationToken.None)).ToArray();
        await Task.WhenAll(tasks);
        result.Elapsed = stopwatch.Elapsed;
        await reporting;
        result.Reconnects = links.Sum(l => l.Reconnects);
        result.Firmware = firmware.Counters.Snapshot();
        foreach (var l in perDevice) result.LatenciesMs.AddRange(l);
        foreach (var b in behaviours)
        {
            result.CommandsAnswered += b?.CommandsAnswered ?? 0;
            result.DesiredApplied += b?.DesiredApplied ?? 0;
        }
        await Parallel.ForEachAsync(links, new ParallelOptions { MaxDegreeOfParallelism = 32 }, async (l, _) => await l.CloseAsync());
        return result;
    }

    /// <summary>Calls <see cref="LoadOptions.Progress"/> every <see cref="LoadOptions.ProgressInterval"/> until the run stops.</summary>
    internal static async Task ReportProgressAsync(LoadOptions o, LoadResult result, Stopwatch stopwatch, Func<int>? connected, int devices,
        Func<long> reconnects, CancellationToken stop, Func<FirmwareTally>? firmware = null)
    {
        if (o.Progress is null || o.ProgressInterval <= TimeSpan.Zero) return;
        using var timer = new PeriodicTimer(o.ProgressInterval);
        long lastSent = 0;
        var lastAt = TimeSpan.Zero;
        try
        {
            while (await timer.WaitForNextTickAsync(stop))
            {
                var now = stopwatch.Elapsed;
                var sent = Interlocked.Read(ref result.Sent);
                o.Progress(new LoadProgress(now, sent, Interlocked.Read(ref result.Acked), Interlocked.Read(ref result.Failed),
                    (sent - lastSent) / (now - lastAt).TotalSeconds, connected?.Invoke(), devices, reconnects(), firmware?.Invoke()));
                (lastSent, lastAt) = (sent, now);
            }
        }
        catch (OperationCanceledException)
        {
            // the run is over
        }
    }

    private static async Task<LoadResult> RunHttpAsync(IReadOnlyList<SimDevice> devices, LoadOptions o, LoadResult result, CancellationToken ct)
    {
        using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 256 }) { BaseAddress = o.HttpBase };
        var stopwatch = Stopwatch.StartNew();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        stop.CancelAfter(o.Duration);
        o.Started?.Invoke();
        var reporting = ReportProgressAsync(o, result, stopwatch, null, devices.Count, () => 0, stop.Token);
        var perDevice = new List<double>[devices.Count];
        var tasks = Enumerable.Range(0, devices.Count).Select(i => Task.Run(async () =>
        {
            var latencies = perDevice[i] = new List<double>(256);
            var payloads = new PayloadFactory(o.Model, i, o.Fault);
            var interval = o.RatePerDevice > 0 ? TimeSpan.FromSeconds(1 / o.RatePerDevice) : TimeSpan.Zero;
            var unreachable = TimeSpan.Zero;
            while (!stop.IsCancellationRequested)
            {
                var request = new HttpRequestMessage(HttpMethod.Post, $"/api/v1/devices/{devices[i].Id}/telemetry")
                {
                    Content = new ByteArrayContent(payloads.Next(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds())),
                };
                request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", devices[i].Token);
                var started = Stopwatch.GetTimestamp();
                Interlocked.Increment(ref result.Sent);
                try
                {
                    using var response = await http.SendAsync(request, CancellationToken.None);
                    if ((int)response.StatusCode == 202)
                    {
                        result.CountAck(i);
                        latencies.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
                    }
                    else Interlocked.Increment(ref result.Failed);
                    unreachable = TimeSpan.Zero;
                }
                catch (HttpRequestException)
                {
                    // The hub is away: try again after 0.5 s, doubling up to 5 s, as the MQTT devices reconnect.
                    Interlocked.Increment(ref result.Failed);
                    unreachable = unreachable == TimeSpan.Zero ? TimeSpan.FromMilliseconds(500) : TimeSpan.FromTicks(Math.Min(unreachable.Ticks * 2, TimeSpan.FromSeconds(5).Ticks));
                    try { await Task.Delay(unreachable, stop.Token); } catch (OperationCanceledException) { break; }
                    continue;
                }
                if (interval > TimeSpan.Zero)
                {
                    try { await Task.Delay(interval, stop.Token); } catch (OperationCanceledException) { break; }
                }
            }
        }, CancellationToken.None)).ToArray();
        await Task.WhenAll(tasks);
        result.Elapsed = stopwatch.Elapsed;
        await reporting;
        foreach (var l in perDevice) if (l is not null) result.LatenciesMs.AddRange(l);
        return result;
    }
}
