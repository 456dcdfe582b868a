// Device credential checks for every protocol. Results are cached for a short time so HTTP and CoAP devices,
// which authenticate on every request, cost a hash and a dictionary lookup, not a query. Rotation, disabling
// and deletion invalidate the entry at once.
using System.Collections.Concurrent;
using IoTHub.Contracts;
using IoTHub.Storage;
using Mediator;
using Microsoft.EntityFrameworkCore;

namespace IoTHub.Devices;

internal sealed class DeviceAuthenticator(IServiceScopeFactory scopes, TimeProvider time, DevicePsk psk, ILogger<DeviceAuthenticator> log) : IDeviceAuthenticator
{
    // Devices whose DTLS handshakes fail for want of a stored key: told once each (bounded), not on every retry.
    private readonly ConcurrentDictionary<string, byte> _noPskLogged = new(StringComparer.Ordinal);
    private static readonly long CacheTtlMs = 30_000;
    private readonly ConcurrentDictionary<string, Entry> _cache = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, (string DeviceId, long ExpiresAtMs)> _byToken = new(StringComparer.Ordinal);
    // A reconnect storm of thousands of devices would otherwise open a database connection per CONNECT at once
    // (up to the pool's maximum, and past the server's max_connections with a second hub). Only cache misses wait here.
    private readonly SemaphoreSlim _lookups = new(MaxConcurrentLookups);
    internal const int MaxConcurrentLookups = 8;

    private sealed record Entry(string TokenHash, string? CertificateThumbprint, bool Enabled, string? ProfileId, long ExpiresAtMs);

    public async ValueTask<DeviceIdentity?> AuthenticateAsync(string deviceId, string token, CancellationToken ct)
    {
        if (string.IsNullOrEmpty(token) || token.Length > 512) return null;
        var entry = await EntryAsync(deviceId, ct);
        if (entry is null || !Secret.Matches(token, entry.TokenHash)) return null;
        return new DeviceIdentity(deviceId, entry.ProfileId, entry.Enabled);
    }

    public async ValueTask<DeviceIdentity?> AuthenticateTokenAsync(string token, CancellationToken ct)
    {
        if (string.IsNullOrEmpty(token) || token.Length > 512) return null;
        var hash = Secret.Hash(token);
        var now = time.NowMs();
        if (!_byToken.TryGetValue(hash, out var known) || known.ExpiresAtMs < now)
        {
            string? id;
            await _lookups.WaitAsync(ct);
            try
            {
                await using var scope = scopes.CreateAsyncScope();
                id = await scope.ServiceProvider.GetRequiredService<HubDb>().Set<Device>().AsNoTracking().Where(x => x.TokenHash == hash)
                    .Select(x => x.Id).FirstOrDefaultAsync(ct);
            }
            finally
            {
                _lookups.Release();
            }
            if (id is null) return null;
            if (_byToken.Count > 100_000) _byToken.Clear(); // bounded: a flood of made-up tokens misses, and is not kept
            _byToken[hash] = known = (id, now + CacheTtlMs);
        }
        // The device's own entry decides (a rotated token no longer matches it).
        return await AuthenticateAsync(known.DeviceId, token, ct);
    }

    public async ValueTask<DeviceIdentity?> FindAsync(string deviceId, CancellationToken ct) =>
        await EntryAsync(deviceId, ct) is { } entry ? new DeviceIdentity(deviceId, entry.ProfileId, entry.Enabled) : null;

    public async ValueTask<byte[]?> PskAsync(string deviceId, CancellationToken ct)
    {
        if (!Identifier.IsValid(deviceId)) return null;
        // Not cached: a handshake is rare next to requests, and the key must not linger in memory longer than needed.
        bool enabled;
        string? stored;
        await _lookups.WaitAsync(ct);
        try
        {
            await using var scope = scopes.CreateAsyncScope();
            var row = await scope.ServiceProvider.GetRequiredService<HubDb>().Set<Device>().AsNoTracking().Where(x => x.Id == deviceId)
                .Select(x => new { x.Enabled, x.DtlsPsk }).FirstOrDefaultAsync(ct);
            if (row is null) return null;
            (enabled, stored) = (row.Enabled, row.DtlsPsk);
        }
        finally
        {
            _lookups.Release();
        }
        if (!enabled) return null;
        var token = stored is null ? null : psk.TryUnprotect(stored);
        if (token is null)
        {
            if (_noPskLogged.Count < 10_000 && _noPskLogged.TryAdd(deviceId, 0))
            {
                if (stored is null)
                    log.LogWarning("Device {DeviceId} cannot use CoAP over DTLS: it was created before DTLS support, so its token is not stored for DTLS; rotate its token (POST /api/v1/devices/{{id}}/rotate-token) to enable it", deviceId);
                else
                    log.LogWarning("Device {DeviceId} cannot use CoAP over DTLS: its stored DTLS key cannot be decrypted (the data-protection keys changed); rotate its token to enable it", deviceId);
            }
            return null;
        }
        _noPskLogged.TryRemove(deviceId, out _);
        return System.Text.Encoding.UTF8.GetBytes(token);
    }

    public async ValueTask<DeviceIdentity?> AuthenticateCertificateAsync(string deviceId, string sha256Thumbprint, CancellationToken ct)
    {
        var entry = await EntryAsync(deviceId, ct);
        if (entry?.CertificateThumbprint is not { } registered) return null;
        var presented = System.Text.Encoding.ASCII.GetBytes(sha256Thumbprint.ToUpperInvariant());
        if (!System.Security.Cryptography.CryptographicOperations.FixedTimeEquals(presented, System.Text.Encoding.ASCII.GetBytes(registered))) return null;
        return new DeviceIdentity(deviceId, entry.ProfileId, entry.Enabled);
    }

    private async ValueTask<Entry?> EntryAsync(string deviceId, CancellationToken ct)
    {
        if (!Identifier.IsValid(deviceId)) return null;
        var now = time.NowMs();
        if (!_cache.TryGetValue(deviceId, out var entry) || entry.ExpiresAtMs < now)
        {
            DeviceCredentials? d;
            await _lookups.WaitAsync(ct);
            try
            {
                await using var scope = scopes.CreateAsyncScope();
                var db = scope.ServiceProvider.GetRequiredService<HubDb>();
                d = await db.Set<Device>().AsNoTracking().Where(x => x.Id == deviceId)
                    .Select(x => new DeviceCredentials(x.TokenHash, x.CertificateThumbprint, x.Enabled, x.ProfileId)).FirstOrDefaultAsync(ct);
            }
            finally
            {
                _lookups.Release();
            }
            if (d is null)
            {
                _cache.TryRemove(deviceId, out _);
                return null;
            }
            entry = new Entry(d.TokenHash, d.CertificateThumbprint, d.Enabled, d.ProfileId, now + CacheTtlMs);
            _cache[deviceId] = entry;
        }
        return entry;
    }

    public void Invalidate(string deviceId) => _cache.TryRemove(deviceId, out _);
}

internal sealed class InvalidateOnRevoke(DeviceAuthenticator authenticator) : INotificationHandler<DeviceCredentialsRevoked>
{
    public ValueTask Handle(DeviceCredentialsRevoked n, CancellationToken ct)
    {
        authenticator.Invalidate(n.DeviceId);
        return ValueTask.CompletedTask;
    }
}

internal sealed record DeviceCredentials(string TokenHash, string? CertificateThumbprint, bool Enabled, string? ProfileId);
