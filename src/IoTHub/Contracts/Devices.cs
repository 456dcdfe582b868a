// What other modules may know of devices: identity checks and lifecycle events.
using Mediator;

namespace IoTHub.Contracts;

/// <summary>A device whose token matched. A disabled device is refused by every protocol.</summary>
public sealed record DeviceIdentity(string DeviceId, string? ProfileId, bool Enabled);

/// <summary>Checks device credentials; cached, so adapters may call it on every HTTP or CoAP request.</summary>
public interface IDeviceAuthenticator
{
    /// <summary>The device, when <paramref name="token"/> is its current token (compared by SHA-256 hash), else null. A
    /// disabled device is returned with <c>Enabled</c> false: the caller refuses it (HTTP 403; MQTT CONNACK "not authorized",
    /// 0x87 on 5.0).</summary>
    ValueTask<DeviceIdentity?> AuthenticateAsync(string deviceId, string token, CancellationToken ct);

    /// <summary>The device whose current token is <paramref name="token"/> (a lookup by the token's hash), else null: for
    /// devices that present only a token (the ThingsBoard CoAP path <c>/api/v1/{token}/telemetry</c>).</summary>
    ValueTask<DeviceIdentity?> AuthenticateTokenAsync(string token, CancellationToken ct);

    /// <summary>The device, authenticated by other means (a DTLS session with its PSK), else null when it does not exist.</summary>
    ValueTask<DeviceIdentity?> FindAsync(string deviceId, CancellationToken ct);

    /// <summary>The pre-shared key of the device's DTLS sessions (PSK identity = device id): the UTF-8 bytes of its current
    /// token, when the device exists, is enabled and has its token stored for DTLS (devices created before DTLS support
    /// have none until their token is rotated); else null. Never log it.</summary>
    ValueTask<byte[]?> PskAsync(string deviceId, CancellationToken ct);

    /// <summary>A device presenting, over TLS, the client certificate whose SHA-256 thumbprint is registered on it.</summary>
    ValueTask<DeviceIdentity?> AuthenticateCertificateAsync(string deviceId, string sha256Thumbprint, CancellationToken ct);
}

/// <summary>Notes that a device was heard from; lock-free, called per message.</summary>
public interface IDevicePresence
{
    /// <summary>The device sent something at <paramref name="atMs"/> (Unix ms); its <c>lastSeen</c> moves forward.</summary>
    void Seen(string deviceId, long atMs);
}

/// <summary>A device connected to the broker. <paramref name="Protocol"/> is <c>mqtt3</c> or <c>mqtt5</c>.</summary>
public sealed record DeviceConnected(string DeviceId, string ClientId, string Protocol, string? RemoteAddress, DateTimeOffset At) : INotification;

/// <summary>A device's connection ended. <paramref name="SessionKept"/>: the broker keeps its session and will itself
/// deliver what it had queued when the device returns (MQTT persistent session).</summary>
public sealed record DeviceDisconnected(string DeviceId, string ClientId, string Reason, DateTimeOffset At, bool SessionKept = false) : INotification;

/// <summary>A device was deleted: each module deletes what it holds of it (telemetry, dead letters, commands, twin).</summary>
public sealed record DeviceDeleted(string DeviceId) : INotification;

/// <summary>A device was registered (by the API, the UI or a CSV import).</summary>
public sealed record DeviceCreated(string DeviceId) : INotification;

/// <summary>Token rotated, device disabled or deleted: live connections must be dropped.</summary>
public sealed record DeviceCredentialsRevoked(string DeviceId) : INotification;

/// <summary>Is the device online, as its recorded presence says (the database, so every hub node agrees)?</summary>
public sealed record IsDeviceOnline(string DeviceId) : IRequest<bool>;

/// <summary>Does a device exist? For modules that serve per-device data.</summary>
public sealed record DeviceExists(string DeviceId) : IRequest<bool>;

/// <summary>An API key was revoked: its live MQTT connections are dropped and its sessions end.</summary>
public sealed record ApiKeyRevoked(long KeyId) : INotification;

/// <summary>An app's API key that matched: its id (the principal an MQTT session belongs to) and its role.</summary>
public sealed record AppKeyIdentity(long KeyId, string Role);

/// <summary>Checks an app's API key (MQTT username <c>apikey</c>); returns the key, or null when unknown or revoked.</summary>
public interface IAppKeyVerifier
{
    /// <summary>The key's identity when <paramref name="key"/> is a live API key (compared by SHA-256 hash), else null.</summary>
    ValueTask<AppKeyIdentity?> VerifyAsync(string key, CancellationToken ct);
}

/// <summary>Endpoint metadata: the endpoint authenticates devices itself (device token as bearer), outside the user/app scheme.</summary>
public sealed class DeviceAuthenticatedEndpoint;
