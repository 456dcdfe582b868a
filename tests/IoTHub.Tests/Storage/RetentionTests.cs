using System.Net;
using IoTHub.Tests.Infrastructure;

namespace IoTHub.Tests.Storage;

[TestFixture(Store.Sqlite)]
[TestFixture(Store.Postgres)]
public sealed class RetentionTests(Store store) : HubFixture(store)
{
    protected override IDictionary<string, string?> Settings => new Dictionary<string, string?>
    {
        ["Validation:MaxPastAge"] = "10.00:00:00",
        ["Retention:Raw"] = "3.00:00:00",
    };

    [Test]
    public async Task One_run_removes_raw_data_older_than_the_policy_and_the_rollups_stay()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        var old = DateTimeOffset.UtcNow.AddDays(-6);
        var recent = DateTimeOffset.UtcNow.AddHours(-1);
        using (var http = Hub.WithBearer(token))
        {
            var body = $$$"""[{"ts": "{{{old:O}}}", "values": {"v": 1.5}}, {"ts": "{{{recent:O}}}", "values": {"v": 2.5}}]""";
            Assert.That((await http.PostAsync($"/api/v1/devices/{id}/telemetry", Json.Body(body))).StatusCode, Is.EqualTo(HttpStatusCode.Accepted));
        }
        using var admin = await Hub.AdminAsync();
        var from = Uri.EscapeDataString(old.AddDays(-1).ToString("O"));

        var run = await admin.PostAsync("/api/v1/retention/run", null);

        Assert.That(run.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        var status = await run.ReadJsonAsync();
        if (Store == Store.Postgres)
            Assert.That(status["lastRun"]!["rawPartitions"]!.GetValue<int>(), Is.GreaterThanOrEqualTo(1), "whole partitions are dropped");
        else
            Assert.That(status["lastRun"]!["rawRows"]!.GetValue<long>(), Is.GreaterThanOrEqualTo(1));
        Assert.That(status["policy"]!["raw"]!.GetValue<string>(), Is.EqualTo("3.00:00:00"));
        var raw = await admin.GetJsonAsync($"/api/v1/devices/{id}/telemetry?metric=v&resolution=raw&from={from}");
        Assert.That(raw["points"]!.AsArray().Select(p => p!["value"]!.GetValue<double>()), Is.EqualTo(new[] { 2.5 }));
        foreach (var resolution in new[] { "1m", "1h", "1d" })
        {
            var windows = await admin.GetJsonAsync($"/api/v1/devices/{id}/telemetry?metric=v&resolution={resolution}&from={from}");
            Assert.That(windows["points"]!.AsArray().Select(p => p!["sum"]!.GetValue<double>()).Sum(), Is.EqualTo(4.0), $"{resolution} rollups stay");
        }
    }

    [Test]
    public async Task The_policy_is_visible_and_running_it_needs_an_admin()
    {
        using var admin = await Hub.AdminAsync();
        var status = await admin.GetJsonAsync("/api/v1/retention");
        Assert.That(status["policy"]!["oneMinute"]!.GetValue<string>(), Is.EqualTo("90.00:00:00"));
        Assert.That(status["policy"]!["oneDay"], Is.Null, "1d rollups are kept forever by default");
        Assert.That((await Hub.Anonymous().PostAsync("/api/v1/retention/run", null)).StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized));
    }
}
