using System.Net;
using System.Text.RegularExpressions;
using IoTHub.Tests.Infrastructure;

namespace IoTHub.Tests.Gateway;

/// <summary>The web UI's cookie: set by a form post with an antiforgery token, HttpOnly and SameSite=Strict,
/// accepted by the API for reads, and for writes only with an antiforgery token.</summary>
[TestFixture(Store.Sqlite)]
public sealed partial class CookieAuthTests(Store store) : HubFixture(store)
{
    [GeneratedRegex("name=\"__RequestVerificationToken\" value=\"([^\"]+)\"")]
    private static partial Regex TokenField();

    private (HttpClient Http, CookieContainer Cookies) Browser()
    {
        var cookies = new CookieContainer();
        return (new HttpClient(new HttpClientHandler { CookieContainer = cookies, AllowAutoRedirect = false }) { BaseAddress = Hub.BaseAddress }, cookies);
    }

    private static async Task<string> FormTokenAsync(HttpClient http) => TokenField().Match(await http.GetStringAsync("/login")).Groups[1].Value;

    private static Task<HttpResponseMessage> LoginAsync(HttpClient http, string token, string password, string returnUrl = "/devices") =>
        http.PostAsync("/auth/login", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["__RequestVerificationToken"] = token, ["username"] = "admin", ["password"] = password, ["returnUrl"] = returnUrl,
        }));

    [Test]
    public async Task Signing_in_sets_a_strict_http_only_cookie_that_reads_the_api_but_writes_only_with_an_antiforgery_token()
    {
        var (http, _) = Browser();
        using var _ = http;
        var token = await FormTokenAsync(http);

        var wrong = await LoginAsync(http, token, "wrong-password");
        Assert.That(wrong.Headers.Location!.ToString(), Does.StartWith("/login?failed=1"));
        var right = await LoginAsync(http, token, HubHost.AdminPassword);
        Assert.That(right.StatusCode, Is.EqualTo(HttpStatusCode.Redirect));
        Assert.That(right.Headers.Location!.ToString(), Is.EqualTo("/devices"));
        var setCookie = right.Headers.GetValues("Set-Cookie").Single(c => c.StartsWith("iothub.auth=", StringComparison.Ordinal));
        Assert.That(setCookie, Does.Contain("httponly").IgnoreCase.And.Contain("samesite=strict").IgnoreCase);

        Assert.That((await http.GetAsync("/api/v1/devices")).StatusCode, Is.EqualTo(HttpStatusCode.OK));
        var forged = await http.PostAsync("/api/v1/devices", Json.Body("{}"));
        Assert.That(forged.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest), "a write with only the cookie could be a cross-site request");
        using var withToken = new HttpRequestMessage(HttpMethod.Post, "/api/v1/devices") { Content = Json.Body("{}") };
        withToken.Headers.Add("RequestVerificationToken", await FormTokenAsync(http));
        Assert.That((await http.SendAsync(withToken)).StatusCode, Is.EqualTo(HttpStatusCode.Created));

        var logoutToken = TokenField().Match(await (await http.GetAsync("/login")).Content.ReadAsStringAsync()).Groups[1].Value;
        await http.PostAsync("/auth/logout", new FormUrlEncodedContent(new Dictionary<string, string> { ["__RequestVerificationToken"] = logoutToken }));
        Assert.That((await http.GetAsync("/api/v1/devices")).StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized));
    }

    [Test]
    public async Task A_login_form_without_its_antiforgery_token_is_refused()
    {
        var (http, _) = Browser();
        using var _ = http;
        var response = await LoginAsync(http, "", HubHost.AdminPassword);
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        Assert.That(response.Headers.Contains("Set-Cookie") && response.Headers.GetValues("Set-Cookie").Any(c => c.StartsWith("iothub.auth=", StringComparison.Ordinal)), Is.False);
    }

    [TestCase("//evil.example/phish")]
    [TestCase("https://evil.example/")]
    [TestCase("/\\evil.example")]
    public async Task The_return_address_never_leaves_the_hub(string returnUrl)
    {
        var (http, _) = Browser();
        using var _ = http;
        var response = await LoginAsync(http, await FormTokenAsync(http), HubHost.AdminPassword, returnUrl);
        Assert.That(response.Headers.Location!.ToString(), Is.EqualTo("/"));
    }
}
