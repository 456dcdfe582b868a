using System.Collections.Concurrent;
using System.Diagnostics;
using IoTHub.Tests.Infrastructure;
using MQTTnet;
using MQTTnet.Protocol;

namespace IoTHub.Tests.Storage;

/// <summary>
/// PostgreSQL restarted while devices publish at QoS 1: readiness reports it, devices stay connected, acks stall
/// rather than lie, ingest resumes by itself, and every acknowledged message is stored exactly once.
/// Needs the Debian cluster that CI starts (pg_ctlcluster, as root).
/// </summary>
[TestFixture(Store.Postgres)]
[RunsAlone("restarts the PostgreSQL server every other fixture uses")]
[OwnHost("restarts PostgreSQL under it")]
public sealed class DatabaseOutageTests(Store store) : HubFixture(store)
{
    private static async Task Cluster(string action)
    {
        var psi = new ProcessStartInfo("pg_ctlcluster", $"15 main {action}") { RedirectStandardError = true, RedirectStandardOutput = true };
        Process p;
        try
        {
            p = Process.Start(psi)!;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            Assert.Ignore("pg_ctlcluster is not available: this test restarts the Debian PostgreSQL cluster");
            throw;
        }
        await p.WaitForExitAsync();
        if (p.ExitCode != 0) Assert.Ignore($"cannot {action} the PostgreSQL cluster here: {await p.StandardError.ReadToEndAsync()}");
    }

    [Test]
    public async Task Ingest_survives_a_database_restart_without_losing_an_acknowledged_message()
    {
        var devices = new List<(string Id, string Token)>();
        for (var i = 0; i < 5; i++) devices.Add(await Hub.CreateDeviceAsync());
        var acked = new ConcurrentBag<(string Device, long Ts)>();
        var connected = new ConcurrentBag<IMqttClient>();
        using var stop = new CancellationTokenSource();
        var baseTs = DateTimeOffset.UtcNow.AddMinutes(-20).ToUnixTimeMilliseconds();
        const int lanes = 4; // messages each device keeps in flight on its one connection
        var publishers = devices.Select(d => Task.Run(async () =>
        {
            var client = await Hub.ConnectAsync(d.Id, d.Token);
            connected.Add(client);
            await Task.WhenAll(Enumerable.Range(0, lanes).Select(async lane =>
            {
                for (var i = 0; !stop.IsCancellationRequested; i++)
                {
                    var ts = baseTs + (i * lanes + lane) * 10;
                    var ack = await client.PublishAsync(new MqttApplicationMessageBuilder().WithTopic($"devices/{d.Id}/telemetry")
                        .WithPayload($$$"""{"ts": {{{ts}}}, "values": {"v": {{{i}}}}}""").WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
                    if (ack.ReasonCode == MqttClientPublishReasonCode.Success) acked.Add((d.Id, ts));
                }
            }));
        })).ToList();

        await Task.Delay(1000);
        await Cluster("stop");
        try
        {
            using var http = Hub.Anonymous();
            await WaitFor.ConditionAsync(async () => !(await http.GetAsync("/health/ready")).IsSuccessStatusCode, "readiness reports the database down");
            var ackedDuringOutage = acked.Count;
            await Task.Delay(2000);
            Assert.That(acked.Count - ackedDuringOutage, Is.LessThanOrEqualTo(devices.Count * lanes), "nothing is acked while the database is down");
        }
        finally
        {
            await Cluster("start");
        }
        var before = acked.Count;
        await WaitFor.ConditionAsync(() => acked.Count > before + 20, "ingest resumes by itself", TimeSpan.FromSeconds(10));
        await stop.CancelAsync();
        await Task.WhenAll(publishers);
        Assert.That(connected.All(c => c.IsConnected), Is.True, "devices were not disconnected for it");

        using var admin = await Hub.AdminAsync();
        var from = Uri.EscapeDataString(DateTimeOffset.FromUnixTimeMilliseconds(baseTs - 60_000).ToString("O"));
        foreach (var (id, _) in devices)
        {
            var raw = await admin.GetJsonAsync($"/api/v1/devices/{id}/telemetry?metric=v&resolution=raw&from={from}&maxPoints=10000");
            var stored = raw["points"]!.AsArray().Select(p => p!["ts"]!.GetValue<DateTimeOffset>().ToUnixTimeMilliseconds()).ToList();
            Assert.That(stored, Is.Unique);
            Assert.That(acked.Where(a => a.Device == id).Select(a => a.Ts).Except(stored), Is.Empty, $"{id}: every acknowledged message is stored");
        }
        foreach (var c in connected) c.Dispose();
    }
}
