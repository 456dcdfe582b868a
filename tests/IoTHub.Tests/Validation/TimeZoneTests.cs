// The hub's machine is not always on UTC. The contract's times are UTC (docs/contract.md), so a date-time that names
// no offset is UTC whatever the hub's time zone: a device's ts was stored an hour early on a hub in Berlin and refused
// as "ahead of the hub's clock" in New York; a query's from/to moved the same way.
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using IoTHub.Tests.Infrastructure;

namespace IoTHub.Tests.Validation;

public sealed class TimeZoneTests
{
    private const string Zone = "America/New_York";

    [Test]
    public async Task On_a_hub_in_New_York_a_date_time_without_an_offset_is_utc_in_telemetry_and_in_queries()
    {
        if (!File.Exists($"/usr/share/zoneinfo/{Zone}")) Assert.Fail($"no {Zone} in /usr/share/zoneinfo (Debian's tzdata, a required package)");
        var data = Path.Combine(Path.GetTempPath(), "iothub-tz-" + Guid.NewGuid().ToString("N")[..8]);
        using var hub = HubProcess.Start(HubPorts.Free(),
            [$"--DataDirectory={data}", $"--Bootstrap:AdminPassword={HubHost.AdminPassword}", "--Logging:LogLevel:Default=Warning"],
            new Dictionary<string, string> { ["TZ"] = Zone });
        try
        {
            using var admin = await hub.ReadyAsync();
            var login = await admin.PostAsJsonAsync("/api/v1/auth/token", new { username = "admin", password = HubHost.AdminPassword });
            admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", (await login.ReadJsonAsync())["token"]!.GetValue<string>());
            var device = await (await admin.PostAsJsonAsync("/api/v1/devices", new { id = "tz-device" })).ReadJsonAsync();

            var now = DateTimeOffset.UtcNow;
            var at = new DateTimeOffset(now.Year, now.Month, now.Day, now.Hour, now.Minute, now.Second, TimeSpan.Zero).AddMinutes(-10);
            static string NoOffset(DateTimeOffset t) => t.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss", CultureInfo.InvariantCulture);
            using var deviceHttp = new HttpClient { BaseAddress = hub.Ports.BaseAddress };
            deviceHttp.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", device["token"]!.GetValue<string>());
            var posted = await deviceHttp.PostAsync("/api/v1/devices/tz-device/telemetry",
                new StringContent($$$"""{"ts": "{{{NoOffset(at)}}}", "values": {"level": 7}}""", Encoding.UTF8, "application/json"));
            Assert.That(posted.StatusCode, Is.EqualTo(HttpStatusCode.Accepted), await posted.Content.ReadAsStringAsync());

            JsonNode? latest = null;
            await WaitFor.ConditionAsync(async () =>
                (latest = (await admin.GetJsonAsync("/api/v1/devices/tz-device/telemetry/latest"))["values"]!.AsArray().FirstOrDefault()) is not null,
                "the point is stored");
            Assert.That(latest!["ts"]!.GetValue<DateTimeOffset>(), Is.EqualTo(at), "stored at the UTC instant the text names");

            var range = await admin.GetJsonAsync(
                $"/api/v1/devices/tz-device/telemetry?metric=level&resolution=raw&from={NoOffset(at.AddMinutes(-5))}&to={NoOffset(at.AddMinutes(5))}");
            Assert.That(range["points"]!.AsArray(), Has.Count.EqualTo(1), "from and to without an offset are UTC too: " + range.ToJsonString());
        }
        finally
        {
            await hub.KillAsync();
            try { Directory.Delete(data, recursive: true); } catch (IOException) { }
        }
    }
}
