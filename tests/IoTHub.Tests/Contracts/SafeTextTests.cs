// Every place the hub cuts text, and the helper they share (issue #15: a reason cut inside a surrogate pair).
using IoTHub.Storage.Queries;
using IoTHub.Storage.Write;
using System.Text;
using IoTHub.Contracts;
using IoTHub.Storage;
using IoTHub.Validation.Decoding;

namespace IoTHub.Tests.Contracts;

public sealed class SafeTextTests
{
    private const string Emoji = "\U0001F600"; // two UTF-16 chars, four UTF-8 bytes

    private static bool IsWellFormed(string s)
    {
        for (var i = 0; i < s.Length; i++)
        {
            if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1])) i++;
            else if (char.IsSurrogate(s[i])) return false;
        }
        return true;
    }

    [Test]
    public void A_prefix_never_ends_between_the_halves_of_a_surrogate_pair()
    {
        var text = new string('!', 63) + Emoji + "tail";
        for (var max = 0; max <= text.Length + 1; max++)
        {
            var cut = SafeText.Prefix(text, max, "…");
            Assert.That(IsWellFormed(cut), Is.True, $"max {max}: {cut}");
            Assert.That(cut.TrimEnd('…').Length, Is.LessThanOrEqualTo(max));
        }
        Assert.That(SafeText.Prefix(text, 64, "…"), Is.EqualTo(new string('!', 63) + "…"));
        Assert.That(SafeText.Prefix(text, 65, "…"), Is.EqualTo(new string('!', 63) + Emoji + "…"));
        Assert.That(SafeText.Prefix("short", 64, "…"), Is.EqualTo("short"), "nothing cut, no ellipsis");
    }

    [Test]
    public void A_utf8_prefix_never_ends_inside_a_code_point()
    {
        var bytes = Encoding.UTF8.GetBytes("aé€" + Emoji + "z"); // 1, 2, 3 and 4 byte sequences
        for (var max = 0; max <= bytes.Length; max++)
        {
            var cut = SafeText.Utf8Prefix(bytes, max);
            Assert.That(cut.Length, Is.LessThanOrEqualTo(max).And.GreaterThanOrEqualTo(max - 3));
            Assert.That(System.Text.Unicode.Utf8.IsValid(cut), Is.True, $"max {max}: {Convert.ToHexString(cut)}");
        }
        Assert.That(SafeText.Utf8Prefix(new byte[] { 0xA1, 0x64, 0xFF, 0x80, 0x80, 0x80, 0x80 }, 6), Has.Length.EqualTo(3), "binary: at most 3 bytes fewer");
    }

    [Test]
    public void Storable_text_has_no_lone_surrogate_and_no_nul()
    {
        var text = "a\0b" + Emoji[0] + "c" + Emoji + Emoji[1];
        Assert.That(SafeText.Storable(text), Is.EqualTo("a\uFFFDb\uFFFDc" + Emoji + "\uFFFD"));
        Assert.That(SafeText.Storable("plain " + Emoji), Is.EqualTo("plain " + Emoji));
        Assert.That(() => new UTF8Encoding(false, true).GetBytes(SafeText.Storable(text)), Throws.Nothing, "a strict encoder (Npgsql's) takes it");
    }

    [Test]
    public void Escaped_text_is_printable_ascii_and_never_cut_inside_an_escape()
    {
        var text = "x" + Emoji + "\0y";
        Assert.That(SafeText.Escaped(text, 100), Is.EqualTo("x\\uD83D\\uDE00\\u0000y"));
        for (var max = 0; max < 25; max++)
        {
            var cut = SafeText.Escaped(text, max);
            Assert.That(cut.All(c => c is >= ' ' and <= '~'), Is.True, cut);
            Assert.That(cut, Does.Not.Match(@"\\u[0-9A-F]{0,3}(\.\.\.)?$"), $"max {max}: {cut}");
        }
    }

    // The truncation sites outside the MQTT broker and the Gateway: each cut goes through SafeText. (The broker cuts
    // PUBACK reason strings with its own character-safe MqttText; the audit log and the sign-in throttle cut with
    // s[..max]: listed in the hand-over for their owners.)

    [Test]
    public void Site_decoder_reason_naming_a_metric_name_of_63_bangs_and_an_emoji()
    {
        var payload = Encoding.UTF8.GetBytes($$"""{"{{new string('!', 63) + Emoji}}": 1}""");
        var result = new TelemetryDecoder(new MetricNames()).Decode(payload, 1, 1, new DecodeLimits(1 << 16, 100, 1024));
        Assert.That(result.IsValid, Is.False);
        Assert.That(IsWellFormed(result.Reason), Is.True, result.Reason);
        Assert.That(result.Errors!.Single().Field, Is.EqualTo(new string('!', 63) + "…"));
    }

    [Test]
    public void Site_decoder_reason_naming_a_cbor_metric_name()
    {
        var w = new System.Formats.Cbor.CborWriter();
        w.WriteStartMap(1);
        w.WriteTextString(new string('!', 63) + Emoji);
        w.WriteInt32(1);
        w.WriteEndMap();
        var result = new TelemetryDecoder(new MetricNames()).DecodeCbor(w.Encode(), 1, 1, new DecodeLimits(1 << 16, 100, 1024));
        Assert.That(result.Errors!.Single().Field, Is.EqualTo(new string('!', 63) + "…"));
    }

    [Test]
    public void Site_dead_letter_payload_preview()
    {
        var payload = Encoding.UTF8.GetBytes(new string('x', 14) + Emoji); // the emoji's bytes are 14..17
        for (var limit = 14; limit <= 18; limit++)
            Assert.That(System.Text.Unicode.Utf8.IsValid(DeadLetterPayload.Cap(payload, limit)), Is.True, $"limit {limit}");
    }

    [Test]
    public void Site_reason_of_a_database_refusal()
    {
        var said = StoreErrors.Describe(new InvalidCastException(new string('!', 296) + Emoji + "\0 and more"), maxChars: 300);
        Assert.That(IsWellFormed(said) && !said.Contains('\0'), Is.True, said);
        Assert.That(said, Does.EndWith("…"));
    }

    [Test]
    public void Site_device_page_payload_preview()
    {
        var shown = IoTHub.Web.Components.HumanFormat.Shorten(new string('{', 119) + Emoji + "}", 120);
        Assert.That(shown, Is.EqualTo(new string('{', 119) + "…"));
    }

    [Test]
    public void Site_log_throttle_key_in_a_summary_line()
    {
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider();
        var logs = new IoTHub.Tests.Infrastructure.CapturedLogs();
        var kind = new LogKind<string>(Microsoft.Extensions.Logging.LogLevel.Warning, "refusals", "Refused {What}");
        using var throttle = new LogThrottle(time, Microsoft.Extensions.Options.Options.Create(new LogThrottleOptions { Interval = TimeSpan.FromSeconds(30) }));
        var key = new string('x', 127) + Emoji; // 129 UTF-16 chars: the 128-char cut falls inside the emoji
        throttle.Write(logs.CreateLogger("spec"), kind, key, "x");
        throttle.Write(logs.CreateLogger("spec"), kind, key, "x");
        time.Advance(TimeSpan.FromSeconds(30));

        var summarised = (string)logs.Lines.Single(l => l.Values.ContainsKey("Suppressed"))["Key"]!;
        Assert.That(summarised, Is.EqualTo(new string('x', 127)));
    }
}
