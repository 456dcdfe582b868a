// Tokens and keys: high-entropy random strings, stored only as SHA-256 hashes.
// A fast hash is right here because the secret has 256 bits of entropy; passwords use a slow KDF instead.
using System.Security.Cryptography;
using System.Text;

namespace IoTHub.Contracts;

/// <summary>Device tokens, API keys and access tokens: made here, stored only as their hash.</summary>
public static class Secret
{
    /// <summary>32 random bytes, base64url: 256 bits, safe in URLs, MQTT passwords and CoAP query strings.</summary>
    public static string New() => Base64Url(RandomNumberGenerator.GetBytes(32));

    /// <summary>SHA-256 of the secret's UTF-8 bytes as 64 lower-case hex digits: what the database stores.</summary>
    public static string Hash(string secret)
    {
        Span<byte> hash = stackalloc byte[32];
        var byteCount = Encoding.UTF8.GetByteCount(secret);
        if (byteCount <= 512)
        {
            Span<byte> utf8 = stackalloc byte[byteCount];
            Encoding.UTF8.GetBytes(secret, utf8);
            SHA256.HashData(utf8, hash);
        }
        else
        {
            SHA256.HashData(Encoding.UTF8.GetBytes(secret), hash);
        }
        return Convert.ToHexStringLower(hash);
    }

    /// <summary>Compares a presented secret with a stored hash in constant time.</summary>
    public static bool Matches(string presented, string storedHash)
        => CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(Hash(presented)), Encoding.ASCII.GetBytes(storedHash));

    private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}
