// DTLS with PSK (CoAP on Coap:DtlsPort) needs the device's token itself as the key, while the token is otherwise stored
// only as a hash. So the token is also kept encrypted with ASP.NET Data Protection (as webhook secrets are): a database
// dump alone does not reveal it, and losing the data-protection keys costs only DTLS (rotate the token to recover).
using System.Security.Cryptography;
using Microsoft.AspNetCore.DataProtection;

namespace IoTHub.Devices;

/// <summary>Encrypts a device token for the <c>dtls_psk</c> column and decrypts it for a DTLS handshake.</summary>
internal sealed class DevicePsk(IDataProtectionProvider provider)
{
    private readonly IDataProtector _protector = provider.CreateProtector("IoTHub.Devices.DtlsPsk.v1");

    public string Protect(string token) => _protector.Protect(token);

    /// <summary>The token, or null when it cannot be decrypted (the data-protection keys were lost or replaced).</summary>
    public string? TryUnprotect(string protectedToken)
    {
        try
        {
            return _protector.Unprotect(protectedToken);
        }
        catch (CryptographicException)
        {
            return null;
        }
    }
}
