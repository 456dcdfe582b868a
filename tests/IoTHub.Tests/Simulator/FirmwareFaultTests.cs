using System.Collections.Concurrent;
using System.Text;
using IoTHub.Simulator.Firmware;

namespace IoTHub.Tests.Simulator;

public sealed class FirmwareFaultTests
{
    [Test]
    public void Fail_rate_0_3_fails_exactly_3_of_every_10_notified_devices()
    {
        var failing = Enumerable.Range(0, 100).Where(k => EvenSpread.Picks(k, 0.3)).ToList();

        Assert.That(failing.Take(3), Is.EqualTo(new[] { 3, 6, 9 }));
        Assert.That(Enumerable.Range(0, 10).Select(ten => failing.Count(k => k / 10 == ten)), Is.All.EqualTo(3));
    }

    [TestCase(0.0)]
    [TestCase(0.1)]
    [TestCase(0.25)]
    [TestCase(0.29)]
    [TestCase(0.3)]
    [TestCase(0.7)]
    [TestCase(1.0 / 3)]
    [TestCase(1.0)]
    public void Every_first_n_notified_devices_hold_exactly_n_times_the_rate_rounded_down(double rate)
    {
        var picked = 0;
        for (var n = 1; n <= 1000; n++)
        {
            if (EvenSpread.Picks(n - 1, rate)) picked++;
            Assert.That(picked, Is.EqualTo((int)decimal.Floor(n * (decimal)rate)), $"after {n} devices");
        }
    }

    [Test]
    public void Faults_are_handed_out_in_notification_order_across_threads_so_the_shares_hold_over_the_fleet()
    {
        var faults = new FirmwareFaults(new FirmwareOptions { FailRate = 0.3, RollbackRate = 0.1, PowerLossRate = 0.5 });
        var fates = new ConcurrentBag<FirmwareFate>();

        Parallel.For(0, 1000, _ => fates.Add(faults.Next()));

        Assert.That(fates.Count(f => f.FailsInstall), Is.EqualTo(300));
        Assert.That(fates.Count(f => f.RollsBack), Is.EqualTo(100));
        Assert.That(fates.Count(f => f.LosesPower), Is.EqualTo(500));
    }

    [TestCase(0.3, 0.1, 3, 1)]
    [TestCase(0.2, 0.1, 2, 1)]
    [TestCase(0.5, 0.5, 5, 5)]
    [TestCase(0.7, 0.3, 7, 3)]
    [TestCase(0.1, 0.3, 1, 3)]
    [TestCase(0.0, 0.3, 0, 3)]
    [TestCase(1.0, 0.0, 10, 0)]
    public void Install_failures_and_rollbacks_both_hold_their_share_of_every_ten_devices_and_never_fall_on_the_same_one(
        double failRate, double rollbackRate, int failing, int rollingBack)
    {
        var faults = new FirmwareFaults(new FirmwareOptions { FailRate = failRate, RollbackRate = rollbackRate });

        for (var ten = 0; ten < 10; ten++)
        {
            var fates = Enumerable.Range(0, 10).Select(_ => faults.Next()).ToList();
            Assert.That(fates.Count(f => f.FailsInstall), Is.EqualTo(failing), $"install failures in ten {ten}");
            Assert.That(fates.Count(f => f.RollsBack), Is.EqualTo(rollingBack), $"rollbacks in ten {ten}");
            Assert.That(fates.Count(f => f.FailsInstall && f.RollsBack), Is.Zero);
        }
    }

    [Test]
    public void A_notification_is_read_and_an_empty_or_foreign_message_is_nothing_to_do()
    {
        var notice = FirmwareNotice.Parse("""{"campaignId": 7, "version": "1.4.0", "url": "/api/v1/devices/a/firmware/3", "sha256": "ab", "size": 1048576, "attempt": 2}"""u8);

        Assert.That(notice, Is.EqualTo(new FirmwareNotice(7, "1.4.0", "/api/v1/devices/a/firmware/3", "ab", 1048576, 2)));
        Assert.That(FirmwareNotice.Parse(ReadOnlySpan<byte>.Empty), Is.Null);
        Assert.That(FirmwareNotice.Parse("not json"u8), Is.Null);
        Assert.That(FirmwareNotice.Parse(Encoding.UTF8.GetBytes("""{"campaignId": 7}""")), Is.Null);
    }
}
