// Fast specifications of the CBOR telemetry decoder (no host): the JSON decoder's shapes and rules, and what only CBOR
// has (integers and floats of every width, date tags, byte strings, text that must be valid UTF-8).
using System.Formats.Cbor;
using IoTHub.Contracts;
using IoTHub.Validation.Decoding;

namespace IoTHub.Tests.Validation.Decoding;

public sealed class CborTelemetryDecoderSpecs
{
    private const long ReceivedAt = 1_764_504_000_000; // 2025-11-30T12:00:00Z
    private const long FirstSequence = 500;
    private static readonly DecodeLimits Limits = new(MaxPayloadBytes: 4096, MaxPoints: 8, MaxStringBytes: 16);

    private readonly TelemetryDecoder _decoder = new(new MetricNames());

    private DecodeResult Decode(byte[] cbor, DecodeLimits? limits = null) => _decoder.DecodeCbor(cbor, ReceivedAt, FirstSequence, limits ?? Limits);

    private static byte[] Cbor(Action<CborWriter> write)
    {
        var w = new CborWriter(CborConformanceMode.Lax);
        write(w);
        return w.Encode();
    }

    /// <summary>A map of the given entries, each writing its key and value.</summary>
    private static byte[] Map(params Action<CborWriter>[] entries) => Cbor(w => WriteMap(w, entries));

    private static void WriteMap(CborWriter w, params Action<CborWriter>[] entries)
    {
        w.WriteStartMap(entries.Length);
        foreach (var e in entries) e(w);
        w.WriteEndMap();
    }

    private static Action<CborWriter> Entry(string key, Action<CborWriter> value) => w =>
    {
        w.WriteTextString(key);
        value(w);
    };

    private static TelemetryPoint[] PointsOf(DecodeResult result)
    {
        Assert.That(result.IsValid, Is.True, result.Reason);
        return result.Points!.AsSpan(0, result.Count).ToArray();
    }

    private static IEnumerable<string> ErrorsOf(DecodeResult result)
    {
        Assert.That(result.IsValid, Is.False, "the message is rejected");
        Assert.That(result.Points, Is.Null, "a rejected message yields no points");
        return result.Errors!.Select(e => e.Field.Length == 0 ? e.Message : $"{e.Field}: {e.Message}");
    }

    [Test]
    public void A_map_of_metrics_is_decoded_as_its_json_twin_with_numbers_of_every_cbor_width()
    {
        var points = PointsOf(Decode(Map(
            Entry("count", w => w.WriteInt32(7)), Entry("offset", w => w.WriteInt64(-40)), Entry("half", w => w.WriteHalf((Half)1.5)),
            Entry("single", w => w.WriteSingle(0.25f)), Entry("double", w => w.WriteDouble(21.5)), Entry("on", w => w.WriteBoolean(true)),
            Entry("mode", w => w.WriteTextString("eco")))));

        Assert.That(points.Select(p => (p.Metric, p.Kind, p.Number, p.Text)), Is.EqualTo(new[]
        {
            ("count", ValueKind.Number, 7.0, (string?)null), ("offset", ValueKind.Number, -40.0, null), ("half", ValueKind.Number, 1.5, null),
            ("single", ValueKind.Number, 0.25, null), ("double", ValueKind.Number, 21.5, null), ("on", ValueKind.Boolean, 1.0, null),
            ("mode", ValueKind.Text, 0.0, "eco"),
        }));
        Assert.That(points.Select(p => (p.TimestampMs, p.Sequence)), Is.EqualTo(Enumerable.Range(0, 7).Select(i => (ReceivedAt, FirstSequence + i))));
    }

    [Test]
    public void Ts_may_be_unix_milliseconds_rfc_3339_text_or_a_tag_0_or_tag_1_date()
    {
        var at = DateTimeOffset.FromUnixTimeMilliseconds(1_764_503_940_000);
        var forms = new Action<CborWriter>[]
        {
            w => w.WriteInt64(at.ToUnixTimeMilliseconds()),
            w => w.WriteTextString("2025-11-30T11:59:00Z"),
            w => w.WriteDateTimeOffset(at),
            w => w.WriteUnixTimeSeconds(at.ToUnixTimeSeconds()),
        };
        foreach (var ts in forms)
        {
            var result = Decode(Map(Entry("ts", ts), Entry("values", w => WriteMap(w, Entry("v", v => v.WriteInt32(1))))));
            var point = PointsOf(result).Single();
            Assert.That((point.TimestampMs, point.DeviceTimestampMs, point.Sequence), Is.EqualTo((at.ToUnixTimeMilliseconds(), (long?)at.ToUnixTimeMilliseconds(), 0L)));
            Assert.That(result.LatestDeviceTs, Is.EqualTo(at.ToUnixTimeMilliseconds()));
        }
    }

    [Test]
    public void A_batch_is_an_array_of_maps_each_with_its_own_time()
    {
        var result = Decode(Cbor(w =>
        {
            w.WriteStartArray(2);
            WriteMap(w, Entry("ts", t => t.WriteInt64(1_764_503_000_000)), Entry("values", v => WriteMap(v, Entry("a", x => x.WriteInt32(1)))));
            WriteMap(w, Entry("b", x => x.WriteInt32(2)));
            w.WriteEndArray();
        }));

        Assert.That(PointsOf(result).Select(p => (p.Metric, p.TimestampMs, p.Sequence)), Is.EqualTo(new[] { ("a", 1_764_503_000_000L, 0L), ("b", ReceivedAt, 501L) }));
    }

    [Test]
    public void Text_in_chunks_is_read_whole()
    {
        var point = PointsOf(Decode(Cbor(w =>
        {
            w.WriteStartMap(1);
            w.WriteTextString("mode");
            w.WriteStartIndefiniteLengthTextString();
            w.WriteTextString("ec");
            w.WriteTextString("o");
            w.WriteEndIndefiniteLengthTextString();
            w.WriteEndMap();
        }))).Single();

        Assert.That(point.Text, Is.EqualTo("eco"));
    }

    [Test]
    public void One_bad_value_rejects_the_whole_message_and_every_problem_is_named()
    {
        var result = Decode(Map(
            Entry("ok", w => w.WriteInt32(1)), Entry("nan", w => w.WriteDouble(double.NaN)), Entry("inf", w => w.WriteSingle(float.PositiveInfinity)),
            Entry("bytes", w => w.WriteByteString([1, 2])), Entry("nothing", w => w.WriteNull()),
            Entry("list", w => { w.WriteStartArray(1); w.WriteInt32(1); w.WriteEndArray(); }), Entry("bad name", w => w.WriteInt32(1)),
            Entry("s", w => w.WriteTextString("a\0b")), Entry("long", w => w.WriteTextString(new string('x', 17)))));

        Assert.That(ErrorsOf(result), Is.EqualTo(new[]
        {
            "nan: NaN and infinities are not values",
            "inf: NaN and infinities are not values",
            "bytes: values must be numbers, booleans or strings, not maps, arrays or byte strings",
            "nothing: null is not a value",
            "list: values must be numbers, booleans or strings, not maps, arrays or byte strings",
            "bad name: metric names must be 1-64 characters of A-Z a-z 0-9 _ . -, not only dots",
            "s: " + TelemetryDecoder.NulInString,
            "long: string is longer than 16 bytes",
        }));
        Assert.That(ErrorsOf(Decode(Map(Entry("undefined", w => w.WriteSimpleValue(CborSimpleValue.Undefined))))).Single(), Does.StartWith("undefined: "),
            "CBOR's undefined is no value either");
    }

    [Test]
    public void Text_that_is_not_valid_utf8_is_refused_rather_than_stored_with_replacement_characters()
    {
        // A text string (major type 3) of the two bytes C3 28: a lead byte without its continuation.
        byte[] valueNotUtf8 = [0xA1, 0x61, (byte)'s', 0x62, 0xC3, 0x28];
        byte[] keyNotUtf8 = [0xA1, 0x62, 0xC3, 0x28, 0x01];

        Assert.That(ErrorsOf(Decode(valueNotUtf8)), Is.EqualTo(new[] { "s: text is not valid UTF-8" }));
        Assert.That(ErrorsOf(Decode(keyNotUtf8)), Is.EqualTo(new[] { "a metric name is not valid UTF-8 text" }));
    }

    [TestCase(new byte[] { 0xA1, 0x01, 0x01 }, "map keys must be text")]
    [TestCase(new byte[] { 0xA0 }, "the message holds no values")]
    [TestCase(new byte[] { 0x80 }, "the batch is empty")]
    [TestCase(new byte[] { 0x82, 0x01, 0xA1, 0x61, (byte)'a', 0x01 }, "[0]: each item of a batch must be a map")]
    [TestCase(new byte[] { 0xA1, 0x61, (byte)'a', 0x01, 0x00 }, "unexpected content after the message")]
    public void A_message_breaking_a_rule_is_rejected_with_the_rule(byte[] cbor, string error) =>
        Assert.That(ErrorsOf(Decode(cbor)), Is.EqualTo(new[] { error }));

    [Test]
    public void A_payload_that_is_not_a_map_or_an_array_is_rejected_with_the_rule() =>
        Assert.That(ErrorsOf(Decode([0x18, 42])).First(), Is.EqualTo("payload must be a CBOR map or an array of maps"));

    [Test]
    public void A_ts_that_is_not_a_date_or_out_of_range_is_rejected()
    {
        byte[] Message(Action<CborWriter> ts) => Map(Entry("ts", ts), Entry("values", w => WriteMap(w, Entry("v", v => v.WriteInt32(1)))));

        Assert.That(ErrorsOf(Decode(Message(w => w.WriteTextString("yesterday")))), Is.EqualTo(new[] { "ts: ts must be Unix milliseconds or an ISO 8601 date-time" }));
        Assert.That(ErrorsOf(Decode(Message(w => w.WriteDouble(1.5)))), Is.EqualTo(new[] { "ts: ts must be Unix milliseconds or an ISO 8601 date-time" }));
        Assert.That(ErrorsOf(Decode(Message(w => w.WriteInt64(-1)))), Is.EqualTo(new[] { "ts: ts is outside the range of dates" }));
        Assert.That(ErrorsOf(Decode(Message(w => w.WriteInt64(253402300800000)))), Is.EqualTo(new[] { "ts: ts is outside the range of dates" }));
    }

    [TestCase(new byte[] { 0xA1, 0x63, (byte)'r' })]
    [TestCase(new byte[] { 0xA2, 0x61, (byte)'a', 0x01 })]
    [TestCase(new byte[] { 0xFF })]
    [TestCase(new byte[0])]
    public void Bytes_that_are_not_whole_cbor_are_malformed(byte[] cbor) =>
        Assert.That(ErrorsOf(Decode(cbor)).Single(), Does.StartWith("malformed CBOR: "));

    [Test]
    public void The_size_and_point_limits_are_the_json_decoders()
    {
        var message = Map(Entry("a", w => w.WriteInt32(1)), Entry("b", w => w.WriteInt32(2)));

        Assert.That(ErrorsOf(Decode(message, Limits with { MaxPayloadBytes = message.Length - 1 })),
            Is.EqualTo(new[] { $"payload of {message.Length} bytes exceeds the limit of {message.Length - 1} bytes" }));
        Assert.That(ErrorsOf(Decode(message, Limits with { MaxPoints = 1 })), Is.EqualTo(new[] { "more than 1 points in one message" }));
        Assert.That(PointsOf(Decode(message, Limits with { MaxPoints = 2, MaxPayloadBytes = message.Length })), Has.Length.EqualTo(2));
    }

    [Test]
    public void A_map_with_a_repeated_key_is_refused_naming_it_as_RFC_8949_makes_it_invalid()
    {
        var flat = Decode(Map(Entry("t", w => w.WriteInt32(1)), Entry("t", w => w.WriteInt32(2))));
        var ts = Decode(Map(Entry("ts", w => w.WriteInt64(1764503940000)), Entry("ts", w => w.WriteInt64(1764503950000)),
            Entry("values", w => WriteMap(w, Entry("t", v => v.WriteInt32(1))))));
        var values = Decode(Map(Entry("values", w => WriteMap(w, Entry("h", v => v.WriteInt32(1)), Entry("h", v => v.WriteInt32(1))))));

        Assert.That(ErrorsOf(flat), Is.EqualTo(new[] { $"t: {TelemetryDecoder.Repeated}" }));
        Assert.That(ErrorsOf(ts), Is.EqualTo(new[] { $"ts: {TelemetryDecoder.Repeated}" }));
        Assert.That(ErrorsOf(values), Is.EqualTo(new[] { $"values.h: {TelemetryDecoder.Repeated}" }));
    }
}
