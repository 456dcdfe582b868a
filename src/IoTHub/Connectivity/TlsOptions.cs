// Section Tls: one certificate (PEM or PFX) serves HTTPS and MQTT over TLS. Without a certificate neither
// listener starts; everything else works over plain TCP.
using System.Security.Cryptography.X509Certificates;

namespace IoTHub.Connectivity;

public sealed class TlsOptions
{
    public const string SectionName = "Tls";

    /// <summary>Server certificate: a PEM file (with <c>KeyPath</c>, or the key in the same file) or a PFX/PKCS#12 file.</summary>
    public string? CertificatePath { get; set; }

    /// <summary>PEM private key of the certificate, when it is not in the certificate file.</summary>
    public string? KeyPath { get; set; }

    /// <summary>Password of a PFX file or of an encrypted PEM key.</summary>
    public string? Password { get; set; }

    /// <summary>HTTPS listener (REST API, web UI, MQTT over secure WebSocket); 0 disables it.</summary>
    public int HttpsPort { get; set; } = 8443;

    public bool Enabled => !string.IsNullOrWhiteSpace(CertificatePath);

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
