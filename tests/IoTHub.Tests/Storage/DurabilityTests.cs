using IoTHub.Tests.Infrastructure;
using MQTTnet;
using MQTTnet.Protocol;

namespace IoTHub.Tests.Storage;

[TestFixture(Store.Sqlite)]
[TestFixture(Store.Postgres)]
[OwnHost("restarts the hub")]
public sealed class DurabilityTests(Store store) : HubFixture(store)
{
    [Test]
    public async Task Everything_acknowledged_is_still_there_after_a_restart()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        var start = DateTimeOffset.UtcNow.AddMinutes(-5).ToUnixTimeMilliseconds();
        using (var client = await Hub.ConnectAsync(id, token))
        {
            for (var i = 0; i < 50; i++)
            {
                var ack = await client.PublishAsync(new MqttApplicationMessageBuilder().WithTopic($"devices/{id}/telemetry")
                    .WithPayload($$$"""{"ts": {{{start + i * 1000}}}, "values": {"temperature": {{{i}}}}}""")
                    .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
                Assert.That(ack.ReasonCode, Is.EqualTo(MqttClientPublishReasonCode.Success));
            }
            await client.PublishAsync(new MqttApplicationMessageBuilder().WithTopic($"devices/{id}/telemetry")
                .WithPayload("""{"temperature": "banana"}""").WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
        }

        await Hub.RestartAsync();

        using var admin = await Hub.AdminAsync();
        var raw = await admin.GetJsonAsync($"/api/v1/devices/{id}/telemetry?metric=temperature&resolution=raw");
        Assert.That(raw["points"]!.AsArray().Select(p => p!["value"]!.GetValue<double>()), Is.EqualTo(Enumerable.Range(0, 50).Select(i => (double)i)));
        var dead = await admin.GetJsonAsync($"/api/v1/dead-letters?deviceId={id}");
        Assert.That(dead["items"]!.AsArray(), Has.Count.EqualTo(1));
        // The implicit type survives the restart too.
        using var again = await Hub.ConnectAsync(id, token);
        var banana = await again.PublishAsync(new MqttApplicationMessageBuilder().WithTopic($"devices/{id}/telemetry")
            .WithPayload("""{"temperature": "banana"}""").WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
        Assert.That(banana.ReasonCode, Is.EqualTo(MqttClientPublishReasonCode.PayloadFormatInvalid));
    }

    [Test]
    public async Task A_message_sent_again_is_stored_once_and_counted_once_in_the_rollups()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        var ts = DateTimeOffset.UtcNow.AddMinutes(-10).ToUnixTimeMilliseconds();
        using (var client = await Hub.ConnectAsync(id, token))
        {
            // The same message three times, as a device does after lost acks; then a new one, which must still land.
            foreach (var (at, v) in new[] { (ts, 1.5), (ts, 1.5), (ts, 1.5), (ts + 1000, 2.5) })
            {
                var ack = await client.PublishAsync(new MqttApplicationMessageBuilder().WithTopic($"devices/{id}/telemetry")
                    .WithPayload($$$"""{"ts": {{{at}}}, "values": {"v": {{{v.ToString(System.Globalization.CultureInfo.InvariantCulture)}}}}}""")
                    .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
                Assert.That(ack.ReasonCode, Is.EqualTo(MqttClientPublishReasonCode.Success), ack.ReasonString);
            }
        }
        using var admin = await Hub.AdminAsync();
        var from = Uri.EscapeDataString(DateTimeOffset.FromUnixTimeMilliseconds(ts - 3_600_000).ToString("O"));
        var raw = await admin.GetJsonAsync($"/api/v1/devices/{id}/telemetry?metric=v&resolution=raw&from={from}");
        Assert.That(raw["points"]!.AsArray().Select(p => p!["value"]!.GetValue<double>()), Is.EqualTo(new[] { 1.5, 2.5 }));
        var hour = await admin.GetJsonAsync($"/api/v1/devices/{id}/telemetry?metric=v&resolution=1h&from={from}");
        Assert.That(hour["points"]!.AsArray().Sum(w => w!["count"]!.GetValue<long>()), Is.EqualTo(2), "the resends are not counted");
        Assert.That(hour["points"]!.AsArray().Sum(w => w!["sum"]!.GetValue<double>()), Is.EqualTo(4.0).Within(1e-9));
        var latest = await admin.GetJsonAsync($"/api/v1/devices/{id}/telemetry/latest");
        Assert.That(latest["values"]![0]!["value"]!.GetValue<double>(), Is.EqualTo(2.5));
        if (Store == Store.Postgres)
        {
            // On PostgreSQL a batch is first written without a duplicate check; the resends made it take the checked way.
            using var http = Hub.Anonymous();
            var metrics = await http.GetStringAsync("/metrics");
            Assert.That(metrics, Does.Match(@"iothub_commit_duplicate_retries_total [1-9]"));
        }
    }

    [Test]
    public async Task A_message_of_1000_metrics_is_stored_with_every_rollup_and_latest_value()
    {
        // 1,000 series: their raw rows, rollups and latest values each fill several of the PostgreSQL writer's COPY
        // buffers, so every row that starts near a buffer's end is written across a flush.
        var (id, token) = await Hub.CreateDeviceAsync();
        var ts = DateTimeOffset.UtcNow.AddMinutes(-10).ToUnixTimeMilliseconds();
        using (var client = await Hub.ConnectAsync(id, token))
        {
            foreach (var offset in new[] { 0, 1000 })
            {
                var values = string.Join(",", Enumerable.Range(0, 1000).Select(i => $"\"m{i}\": {i + offset}.5"));
                var ack = await client.PublishAsync(new MqttApplicationMessageBuilder().WithTopic($"devices/{id}/telemetry")
                    .WithPayload($$$"""{"ts": {{{ts + offset}}}, "values": {{{"{" + values + "}"}}}}""").WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
                Assert.That(ack.ReasonCode, Is.EqualTo(MqttClientPublishReasonCode.Success), ack.ReasonString);
            }
        }

        using var admin = await Hub.AdminAsync();
        var latest = (await admin.GetJsonAsync($"/api/v1/devices/{id}/telemetry/latest"))["values"]!.AsArray();
        Assert.That(latest, Has.Count.EqualTo(1000));
        Assert.That(latest.Single(v => v!["metric"]!.GetValue<string>() == "m999")!["value"]!.GetValue<double>(), Is.EqualTo(1999.5));
        var from = Uri.EscapeDataString(DateTimeOffset.FromUnixTimeMilliseconds(ts - 3_600_000).ToString("O"));
        foreach (var metric in new[] { "m0", "m500", "m999" })
            foreach (var resolution in new[] { "1m", "1h", "1d" })
            {
                var windows = (await admin.GetJsonAsync($"/api/v1/devices/{id}/telemetry?metric={metric}&resolution={resolution}&from={from}"))["points"]!.AsArray();
                Assert.That(windows.Sum(w => w!["count"]!.GetValue<long>()), Is.EqualTo(2), $"{metric} {resolution}");
                Assert.That(windows.Sum(w => w!["sum"]!.GetValue<double>()), Is.EqualTo(2 * int.Parse(metric[1..]) + 1001.0), $"{metric} {resolution}");
            }
    }

    [Test]
    public async Task Rollups_equal_a_group_by_over_the_raw_rows()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        var rng = new Random(42);
        var baseTs = DateTimeOffset.UtcNow.AddHours(-3).ToUnixTimeMilliseconds();
        var points = Enumerable.Range(0, 400).Select(_ => (Ts: baseTs + rng.Next(0, 3 * 3600) * 1000L, Value: Math.Round(rng.NextDouble() * 100, 2))).ToList();
        // Shuffled, duplicated, in batches, and spread over a restart of the hub (resends cross it too).
        var sends = points.Concat(points.Take(50)).OrderBy(_ => rng.Next()).Chunk(7).ToList();
        foreach (var half in new[] { sends.Take(sends.Count / 2), sends.Skip(sends.Count / 2).Concat(sends.Take(5)) })
        {
            using (var client = await Hub.ConnectAsync(id, token))
            {
                foreach (var chunk in half)
                {
                    var json = "[" + string.Join(",", chunk.Select(p => $$$"""{"ts": {{{p.Ts}}}, "values": {"v": {{{p.Value.ToString(System.Globalization.CultureInfo.InvariantCulture)}}}}}""")) + "]";
                    var ack = await client.PublishAsync(new MqttApplicationMessageBuilder().WithTopic($"devices/{id}/telemetry").WithPayload(json)
                        .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
                    Assert.That(ack.ReasonCode, Is.EqualTo(MqttClientPublishReasonCode.Success), ack.ReasonString);
                }
            }
            await Hub.RestartAsync();
        }
        var stored = points.GroupBy(p => p.Ts).Select(g => g.First()).ToList(); // first write of a timestamp wins
        using var admin = await Hub.AdminAsync();
        var from = Uri.EscapeDataString(DateTimeOffset.FromUnixTimeMilliseconds(baseTs - 3_600_000).ToString("O"));
        var raw = await admin.GetJsonAsync($"/api/v1/devices/{id}/telemetry?metric=v&resolution=raw&from={from}&maxPoints=10000");
        var rawPoints = raw["points"]!.AsArray().Select(p => (Ts: p!["ts"]!.GetValue<DateTimeOffset>().ToUnixTimeMilliseconds(), Value: p["value"]!.GetValue<double>())).ToList();
        Assert.That(rawPoints.Select(p => p.Ts), Is.EquivalentTo(stored.Select(p => p.Ts)));

        foreach (var (resolution, width) in new[] { ("1m", 60_000L), ("1h", 3_600_000L) })
        {
            var windows = await admin.GetJsonAsync($"/api/v1/devices/{id}/telemetry?metric=v&resolution={resolution}&from={from}&maxPoints=10000");
            var expected = rawPoints.GroupBy(p => p.Ts - p.Ts % width).OrderBy(g => g.Key)
                .Select(g => (Start: g.Key, Count: (long)g.Count(), Min: g.Min(p => p.Value), Max: g.Max(p => p.Value), Sum: g.Sum(p => p.Value), Last: g.MaxBy(p => p.Ts).Value)).ToList();
            var actual = windows["points"]!.AsArray().Select(w => (
                Start: w!["start"]!.GetValue<DateTimeOffset>().ToUnixTimeMilliseconds(), Count: w["count"]!.GetValue<long>(),
                Min: w["min"]!.GetValue<double>(), Max: w["max"]!.GetValue<double>(), Sum: w["sum"]!.GetValue<double>(), Last: w["last"]!.GetValue<double>())).ToList();
            Assert.That(actual.Select(a => (a.Start, a.Count, a.Min, a.Max, a.Last)), Is.EqualTo(expected.Select(e => (e.Start, e.Count, e.Min, e.Max, e.Last))), resolution);
            Assert.That(actual.Select(a => a.Sum), Is.EqualTo(expected.Select(e => e.Sum)).Within(1e-6), resolution);
        }
    }
}
