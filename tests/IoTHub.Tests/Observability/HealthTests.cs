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
