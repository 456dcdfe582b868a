// Through the real host: floods that an outsider can start (connections over the per-address cap, wrong MQTT and
// HTTP device logins, wrong passwords) write a first line and a summary per interval, and the summaries' counts
// add up to exactly what was refused.
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using IoTHub.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Logging;

namespace IoTHub.Tests.Observability;

[TestFixture(Store.Sqlite)]
[RunsAlone("counts repeated log lines within a throttle interval")]
public sealed class RepeatedLogLinesTests(Store store) : HubFixture(store)
{
    private const int Cap = 3;
    private readonly CapturedLogs _logs = new();

    protected override IDictionary<string, string?> Settings => new Dictionary<string, string?>
    {
        ["Mqtt:MaxConnectionsPerAddress"] = Cap.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["LogThrottle:Interval"] = "00:00:01",
    };

    protected override void Configure(WebApplicationBuilder builder) => builder.Logging.AddProvider(_logs);

    /// <summary>The lines of one kind and key: the ones written in full, and the summaries with their counts.</summary>
    private (List<LogLine> First, List<LogLine> Summaries) LinesOf(string firstLineStart, string summaryStart, string key)
    {
        var lines = _logs.Lines;
        return (lines.Where(l => l.Message.StartsWith(firstLineStart, StringComparison.Ordinal)).ToList(),
            lines.Where(l => l.Message.StartsWith(summaryStart, StringComparison.Ordinal) && Equals(l["Key"], key)).ToList());
    }

    private static long Counted((List<LogLine> First, List<LogLine> Summaries) lines) =>
        lines.First.Count + lines.Summaries.Sum(s => (long)s["Suppressed"]!);

    [Test]
    public async Task A_flood_of_connections_over_the_per_address_cap_writes_a_few_lines_whose_counts_add_up_to_the_flood()
    {
        const string attacker = "127.0.0.11";
        const int flood = 600;
        var (id, token) = await Hub.CreateDeviceAsync();
        var held = new List<TcpClient>();
        try
        {
            for (var i = 0; i < Cap; i++)
            {
                var tcp = await RawMqtt.OpenAsync(Hub.MqttPort, from: attacker);
                held.Add(tcp);
                await tcp.GetStream().WriteAsync(RawMqtt.Connect($"{id}:{i}", id, token));
                var connack = new byte[4];
                await tcp.GetStream().ReadExactlyAsync(connack);
                Assert.That(connack, Is.EqualTo(new byte[] { 0x20, 2, 0, 0 }), "the connections up to the cap are accepted");
            }

            var started = DateTime.UtcNow;
            var refused = 0;
            for (var wave = 0; wave < flood / 50; wave++)
            {
                var closed = await Task.WhenAll(Enumerable.Range(0, 50).Select(async _ =>
                {
                    try
                    {
                        using var tcp = await RawMqtt.OpenAsync(Hub.MqttPort, from: attacker);
                        return await RawMqtt.ClosedByPeerAsync(tcp, TimeSpan.FromSeconds(5));
                    }
                    catch (SocketException)
                    {
                        return true;
                    }
                }));
                refused += closed.Count(c => c);
            }
            Assert.That(refused, Is.EqualTo(flood), "every connection over the cap is closed");

            var kind = () => LinesOf($"Refused an MQTT connection from {attacker}", "MQTT connections refused over the per-address cap", attacker);
            await WaitFor.ConditionAsync(() => Counted(kind()) == flood, $"the lines count all {flood} refused connections");
            var seconds = (DateTime.UtcNow - started).TotalSeconds;
            var (first, summaries) = kind();
            Assert.That(first.Count + summaries.Count, Is.LessThanOrEqualTo(2 * (Math.Ceiling(seconds) + 1)),
                $"a first line and a summary per 1-second interval, over {seconds:0.0} s");
            Assert.That(summaries, Is.Not.Empty);
            Assert.That(summaries.Max(s => (long)s["Suppressed"]!), Is.GreaterThan(1));
            Assert.That(first.Concat(summaries).Select(l => l.Level).Distinct(), Is.EqualTo(new[] { LogLevel.Warning }));
        }
        finally
        {
            foreach (var t in held) t.Dispose();
        }
    }

    [Test]
    public async Task Repeated_wrong_device_logins_over_mqtt_and_http_are_summed_up_per_address()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        const string attacker = "127.0.0.12";
        const int attempts = 40;
        var started = DateTime.UtcNow;
        for (var i = 0; i < attempts; i++) // one after another: this fixture caps an address at three connections
        {
            using var tcp = await RawMqtt.OpenAsync(Hub.MqttPort, from: attacker);
            await tcp.GetStream().WriteAsync(RawMqtt.Connect($"guess-{i}", id, "wrong-" + i));
            var connack = new byte[4];
            await tcp.GetStream().ReadExactlyAsync(connack);
            Assert.That(connack[3], Is.EqualTo(4), "bad user name or password");
        }
        var mqtt = () => LinesOf($"Refused MQTT connection of {id} from {attacker}", "MQTT logins refused", attacker);
        await WaitFor.ConditionAsync(() => Counted(mqtt()) == attempts, $"the lines count all {attempts} refused MQTT logins");
        AssertOneWrittenLinePerInterval(mqtt().First, started);

        using var http = Hub.WithBearer("wrong-" + token);
        started = DateTime.UtcNow;
        var statuses = await Task.WhenAll(Enumerable.Range(0, attempts).Select(async _ =>
            (await http.PostAsync($"/api/v1/devices/{id}/telemetry", Json.Body("""{"t": 1}"""))).StatusCode));
        Assert.That(statuses, Is.All.EqualTo(HttpStatusCode.Unauthorized));
        var overHttp = () => LinesOf($"Refused an HTTP request of device {id} from 127.0.0.1", "HTTP device requests refused", "127.0.0.1");
        await WaitFor.ConditionAsync(() => Counted(overHttp()) == attempts, $"the lines count all {attempts} refused HTTP requests");
        AssertOneWrittenLinePerInterval(overHttp().First, started);
    }

    [Test]
    public async Task Repeated_wrong_passwords_are_summed_up_per_address()
    {
        using var http = Hub.Anonymous();
        const int attempts = 30;
        var started = DateTime.UtcNow;
        for (var i = 0; i < attempts; i++)
        {
            var response = await http.PostAsJsonAsync("/api/v1/auth/token", new { username = "mallory", password = "guess-" + i });
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized));
        }
        var lines = () => LinesOf("Refused the sign-in of mallory from 127.0.0.1", "sign-ins refused", "127.0.0.1");
        await WaitFor.ConditionAsync(() => Counted(lines()) == attempts, $"the lines count all {attempts} refused sign-ins");
        AssertOneWrittenLinePerInterval(lines().First, started);
    }

    /// <summary>The lines written in full: at most one per 1-second interval since the attempts started.</summary>
    private static void AssertOneWrittenLinePerInterval(List<LogLine> written, DateTime started)
    {
        var seconds = (DateTime.UtcNow - started).TotalSeconds;
        Assert.That(written, Has.Count.LessThanOrEqualTo(Math.Ceiling(seconds) + 1), $"written in full over {seconds:0.0} s");
    }
}
