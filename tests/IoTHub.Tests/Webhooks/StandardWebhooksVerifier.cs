// A receiver's verification, written from the Standard Webhooks specification
// (https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md), not from the hub's code:
// the secret is "whsec_" + base64(key); the signed content is "{webhook-id}.{webhook-timestamp}.{body}"; the header holds
// space-separated "v1,{base64 HMAC-SHA256}" signatures, any one of which may match; the timestamp must be recent.
using System.Security.Cryptography;
using System.Text;

namespace IoTHub.Tests.Webhooks;

public static class StandardWebhooksVerifier
{
    public static bool Verify(string secret, string? id, string? timestamp, byte[] body, string? signatures, DateTimeOffset now, TimeSpan? tolerance = null)
    {
        if (id is null || timestamp is null || signatures is null) return false;
        if (!long.TryParse(timestamp, out var seconds) || Math.Abs(now.ToUnixTimeSeconds() - seconds) > (tolerance ?? TimeSpan.FromMinutes(5)).TotalSeconds) return false;
        var key = Convert.FromBase64String(secret.StartsWith("whsec_", StringComparison.Ordinal) ? secret["whsec_".Length..] : secret);
        var content = Encoding.UTF8.GetBytes($"{id}.{timestamp}.").Concat(body).ToArray();
        var expected = Encoding.ASCII.GetBytes(Convert.ToBase64String(HMACSHA256.HashData(key, content)));
        foreach (var signature in signatures.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            var parts = signature.Split(',', 2);
            if (parts.Length == 2 && parts[0] == "v1" && CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(parts[1]), expected)) return true;
        }
        return false;
    }
}
