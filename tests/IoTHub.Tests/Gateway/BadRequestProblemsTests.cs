// A request the API cannot bind is a 400 problem that names the field or query parameter and why, never a bare 400 or
// a 500: non-finite numbers, wrong JSON types, malformed JSON and query values of the wrong type.
using System.Net;
using System.Net.Http.Json;
using System.Text;
using IoTHub.Tests.Infrastructure;

namespace IoTHub.Tests.Gateway;

[TestFixture(Store.Sqlite)]
[TestFixture(Store.Postgres)]
public sealed class BadRequestProblemsTests(Store store) : HubFixture(store)
{
    private static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");

    [TestCase("1e400")]
    [TestCase("-1e400")]
    [TestCase("\"NaN\"")]
    [TestCase("\"Infinity\"")]
    public async Task A_profile_bound_that_is_not_a_finite_number_is_a_400_naming_it_and_nothing_is_saved(string max)
    {
        using var admin = await Hub.AdminAsync();
        var id = "inf-" + Guid.NewGuid().ToString("N")[..8];
        var response = await admin.PostAsync("/api/v1/profiles", Json($$"""{"id": "{{id}}", "metrics": [{"name": "t", "type": "number", "max": {{max}}}]}"""));
        var problem = await response.ReadJsonAsync();
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest), problem.ToJsonString());
        Assert.That(problem["detail"]!.GetValue<string>(), Does.Contain("$.metrics[0].max").And.Contain("finite"));
        Assert.That((await admin.GetAsync($"/api/v1/profiles/{id}")).StatusCode, Is.EqualTo(HttpStatusCode.NotFound));
    }

    [Test]
    public async Task A_profile_update_with_an_infinite_bound_is_a_400_and_the_profile_is_unchanged()
    {
        using var admin = await Hub.AdminAsync();
        var id = "upd-" + Guid.NewGuid().ToString("N")[..8];
        (await admin.PostAsync("/api/v1/profiles", Json($$"""{"id": "{{id}}", "metrics": [{"name": "t", "type": "number", "max": 85}]}"""))).EnsureSuccessStatusCode();
        var response = await admin.PutAsync($"/api/v1/profiles/{id}", Json("""{"metrics": [{"name": "t", "type": "number", "max": 1e999}]}"""));
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest), await response.Content.ReadAsStringAsync());
        var profile = await admin.GetJsonAsync($"/api/v1/profiles/{id}");
        Assert.That(profile["metrics"]![0]!["max"]!.GetValue<double>(), Is.EqualTo(85));
    }

    [Test]
    public async Task A_body_field_of_the_wrong_type_is_named_with_its_json_path()
    {
        using var admin = await Hub.AdminAsync();
        var response = await admin.PostAsync("/api/v1/devices", Json("""{"id": 123}"""));
        var problem = await response.ReadJsonAsync();
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest), problem.ToJsonString());
        Assert.That(problem["detail"]!.GetValue<string>(), Does.StartWith("body $.id: ").And.Contain("wrong JSON type").Or.Contain("must be a string"));
    }

    [TestCase("/api/v1/devices", """{"name": "a", "name": "b"}""", "body $.name: ")]
    [TestCase("/api/v1/devices/{id}/commands", """{"name": "reboot", "params": {"delay": 1, "delay": 9}}""", "body $.params: ")]
    [TestCase("/api/v1/devices/{id}/state", """{"desired": {"interval": 60, "interval": 5}}""", "body: ")]
    public async Task A_name_given_twice_in_a_body_is_a_400_naming_it(string url, string body, string detail)
    {
        // RFC 8259 §4 leaves to each reader which of the two it keeps: a property took the last, a JSON value kept both.
        using var admin = await Hub.AdminAsync();
        var (id, _) = await Hub.CreateDeviceAsync();
        using var request = new HttpRequestMessage(url.EndsWith("/state", StringComparison.Ordinal) ? HttpMethod.Put : HttpMethod.Post, url.Replace("{id}", id))
        {
            Content = Json(body),
        };
        var response = await admin.SendAsync(request);
        var problem = await response.ReadJsonAsync();
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest), problem.ToJsonString());
        Assert.That(problem["detail"]!.GetValue<string>(), Does.StartWith(detail).And.Contain("appears more than once"));
    }

    private static readonly string Deep = string.Concat(Enumerable.Repeat("{\"a\":", 40)) + "1" + new string('}', 40);

    [TestCase("""{"label": "\ud800"}""", "lone surrogate")]
    [TestCase("""{"label": "a\u0000b"}""", "U+0000")]
    [TestCase("""{"a\u0000b": 1}""", "U+0000")]
    [TestCase("""{"big": 1e400}""", "finite number")]
    [TestCase("DEEP", "maximum depth of 32")]
    public async Task A_free_form_value_that_would_fail_later_is_a_400_and_changes_nothing(string value, string reason)
    {
        // Desired state and command params are kept as written: a lone surrogate was a 500, 63 levels were stored and then
        // every read of the device's state or command list was a 500, 1e400 and U+0000 were passed on to the device.
        value = value == "DEEP" ? Deep : value;
        using var admin = await Hub.AdminAsync();
        var (id, _) = await Hub.CreateDeviceAsync();

        var desired = await admin.PutAsync($"/api/v1/devices/{id}/state", Json($$"""{"desired": {{value}}}"""));
        var command = await admin.PostAsync($"/api/v1/devices/{id}/commands", Json($$"""{"name": "set", "deliverWhenOnline": true, "params": {{value}}}"""));

        foreach (var response in new[] { desired, command })
        {
            var problem = await response.ReadJsonAsync();
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest), problem.ToJsonString());
            Assert.That(problem["detail"]!.GetValue<string>(), Does.Contain(reason));
        }
        Assert.That(await admin.GetJsonAsync($"/api/v1/devices/{id}/state"), Is.Not.Null, "the state is still readable");
        Assert.That((await admin.GetJsonAsync($"/api/v1/devices/{id}/state"))["desired"]!["version"]!.GetValue<long>(), Is.Zero);
        Assert.That((await admin.GetJsonAsync($"/api/v1/devices/{id}/commands"))["items"]!.AsArray(), Is.Empty);
    }

    [Test]
    public async Task A_free_form_value_31_levels_deep_is_taken_and_read_back()
    {
        using var admin = await Hub.AdminAsync();
        var (id, _) = await Hub.CreateDeviceAsync();
        var deep = string.Concat(Enumerable.Repeat("{\"a\":", 31)) + "1" + new string('}', 31);

        var put = await admin.PutAsync($"/api/v1/devices/{id}/state", Json($$"""{"desired": {{deep}}}"""));
        Assert.That(put.StatusCode, Is.EqualTo(HttpStatusCode.OK), await put.Content.ReadAsStringAsync());
        Assert.That((await admin.PostAsync($"/api/v1/devices/{id}/commands", Json($$"""{"name": "set", "deliverWhenOnline": true, "params": {{deep}}}"""))).StatusCode,
            Is.EqualTo(HttpStatusCode.Accepted));
        Assert.That((await admin.GetAsync($"/api/v1/devices/{id}/state")).StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That((await admin.GetAsync($"/api/v1/devices/{id}/commands")).StatusCode, Is.EqualTo(HttpStatusCode.OK));
    }

    [Test]
    public async Task Text_that_is_not_unicode_in_a_typed_field_is_named_as_such()
    {
        using var admin = await Hub.AdminAsync();
        var response = await admin.PostAsync("/api/v1/devices", Json("""{"name": "\ud800"}"""));
        var problem = await response.ReadJsonAsync();
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest), problem.ToJsonString());
        Assert.That(problem["detail"]!.GetValue<string>(), Does.StartWith("body $.name: must be valid Unicode text"));
    }

    [Test]
    public async Task Malformed_json_is_a_400_that_says_so()
    {
        using var admin = await Hub.AdminAsync();
        var response = await admin.PostAsync("/api/v1/devices", Json("""{"id": "x",,}"""));
        var problem = await response.ReadJsonAsync();
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest), problem.ToJsonString());
        Assert.That(problem["detail"]!.GetValue<string>(), Does.StartWith("body").And.Contain("not valid JSON"));
    }

    [TestCase("/api/v1/devices?limit=abc", "limit: 'abc' must be a number")]
    [TestCase("/api/v1/dead-letters?from=banana", "from: 'banana' must be an ISO 8601 date-time")]
    public async Task A_query_value_of_the_wrong_type_is_named_with_its_value(string url, string detail)
    {
        using var admin = await Hub.AdminAsync();
        var response = await admin.GetAsync(url);
        var problem = await response.ReadJsonAsync();
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest), problem.ToJsonString());
        Assert.That(problem["detail"]!.GetValue<string>(), Does.StartWith(detail));
    }

    [Test]
    public async Task A_nul_character_in_a_body_is_named_with_its_path()
    {
        using var admin = await Hub.AdminAsync();
        var response = await admin.PostAsync("/api/v1/devices", Json("""{"id": "nul-x", "name": "a\u0000b"}"""));
        var problem = await response.ReadJsonAsync();
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest), problem.ToJsonString());
        Assert.That(problem["detail"]!.GetValue<string>(), Is.EqualTo("body $.name: text may not contain U+0000"));
    }
}
