// Which device goes in which wave. The order is a stable shuffle (SHA-256 of campaign id and device id), so that the
// canary is not always the devices whose ids sort first (often the lab's), and the same campaign plans the same way
// every time (the preview and the start agree).
using System.Security.Cryptography;
using System.Text;
using IoTHub.Firmware.Campaigns;

namespace IoTHub.Firmware.Rollout;

internal static class WavePlan
{
    /// <summary>Each device's 1-based wave, in rollout order. Waves are cumulative percentages of
    /// <paramref name="devices"/> rounded up; a canary count puts exactly that many in a wave before them. A wave may be
    /// empty when two percentages round to the same device count.</summary>
    public static IReadOnlyList<(string DeviceId, int Wave)> Assign(long campaignId, IReadOnlyCollection<string> devices, int? canaryCount,
        IReadOnlyList<CampaignWave> waves)
    {
        var order = devices.OrderBy(d => Key(campaignId, d), StringComparer.Ordinal).ThenBy(d => d, StringComparer.Ordinal).ToList();
        var ends = WaveEnds(order.Count, canaryCount, waves);
        var result = new List<(string, int)>(order.Count);
        var wave = 0;
        for (var i = 0; i < order.Count; i++)
        {
            while (i >= ends[wave]) wave++;
            result.Add((order[i], wave + 1));
        }
        return result;
    }

    /// <summary>How many waves a campaign has: one per percentage, and the canary wave.</summary>
    public static int WaveCount(int? canaryCount, IReadOnlyList<CampaignWave> waves) => waves.Count + (canaryCount is > 0 ? 1 : 0);

    /// <summary>The exclusive end index of each wave in the rollout order.</summary>
    public static int[] WaveEnds(int count, int? canaryCount, IReadOnlyList<CampaignWave> waves)
    {
        var ends = new List<int>();
        var done = 0;
        if (canaryCount is > 0)
        {
            done = Math.Min(canaryCount.Value, count);
            ends.Add(done);
        }
        foreach (var w in waves)
        {
            done = Math.Max(done, Math.Min(count, (int)Math.Ceiling(count * w.Percent / 100.0 - 1e-9)));
            ends.Add(done);
        }
        ends[^1] = count;
        return [.. ends];
    }

    private static string Key(long campaignId, string deviceId) =>
        Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes($"{campaignId}:{deviceId}")));
}
