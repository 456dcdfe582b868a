// Faults are given to an exact share of the devices, spread evenly over the order they are notified in, rather than
// drawn at random: a run of 10 devices at 0.3 fails exactly 3, so a test (or an operator trying a failure threshold)
// knows what the hub must count.
namespace IoTHub.Simulator.Firmware;

/// <summary>Picks exactly a share of a sequence, spread evenly: item <c>k</c> (from 0) is picked when
/// floor((k+1)·rate) &gt; floor(k·rate), so every first n items hold floor(n·rate) picks.</summary>
public static class EvenSpread
{
    /// <summary>Whether item <paramref name="k"/> (from 0) is picked at <paramref name="rate"/> (0 to 1).</summary>
    public static bool Picks(long k, double rate) => Picks(k, (decimal)rate, 1);

    /// <summary>Whether item <paramref name="k"/> is picked at the rate <paramref name="share"/> / <paramref name="of"/>.</summary>
    public static bool Picks(long k, decimal share, decimal of)
    {
        // In decimal: in double, 100 × 0.29 is 28.999…, which would move a pick and miscount the share. Multiplied
        // before dividing, so that a rate such as 0.1 / 0.3 gives whole numbers where it should (3 × 0.1 / 0.3 = 1).
        if (of <= 0) return false;
        return decimal.Floor((k + 1) * share / of) > decimal.Floor(k * share / of);
    }
}

/// <summary>What a device will do wrong in one campaign.</summary>
/// <param name="FailsInstall">Reports <c>failed</c> with reason <c>install</c>.</param>
/// <param name="RollsBack">Reports <c>succeeded</c>, then comes back on its old version.</param>
/// <param name="LosesPower">Drops its connection halfway through the download, then resumes it.</param>
public readonly record struct FirmwareFate(bool FailsInstall, bool RollsBack, bool LosesPower);

/// <summary>Hands out <see cref="FirmwareFate"/>s in the order devices are notified. Shared by all devices of a run, so
/// the shares hold over the fleet: of every n devices, floor(n·fail rate) fail the install and floor(n·power-loss
/// rate) lose power (any of them). Rollbacks are spread over the devices that do not fail the install, at rollback rate
/// / (1 − fail rate), so that both shares hold together: with 0.3 and 0.1, every ten devices have 3 install failures
/// and 1 rollback. (Picked on the same count as the failures, they would land on the same devices: 0.3 and 0.1 both
/// pick device 9 of each ten.)</summary>
public sealed class FirmwareFaults(FirmwareOptions options)
{
    private readonly Lock _lock = new();
    private long _notified;
    private long _installing;

    /// <summary>The fate of the next notified device.</summary>
    public FirmwareFate Next()
    {
        lock (_lock)
        {
            var k = _notified++;
            var fails = EvenSpread.Picks(k, options.FailRate);
            var rollsBack = !fails && EvenSpread.Picks(_installing++, (decimal)options.RollbackRate, 1 - (decimal)options.FailRate);
            return new FirmwareFate(fails, rollsBack, EvenSpread.Picks(k, options.PowerLossRate));
        }
    }
}
