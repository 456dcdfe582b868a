// Fast specifications of the JSON telemetry decoder (no host): the three shapes a message may take, how its points get
// their time and arrival sequence, and the rules that reject a whole message with every problem named by its path.
using System.Text;
using IoTHub.Contracts;
using IoTHub.Validation.Decoding;

namespace IoTHub.Tests.Validation.Decoding;

public sealed class TelemetryDecoderSpecs
{
    private const long ReceivedAt = 1_764_504_000_000; // 2025-11-30T12:00:00Z
    private const long FirstSequence = 500;
    private static readonly DecodeLimits Limits = new(MaxPayloadBytes: 4096, MaxPoints: 8, MaxStringBytes: 16);

    private readonly TelemetryDecoder _decoder = new(new MetricNames());

    private DecodeResult Decode(string json, DecodeLimits? limits = null) =>
        _decoder.Decode(Encoding.UTF8.GetBytes(json), ReceivedAt, FirstSequence, limits ?? Limits);

    private static TelemetryPoint[] PointsOf(DecodeResult result)
    {
        Assert.That(result.IsValid, Is.True, result.Reason);
        return result.Points!.AsSpan(0, result.Count).ToArray();
    }

    private static IEnumerable<string> ErrorsOf(DecodeResult result)
    {
        Assert.That(result.IsValid, Is.False, "the message is rejected");
        Assert.That(result.Points, Is.Null, "a rejected message yields no points: a message is all or nothing");
        return result.Errors!.Select(e => e.Field.Length == 0 ? e.Message : $"{e.Field}: {e.Message}");
    }

    [Test]
    public void A_flat_object_is_one_point_per_metric_at_the_receive_time_each_with_its_own_arrival_sequence()
    {
        var points = PointsOf(Decode("""{"temperature": 21.5, "heating": true, "door": false, "mode": "eco"}"""));

        Assert.That(points.Select(p => (p.Metric, p.Kind, p.Number, p.Text)), Is.EqualTo(new[]
        {
            ("temperature", ValueKind.Number, 21.5, (string?)null), ("heating", ValueKind.Boolean, 1.0, null),
            ("door", ValueKind.Boolean, 0.0, null), ("mode", ValueKind.Text, 0.0, "eco"),
        }));
        Assert.That(points.Select(p => p.TimestampMs), Is.All.EqualTo(ReceivedAt));
        Assert.That(points.Select(p => p.DeviceTimestampMs), Is.All.Null);
        Assert.That(points.Select(p => p.Sequence), Is.EqualTo(new[] { 500L, 501, 502, 503 }));
    }

    [Test]
    public void A_message_with_ts_puts_its_values_at_the_devices_time_with_sequence_0_so_a_resend_is_the_same_point()
    {
        var result = Decode("""{"ts": 1764503940000, "values": {"temperature": 21.5, "humidity": 40}}""");
        var points = PointsOf(result);

        Assert.That(points.Select(p => (p.Metric, p.TimestampMs, p.DeviceTimestampMs, p.Sequence)), Is.EqualTo(new[]
        {
            ("temperature", 1764503940000L, (long?)1764503940000L, 0L), ("humidity", 1764503940000L, 1764503940000L, 0L),
        }));
        Assert.That(result.LatestDeviceTs, Is.EqualTo(1764503940000L));
        Assert.That(PointsOf(Decode("""{"ts": 1764503940000, "values": {"temperature": 21.5, "humidity": 40}}""")), Is.EqualTo(points),
            "decoding the same message again gives the same points");
    }

    [Test]
    public void Ts_may_be_an_iso_8601_date_time_and_may_come_after_the_values()
    {
        var points = PointsOf(Decode("""{"values": {"v": 1}, "ts": "2025-11-30T11:59:00.250+01:00"}"""));

        Assert.That(points.Single().TimestampMs, Is.EqualTo(DateTimeOffset.Parse("2025-11-30T10:59:00.250Z", System.Globalization.CultureInfo.InvariantCulture).ToUnixTimeMilliseconds()));
    }

    [Test]
    public void A_batch_is_an_array_of_messages_each_with_its_own_time_and_the_latest_ts_is_the_messages()
    {
        var result = Decode("""[{"ts": 1764503000000, "values": {"a": 1}}, {"b": 2, "c": 3}, {"ts": 1764503900000, "values": {"d": 4}}, {"ts": 1764503500000, "values": {"e": 5}}]""");
        var points = PointsOf(result);

        Assert.That(points.Select(p => (p.Metric, p.TimestampMs, p.Sequence)), Is.EqualTo(new[]
        {
            ("a", 1764503000000L, 0L), ("b", ReceivedAt, 501L), ("c", ReceivedAt, 502L), ("d", 1764503900000L, 0L), ("e", 1764503500000L, 0L),
        }), "a point without ts gets the sequence number of its place in the whole message");
        Assert.That(result.LatestDeviceTs, Is.EqualTo(1764503900000L), "the latest, not the last, timestamp of the batch");
        Assert.That(Decode("""{"a": 1}""").LatestDeviceTs, Is.Null, "a message without ts has none");
    }

    [Test]
    public void Metric_names_are_interned_so_a_devices_repeated_names_cost_no_new_strings()
    {
        var first = PointsOf(Decode("""{"temperature": 1}""")).Single().Metric;
        var second = PointsOf(Decode("""{"ts": 1764503940000, "values": {"temperature": 2}}""")).Single().Metric;

        Assert.That(ReferenceEquals(first, second), Is.True);
    }

    [Test]
    public void A_string_value_is_limited_in_utf8_bytes_not_in_characters_or_in_its_escaped_json_text()
    {
        Assert.That(PointsOf(Decode("""{"s": "ééééééé"}""")).Single().Text, Is.EqualTo("ééééééé"), "7 characters, 14 bytes: within 16");
        Assert.That(PointsOf(Decode("""{"s": "\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9"}""")).Single().Text, Is.EqualTo("éééééééé"),
            "48 characters of JSON escapes, 16 bytes of UTF-8: within 16");
        Assert.That(ErrorsOf(Decode("""{"s": "ééééééééé"}""")), Is.EqualTo(new[] { "s: string is longer than 16 bytes" }), "18 bytes");
        Assert.That(ErrorsOf(Decode("""{"s": "\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9"}""")), Is.EqualTo(new[] { "s: string is longer than 16 bytes" }));
    }

    [Test]
    public void One_bad_value_rejects_the_whole_message_and_every_problem_is_named_by_its_path()
    {
        var result = Decode("""[{"ts": 1764503940000, "values": {"ok": 1, "a": null}}, {"b": {"nested": 1}, "c": [1, 2]}, {"bad name": 3}]""");

        Assert.That(ErrorsOf(result), Is.EqualTo(new[]
        {
            "[0].values.a: null is not a value",
            "[1].b: values must be numbers, booleans or strings, not objects or arrays",
            "[1].c: values must be numbers, booleans or strings, not objects or arrays",
            "[2].bad name: metric names must be 1-64 characters of A-Z a-z 0-9 _ . -, not only dots",
        }));
        Assert.That(result.Reason, Does.StartWith("[0].values.a: null is not a value; [1].b: values must be"), "the reason lists them in one line");
    }

    [Test]
    public void At_most_ten_problems_are_listed()
    {
        var json = "{" + string.Join(", ", Enumerable.Range(0, 12).Select(i => $"\"m{i}\": null")) + "}";

        Assert.That(ErrorsOf(Decode(json, Limits with { MaxPoints = 100 })).Count(), Is.EqualTo(10));
    }

    [TestCase("""{"a": 1e400}""", "a: number is out of range")]
    [TestCase("""{"a": -1e400}""", "a: number is out of range")]
    [TestCase("""{"note": "a\u0000b"}""", "note: " + TelemetryDecoder.NulInString)]
    [TestCase("""{"a-name-of-sixty-five-characters-is-one-character-too-long-for-itt": 1}""",
        "a-name-of-sixty-five-characters-is-one-character-too-long-for-it…: metric names must be 1-64 characters of A-Z a-z 0-9 _ . -, not only dots",
        Description = "a name too long to be one is shown cut to its first 64 characters")]
    [TestCase("""{}""", "the message holds no values")]
    [TestCase("""[]""", "the batch is empty")]
    [TestCase("""[1, {"a": 1}]""", "[0]: each item of a batch must be an object")]
    [TestCase("""42""", "payload must be a JSON object or an array of objects")]
    [TestCase("""{"values": 5}""", "values: \"values\" must be an object of metric: value")]
    [TestCase("""{"ts": 1764503940000, "values": {"a": 1}, "b": 2}""", "a message with \"values\" may hold only \"ts\" beside it")]
    [TestCase("""{"ts": 1764503940000.5, "values": {"a": 1}}""", "ts: ts must be whole Unix milliseconds")]
    [TestCase("""{"ts": "yesterday", "values": {"a": 1}}""", "ts: ts must be Unix milliseconds or an ISO 8601 date-time")]
    [TestCase("""{"ts": true, "values": {"a": 1}}""", "ts: ts must be Unix milliseconds or an ISO 8601 date-time")]
    [TestCase("""{"ts": -1, "values": {"a": 1}}""", "ts: ts is outside the range of dates")]
    [TestCase("""{"ts": 253402300800000, "values": {"a": 1}}""", "ts: ts is outside the range of dates")]
    public void A_message_breaking_a_rule_is_rejected_with_the_rule(string json, string error) =>
        Assert.That(ErrorsOf(Decode(json)), Is.EqualTo(new[] { error }));

    [Test]
    public void The_last_millisecond_of_year_9999_is_a_valid_ts() =>
        Assert.That(PointsOf(Decode("""{"ts": 253402300799999, "values": {"a": 1}}""")).Single().TimestampMs, Is.EqualTo(253402300799999));

    [TestCase("""{"a": NaN}""")]
    [TestCase("""{"a": 1,}""")]
    [TestCase("""{"a": 1} {"b": 2}""")]
    [TestCase("""{"a": 1""")]
    [TestCase("""[{"values": {"a": {"b": {"c": 1}}}}]""")]
    [TestCase("")]
    public void Text_that_is_not_json_or_is_nested_deeper_than_four_levels_is_malformed(string json) =>
        Assert.That(ErrorsOf(Decode(json)).Single(), Does.StartWith("malformed JSON: "));

    [Test]
    public void A_payload_over_the_size_limit_is_rejected_before_it_is_read()
    {
        var json = """{"a": 1, "padding": "               "}""";

        Assert.That(ErrorsOf(Decode(json, Limits with { MaxPayloadBytes = json.Length - 1 })),
            Is.EqualTo(new[] { $"payload of {json.Length} bytes exceeds the limit of {json.Length - 1} bytes" }));
        Assert.That(Decode(json, Limits with { MaxPayloadBytes = json.Length }).IsValid, Is.True, "a payload of exactly the limit is read");
    }

    [Test]
    public void A_message_with_more_points_than_the_limit_is_rejected_however_they_are_spread_over_a_batch()
    {
        Assert.That(PointsOf(Decode("""[{"a": 1, "b": 2}, {"c": 3}]""", Limits with { MaxPoints = 3 })), Has.Length.EqualTo(3));
        Assert.That(ErrorsOf(Decode("""[{"a": 1, "b": 2}, {"c": 3, "d": 4}]""", Limits with { MaxPoints = 3 })),
            Is.EqualTo(new[] { "more than 3 points in one message" }));
    }

    [TestCase("""{"temperature": 21.5, "temperature": "banana"}""", "temperature")]
    [TestCase("""{"ts": 1764503940000, "values": {"t": 1, "h": 2, "t": 1}}""", "values.t")]
    [TestCase("""[{"a": 1}, {"b": 1, "b": 2}]""", "[1].b")]
    [TestCase("""{"ts": 1764503940000, "ts": 1764503950000, "values": {"t": 1}}""", "ts")]
    [TestCase("""{"values": {"t": 1}, "values": {"h": 2}}""", "values")]
    public void A_name_given_twice_in_one_object_is_refused_naming_it(string json, string field)
    {
        // RFC 8259 §4 leaves it to each reader which of the two it keeps; the decoder kept both as two readings.
        Assert.That(ErrorsOf(Decode(json)), Is.EqualTo(new[] { $"{field}: {TelemetryDecoder.Repeated}" }));
    }

    [Test]
    public void The_same_metric_in_two_items_of_a_batch_is_two_readings()
    {
        var points = PointsOf(Decode("""[{"ts": 1764503940000, "t": 1}, {"ts": 1764503950000, "t": 2}]"""));
        Assert.That(points.Select(p => (p.Metric, p.Number)), Is.EqualTo(new[] { ("t", 1.0), ("t", 2.0) }));
    }

    [Test]
    public void A_metric_repeated_in_a_large_object_is_named_once()
    {
        var names = Enumerable.Range(0, 40).Select(i => $"\"m{i}\": {i}").Append("\"m7\": 0").Append("\"m7\": 1");
        var result = Decode("{" + string.Join(", ", names) + "}", new DecodeLimits(MaxPayloadBytes: 4096, MaxPoints: 64, MaxStringBytes: 16));
        Assert.That(ErrorsOf(result), Is.EqualTo(new[] { $"m7: {TelemetryDecoder.Repeated}" }));
    }

    [Test]
    public void An_escaped_metric_name_is_the_name_it_spells_and_repeats_it_when_given_plainly_too()
    {
        // RFC 8259 §7: "\u0074" is "t". It was refused as an invalid name.
        Assert.That(PointsOf(Decode("""{"\u0074emp": 1}""")).Single().Metric, Is.EqualTo("temp"));
        Assert.That(ErrorsOf(Decode("""{"t": 1, "\u0074": 2}""")), Is.EqualTo(new[] { $"t: {TelemetryDecoder.Repeated}" }));
        Assert.That(ErrorsOf(Decode("""{"\u00e9": 1}""")).Single(), Does.Contain("metric names must be"));
    }
}
