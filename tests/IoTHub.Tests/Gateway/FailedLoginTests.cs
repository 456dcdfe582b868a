// Password guessing through the real host, on the token endpoint and on the UI's sign-in form: each failed sign-in
// makes the next one wait longer (asserted as lower bounds only, timed from the previous attempt's start, which no
// slowness of the machine can shorten), the
// right password still gets in, also while someone else keeps guessing it, and an address that queues too many
// guesses is told when to retry.
using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using IoTHub.Tests.Infrastructure;

namespace IoTHub.Tests.Gateway;

[TestFixture(Store.Sqlite)]
[RunsAlone("times each failed login's delay to the millisecond")]
public sealed partial class FailedLoginTests(Store store) : HubFixture(store)
{
    private const int FirstMs = 200, MaxMs = 800;

    protected override IDictionary<string, string?> Settings => new Dictionary<string, string?>
    {
        ["RateLimits:FailedLoginDelayMilliseconds"] = FirstMs.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["RateLimits:FailedLoginMaxDelayMilliseconds"] = MaxMs.ToString(System.Globalization.CultureInfo.InvariantCulture),
    };

    [GeneratedRegex("name=\"__RequestVerificationToken\" value=\"([^\"]+)\"")]
    private static partial Regex TokenField();

    /// <summary>The wait before the n-th attempt (1-based) of a run of failures.</summary>
    private static double ExpectedWaitMs(int n) => n == 1 ? 0 : Math.Min(MaxMs, FirstMs * Math.Pow(2, n - 2));

    /// <summary>An HTTP client whose connections come from another loopback address, like a client on another machine.</summary>
    private HttpClient From(string localAddress) => new(new SocketsHttpHandler
    {
        AllowAutoRedirect = false,
        UseCookies = true,
        CookieContainer = new CookieContainer(),
        ConnectCallback = async (context, ct) =>
        {
            var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
            socket.Bind(new IPEndPoint(IPAddress.Parse(localAddress), 0));
            await socket.ConnectAsync(context.DnsEndPoint, ct);
            return new NetworkStream(socket, ownsSocket: true);
        },
    }) { BaseAddress = Hub.BaseAddress, Timeout = TimeSpan.FromSeconds(30) };

    private async Task<string> CreateUserAsync(string password)
    {
        var username = "u" + Guid.NewGuid().ToString("N")[..8];
        using var admin = await Hub.AdminAsync();
        var created = await admin.PostAsJsonAsync("/api/v1/users", new { username, password, role = "viewer" });
        Assert.That(created.IsSuccessStatusCode, Is.True, await created.Content.ReadAsStringAsync());
        return username;
    }

    /// <summary>Times each attempt from the start of the previous one. The hub waits from the time of the previous
    /// failure, which is after that attempt was sent: "end of this one − start of the previous one" is at least the
    /// wait even on a loaded machine. Timed from its own start, an attempt that a busy client sent late found part of
    /// its wait already gone (CI, with fixtures in parallel: 323 ms for a 400 ms wait).</summary>
    private sealed class Attempts
    {
        private readonly Stopwatch _clock = Stopwatch.StartNew();
        private double? _previousStart;

        public async Task<(HttpResponseMessage Response, double Ms)> TimedAsync(Func<Task<HttpResponseMessage>> send)
        {
            var start = _clock.Elapsed.TotalMilliseconds;
            var response = await send();
            var ms = _clock.Elapsed.TotalMilliseconds - (_previousStart ?? start);
            _previousStart = start;
            return (response, ms);
        }
    }

    private static Task<HttpResponseMessage> TokenAsync(HttpClient http, string username, string password) =>
        http.PostAsJsonAsync("/api/v1/auth/token", new { username, password });

    private static Task<HttpResponseMessage> FormAsync(HttpClient http, string antiforgery, string username, string password) =>
        http.PostAsync("/auth/login", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["__RequestVerificationToken"] = antiforgery, ["username"] = username, ["password"] = password, ["returnUrl"] = "/devices",
        }));

    [Test]
    public async Task Wrong_passwords_on_the_token_endpoint_are_answered_ever_more_slowly_and_the_right_one_still_gets_in()
    {
        const string password = "tina-correct-password";
        var username = await CreateUserAsync(password);
        using var http = From("127.0.0.31");
        var attempts = new Attempts();

        for (var n = 1; n <= 5; n++)
        {
            var (response, ms) = await attempts.TimedAsync(() => TokenAsync(http, username, "guess-" + n));
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized));
            Assert.That(ms, Is.GreaterThanOrEqualTo(ExpectedWaitMs(n) - TimerSlack.Milliseconds), $"failure {n} was answered after {ms:0} ms");
        }

        var (right, rightMs) = await attempts.TimedAsync(() => TokenAsync(http, username, password));
        Assert.That(right.StatusCode, Is.EqualTo(HttpStatusCode.OK), "no lockout: the right password gets in after the wait");
        Assert.That(rightMs, Is.GreaterThanOrEqualTo(MaxMs - TimerSlack.Milliseconds), "the right password waited its turn too");
        var (afterSuccess, _) = await attempts.TimedAsync(() => TokenAsync(http, username, "guess-again"));
        Assert.That(afterSuccess.StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized));
        var (next, nextMs) = await attempts.TimedAsync(() => TokenAsync(http, username, "guess-again-2"));
        Assert.That(next.StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized));
        Assert.That(nextMs, Is.GreaterThanOrEqualTo(FirstMs - TimerSlack.Milliseconds), "after the success the delays start over from the first");
    }

    [Test]
    public async Task The_owner_gets_in_while_someone_guesses_their_password_in_parallel_from_another_address_who_is_told_to_retry_later()
    {
        const string password = "uma-correct-password";
        var username = await CreateUserAsync(password);
        using var attacker = From("127.0.0.32");
        using var owner = From("127.0.0.33");

        for (var n = 1; n <= 3; n++) Assert.That((await TokenAsync(attacker, username, "guess-" + n)).StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized));
        var guessing = Enumerable.Range(0, 20).Select(i => TokenAsync(attacker, username, "parallel-" + i)).ToList();
        var ownerResponse = await TokenAsync(owner, username, password);
        var guesses = await Task.WhenAll(guessing);

        Assert.That(ownerResponse.StatusCode, Is.EqualTo(HttpStatusCode.OK), "the owner is not locked out");
        Assert.That(guesses.Select(g => g.StatusCode).Distinct(), Is.SubsetOf(new[] { HttpStatusCode.Unauthorized, HttpStatusCode.TooManyRequests }));
        var refused = guesses.Where(g => g.StatusCode == HttpStatusCode.TooManyRequests).ToList();
        Assert.That(refused, Is.Not.Empty, "guesses queued beyond the maximum wait are refused unchecked");
        Assert.That(refused[0].Headers.RetryAfter?.Delta, Is.GreaterThanOrEqualTo(TimeSpan.FromSeconds(1)));
        Assert.That(refused[0].Content.Headers.ContentType!.MediaType, Is.EqualTo("application/problem+json"));
        Assert.That(guesses.Count(g => g.StatusCode == HttpStatusCode.Unauthorized), Is.LessThan(guesses.Length / 2),
            "one address's guesses take turns: only those within the maximum wait are checked");
    }

    [Test]
    public async Task Wrong_passwords_on_the_sign_in_form_are_answered_ever_more_slowly_and_the_right_one_still_gets_in()
    {
        const string password = "vera-correct-password";
        var username = await CreateUserAsync(password);
        using var browser = From("127.0.0.34");
        var antiforgery = TokenField().Match(await browser.GetStringAsync("/login")).Groups[1].Value;
        var attempts = new Attempts();

        for (var n = 1; n <= 4; n++)
        {
            var (response, ms) = await attempts.TimedAsync(() => FormAsync(browser, antiforgery, username, "guess-" + n));
            Assert.That(response.Headers.Location!.ToString(), Does.StartWith("/login?failed=1"));
            Assert.That(ms, Is.GreaterThanOrEqualTo(ExpectedWaitMs(n) - TimerSlack.Milliseconds), $"failure {n} was answered after {ms:0} ms");
        }

        var (right, rightMs) = await attempts.TimedAsync(() => FormAsync(browser, antiforgery, username, password));
        Assert.That(right.Headers.Location!.ToString(), Is.EqualTo("/devices"), "no lockout: signed in");
        Assert.That(right.Headers.GetValues("Set-Cookie").Any(c => c.StartsWith("iothub.auth=", StringComparison.Ordinal)), Is.True);
        Assert.That(rightMs, Is.GreaterThanOrEqualTo(ExpectedWaitMs(5) - TimerSlack.Milliseconds));
    }

    [Test]
    public async Task The_sign_in_form_tells_an_address_that_queued_too_many_guesses_when_to_retry()
    {
        var username = await CreateUserAsync("wanda-correct-password");
        using var browser = From("127.0.0.35");
        var antiforgery = TokenField().Match(await browser.GetStringAsync("/login")).Groups[1].Value;
        for (var n = 1; n <= 3; n++) await FormAsync(browser, antiforgery, username, "guess-" + n);

        var answers = await Task.WhenAll(Enumerable.Range(0, 10).Select(i => FormAsync(browser, antiforgery, username, "parallel-" + i)));
        var told = answers.Select(a => a.Headers.Location!.ToString()).Where(l => l.StartsWith("/login?retryAfter=", StringComparison.Ordinal)).ToList();

        Assert.That(told, Is.Not.Empty);
        var page = await browser.GetStringAsync(told[0]);
        var seconds = Regex.Match(told[0], "retryAfter=([0-9]+)").Groups[1].Value;
        Assert.That(page, Does.Contain($"Too many failed sign-ins from this address. Try again in {seconds} s."));
    }
}
