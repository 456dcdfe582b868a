// Section Tls: one certificate (PEM or PFX) serves HTTPS and MQTT over TLS. Without a certificate neither
// listener starts; everything else works over plain TCP.
using System.Security.Cryptography.X509Certificates;

namespace IoTHub.Connectivity;

/// <summary>Section <c>Tls</c>: the server certificate of HTTPS and MQTT over TLS (port <c>Mqtt:TlsPort</c>, default 8883).</summary>
public sealed class TlsOptions
{
    /// <summary>The configuration section: <c>Tls</c> (environment: <c>IOTHUB_Tls__CertificatePath</c>, ...).</summary>
    public const string SectionName = "Tls";

    /// <summary>Server certificate: a PEM file (with <c>KeyPath</c>, or the key in the same file) or a PFX/PKCS#12 file.</summary>
    public string? CertificatePath { get; set; }

    /// <summary>PEM private key of the certificate, when it is not in the certificate file.</summary>
    public string? KeyPath { get; set; }

    /// <summary>Password of a PFX file or of an encrypted PEM key.</summary>
    public string? Password { get; set; }

    /// <summary>HTTPS listener (REST API, web UI, MQTT over secure WebSocket); 0 disables it.</summary>
    public int HttpsPort { get; set; } = 8443;

    /// <summary>True when a certificate is configured: only then do the TLS listeners start.</summary>
    public bool Enabled => !string.IsNullOrWhiteSpace(CertificatePath);

    /// <summary>Loads the certificate with its private key: a <c>.pfx</c> or <c>.p12</c> file as PKCS#12, anything else as PEM.</summary>
    /// <exception cref="IOException">A file is missing or unreadable.</exception>
    /// <exception cref="System.Security.Cryptography.CryptographicException">The file is not a certificate with a key, or the
    /// password is wrong.</exception>
    public X509Certificate2 LoadCertificate()
    {
        var path = CertificatePath!;
        if (path.EndsWith(".pfx", StringComparison.OrdinalIgnoreCase) || path.EndsWith(".p12", StringComparison.OrdinalIgnoreCase))
            return X509CertificateLoader.LoadPkcs12FromFile(path, Password);
        var key = string.IsNullOrWhiteSpace(KeyPath) ? null : KeyPath;
        return string.IsNullOrEmpty(Password)
            ? X509Certificate2.CreateFromPemFile(path, key)
            : X509Certificate2.CreateFromEncryptedPemFile(path, Password, key);
    }
}
