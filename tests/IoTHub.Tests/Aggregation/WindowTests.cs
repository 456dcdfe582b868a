using System.Net.Http.Json;
using System.Text.Json.Nodes;
using IoTHub.Tests.Infrastructure;

namespace IoTHub.Tests.Aggregation;

[TestFixture(Store.Sqlite)]
[TestFixture(Store.Postgres)]
public sealed class WindowTests(Store store) : HubFixture(store)
{
    protected override IDictionary<string, string?> Settings => new Dictionary<string, string?>
    {
        ["Aggregation:AllowedLateness"] = "00:00:01",
        ["Aggregation:IdleClose"] = "00:00:01",
        ["Aggregation:TickInterval"] = "00:00:00.200",
    };

    private async Task PostAsync(string id, string token, string body)
    {
        using var http = Hub.WithBearer(token);
        var response = await http.PostAsync($"/api/v1/devices/{id}/telemetry", Json.Body(body));
        Assert.That((int)response.StatusCode, Is.EqualTo(202), await response.Content.ReadAsStringAsync());
    }

    private async Task<List<JsonNode>> EventsAsync(string id, string kind, string resolution)
    {
        using var admin = await Hub.AdminAsync();
        var page = await admin.GetJsonAsync($"/api/v1/windows/recent?deviceId={id}");
        return page["items"]!.AsArray().Select(e => e!)
            .Where(e => e["kind"]!.GetValue<string>() == kind && e["window"]!["resolution"]!.GetValue<string>() == resolution).ToList();
    }

    [Test]
    public async Task A_window_closes_once_with_its_final_values_and_a_late_point_corrects_it()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        var minute = DateTimeOffset.UtcNow.AddMinutes(-5).ToUnixTimeMilliseconds() / 60_000 * 60_000;
        await PostAsync(id, token, $$$"""[{"ts": {{{minute + 1000}}}, "values": {"v": 1}}, {"ts": {{{minute + 2000}}}, "values": {"v": 5}}, {"ts": {{{minute + 3000}}}, "values": {"v": 3}}]""");

        await WaitFor.ConditionAsync(async () => (await EventsAsync(id, "closed", "1m")).Count == 1, "the 1m window closes");
        var closed = (await EventsAsync(id, "closed", "1m")).Single()["window"]!;
        Assert.That(closed["start"]!.GetValue<DateTimeOffset>().ToUnixTimeMilliseconds(), Is.EqualTo(minute));
        Assert.That(closed["count"]!.GetValue<long>(), Is.EqualTo(3));
        Assert.That(closed["sum"]!.GetValue<double>(), Is.EqualTo(9));
        Assert.That(closed["min"]!.GetValue<double>(), Is.EqualTo(1));
        Assert.That(closed["max"]!.GetValue<double>(), Is.EqualTo(5));
        Assert.That(closed["avg"]!.GetValue<double>(), Is.EqualTo(3));
        Assert.That(closed["last"]!.GetValue<double>(), Is.EqualTo(3));

        // A resend of a stored point changes nothing, so it corrects nothing.
        await PostAsync(id, token, $$$"""{"ts": {{{minute + 2000}}}, "values": {"v": 5}}""");
        // A late point does.
        await PostAsync(id, token, $$$"""{"ts": {{{minute + 59_000}}}, "values": {"v": 11}}""");

        await WaitFor.ConditionAsync(async () => (await EventsAsync(id, "corrected", "1m")).Count == 1, "the late point corrects the window");
        await Task.Delay(600);
        var corrections = await EventsAsync(id, "corrected", "1m");
        Assert.That(corrections, Has.Count.EqualTo(1));
        Assert.That(corrections[0]["previousCount"]!.GetValue<long>(), Is.EqualTo(3));
        Assert.That(corrections[0]["window"]!["count"]!.GetValue<long>(), Is.EqualTo(4));
        Assert.That(corrections[0]["window"]!["last"]!.GetValue<double>(), Is.EqualTo(11));
        Assert.That(await EventsAsync(id, "closed", "1m"), Has.Count.EqualTo(1), "closed once");
    }

    [Test]
    public async Task Metrics_count_committed_telemetry_and_closed_windows()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        await PostAsync(id, token, $$$"""{"ts": {{{DateTimeOffset.UtcNow.AddMinutes(-3).ToUnixTimeMilliseconds()}}}, "values": {"v": 1}}""");
        await WaitFor.ConditionAsync(async () => (await EventsAsync(id, "closed", "1m")).Count == 1, "the window closes");

        using var http = Hub.Anonymous();
        var text = await http.GetStringAsync("/metrics");

        Assert.That(text, Does.Contain("# TYPE iothub_telemetry_messages_total counter"));
        Assert.That(text, Does.Match(@"iothub_windows_closed_total\{resolution=""1m""\} [1-9]"));
        Assert.That(text, Does.Contain("process_resident_memory_bytes"));
        Assert.That(text, Does.Match(@"dotnet_gc_allocated_bytes_total [1-9]"));
        Assert.That(text, Does.Match(@"dotnet_gc_collections_total\{generation=""0""\} \d"));
        Assert.That(text, Does.Contain("dotnet_gc_pause_seconds_total "));
    }
}

[TestFixture(Store.Sqlite)]
[TestFixture(Store.Postgres)]
public sealed class WindowRestartTests(Store store) : HubFixture(store)
{
    protected override IDictionary<string, string?> Settings => new Dictionary<string, string?>
    {
        ["Aggregation:AllowedLateness"] = "00:00:01",
        ["Aggregation:IdleClose"] = "00:10:00",
        ["Aggregation:TickInterval"] = "00:00:00.200",
    };

    [Test]
    public async Task A_window_open_at_a_restart_still_closes_once_afterwards()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var previousMinute = now / 60_000 * 60_000 - 60_000;
        using (var http = Hub.WithBearer(token))
            Assert.That((int)(await http.PostAsync($"/api/v1/devices/{id}/telemetry", Json.Body($$$"""{"ts": {{{previousMinute + 1000}}}, "values": {"v": 4}}"""))).StatusCode, Is.EqualTo(202));

        await Hub.RestartAsync();
        // A later point moves the device's watermark past the old window's end plus lateness.
        var later = Math.Max(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), previousMinute + 61_500);
        using (var http = Hub.WithBearer(token))
            Assert.That((int)(await http.PostAsync($"/api/v1/devices/{id}/telemetry", Json.Body($$$"""{"ts": {{{later}}}, "values": {"v": 5}}"""))).StatusCode, Is.EqualTo(202));

        using var admin = await Hub.AdminAsync();
        await WaitFor.ConditionAsync(async () => (await admin.GetJsonAsync($"/api/v1/windows/recent?deviceId={id}"))["items"]!.AsArray()
            .Any(e => e!["window"]!["resolution"]!.GetValue<string>() == "1m"
                      && e["window"]!["start"]!.GetValue<DateTimeOffset>().ToUnixTimeMilliseconds() == previousMinute), "the resumed window closes");
        var closed = (await admin.GetJsonAsync($"/api/v1/windows/recent?deviceId={id}"))["items"]!.AsArray()
            .Where(e => e!["kind"]!.GetValue<string>() == "closed" && e["window"]!["resolution"]!.GetValue<string>() == "1m").ToList();
        Assert.That(closed, Has.Count.EqualTo(1));
        Assert.That(closed[0]!["window"]!["sum"]!.GetValue<double>(), Is.EqualTo(4));
    }
}
