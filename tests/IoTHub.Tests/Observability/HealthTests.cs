using System.Net;
using IoTHub.Tests.Infrastructure;

namespace IoTHub.Tests.Observability;

[TestFixture(Store.Sqlite)]
[TestFixture(Store.Postgres)]
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
}
