using System.Net;
using IoTHub.Tests.Infrastructure;

namespace IoTHub.Tests.Observability;

[TestFixture(Store.Sqlite)]
[TestFixture(Store.Postgres)]
[OwnHost("reads the series a hub lists from its start")]
public sealed class HealthTests(Store store) : HubFixture(store)
{
    [Test]
    public async Task Live_and_ready_answer_without_authentication()
    {
        using var http = Hub.Anonymous();
        Assert.That((await http.GetAsync("/health/live")).StatusCode, Is.EqualTo(HttpStatusCode.OK));
        var ready = await http.GetJsonAsync("/health/ready");
        Assert.That(ready["status"]!.GetValue<string>(), Is.EqualTo("Healthy"));
        Assert.That(ready["checks"]!["database"]!["status"]!.GetValue<string>(), Is.EqualTo("Healthy"));
        Assert.That(ready["checks"]!["broker"]!["status"]!.GetValue<string>(), Is.EqualTo("Healthy"));
    }

    /// <summary>Listed with a value before anything happened, so a dashboard sees every series from the start. Not "at
    /// zero": the instruments are the process's, and in this test process other hosts run (CI once saw the shared host
    /// expire a session while this one was listening).</summary>
    [Test]
    public async Task Every_iothub_series_is_listed_from_the_start()
    {
        using var http = Hub.Anonymous();
        var lines = (await http.GetStringAsync("/metrics")).Split('\n');
        foreach (var series in new[] { "iothub_mqtt_sessions_expired_total", "iothub_mqtt_protocol_errors_total", "iothub_commit_failures_total", "iothub_mqtt_session_queue_refused_total" })
        {
            Assert.That(lines, Does.Contain($"# TYPE {series} counter"), series);
            Assert.That(lines.Count(l => System.Text.RegularExpressions.Regex.IsMatch(l, $@"^{series} \d+$")), Is.EqualTo(1), series);
        }
    }
}

[TestFixture(Store.Sqlite)]
public sealed class OpenApiTests(Store store) : HubFixture(store)
{
    [Test]
    public async Task The_openapi_document_describes_the_api()
    {
        using var http = Hub.Anonymous();
        var doc = await http.GetJsonAsync("/openapi/v1.json");
        var paths = doc["paths"]!.AsObject().Select(p => p.Key).ToList();
        Assert.That(paths, Does.Contain("/api/v1/devices").And.Contain("/api/v1/devices/{id}/telemetry").And.Contain("/api/v1/auth/token"));
        Assert.That(doc["paths"]!["/api/v1/devices"]!["post"]!["summary"]!.GetValue<string>(), Does.Contain("token is shown"));
    }

    [Test]
    public async Task Every_operation_says_which_auth_it_needs()
    {
        using var http = Hub.Anonymous();
        var doc = await http.GetJsonAsync("/openapi/v1.json");
        Assert.That(doc["components"]!["securitySchemes"]!.AsObject().Select(s => s.Key), Is.EquivalentTo(new[] { "bearer", "apiKey" }));
        var operations = doc["paths"]!.AsObject().SelectMany(p => p.Value!.AsObject().Select(o => (Path: p.Key, Method: o.Key, Op: o.Value!))).ToList();
        Assert.That(operations.Where(o => !(o.Op["description"]?.GetValue<string>() ?? "").Contains("**Auth:**")).Select(o => $"{o.Method} {o.Path}"), Is.Empty);
        Assert.That(doc["paths"]!["/api/v1/users"]!["post"]!["description"]!.GetValue<string>(), Does.Contain("role admin"));
        Assert.That(doc["paths"]!["/api/v1/devices/{id}/commands"]!["post"]!["description"]!.GetValue<string>(), Does.Contain("role operator or admin"));
        Assert.That(doc["paths"]!["/api/v1/devices/{id}/telemetry"]!["post"]!["description"]!.GetValue<string>(), Does.Contain("device's own token"));
        Assert.That(doc["paths"]!["/api/v1/devices/{id}/telemetry"]!["post"]!["security"]!.AsArray(), Has.Count.EqualTo(1));
    }

    [Test]
    public async Task The_interactive_api_page_is_served_from_the_binary()
    {
        using var http = Hub.Anonymous();
        var page = await http.GetStringAsync("/docs/index.html");
        Assert.That(page, Does.Contain("swagger-ui"));
        var init = await http.GetStringAsync("/docs/index.js");
        Assert.That(init, Does.Contain("/openapi/v1.json"));
        Assert.That((await http.GetAsync("/docs/swagger-ui-bundle.js")).IsSuccessStatusCode, Is.True, "the UI's script is in the binary, not on a CDN");
    }
}
