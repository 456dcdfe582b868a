// Points the hub stamps with its receive time (no `ts`, or the serverTime clock policy) are readings in their own
// right: many arrive in the same millisecond, and none may be taken for another's resend. Found by issue #15: 50
// flat messages in one mosquitto_pub burst were all acked and 7-9 stored.
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using IoTHub.Tests.Infrastructure;
using MQTTnet;
using MQTTnet.Protocol;

namespace IoTHub.Tests.Storage;

[TestFixture(Store.Sqlite)]
[TestFixture(Store.Postgres)]
public sealed class HubStampedPointsTests(Store store) : HubFixture(store)
{
    private static string Since(TimeSpan ago) => Uri.EscapeDataString(DateTimeOffset.UtcNow.Add(-ago).ToString("O"));

    private async Task<List<double>> RawValuesAsync(string id, string metric)
    {
        using var admin = await Hub.AdminAsync();
        var raw = await admin.GetJsonAsync($"/api/v1/devices/{id}/telemetry?metric={metric}&resolution=raw&from={Since(TimeSpan.FromHours(1))}&maxPoints=10000");
        Assert.That(raw["next"], Is.Null);
        return raw["points"]!.AsArray().Select(p => p!["value"]!.GetValue<double>()).ToList();
    }

    /// <summary>The 1-minute, 1-hour and 1-day rollups each count and sum every stored point.</summary>
    private async Task AssertRollupsCountAsync(string id, string metric, IReadOnlyCollection<double> values)
    {
        using var admin = await Hub.AdminAsync();
        foreach (var resolution in new[] { "1m", "1h", "1d" })
        {
            var windows = (await admin.GetJsonAsync($"/api/v1/devices/{id}/telemetry?metric={metric}&resolution={resolution}&from={Since(TimeSpan.FromDays(2))}"))["points"]!.AsArray();
            Assert.That(windows.Sum(w => w!["count"]!.GetValue<long>()), Is.EqualTo(values.Count), resolution);
            Assert.That(windows.Sum(w => w!["sum"]!.GetValue<double>()), Is.EqualTo(values.Sum()).Within(1e-9), resolution);
        }
    }

    private async Task<double> LatestAsync(string id, string metric)
    {
        using var admin = await Hub.AdminAsync();
        var latest = await admin.GetJsonAsync($"/api/v1/devices/{id}/telemetry/latest");
        return latest["values"]!.AsArray().Single(v => v!["metric"]!.GetValue<string>() == metric)!["value"]!.GetValue<double>();
    }

    [TestCase("mqttv311")]
    [TestCase("mqttv5")]
    public async Task Fifty_messages_without_ts_in_one_mosquitto_burst_are_all_stored(string version)
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        var lines = string.Join("\n", Enumerable.Range(1, 50).Select(i => $$"""{"temperature": {{i}}}""")) + "\n";

        var (code, output) = await ExternalTool.RunWithInputAsync("mosquitto_pub", lines, "-h", "127.0.0.1", "-p", Hub.MqttPort.ToString(CultureInfo.InvariantCulture),
            "-V", version, "-q", "1", "-i", id, "-u", id, "-P", token, "-t", $"devices/{id}/telemetry", "-l", "-d");

        Assert.That(code, Is.EqualTo(0), output);
        var acked = output.Split('\n').Count(l => l.Contains("received PUBACK", StringComparison.Ordinal));
        Assert.That(acked, Is.EqualTo(50), output);
        var stored = await RawValuesAsync(id, "temperature");
        Assert.That(stored, Has.Count.EqualTo(acked), "every acknowledged message is stored");
        Assert.That(stored, Is.EqualTo(Enumerable.Range(1, 50).Select(i => (double)i)), "in the order they arrived, also within one millisecond");
        await AssertRollupsCountAsync(id, "temperature", stored);
        Assert.That(await LatestAsync(id, "temperature"), Is.EqualTo(50), "the latest value is the last one sent");
    }

    [Test]
    public async Task Twenty_five_concurrent_http_posts_without_ts_are_all_stored()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        using var http = Hub.WithBearer(token);

        var responses = await Task.WhenAll(Enumerable.Range(1, 25).Select(i =>
            http.PostAsync($"/api/v1/devices/{id}/telemetry", Json.Body($$"""{"load": {{i}}}"""))));

        Assert.That(responses.Select(r => r.StatusCode), Is.All.EqualTo(HttpStatusCode.Accepted));
        var stored = await RawValuesAsync(id, "load");
        Assert.That(stored, Is.EquivalentTo(Enumerable.Range(1, 25).Select(i => (double)i)));
        await AssertRollupsCountAsync(id, "load", stored);
    }

    [Test]
    public async Task A_batch_of_flat_objects_stores_every_object_in_order()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        using (var client = await Hub.ConnectAsync(id, token))
        {
            var ack = await client.PublishAsync(new MqttApplicationMessageBuilder().WithTopic($"devices/{id}/telemetry")
                .WithPayload("""[{"level": 1, "door": "open"}, {"level": 2}, {"level": 3, "door": "shut"}]""").WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
            Assert.That(ack.ReasonCode, Is.EqualTo(MqttClientPublishReasonCode.Success), ack.ReasonString);
        }
        using var http = Hub.WithBearer(token);
        var response = await http.PostAsync($"/api/v1/devices/{id}/telemetry", Json.Body("""[{"level": 4}, {"level": 5}]"""));
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Accepted));

        var stored = await RawValuesAsync(id, "level");
        Assert.That(stored, Is.EqualTo(new[] { 1.0, 2, 3, 4, 5 }));
        await AssertRollupsCountAsync(id, "level", stored);
        Assert.That(await LatestAsync(id, "level"), Is.EqualTo(5));
        using var admin = await Hub.AdminAsync();
        var doors = await admin.GetJsonAsync($"/api/v1/devices/{id}/telemetry?metric=door&resolution=raw&from={Since(TimeSpan.FromHours(1))}");
        Assert.That(doors["points"]!.AsArray().Select(p => p!["value"]!.GetValue<string>()), Is.EqualTo(new[] { "open", "shut" }));
    }

    [Test]
    public async Task A_message_without_ts_sent_again_is_a_new_reading_and_one_with_ts_is_stored_once()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        var ts = DateTimeOffset.UtcNow.AddMinutes(-5).ToUnixTimeMilliseconds();
        using (var client = await Hub.ConnectAsync(id, token))
        {
            foreach (var payload in new[] { """{"a": 7}""", """{"a": 7}""", $$$"""{"ts": {{{ts}}}, "values": {"b": 7}}""", $$$"""{"ts": {{{ts}}}, "values": {"b": 7}}""" })
            {
                var ack = await client.PublishAsync(new MqttApplicationMessageBuilder().WithTopic($"devices/{id}/telemetry").WithPayload(payload)
                    .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
                Assert.That(ack.ReasonCode, Is.EqualTo(MqttClientPublishReasonCode.Success), ack.ReasonString);
            }
        }

        Assert.That(await RawValuesAsync(id, "a"), Is.EqualTo(new[] { 7.0, 7.0 }), "without ts the hub cannot tell a resend from a new reading");
        Assert.That(await RawValuesAsync(id, "b"), Is.EqualTo(new[] { 7.0 }), "with ts a resend is stored once");
        await AssertRollupsCountAsync(id, "b", [7.0]);
    }

    [Test]
    public async Task Points_the_server_time_policy_restamps_in_one_millisecond_are_all_stored()
    {
        using var admin = await Hub.AdminAsync();
        var profile = "srv-" + Guid.NewGuid().ToString("N")[..8];
        var created = await admin.PostAsJsonAsync("/api/v1/profiles", new { id = profile, name = "Server time", unknownMetrics = "allow", clockPolicy = "serverTime", metrics = Array.Empty<object>() });
        Assert.That(created.StatusCode, Is.EqualTo(HttpStatusCode.Created), await created.Content.ReadAsStringAsync());
        var (id, token) = await Hub.CreateDeviceAsync();
        var patch = await admin.PatchAsJsonAsync($"/api/v1/devices/{id}", new { profile });
        Assert.That(patch.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        // Twenty messages a day ahead of the hub's clock, at once: each point is restamped with the hub's time, so many
        // share a millisecond; they are the hub's readings now, not resends of each other.
        var ahead = DateTimeOffset.UtcNow.AddDays(1).ToUnixTimeMilliseconds();
        using var http = Hub.WithBearer(token);
        var responses = await Task.WhenAll(Enumerable.Range(1, 20).Select(i =>
            http.PostAsync($"/api/v1/devices/{id}/telemetry", Json.Body($$$"""{"ts": {{{ahead}}}, "values": {"v": {{{i}}}}}"""))));
        Assert.That(responses.Select(r => r.StatusCode), Is.All.EqualTo(HttpStatusCode.Accepted));

        var stored = await RawValuesAsync(id, "v");
        Assert.That(stored, Is.EquivalentTo(Enumerable.Range(1, 20).Select(i => (double)i)));
        await AssertRollupsCountAsync(id, "v", stored);
    }

    [Test]
    public async Task Raw_pages_split_inside_one_millisecond_return_every_point_once()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        using (var client = await Hub.ConnectAsync(id, token))
        {
            // Twelve readings in one message share its receive millisecond.
            var batch = "[" + string.Join(",", Enumerable.Range(1, 12).Select(i => $$"""{"p": {{i}}}""")) + "]";
            var ack = await client.PublishAsync(new MqttApplicationMessageBuilder().WithTopic($"devices/{id}/telemetry").WithPayload(batch)
                .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
            Assert.That(ack.ReasonCode, Is.EqualTo(MqttClientPublishReasonCode.Success), ack.ReasonString);
            ack = await client.PublishAsync(new MqttApplicationMessageBuilder().WithTopic($"devices/{id}/telemetry").WithPayload("""{"p": 13}""")
                .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
            Assert.That(ack.ReasonCode, Is.EqualTo(MqttClientPublishReasonCode.Success), ack.ReasonString);
        }
        using var admin = await Hub.AdminAsync();
        var seen = new List<double>();
        var from = Since(TimeSpan.FromHours(1));
        for (var page = 0; page < 20; page++)
        {
            var raw = await admin.GetJsonAsync($"/api/v1/devices/{id}/telemetry?metric=p&resolution=raw&from={from}&maxPoints=5");
            seen.AddRange(raw["points"]!.AsArray().Select(p => p!["value"]!.GetValue<double>()));
            if (raw["next"] is not JsonValue next) break;
            from = Uri.EscapeDataString(next.GetValue<DateTimeOffset>().ToString("O"));
        }
        Assert.That(seen, Is.EqualTo(Enumerable.Range(1, 13).Select(i => (double)i)));
    }

    [Test]
    public async Task Raw_pages_end_before_the_millisecond_they_would_cut_or_hold_all_of_it()
    {
        // Rows written straight into the store at chosen (ts, seq): 3 readings at T, 6 at T+1, 1 at T+2. Pages of 5:
        // the first ends before T+1 (3 points), the second is all of T+1 (6 points, more than 5), the third T+2.
        var (id, _) = await Hub.CreateDeviceAsync();
        var t = DateTimeOffset.UtcNow.AddMinutes(-30).ToUnixTimeMilliseconds();
        var rows = new[] { (t, 11L), (t, 12L), (t, 13L) }.Concat(Enumerable.Range(0, 6).Select(i => (t + 1, 20L + i))).Append((t + 2, 0L)).ToList();
        await using (var c = Store == Store.Postgres
                         ? (System.Data.Common.DbConnection)new Npgsql.NpgsqlConnection(Hub.PostgresConnectionString)
                         : new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={Path.Combine(Hub.DataDirectory, "iothub.db")}"))
        {
            await c.OpenAsync();
            await using var cmd = c.CreateCommand();
            cmd.CommandText = $"INSERT INTO series (device_id, metric) VALUES ('{id}', 'q');" + string.Concat(rows.Select((r, i) =>
                $"INSERT INTO telemetry (series_id, ts, seq, kind, number) SELECT id, {r.Item1}, {r.Item2}, 0, {i + 1} FROM series WHERE device_id = '{id}';"));
            await cmd.ExecuteNonQueryAsync();
        }

        using var admin = await Hub.AdminAsync();
        var pages = new List<List<double>>();
        var from = Uri.EscapeDataString(DateTimeOffset.FromUnixTimeMilliseconds(t - 1000).ToString("O"));
        for (var page = 0; page < 10; page++)
        {
            var raw = await admin.GetJsonAsync($"/api/v1/devices/{id}/telemetry?metric=q&resolution=raw&from={from}&maxPoints=5");
            pages.Add(raw["points"]!.AsArray().Select(p => p!["value"]!.GetValue<double>()).ToList());
            if (raw["next"] is not JsonValue next) break;
            from = Uri.EscapeDataString(next.GetValue<DateTimeOffset>().ToString("O"));
        }
        Assert.That(pages.Select(p => p.Count), Is.EqualTo(new[] { 3, 6, 1 }));
        Assert.That(pages.SelectMany(p => p), Is.EqualTo(Enumerable.Range(1, 10).Select(i => (double)i)), "every point once, by (ts, seq)");
    }

    [Test]
    public async Task A_batch_written_again_after_an_ambiguous_commit_stores_its_hub_stamped_points_once()
    {
        // A store of its own on the hub's database, as a writer whose commit outcome was lost would use it again.
        var (id, _) = await Hub.CreateDeviceAsync();
        IoTHub.Storage.Write.ITelemetryStore store = Store == Store.Postgres
            ? new IoTHub.Storage.Write.PostgresTelemetryStore(Hub.PostgresConnectionString!, 1024)
            : new IoTHub.Storage.Write.SqliteTelemetryStore($"Data Source={Path.Combine(Hub.DataDirectory, "iothub.db")};Default Timeout=30", 1024);
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var raw = new IoTHub.Contracts.RawTelemetry(id, IoTHub.Contracts.TelemetryProtocol.Mqtt, IoTHub.Contracts.PayloadFormat.Json, "[]"u8.ToArray(), now, 5_000, null);
        var batch = new[]
        {
            new IoTHub.Contracts.ValidatedTelemetry(raw, Enumerable.Range(0, 3).Select(i =>
                new IoTHub.Contracts.TelemetryPoint("again", now, IoTHub.Contracts.ValueKind.Number, i, null) { Sequence = 5_000 + i }).ToArray(), 3, null, null),
        };
        try
        {
            for (var attempt = 0; attempt < 3; attempt++) await store.CommitAsync(batch, [], CancellationToken.None);
        }
        finally
        {
            if (store is IAsyncDisposable d) await d.DisposeAsync();
            else (store as IDisposable)?.Dispose();
        }

        var stored = await RawValuesAsync(id, "again");
        Assert.That(stored, Is.EqualTo(new[] { 0.0, 1, 2 }));
        await AssertRollupsCountAsync(id, "again", stored);
    }
}
