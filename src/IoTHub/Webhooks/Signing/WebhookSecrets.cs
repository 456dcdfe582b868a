using System.Security.Cryptography;
using Microsoft.AspNetCore.DataProtection;

namespace IoTHub.Webhooks.Signing;

/// <summary>Encrypts endpoint secrets for the database and decrypts them to sign (see <c>WebhookEndpoint.cs</c> for why
/// they are not hashed).</summary>
internal sealed class WebhookSecrets(IDataProtectionProvider provider)
{
    private readonly IDataProtector _protector = provider.CreateProtector("IoTHub.Webhooks.EndpointSecret.v1");

    public string Protect(string secret) => _protector.Protect(secret);

    /// <summary>The secret, or null when it cannot be decrypted (the data-protection keys were lost or replaced: rotate it).</summary>
    public string? TryUnprotect(string protectedSecret)
    {
        try
        {
            return _protector.Unprotect(protectedSecret);
        }
        catch (CryptographicException)
        {
            return null;
        }
    }
}
