// The hub's notification on devices/{id}/firmware.
using System.Text.Json;

namespace IoTHub.Simulator.Firmware;

/// <summary>A firmware notification: which campaign, which image, where to get it and what it must hash to.</summary>
/// <param name="CampaignId">The campaign.</param>
/// <param name="Version">The version the image installs.</param>
/// <param name="Url">Where to download it, relative to the hub's HTTP address.</param>
/// <param name="Sha256">Its SHA-256, lowercase hex.</param>
/// <param name="Size">Its size in bytes.</param>
/// <param name="Attempt">1 for the first notification of this campaign, more when the hub retries after a failure.</param>
public sealed record FirmwareNotice(long CampaignId, string Version, string Url, string Sha256, long Size, int Attempt)
{
    private static readonly JsonSerializerOptions Web = new(JsonSerializerDefaults.Web);

    /// <summary>The notification in <paramref name="payload"/>, or null for an empty message ("nothing for you") or one
    /// that is not a notification.</summary>
    public static FirmwareNotice? Parse(ReadOnlySpan<byte> payload)
    {
        if (payload.IsEmpty) return null;
        try
        {
            var notice = JsonSerializer.Deserialize<FirmwareNotice>(payload, Web);
            return notice is { CampaignId: > 0, Version.Length: > 0, Url.Length: > 0, Sha256: not null, Size: >= 0 }
                ? notice with { Attempt = Math.Max(1, notice.Attempt) } : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }
}
