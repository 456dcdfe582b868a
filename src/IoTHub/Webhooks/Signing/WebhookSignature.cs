// Standard Webhooks (https://www.standardwebhooks.com/, "Signature scheme"): the secret is "whsec_" and the base64 of
// the key; the signature is "v1," and the base64 of HMAC-SHA256(key, "{webhook-id}.{webhook-timestamp}.{body}"),
// several of them separated by spaces while an old secret still signs.
using System.Security.Cryptography;
using System.Text;

namespace IoTHub.Webhooks.Signing;

/// <summary>Makes endpoint secrets and signs deliveries with them.</summary>
internal static class WebhookSignature
{
    public const string SecretPrefix = "whsec_";

    /// <summary>A new secret: <c>whsec_</c> and the base64 of 32 random bytes (the specification asks for 24 to 64).</summary>
    public static string NewSecret() => SecretPrefix + Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));

    /// <summary>The key bytes of a <c>whsec_</c> secret (the prefix is optional, as receivers' libraries accept it).</summary>
    public static byte[] Key(string secret) =>
        Convert.FromBase64String(secret.StartsWith(SecretPrefix, StringComparison.Ordinal) ? secret[SecretPrefix.Length..] : secret);

    /// <summary>The <c>webhook-signature</c> header: one <c>v1,</c> signature per secret, space-separated, in order.</summary>
    public static string Sign(string messageId, long timestampSeconds, ReadOnlySpan<byte> body, IEnumerable<string> secrets)
    {
        var prefix = Encoding.UTF8.GetBytes($"{messageId}.{timestampSeconds}.");
        var content = new byte[prefix.Length + body.Length];
        prefix.CopyTo(content, 0);
        body.CopyTo(content.AsSpan(prefix.Length));
        return string.Join(' ', secrets.Select(s => "v1," + Convert.ToBase64String(HMACSHA256.HashData(Key(s), content))));
    }
}
