using System.Net;
using System.Net.Http.Json;
using IoTHub.Tests.Infrastructure;

namespace IoTHub.Tests.Gateway;

[TestFixture(Store.Sqlite)]
[TestFixture(Store.Postgres)]
[OwnHost("reads every audit entry of the last second")]
public sealed class AuditTests(Store store) : HubFixture(store)
{
    [Test]
    public async Task Admin_actions_are_audited_with_who_what_target_when_and_where()
    {
        var before = DateTimeOffset.UtcNow.AddSeconds(-1);
        var (id, _) = await Hub.CreateDeviceAsync();
        using var admin = await Hub.AdminAsync();
        await admin.PostAsync($"/api/v1/devices/{id}/rotate-token", null);
        using var viewer = Hub.WithApiKey(await Hub.CreateApiKeyAsync("viewer"));
        var refused = await viewer.DeleteAsync($"/api/v1/devices/{id}");
        Assert.That(refused.StatusCode, Is.EqualTo(HttpStatusCode.Forbidden));

        var audit = await admin.GetJsonAsync($"/api/v1/audit?from={Uri.EscapeDataString(before.ToString("O"))}");
        var items = audit["items"]!.AsArray().Select(i => i!).ToList();
        var created = items.Single(i => i["action"]!.GetValue<string>() == "CreateDevice" && i["status"]!.GetValue<int>() == 201
            && (i["target"]?.GetValue<string>() ?? "").Length == 0 && i["actor"]!.GetValue<string>() == "admin");
        Assert.That(created["remoteAddress"]!.GetValue<string>(), Does.Contain("127.0.0.1"));
        Assert.That(created["at"]!.GetValue<DateTimeOffset>(), Is.GreaterThanOrEqualTo(before));
        var rotated = items.Single(i => i["action"]!.GetValue<string>() == "RotateDeviceToken");
        Assert.That(rotated["target"]!.GetValue<string>(), Is.EqualTo($"id={id}"));
        Assert.That(rotated["role"]!.GetValue<string>(), Is.EqualTo("admin"));
        var denied = items.Single(i => i["action"]!.GetValue<string>() == "DeleteDevice");
        Assert.That(denied["status"]!.GetValue<int>(), Is.EqualTo(403));
        Assert.That(denied["actorKind"]!.GetValue<string>(), Is.EqualTo("apikey"));
    }

    [Test]
    public async Task A_failed_login_is_audited_with_the_username_and_never_the_password()
    {
        using var http = Hub.Anonymous();
        var user = "mallory-" + Guid.NewGuid().ToString("N")[..6];
        await http.PostAsJsonAsync("/api/v1/auth/token", new { username = user, password = "hunter2-secret-guess" });

        using var admin = await Hub.AdminAsync();
        var audit = await admin.GetJsonAsync($"/api/v1/audit?actor={user}");
        var entry = audit["items"]!.AsArray().Single()!;
        Assert.That(entry["action"]!.GetValue<string>(), Is.EqualTo("IssueToken"));
        Assert.That(entry["status"]!.GetValue<int>(), Is.EqualTo(401));
        Assert.That(audit.ToJsonString(), Does.Not.Contain("hunter2"));
    }

    [Test]
    public async Task Only_admins_read_the_audit_log()
    {
        using var operatorKey = Hub.WithApiKey(await Hub.CreateApiKeyAsync("operator"));
        Assert.That((await operatorKey.GetAsync("/api/v1/audit")).StatusCode, Is.EqualTo(HttpStatusCode.Forbidden));
    }
}
