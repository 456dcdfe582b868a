using IoTHub.Contracts;

namespace IoTHub.Tests.Contracts;

public sealed class WindowResolutionSpecs
{
    [TestCase(0L, 0, 0L)]
    [TestCase(59_999L, 0, 0L)]
    [TestCase(60_000L, 0, 60_000L)]
    [TestCase(-1L, 0, -60_000L)]
    [TestCase(-60_000L, 0, -60_000L)]
    [TestCase(-60_001L, 0, -120_000L)]
    [TestCase(-1L, 2, -86_400_000L)]
    [TestCase(1_732_646_400_123L, 1, 1_732_644_000_000L)]
    public void A_window_starts_at_the_floor_of_its_width_also_before_1970(long ts, int resolution, long start) =>
        Assert.That(WindowResolution.BucketOf(ts, resolution), Is.EqualTo(start));

    [Test]
    public void Every_resolution_has_a_width_and_a_name() =>
        Assert.That(WindowResolution.Names, Has.Length.EqualTo(WindowResolution.WidthsMs.Length));
}
