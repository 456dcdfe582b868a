// Walks every HTTP endpoint the host maps × every kind of caller and checks the status the role matrix promises:
// viewers read; operators also manage devices, profiles, state and commands; admins also users, keys and settings;
// device endpoints take only that device's token. An endpoint missing from the matrix fails the test.
using System.Net;
using IoTHub.Tests.Infrastructure;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace IoTHub.Tests.Gateway;

[TestFixture(Store.Sqlite)]
public sealed class RoleMatrixTests(Store store) : HubFixture(store)
{
    private static readonly Dictionary<string, string> Matrix = new()
    {
        ["* /health/live"] = "anonymous",
        ["* /health/ready"] = "anonymous",
        ["GET /metrics"] = "anonymous",
        ["GET /openapi/{documentName}.json"] = "anonymous",
        ["* /mqtt"] = "anonymous", // MQTT over WebSocket: MQTT's own CONNECT carries the credentials
        ["* /mqtt/negotiate"] = "anonymous",
        ["POST /api/v1/auth/token"] = "anonymous",
        ["POST /auth/login"] = "anonymous",
        ["POST /auth/logout"] = "anonymous",

        ["POST /api/v1/devices/{id}/telemetry"] = "device",
        ["POST /api/v1/devices/{id}/state/reported"] = "device",
        ["GET /api/v1/devices/{id}/state/desired"] = "device",
        ["GET /api/v1/devices/{id}/firmware/{artifactId:long}"] = "device",
        ["GET /api/v1/devices/{id}/firmware/pending"] = "device",
        ["POST /api/v1/devices/{id}/firmware/progress"] = "device",

        ["GET /api/v1/devices"] = "viewer",
        ["GET /api/v1/devices/{id}"] = "viewer",
        ["GET /api/v1/devices/{id}/connections"] = "viewer",
        ["GET /api/v1/devices/{id}/telemetry/latest"] = "viewer",
        ["GET /api/v1/devices/{id}/telemetry"] = "viewer",
        ["GET /api/v1/devices/{id}/commands"] = "viewer",
        ["GET /api/v1/devices/{id}/commands/{commandId}"] = "viewer",
        ["GET /api/v1/devices/{id}/state"] = "viewer",
        ["GET /api/v1/profiles"] = "viewer",
        ["GET /api/v1/profiles/{id}"] = "viewer",
        ["GET /api/v1/dead-letters"] = "viewer",
        ["GET /api/v1/windows/recent"] = "viewer",
        ["GET /api/v1/retention"] = "viewer",
        ["GET /api/v1/alarm-rules"] = "viewer",
        ["GET /api/v1/firmware"] = "viewer",
        ["GET /api/v1/firmware/{id:long}"] = "viewer",
        ["GET /api/v1/firmware-campaigns"] = "viewer",
        ["GET /api/v1/firmware-campaigns/{id:long}"] = "viewer",
        ["GET /api/v1/firmware-campaigns/{id:long}/devices"] = "viewer",
        ["POST /api/v1/firmware-campaigns/preview"] = "viewer",
        ["GET /api/v1/devices/{id}/firmware"] = "viewer",
        ["GET /api/v1/alarm-rules/{id:long}"] = "viewer",
        ["GET /api/v1/alarm-rules/{id:long}/preview"] = "viewer",
        ["GET /api/v1/alarms"] = "viewer",
        ["GET /api/v1/alarms/{id:long}"] = "viewer",
        ["GET /api/v1/alarms/counts"] = "viewer",

        ["POST /api/v1/devices"] = "operator",
        ["POST /api/v1/devices/import"] = "operator",
        ["PATCH /api/v1/devices/{id}"] = "operator",
        ["DELETE /api/v1/devices/{id}"] = "operator",
        ["POST /api/v1/devices/{id}/rotate-token"] = "operator",
        ["POST /api/v1/devices/{id}/commands"] = "operator",
        ["PUT /api/v1/devices/{id}/state"] = "operator",
        ["PATCH /api/v1/devices/{id}/state"] = "operator",
        ["POST /api/v1/profiles"] = "operator",
        ["PUT /api/v1/profiles/{id}"] = "operator",
        ["DELETE /api/v1/profiles/{id}"] = "operator",
        ["POST /api/v1/alarm-rules"] = "operator",
        ["POST /api/v1/firmware"] = "operator",
        ["DELETE /api/v1/firmware/{id:long}"] = "operator",
        ["POST /api/v1/firmware-campaigns"] = "operator",
        ["PUT /api/v1/firmware-campaigns/{id:long}"] = "operator",
        ["DELETE /api/v1/firmware-campaigns/{id:long}"] = "operator",
        ["POST /api/v1/firmware-campaigns/{id:long}/start"] = "operator",
        ["POST /api/v1/firmware-campaigns/{id:long}/pause"] = "operator",
        ["POST /api/v1/firmware-campaigns/{id:long}/resume"] = "operator",
        ["POST /api/v1/firmware-campaigns/{id:long}/abort"] = "operator",
        ["POST /api/v1/firmware-campaigns/{id:long}/approve"] = "operator",
        ["PUT /api/v1/alarm-rules/{id:long}"] = "operator",
        ["DELETE /api/v1/alarm-rules/{id:long}"] = "operator",
        ["POST /api/v1/alarms/{id:long}/acknowledge"] = "operator",
        ["POST /api/v1/alarms/{id:long}/snooze"] = "operator",
        ["POST /api/v1/alarms/{id:long}/assign"] = "operator",
        ["POST /api/v1/alarms/{id:long}/comments"] = "operator",

        ["GET /api/v1/users"] = "admin",
        ["POST /api/v1/users"] = "admin",
        ["GET /api/v1/api-keys"] = "admin",
        ["POST /api/v1/api-keys"] = "admin",
        ["DELETE /api/v1/api-keys/{id:long}"] = "admin",
        ["GET /api/v1/audit"] = "admin",
        ["POST /api/v1/retention/run"] = "admin",
        ["GET /api/v1/webhooks"] = "admin",
        ["POST /api/v1/webhooks"] = "admin",
        ["GET /api/v1/webhooks/{id:long}"] = "admin",
        ["PATCH /api/v1/webhooks/{id:long}"] = "admin",
        ["DELETE /api/v1/webhooks/{id:long}"] = "admin",
        ["POST /api/v1/webhooks/{id:long}/rotate-secret"] = "admin",
        ["GET /api/v1/webhooks/{id:long}/deliveries"] = "admin",
        ["POST /api/v1/webhooks/{id:long}/deliveries/{deliveryId:long}/replay"] = "admin",
        ["POST /api/v1/webhooks/{id:long}/replay"] = "admin",
        ["POST /api/v1/webhooks/{id:long}/test"] = "admin",
    };

    private static readonly string[] Ranks = ["viewer", "operator", "admin"];

    private IEnumerable<(string Key, string Method, string Pattern)> Endpoints()
    {
        foreach (var e in Hub.Services.GetServices<EndpointDataSource>().SelectMany(s => s.Endpoints).OfType<RouteEndpoint>().Where(e => !IsWebUi(e)))
        {
            var pattern = "/" + e.RoutePattern.RawText!.TrimStart('/');
            var methods = e.Metadata.GetMetadata<IHttpMethodMetadata>()?.HttpMethods;
            if (methods is null || methods.Count == 0) yield return ($"* {pattern}", "GET", pattern);
            else foreach (var m in methods) yield return ($"{m} {pattern}", m, pattern);
        }
    }

    /// <summary>The UI's pages, static assets and Blazor's own endpoints: covered by <see cref="Every_ui_page_sends_a_stranger_to_the_login"/>.</summary>
    private static bool IsWebUi(RouteEndpoint e) =>
        e.Metadata.Any(m => m.GetType().Name is "ComponentTypeMetadata" or "StaticAssetDescriptor")
        || e.RoutePattern.RawText is { } p && (p.StartsWith("/_blazor", StringComparison.Ordinal) || p.StartsWith("_blazor", StringComparison.Ordinal)
            || p.Contains("_framework/", StringComparison.Ordinal) || p.Contains("_content/", StringComparison.Ordinal) || p.Contains("{**path:file}", StringComparison.Ordinal));

    [Test]
    public async Task Every_ui_page_sends_a_stranger_to_the_login()
    {
        var pages = Hub.Services.GetServices<EndpointDataSource>().SelectMany(s => s.Endpoints).OfType<RouteEndpoint>()
            .Where(e => e.Metadata.Any(m => m.GetType().Name == "ComponentTypeMetadata") && e.Metadata.GetMetadata<IHttpMethodMetadata>()?.HttpMethods.Contains("GET") == true)
            .Select(e => "/" + e.RoutePattern.RawText!.TrimStart('/')).Distinct().ToList();
        Assert.That(pages, Does.Contain("/devices").And.Contain("/audit").And.Contain("/login"));
        using var http = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false }) { BaseAddress = Hub.BaseAddress };
        foreach (var page in pages)
        {
            var url = System.Text.RegularExpressions.Regex.Replace(page, @"\{(\w+)[^}]*\}", "1"); // "1" also fits {id:long}
            var response = await http.GetAsync(url);
            if (page == "/login") Assert.That((int)response.StatusCode, Is.EqualTo(200));
            else Assert.That(response.Headers.Location?.ToString(), Does.Contain("/login"), $"{page} answered {(int)response.StatusCode} to a stranger");
        }
    }

    [Test]
    public void Every_endpoint_has_an_entry_in_the_role_matrix()
    {
        var missing = Endpoints().Select(e => e.Key).Where(k => !Matrix.ContainsKey(k)).Distinct().ToList();
        Assert.That(missing, Is.Empty, "add these endpoints to the role matrix (and decide who may call them)");
        var stale = Matrix.Keys.Except(Endpoints().Select(e => e.Key)).ToList();
        Assert.That(stale, Is.Empty, "the matrix names endpoints that no longer exist");
    }

    [TestCase("none")]
    [TestCase("viewer")]
    [TestCase("operator")]
    [TestCase("admin")]
    [TestCase("admin-bearer")]
    [TestCase("device")]
    [TestCase("revoked-key")]
    public async Task Each_caller_gets_what_the_matrix_promises_on_every_endpoint(string caller)
    {
        var (deviceId, deviceToken) = await Hub.CreateDeviceAsync();
        using var http = caller switch
        {
            "none" => Hub.Anonymous(),
            "viewer" or "operator" or "admin" => Hub.WithApiKey(await Hub.CreateApiKeyAsync(caller)),
            "admin-bearer" => await Hub.AdminAsync(),
            "device" => Hub.WithBearer(deviceToken),
            _ => Hub.WithApiKey(await RevokedKeyAsync()),
        };
        var rank = caller switch { "admin-bearer" => 2, _ => Array.IndexOf(Ranks, caller) };

        var wrong = new List<string>();
        foreach (var (key, method, pattern) in Endpoints().Where(e => Matrix.ContainsKey(e.Key)))
        {
            var needs = Matrix[key];
            var isDeviceEndpoint = needs == "device";
            // Device endpoints get the caller's device as {id}; everything else an id that exists nowhere, so nothing is destroyed.
            var url = System.Text.RegularExpressions.Regex.Replace(pattern, @"\{(\w+)[^}]*\}", m =>
                m.Groups[1].Value == "documentName" ? "v1" : isDeviceEndpoint && m.Groups[1].Value == "id" ? deviceId : "999999");
            using var request = new HttpRequestMessage(new HttpMethod(method), url);
            if (method is "POST" or "PUT" or "PATCH") request.Content = Json.Body("{}");
            using var response = await http.SendAsync(request);
            var status = (int)response.StatusCode;

            int[] allowedStatuses = needs switch
            {
                "anonymous" => [],
                "device" => caller == "device" ? [] : [401],
                _ when rank < 0 => [401],
                _ when rank < Array.IndexOf(Ranks, needs) => [403],
                _ => [],
            };
            var ok = allowedStatuses.Length == 0 ? status is not (401 or 403) : allowedStatuses.Contains(status);
            if (!ok) wrong.Add($"{key} as {caller}: {status} (expected {(allowedStatuses.Length == 0 ? "neither 401 nor 403" : string.Join('/', allowedStatuses))})");
        }
        Assert.That(wrong, Is.Empty);
    }

    private async Task<string> RevokedKeyAsync()
    {
        using var admin = await Hub.AdminAsync();
        var created = await (await admin.PostAsync("/api/v1/api-keys", Json.Of(new { name = "soon-revoked", role = "admin" }))).ReadJsonAsync();
        Assert.That((await admin.DeleteAsync($"/api/v1/api-keys/{created["id"]}")).StatusCode, Is.EqualTo(HttpStatusCode.NoContent));
        return created["key"]!.GetValue<string>();
    }
}
