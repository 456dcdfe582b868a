// Which device goes in which wave (docs/firmware.md, "waves" and "canaryCount"): cumulative percentages rounded up, an
// exact canary wave first, and a stable shuffled order that a campaign always plans the same way.
using IoTHub.Firmware.Campaigns;
using IoTHub.Firmware.Rollout;

namespace IoTHub.Tests.Firmware;

public sealed class WavePlanSpecs
{
    private static List<CampaignWave> Waves(params double[] percents) => percents.Select(p => new CampaignWave(p, null, null, null).Normalized()).ToList();

    private static List<string> Fleet(int count) => Enumerable.Range(0, count).Select(i => $"dev-{i:0000}").ToList();

    private static int[] Sizes(IReadOnlyList<(string DeviceId, int Wave)> plan, int waveCount) =>
        Enumerable.Range(1, waveCount).Select(w => plan.Count(p => p.Wave == w)).ToArray();

    [Test]
    public void A_hundred_devices_at_10_50_100_percent_make_waves_of_10_40_and_50()
    {
        var waves = Waves(10, 50, 100);
        var plan = WavePlan.Assign(1, Fleet(100), null, waves);
        Assert.That(WavePlan.WaveCount(null, waves), Is.EqualTo(3));
        Assert.That(Sizes(plan, 3), Is.EqualTo(new[] { 10, 40, 50 }));
        Assert.That(plan.Select(p => p.DeviceId), Is.EquivalentTo(Fleet(100)), "every device exactly once");
        Assert.That(plan.Select(p => p.Wave), Is.Ordered, "listed in rollout order");
    }

    [Test]
    public void A_canary_of_2_comes_first_then_the_percentages_of_the_whole_fleet()
    {
        var waves = Waves(50, 100);
        var plan = WavePlan.Assign(1, Fleet(100), 2, waves);
        Assert.That(WavePlan.WaveCount(2, waves), Is.EqualTo(3));
        Assert.That(Sizes(plan, 3), Is.EqualTo(new[] { 2, 48, 50 }));
    }

    [Test]
    public void Three_devices_at_1_and_100_percent_make_a_wave_of_1_then_2()
    {
        var plan = WavePlan.Assign(1, Fleet(3), null, Waves(1, 100));
        Assert.That(Sizes(plan, 2), Is.EqualTo(new[] { 1, 2 }), "a percentage rounds up: 1 % of 3 devices is one device, not none");
    }

    [Test]
    public void A_canary_larger_than_the_fleet_takes_the_whole_fleet()
    {
        var plan = WavePlan.Assign(1, Fleet(3), 5, Waves(50, 100));
        Assert.That(Sizes(plan, 3), Is.EqualTo(new[] { 3, 0, 0 }));
    }

    [Test]
    public void The_same_campaign_plans_the_same_order_whatever_order_the_devices_come_in()
    {
        var fleet = Fleet(50);
        var shuffled = fleet.OrderBy(_ => Random.Shared.Next()).ToList();
        var reversed = Enumerable.Reverse(fleet).ToList();
        var first = WavePlan.Assign(42, fleet, 2, Waves(10, 100));
        Assert.That(WavePlan.Assign(42, shuffled, 2, Waves(10, 100)), Is.EqualTo(first));
        Assert.That(WavePlan.Assign(42, reversed, 2, Waves(10, 100)), Is.EqualTo(first));
        Assert.That(first.Select(p => p.DeviceId), Is.Not.EqualTo(fleet), "shuffled: the canary is not simply the ids that sort first");
    }

    [Test]
    public void Different_campaigns_order_the_fleet_differently()
    {
        var fleet = Fleet(50);
        var a = WavePlan.Assign(1, fleet, null, Waves(100)).Select(p => p.DeviceId).ToList();
        var b = WavePlan.Assign(2, fleet, null, Waves(100)).Select(p => p.DeviceId).ToList();
        Assert.That(b, Is.EquivalentTo(a));
        Assert.That(b, Is.Not.EqualTo(a));
        // Not the same canary either, so one unlucky device is not every campaign's first.
        var canaries = Enumerable.Range(1, 20).Select(id => WavePlan.Assign(id, fleet, 1, Waves(100))[0].DeviceId).Distinct().Count();
        Assert.That(canaries, Is.GreaterThan(5));
    }

    [Test]
    public void An_empty_fleet_plans_no_device_and_no_error()
    {
        Assert.That(WavePlan.Assign(1, [], null, Waves(10, 50, 100)), Is.Empty);
        Assert.That(WavePlan.Assign(1, [], 2, Waves(10, 100)), Is.Empty);
        Assert.That(WavePlan.WaveEnds(0, 2, Waves(10, 100)), Is.EqualTo(new[] { 0, 0, 0 }));
    }

    [Test]
    public void Wave_ends_are_cumulative_and_the_last_is_the_whole_fleet()
    {
        Assert.That(WavePlan.WaveEnds(100, null, Waves(10, 50, 100)), Is.EqualTo(new[] { 10, 50, 100 }));
        Assert.That(WavePlan.WaveEnds(7, null, Waves(33.3, 66.6, 100)), Is.EqualTo(new[] { 3, 5, 7 }));
        Assert.That(WavePlan.WaveEnds(100, 20, Waves(10, 100)), Is.EqualTo(new[] { 20, 20, 100 }), "a wave inside the canary is empty");
    }
}
