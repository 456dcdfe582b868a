using System.ComponentModel.DataAnnotations;

namespace IoTHub.Firmware;

/// <summary>Section <c>Firmware</c>: artifact limits and signing keys, and how often rollouts are driven.</summary>
public sealed class FirmwareOptions
{
    /// <summary>The configuration section: <c>Firmware</c>.</summary>
    public const string SectionName = "Firmware";

    /// <summary>Largest image accepted, bytes. Default 256 MiB (1 KiB to 4 GiB). Uploads are streamed to disk, so this bounds
    /// the disk, not the memory.</summary>
    [Range(1024, 4L * 1024 * 1024 * 1024)]
    public long MaxArtifactBytes { get; set; } = 256L * 1024 * 1024;

    /// <summary>Ed25519 public keys that may sign images: name → 32-byte raw key in base64, or an SPKI PEM
    /// (<c>openssl pkey -pubout</c>). Empty: signatures are not checked (an upload that carries one is refused).</summary>
    public Dictionary<string, string> SigningKeys { get; set; } = [];

    /// <summary>Refuse images without a valid signature. Default false; true needs at least one key in <see cref="SigningKeys"/>.</summary>
    public bool RequireSignature { get; set; }

    /// <summary>How often running campaigns are driven (timeouts, thresholds, waves, notifications); a progress report also
    /// wakes the loop at once. Default 1 s; at least 50 ms.</summary>
    public TimeSpan TickInterval { get; set; } = TimeSpan.FromSeconds(1);
}
