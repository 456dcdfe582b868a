// The sign-in throttle on a fake clock: failed sign-ins make the next ones for that username and from that address
// wait ever longer, up to the maximum; a success resets; the real user is never locked out; an address's parallel
// guesses take turns; memory stays bounded.
using System.Net;
using IoTHub.Contracts;
using IoTHub.Gateway.Auth;
using IoTHub.Gateway.RateLimits;
using IoTHub.Tests.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace IoTHub.Tests.Gateway;

[FixtureLifeCycle(LifeCycle.InstancePerTestCase)]
public sealed class LoginThrottleTests
{
    private const int FirstMs = 1000, MaxMs = 8000;
    private static readonly IPAddress Attacker = IPAddress.Parse("10.0.0.66");
    private static readonly IPAddress Owner = IPAddress.Parse("192.168.1.5");

    private readonly FakeTimeProvider _time = new(DateTimeOffset.Parse("2026-11-28T10:00:00Z", System.Globalization.CultureInfo.InvariantCulture));
    private readonly LoginThrottle _throttle;
    private int _checks;

    public LoginThrottleTests()
    {
        var lines = new LogThrottle(_time, Options.Create(new LogThrottleOptions()));
        _throttle = new LoginThrottle(_time, Options.Create(new RateLimitOptions { FailedLoginDelayMilliseconds = FirstMs, FailedLoginMaxDelayMilliseconds = MaxMs }),
            lines, NullLogger<LoginThrottle>.Instance);
    }

    private Task<LoginOutcome<string>> Attempt(string username, IPAddress from, bool right = false) =>
        _throttle.CheckAsync(username, from, _ =>
        {
            Interlocked.Increment(ref _checks);
            return Task.FromResult(right ? username : null);
        }, CancellationToken.None);

    /// <summary>Asserts that the attempt is not checked before <paramref name="wait"/> of fake time has passed, and is right after.</summary>
    private async Task<LoginOutcome<string>> AnsweredAfterAsync(Task<LoginOutcome<string>> attempt, TimeSpan wait)
    {
        if (wait > TimeSpan.Zero)
        {
            _time.Advance(wait - TimeSpan.FromMilliseconds(1));
            Assert.That(attempt.IsCompleted, Is.False, $"answered before {wait.TotalMilliseconds} ms");
            _time.Advance(TimeSpan.FromMilliseconds(1));
        }
        return await attempt.WaitAsync(TimeSpan.FromSeconds(10));
    }

    private async Task FailAsync(string username, IPAddress from, int times)
    {
        for (var i = 0; i < times; i++)
        {
            var attempt = Attempt(username, from);
            while (!attempt.IsCompleted) _time.Advance(TimeSpan.FromMilliseconds(250));
            Assert.That((await attempt).Caller, Is.Null);
        }
    }

    [Test]
    public async Task Each_failed_sign_in_makes_the_next_one_wait_twice_as_long_up_to_the_maximum()
    {
        int[] expectedMs = [0, 1000, 2000, 4000, 8000, 8000, 8000];
        foreach (var ms in expectedMs)
        {
            var outcome = await AnsweredAfterAsync(Attempt("admin", Attacker), TimeSpan.FromMilliseconds(ms));
            Assert.That(outcome, Is.EqualTo(new LoginOutcome<string>(null, null)), "checked and wrong");
        }
        Assert.That(_checks, Is.EqualTo(expectedMs.Length), "each attempt was checked once its wait was over");
    }

    [Test]
    public async Task The_right_password_gets_in_after_at_most_the_maximum_wait_while_someone_else_keeps_guessing_it()
    {
        await FailAsync("admin", Attacker, 20);
        var guesses = Enumerable.Range(0, 3).Select(_ => Attempt("admin", Attacker)).ToList(); // the attacker's queue

        var owner = Attempt("admin", Owner, right: true);
        var outcome = await AnsweredAfterAsync(owner, TimeSpan.FromMilliseconds(MaxMs));
        Assert.That(outcome.Caller, Is.EqualTo("admin"));

        _time.Advance(TimeSpan.FromMilliseconds(3 * MaxMs));
        foreach (var g in guesses) Assert.That((await g.WaitAsync(TimeSpan.FromSeconds(10))).Caller, Is.Null);
    }

    [Test]
    public async Task A_success_resets_the_wait_of_the_username_and_of_the_address()
    {
        await FailAsync("admin", Owner, 3);
        Assert.That((await AnsweredAfterAsync(Attempt("admin", Owner, right: true), TimeSpan.FromMilliseconds(4000))).Caller, Is.EqualTo("admin"));

        await AnsweredAfterAsync(Attempt("admin", Owner), TimeSpan.Zero);
        await AnsweredAfterAsync(Attempt("admin", Owner), TimeSpan.FromMilliseconds(FirstMs));
    }

    [Test]
    public async Task The_same_username_waits_from_any_address_and_the_same_address_waits_for_any_username()
    {
        await FailAsync("admin", Attacker, 2); // both now wait 2 s

        var sameUser = Attempt("admin", IPAddress.Parse("10.9.9.9"));
        var sameAddress = Attempt("olivia", Attacker);
        var neither = Attempt("carol", Owner);

        Assert.That(neither.IsCompleted, Is.True, "another username from another address does not wait");
        _time.Advance(TimeSpan.FromMilliseconds(1999));
        Assert.That(sameUser.IsCompleted || sameAddress.IsCompleted, Is.False);
        _time.Advance(TimeSpan.FromMilliseconds(1));
        await Task.WhenAll(sameUser, sameAddress).WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Test]
    public async Task Guesses_sent_at_once_from_one_address_take_turns_and_those_beyond_the_maximum_are_refused_unchecked()
    {
        await FailAsync("admin", Attacker, 3); // the next turn is 4 s away, then every 4 s
        var checksBefore = _checks;
        var parallel = Enumerable.Range(0, 6).Select(i => Attempt("user" + i, Attacker)).ToList();

        var refused = parallel.Where(p => p.IsCompleted).ToList();
        Assert.That(refused, Has.Count.EqualTo(4), "turns at 4 s and 8 s; the rest would wait longer than the maximum");
        foreach (var r in refused) Assert.That((await r).RetryAfter, Is.EqualTo(TimeSpan.FromSeconds(12)));
        Assert.That(_checks, Is.EqualTo(checksBefore), "a refused attempt is not checked");

        _time.Advance(TimeSpan.FromMilliseconds(4000));
        await parallel[0].WaitAsync(TimeSpan.FromSeconds(10));
        Assert.That(parallel[1].IsCompleted, Is.False, "the second turn is 4 s after the first");
        _time.Advance(TimeSpan.FromMilliseconds(4000));
        await parallel[1].WaitAsync(TimeSpan.FromSeconds(10));
        Assert.That(_checks, Is.EqualTo(checksBefore + 2));
    }

    [Test]
    public void An_ipv6_network_of_64_bits_counts_as_one_address_and_an_ipv4_mapped_one_as_ipv4()
    {
        Assert.That(LoginThrottle.AddressKey(IPAddress.Parse("2001:db8:1:2::1")), Is.EqualTo("2001:db8:1:2::/64"));
        Assert.That(LoginThrottle.AddressKey(IPAddress.Parse("2001:db8:1:2:ffff:1:2:3")), Is.EqualTo("2001:db8:1:2::/64"));
        Assert.That(LoginThrottle.AddressKey(IPAddress.Parse("::ffff:10.0.0.1")), Is.EqualTo("10.0.0.1"));
    }

    [Test]
    public async Task A_flood_of_distinct_usernames_and_addresses_keeps_the_tables_bounded()
    {
        var throttle = new LoginThrottle(_time, Options.Create(new RateLimitOptions { FailedLoginDelayMilliseconds = FirstMs, FailedLoginMaxDelayMilliseconds = MaxMs }),
            new LogThrottle(_time, Options.Create(new LogThrottleOptions())), NullLogger<LoginThrottle>.Instance) { MaxTracked = 50 };
        for (var i = 0; i < 1000; i++)
        {
            var outcome = await throttle.CheckAsync("user" + i, IPAddress.Parse($"10.1.{i / 256}.{i % 256}"), _ => Task.FromResult<string?>(null), CancellationToken.None);
            Assert.That(outcome.Caller, Is.Null);
        }
        Assert.That(throttle.Tracked, Is.LessThanOrEqualTo(100));

        _time.Advance(TimeSpan.FromMinutes(16));
        await throttle.CheckAsync("late", IPAddress.Parse("10.2.0.1"), _ => Task.FromResult<string?>(null), CancellationToken.None);
        Assert.That(throttle.Tracked, Is.LessThanOrEqualTo(2), "stale failures make room for new ones");
    }
}
