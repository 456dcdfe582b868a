// Resolves bearer tokens and API keys to a role. Lookups are by SHA-256 hash and cached for a few seconds;
// revoking a key or deleting a user drops the cached entry at once.
using System.Collections.Concurrent;
using IoTHub.Contracts;
using IoTHub.Gateway.ApiKeys;
using IoTHub.Gateway.Users;
using IoTHub.Storage;
using Microsoft.EntityFrameworkCore;

namespace IoTHub.Gateway.Auth;

internal sealed record Caller(string Name, string Role, string Kind, long Id);

internal sealed class CredentialVerifier(IServiceScopeFactory scopes, TimeProvider time) : IAppKeyVerifier
{
    private const long CacheMs = 10_000;
    private readonly ConcurrentDictionary<string, (Caller? Caller, long Until)> _cache = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<long, long> _keyUse = new();

    public async ValueTask<Caller?> BearerAsync(string token, CancellationToken ct)
    {
        if (token.Length is 0 or > 512) return null;
        var hash = Secret.Hash(token);
        var now = time.NowMs();
        if (_cache.TryGetValue("t:" + hash, out var hit) && hit.Until > now) return hit.Caller;
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<HubDb>();
        var row = await db.Set<AccessToken>().AsNoTracking().Where(t => t.TokenHash == hash && t.ExpiresAt > now)
            .Join(db.Set<User>(), t => t.UserId, u => u.Id, (t, u) => new { u.Id, u.Username, u.Role, t.ExpiresAt })
            .FirstOrDefaultAsync(ct);
        var caller = row is null ? null : new Caller(row.Username, row.Role, "user", row.Id);
        _cache["t:" + hash] = (caller, Math.Min(now + CacheMs, row?.ExpiresAt ?? long.MaxValue));
        return caller;
    }

    public async ValueTask<Caller?> ApiKeyAsync(string key, CancellationToken ct)
    {
        if (key.Length is 0 or > 512) return null;
        var hash = Secret.Hash(key);
        var now = time.NowMs();
        if (!_cache.TryGetValue("k:" + hash, out var hit) || hit.Until <= now)
        {
            await using var scope = scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<HubDb>();
            var row = await db.Set<ApiKey>().AsNoTracking().Where(k => k.KeyHash == hash && k.RevokedAt == null)
                .Select(k => new { k.Id, k.Name, k.Role }).FirstOrDefaultAsync(ct);
            hit = (row is null ? null : new Caller("apikey:" + row.Name, row.Role, "apikey", row.Id), now + CacheMs);
            _cache["k:" + hash] = hit;
        }
        if (hit.Caller is { } c) _keyUse[c.Id] = now;
        return hit.Caller;
    }

    async ValueTask<AppKeyIdentity?> IAppKeyVerifier.VerifyAsync(string key, CancellationToken ct) =>
        await ApiKeyAsync(key, ct) is { } c ? new AppKeyIdentity(c.Id, c.Role) : null;

    /// <summary>Key ids with their last-use time since the previous call; written out periodically.</summary>
    public List<(long Id, long At)> TakeKeyUse()
    {
        var list = new List<(long, long)>();
        foreach (var (id, at) in _keyUse)
        {
            if (_keyUse.TryRemove(new KeyValuePair<long, long>(id, at))) list.Add((id, at));
        }
        return list;
    }

    /// <summary>Puts back uses that could not be written (a newer use of the same key wins).</summary>
    public void ReturnKeyUse(IEnumerable<(long Id, long At)> used)
    {
        foreach (var (id, at) in used) _keyUse.AddOrUpdate(id, at, (_, newer) => Math.Max(newer, at));
    }

    public void Forget() => _cache.Clear();
}
