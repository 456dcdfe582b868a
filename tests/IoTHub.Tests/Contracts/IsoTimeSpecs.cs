// ISO 8601 date-times as the contract reads them: a time without an offset is UTC, never the hub's local time.
using System.Text;
using System.Text.Json;
using IoTHub.Contracts;

namespace IoTHub.Tests.Contracts;

public sealed class IsoTimeSpecs
{
    [TestCase("2026-12-02T08:08:59", "2026-12-02T08:08:59+00:00")]
    [TestCase("2026-12-02T08:08:59.123", "2026-12-02T08:08:59.123+00:00")]
    [TestCase("2026-12-02T08:08:59Z", "2026-12-02T08:08:59+00:00")]
    [TestCase("2026-12-02T09:08:59+01:00", "2026-12-02T08:08:59+00:00")]
    [TestCase("2026-12-02T03:08:59-05:00", "2026-12-02T08:08:59+00:00")]
    [TestCase("2026-12-02", "2026-12-02T00:00:00+00:00")]
    public void A_date_time_is_read_as_the_instant_it_names_and_without_an_offset_as_utc(string text, string instant)
    {
        var expected = DateTimeOffset.Parse(instant, System.Globalization.CultureInfo.InvariantCulture);
        Assert.That(IsoTime.TryParse(text, out var parsed), Is.True);
        Assert.That(parsed, Is.EqualTo(expected));
        Assert.That(IsoTime.TryParse(Encoding.UTF8.GetBytes(text), out var fromUtf8), Is.True);
        Assert.That(fromUtf8, Is.EqualTo(expected));
        var converter = new JsonSerializerOptions { Converters = { new IsoTime.JsonConverter() } };
        Assert.That(JsonSerializer.Deserialize<DateTimeOffset?>($"\"{text}\"", converter), Is.EqualTo(expected), "through the API's converter");
    }

    [Test]
    public void Without_an_offset_the_clock_time_is_kept_and_the_offset_is_zero()
    {
        Assert.That(IsoTime.TryParse("2026-07-01T12:00:00", out var summer), Is.True);
        Assert.That((summer.Hour, summer.Offset), Is.EqualTo((12, TimeSpan.Zero)), "not shifted by a local summer time");
    }

    [TestCase("banana")]
    [TestCase("12/02/2026 08:00")]
    [TestCase("2026-12-02 08:08:59")]
    [TestCase("")]
    [TestCase("2026-12-02T08:08:59\"")]
    [TestCase("2026-13-02T08:08:59Z")]
    public void Text_that_is_not_an_ISO_8601_date_time_is_refused(string text)
    {
        Assert.That(IsoTime.TryParse(text, out _), Is.False);
        var converter = new JsonSerializerOptions { Converters = { new IsoTime.JsonConverter() } };
        Assert.That(() => JsonSerializer.Deserialize<DateTimeOffset>(JsonSerializer.Serialize(text), converter), Throws.InstanceOf<JsonException>());
    }
}
