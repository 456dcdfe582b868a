// Ed25519 (RFC 8032) signatures of firmware images, checked with BouncyCastle. What is signed is the image's SHA-256
// digest (32 bytes), not the image: pure Ed25519 hashes its message twice, so it could not be checked while the upload
// streams to disk without holding the whole image. `openssl pkeyutl -sign -rawin` over the digest produces one.
using Org.BouncyCastle.Crypto.Parameters;
using Org.BouncyCastle.Crypto.Signers;
using Org.BouncyCastle.Security;

namespace IoTHub.Firmware.Artifacts;

internal sealed class ImageSignature
{
    private readonly IReadOnlyList<(string Name, Ed25519PublicKeyParameters Key)> _keys;

    /// <summary>Reads the configured keys; throws <see cref="FormatException"/> naming a key that is not an Ed25519 public key.</summary>
    public ImageSignature(IReadOnlyDictionary<string, string> keys) =>
        _keys = keys.Select(k => (k.Key, Parse(k.Key, k.Value))).ToList();

    public bool HasKeys => _keys.Count > 0;

    /// <summary>The name of the key whose signature <paramref name="signature"/> is over <paramref name="sha256"/>, or null.</summary>
    public string? Verify(ReadOnlySpan<byte> sha256, byte[] signature)
    {
        if (signature.Length != 64) return null;
        foreach (var (name, key) in _keys)
        {
            var verifier = new Ed25519Signer();
            verifier.Init(false, key);
            verifier.BlockUpdate(sha256);
            if (verifier.VerifySignature(signature)) return name;
        }
        return null;
    }

    /// <summary>A raw 32-byte key in base64, or an SPKI PEM / base64 DER.</summary>
    public static Ed25519PublicKeyParameters Parse(string name, string text)
    {
        try
        {
            var t = text.Trim();
            if (t.StartsWith("-----BEGIN", StringComparison.Ordinal))
                t = string.Concat(t.Split('\n').Where(l => !l.StartsWith("-----", StringComparison.Ordinal)).Select(l => l.Trim()));
            var bytes = Convert.FromBase64String(t);
            if (bytes.Length == Ed25519PublicKeyParameters.KeySize) return new Ed25519PublicKeyParameters(bytes);
            if (PublicKeyFactory.CreateKey(bytes) is Ed25519PublicKeyParameters key) return key;
        }
        catch (Exception e) when (e is FormatException or ArgumentException or InvalidCastException or IOException or Org.BouncyCastle.Security.SecurityUtilityException)
        {
        }
        throw new FormatException($"Firmware:SigningKeys:{name} is not an Ed25519 public key (32 bytes in base64, or a PEM from `openssl pkey -pubout`)");
    }
}
