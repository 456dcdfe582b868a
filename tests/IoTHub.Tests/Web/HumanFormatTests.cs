using IoTHub.Web.Components;

namespace IoTHub.Tests.Web;

/// <summary>How the UI words times, clock drift, addresses and HTTP results (no host needed).</summary>
public sealed class HumanFormatTests
{
    private static readonly DateTimeOffset Now = new(2026, 11, 30, 12, 0, 0, TimeSpan.Zero);

    [TestCase(0, "just now")]
    [TestCase(4.9, "just now")]
    [TestCase(5, "5 s ago")]
    [TestCase(59.9, "59 s ago")]
    [TestCase(60, "1 min ago")]
    [TestCase(150, "2 min ago")]
    [TestCase(3599, "59 min ago")]
    [TestCase(3600 * 5.5, "5 h ago")]
    [TestCase(86400 * 3, "3 d ago")]
    [TestCase(-3, "just now")]
    [TestCase(-120, "in 2 min")]
    public void A_time_is_said_as_how_long_ago_it_was(double secondsAgo, string expected) =>
        Assert.That(HumanFormat.Ago(Now.AddSeconds(-secondsAgo), Now), Is.EqualTo(expected));

    [Test]
    public void A_time_over_a_month_ago_is_said_as_its_date() =>
        Assert.That(HumanFormat.Ago(Now.AddDays(-45), Now), Does.Match(@"^2026-10-1[56]$"));

    [Test]
    public void The_absolute_time_names_its_offset() =>
        Assert.That(HumanFormat.Absolute(Now), Does.Match(@"^2026-11-\d\d \d\d:\d\d:00 UTC[+-]\d\d:\d\d$"));

    [TestCase(0, "0 ms")]
    [TestCase(850, "+850 ms")]
    [TestCase(1200, "+1.2 s")]
    [TestCase(-3282, "\u22123.3 s")]
    [TestCase(-180_000, "\u22123 min")]
    [TestCase(90_000, "+1.5 min")]
    [TestCase(7_200_000, "+2 h")]
    [TestCase(-172_800_000, "\u22122 d")]
    public void Clock_drift_is_said_in_the_unit_that_fits_with_its_sign(long ms, string expected) =>
        Assert.That(HumanFormat.Drift(ms), Is.EqualTo(expected));

    [Test]
    public void Clock_drift_says_which_clock_is_behind()
    {
        Assert.That(HumanFormat.DriftMeaning(-3282), Is.EqualTo("The device's clock is 3.3 s behind the hub's."));
        Assert.That(HumanFormat.DriftMeaning(850), Is.EqualTo("The device's clock is 850 ms ahead of the hub's."));
    }

    [TestCase("[::ffff:127.0.0.1]:54340", "127.0.0.1:54340")]
    [TestCase("::ffff:10.0.0.7", "10.0.0.7")]
    [TestCase("192.168.1.20:1883", "192.168.1.20:1883")]
    [TestCase("192.168.1.20", "192.168.1.20")]
    [TestCase("[2001:db8::1]:8883", "[2001:db8::1]:8883")]
    [TestCase("::1", "::1")]
    [TestCase("web UI", "web UI")]
    [TestCase(null, "–")]
    public void An_ipv4_client_of_a_dual_stack_listener_is_shown_as_ipv4(string? remote, string expected) =>
        Assert.That(HumanFormat.Address(remote), Is.EqualTo(expected));

    [TestCase(200, "200 OK")]
    [TestCase(201, "201 Created")]
    [TestCase(403, "403 Forbidden")]
    [TestCase(429, "429 Too Many Requests")]
    [TestCase(599, "599")]
    public void An_http_status_is_shown_with_its_reason_phrase(int status, string expected) =>
        Assert.That(HumanFormat.HttpStatus(status), Is.EqualTo(expected));

    [Test]
    public void A_long_text_is_cut_with_an_ellipsis_within_the_limit()
    {
        Assert.That(HumanFormat.Shorten("short", 10), Is.EqualTo("short"));
        Assert.That(HumanFormat.Shorten(new string('a', 50), 10), Is.EqualTo(new string('a', 9) + "…"));
    }

    [TestCase(0, "0 B")]
    [TestCase(1023, "1023 B")]
    [TestCase(1024, "1 KiB")]
    [TestCase(1536, "1.5 KiB")]
    [TestCase(1_048_000, "1023 KiB")]
    [TestCase(1_048_100, "1 MiB")]
    [TestCase(2 * 1024 * 1024 + 12_345, "2.01 MiB")]
    [TestCase(40L * 1024 * 1024, "40 MiB")]
    [TestCase(256L * 1024 * 1024, "256 MiB")]
    [TestCase(5L * 1024 * 1024 * 1024, "5 GiB")]
    public void A_size_is_said_in_binary_units(long bytes, string expected) =>
        Assert.That(HumanFormat.Bytes(bytes), Is.EqualTo(expected));

    [TestCase(0, "0 s")]
    [TestCase(45, "45 s")]
    [TestCase(600, "10 min")]
    [TestCase(5400, "1.5 h")]
    [TestCase(172_800, "2 d")]
    public void A_duration_in_seconds_is_said_in_the_unit_that_fits(long seconds, string expected) =>
        Assert.That(HumanFormat.Seconds(seconds), Is.EqualTo(expected));
}
