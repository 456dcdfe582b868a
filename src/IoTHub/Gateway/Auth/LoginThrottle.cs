// Password guessing on the sign-in (POST /api/v1/auth/token and the UI's form) is slowed down as device logins are,
// but the wait comes before the password is checked, not after: a guesser who gives up on a slow answer has learnt
// nothing, since no check was made. After a failed sign-in, the next one for that username and the next one from
// that address (an IPv6 /64) wait RateLimits:FailedLoginDelayMilliseconds, doubling per further failure up to
// RateLimits:FailedLoginMaxDelayMilliseconds; a success resets both. Nobody is locked out: a username's wait never
// exceeds the maximum, however many guesses are made at it, so its owner's right password gets in after at most that.
// One address takes its turns one at a time: guesses sent in parallel queue behind each other, and one whose turn
// would be further away than the maximum is refused at once with the time to retry (429). Failures are forgotten
// after a quiet quarter of an hour; the tables are bounded.
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using IoTHub.Contracts;
using IoTHub.Gateway.RateLimits;
using Microsoft.Extensions.Options;

namespace IoTHub.Gateway.Auth;

/// <summary>What a sign-in attempt came to: the checked caller (null when the password was wrong), or, when the
/// attempt was not even checked, how long to wait before the next.</summary>
internal readonly record struct LoginOutcome<T>(T? Caller, TimeSpan? RetryAfter) where T : class;

internal sealed class LoginThrottle(TimeProvider time, IOptions<RateLimitOptions> options, LogThrottle lines, ILogger<LoginThrottle> log)
{
    private static readonly LogKind<string, string?, string> Refused = new(LogLevel.Warning, "sign-ins refused",
        "Refused the sign-in of {UserName} from {Remote}: {Why}");

    private static readonly TimeSpan ForgetAfter = TimeSpan.FromMinutes(15);
    private readonly ConcurrentDictionary<string, Failures> _users = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Failures> _addresses = new(StringComparer.Ordinal);

    /// <summary>Most usernames, and most addresses, whose failures are remembered; beyond it (after forgetting the stale
    /// ones) new ones are not tracked until there is room again.</summary>
    internal int MaxTracked { get; init; } = 100_000;

    /// <summary>Waits for the attempt's turn, runs the password check, and records its outcome.</summary>
    public async Task<LoginOutcome<T>> CheckAsync<T>(string? username, IPAddress? address, Func<CancellationToken, Task<T?>> check, CancellationToken ct)
        where T : class
    {
        var user = UserKey(username);
        var from = AddressKey(address);
        var now = time.GetUtcNow();
        var wait = TimeSpan.Zero;
        if (user is not null && _users.TryGetValue(user, out var u)) wait = u.Wait(now, Delay, ForgetAfter);
        if (from is not null && Track(_addresses, from, now) is { } a)
        {
            var turn = a.TakeTurn(now, Delay, ForgetAfter, MaxDelay);
            if (turn is null)
            {
                var retry = a.RetryAfter(now);
                lines.Write(log, Refused, from, Printable(username), address?.ToString(), "too many failed sign-ins from this address");
                return new LoginOutcome<T>(null, retry);
            }
            if (turn > wait) wait = turn.Value;
        }
        if (wait > TimeSpan.Zero) await Task.Delay(wait, time, ct);

        var caller = await check(ct);
        now = time.GetUtcNow();
        if (caller is not null)
        {
            if (user is not null) _users.TryRemove(user, out _);
            if (from is not null) _addresses.TryRemove(from, out _);
            return new LoginOutcome<T>(caller, null);
        }
        if (user is not null) Track(_users, user, now)?.Fail(now, ForgetAfter);
        if (from is not null) Track(_addresses, from, now)?.Fail(now, ForgetAfter);
        lines.Write(log, Refused, from, Printable(username), address?.ToString(), "wrong username or password");
        return new LoginOutcome<T>(null, null);
    }

    /// <summary>Usernames and addresses whose failures are remembered.</summary>
    internal int Tracked => _users.Count + _addresses.Count;

    private TimeSpan MaxDelay => TimeSpan.FromMilliseconds(options.Value.FailedLoginMaxDelayMilliseconds);

    /// <summary>The wait after this many consecutive failures: none, then the first delay, doubling, up to the maximum.</summary>
    private TimeSpan Delay(int failures)
    {
        var o = options.Value;
        if (failures <= 0) return TimeSpan.Zero;
        var ms = o.FailedLoginDelayMilliseconds * Math.Pow(2, Math.Min(failures - 1, 30));
        return TimeSpan.FromMilliseconds(Math.Min(ms, o.FailedLoginMaxDelayMilliseconds));
    }

    private Failures? Track(ConcurrentDictionary<string, Failures> table, string key, DateTimeOffset now)
    {
        if (table.TryGetValue(key, out var known)) return known;
        if (table.Count >= MaxTracked)
        {
            foreach (var (k, v) in table)
                if (v.Stale(now, ForgetAfter)) table.TryRemove(k, out _);
            if (table.Count >= MaxTracked) return null;
        }
        return table.GetOrAdd(key, static _ => new Failures());
    }

    private static string? UserKey(string? username) =>
        string.IsNullOrEmpty(username) ? null : username.Length <= 200 ? username : username[..200];

    /// <summary>An IPv4 address, or the /64 network of an IPv6 one: a single host usually has a whole /64 to pick from.</summary>
    internal static string? AddressKey(IPAddress? address)
    {
        if (address is null) return null;
        if (address.IsIPv4MappedToIPv6) address = address.MapToIPv4();
        if (address.AddressFamily != AddressFamily.InterNetworkV6) return address.ToString();
        Span<byte> bytes = stackalloc byte[16];
        address.TryWriteBytes(bytes, out _);
        bytes[8..].Clear();
        return new IPAddress(bytes).ToString() + "/64";
    }

    private static string Printable(string? s) =>
        s is null ? "" : new string(s.Take(64).Select(c => char.IsControl(c) ? '?' : c).ToArray());

    /// <summary>Consecutive failures of one username or address. A few sign-ins a second at most reach it: a lock is fine.</summary>
    private sealed class Failures
    {
        private readonly Lock _gate = new();
        private int _count;
        private DateTimeOffset _last;
        private DateTimeOffset _nextTurn;

        public bool Stale(DateTimeOffset now, TimeSpan forgetAfter)
        {
            lock (_gate) return now - _last > forgetAfter && _nextTurn <= now;
        }

        /// <summary>How long an attempt waits, without queueing it (usernames: many may try at once, none waits longer
        /// than the maximum).</summary>
        public TimeSpan Wait(DateTimeOffset now, Func<int, TimeSpan> delay, TimeSpan forgetAfter)
        {
            lock (_gate)
            {
                if (now - _last > forgetAfter) _count = 0;
                var until = _last + delay(_count);
                return until > now ? until - now : TimeSpan.Zero;
            }
        }

        /// <summary>Queues an attempt behind the earlier ones (addresses): its wait, or null when that would be longer than the maximum.</summary>
        public TimeSpan? TakeTurn(DateTimeOffset now, Func<int, TimeSpan> delay, TimeSpan forgetAfter, TimeSpan max)
        {
            lock (_gate)
            {
                if (now - _last > forgetAfter) _count = 0;
                if (_count == 0) return TimeSpan.Zero;
                var turn = _last + delay(_count);
                if (_nextTurn > turn) turn = _nextTurn;
                if (turn < now) turn = now;
                if (turn - now > max) return null;
                _nextTurn = turn + delay(_count);
                return turn - now;
            }
        }

        /// <summary>When the next turn after the queued ones comes, rounded up to whole seconds.</summary>
        public TimeSpan RetryAfter(DateTimeOffset now)
        {
            lock (_gate) return TimeSpan.FromSeconds(Math.Max(1, Math.Ceiling((_nextTurn - now).TotalSeconds)));
        }

        public void Fail(DateTimeOffset now, TimeSpan forgetAfter)
        {
            lock (_gate)
            {
                _count = now - _last > forgetAfter ? 1 : _count + 1;
                _last = now;
            }
        }
    }
}
