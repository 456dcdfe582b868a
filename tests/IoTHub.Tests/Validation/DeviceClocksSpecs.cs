// Fast specifications of the per-device drift estimate (no host): the median of the last 15 samples.
using IoTHub.Validation;

namespace IoTHub.Tests.Validation;

public sealed class DeviceClocksSpecs
{
    [Test]
    public void The_estimate_is_the_median_of_the_samples_so_far()
    {
        var clocks = new DeviceClocks();

        Assert.That(clocks.Sample("d", 100), Is.EqualTo(100));
        Assert.That(clocks.Sample("d", 300), Is.EqualTo(200), "an even count: the mean of the middle two");
        Assert.That(clocks.Sample("d", -50), Is.EqualTo(100));
    }

    [Test]
    public void One_replayed_or_buffered_message_does_not_swing_the_estimate()
    {
        var clocks = new DeviceClocks();
        for (var i = 0; i < 14; i++) clocks.Sample("d", 600_000 + i);

        Assert.That(clocks.Sample("d", -86_400_000), Is.EqualTo(600_006), "a message a day old among a clock ten minutes ahead");
    }

    [Test]
    public void Only_the_last_15_samples_count_so_a_corrected_clock_is_believed_after_eight_messages()
    {
        var clocks = new DeviceClocks();
        for (var i = 0; i < 15; i++) clocks.Sample("d", 600_000);

        var estimates = Enumerable.Range(0, 15).Select(_ => clocks.Sample("d", 0)).ToList();

        Assert.That(estimates.Take(7), Is.All.EqualTo(600_000), "seven fresh samples are still the minority of 15");
        Assert.That(estimates.Skip(7), Is.All.EqualTo(0), "the eighth makes the majority");
    }

    [Test]
    public void Each_device_has_its_own_estimate_and_a_forgotten_device_starts_afresh()
    {
        var clocks = new DeviceClocks();
        clocks.Sample("ahead", 600_000);
        clocks.Sample("behind", -600_000);

        Assert.That(clocks.Sample("ahead", 600_000), Is.EqualTo(600_000));
        clocks.Forget("ahead");
        Assert.That(clocks.Sample("ahead", 5), Is.EqualTo(5));
        Assert.That(clocks.Sample("behind", -600_000), Is.EqualTo(-600_000));
    }
}
