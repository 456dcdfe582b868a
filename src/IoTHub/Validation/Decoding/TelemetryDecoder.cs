// Decodes and validates a JSON telemetry payload in one forward pass over its bytes (Utf8JsonReader, no DOM).
// Shapes: a flat object {"metric": value, ...}; {"ts": ..., "values": {...}}; or an array of those.
// A message is all or nothing: any invalid field rejects it, with every problem named (up to a limit). A name given
// twice in one object (a metric, "ts", "values") is such a field.
using System.Text;
using System.Text.Json;
using IoTHub.Contracts;

namespace IoTHub.Validation.Decoding;

internal readonly record struct DecodeLimits(int MaxPayloadBytes, int MaxPoints, int MaxStringBytes);

internal struct DecodeResult
{
    public TelemetryPoint[]? Points;
    public int Count;
    /// <summary>The latest explicit timestamp of the message (points with one carry it in DeviceTimestampMs too).</summary>
    public long? LatestDeviceTs;
    public List<FieldError>? Errors;

    public readonly bool IsValid => Errors is null;

    public readonly string Reason => Errors is null ? "" : TelemetryDecoder.Describe(Errors);
}

internal sealed partial class TelemetryDecoder(MetricNames names)
{
    /// <summary>PostgreSQL's text type cannot hold U+0000, and both stores keep the same data: it is refused on the way in.</summary>
    internal const string NulInString = "string contains U+0000, which cannot be stored";

    private const int MaxErrors = 10;
    private static readonly JsonReaderOptions ReaderOptions = new() { MaxDepth = 4, CommentHandling = JsonCommentHandling.Disallow };

    [ThreadStatic] private static TelemetryPoint[]? _scratch;

    /// <summary>Decodes a JSON payload; points without <c>ts</c> get the receive time and the sequence number
    /// <paramref name="firstSequence"/> + their index in the message (see <see cref="RawTelemetry.Sequence"/>).</summary>
    public DecodeResult Decode(ReadOnlySpan<byte> payload, long receivedAtMs, long firstSequence, in DecodeLimits limits)
    {
        var result = new DecodeResult();
        if (!TryBegin(payload.Length, receivedAtMs, firstSequence, limits, ref result, out var state)) return result;
        try
        {
            var reader = new Utf8JsonReader(payload, ReaderOptions);
            if (!reader.Read()) { AddError(ref result, "", "payload is empty"); return result; }
            if (reader.TokenType == JsonTokenType.StartObject)
            {
                ReadMessage(ref reader, ref state, ref result, null);
            }
            else if (reader.TokenType == JsonTokenType.StartArray)
            {
                var index = 0;
                while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                {
                    if (reader.TokenType != JsonTokenType.StartObject)
                    {
                        AddError(ref result, $"[{index}]", "each item of a batch must be an object");
                        reader.Skip();
                    }
                    else
                    {
                        ReadMessage(ref reader, ref state, ref result, $"[{index}]");
                    }
                    if (state.Overflow) break;
                    index++;
                }
                if (index == 0 && result.Errors is null) AddError(ref result, "", "the batch is empty");
            }
            else
            {
                AddError(ref result, "", "payload must be a JSON object or an array of objects");
            }
            if (!state.Overflow && reader.Read()) AddError(ref result, "", "unexpected content after the message");
        }
        catch (JsonException ex)
        {
            result.Errors = null;
            AddError(ref result, "", "malformed JSON: " + ex.Message);
        }
        catch (InvalidOperationException ex)
        {
            result.Errors = null;
            AddError(ref result, "", "invalid JSON text: " + ex.Message);
        }
        Finish(ref result, state);
        return result;
    }

    /// <summary>Checks the payload size and sets up the per-thread point buffer; false when the payload is too large.</summary>
    private static bool TryBegin(int payloadLength, long receivedAtMs, long firstSequence, in DecodeLimits limits, ref DecodeResult result, out State state)
    {
        var scratch = _scratch is { } s && s.Length >= limits.MaxPoints ? s : _scratch = new TelemetryPoint[limits.MaxPoints];
        state = new State(scratch, receivedAtMs, firstSequence, limits);
        if (payloadLength <= limits.MaxPayloadBytes) return true;
        AddError(ref result, "", $"payload of {payloadLength} bytes exceeds the limit of {limits.MaxPayloadBytes} bytes");
        return false;
    }

    /// <summary>A valid message gets an exact-size copy of its points (the only allocation of a valid message).</summary>
    private static void Finish(ref DecodeResult result, in State state)
    {
        if (result.Errors is not null) return;
        result.Count = state.Count;
        result.LatestDeviceTs = state.LatestDeviceTs;
        result.Points = state.Points.AsSpan(0, state.Count).ToArray();
    }

    private struct State(TelemetryPoint[] points, long receivedAtMs, long firstSequence, in DecodeLimits limits)
    {
        public readonly TelemetryPoint[] Points = points;
        public readonly long ReceivedAtMs = receivedAtMs;
        public readonly long FirstSequence = firstSequence;
        public readonly DecodeLimits Limits = limits;
        public int Count;
        public bool Overflow;
        public long? LatestDeviceTs;
    }

    private void ReadMessage(ref Utf8JsonReader reader, ref State state, ref DecodeResult result, string? prefix)
    {
        var first = state.Count;
        long? ts = null;
        var hasTs = false;
        var hasValuesObject = false;
        var hasFlatValues = false;
        while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
        {
            if (reader.ValueTextEquals("ts"u8))
            {
                if (hasTs) AddError(ref result, Path(prefix, "ts"), Repeated);
                hasTs = true;
                reader.Read();
                ts = ReadTimestamp(ref reader, ref result, Path(prefix, "ts"));
            }
            else if (reader.ValueTextEquals("values"u8))
            {
                if (hasValuesObject) AddError(ref result, Path(prefix, "values"), Repeated);
                reader.Read();
                if (reader.TokenType != JsonTokenType.StartObject)
                {
                    AddError(ref result, Path(prefix, "values"), "\"values\" must be an object of metric: value");
                    reader.Skip();
                    continue;
                }
                hasValuesObject = true;
                var valuesPrefix = Path(prefix, "values");
                while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
                {
                    ReadPoint(ref reader, ref state, ref result, valuesPrefix);
                    if (state.Overflow) return;
                }
            }
            else
            {
                hasFlatValues = true;
                ReadPoint(ref reader, ref state, ref result, prefix);
            }
            if (state.Overflow) return;
        }
        if (hasValuesObject && hasFlatValues)
            AddError(ref result, prefix ?? "", "a message with \"values\" may hold only \"ts\" beside it");
        if (state.Count == first && result.Errors is null)
            AddError(ref result, prefix ?? "", "the message holds no values");
        RefuseRepeatedMetrics(state, first, ref result, hasValuesObject ? Path(prefix, "values") : prefix);
        Stamp(ref state, first, ts);
    }

    /// <summary>The error for a name that occurs twice in one object: RFC 8259 §4 leaves to each reader which of the two
    /// it keeps (and keeping both would store two readings of one metric at one time), and RFC 8949 §5.6 makes a CBOR
    /// map with a repeated key invalid. Refused, naming it, like any other invalid field.</summary>
    internal const string Repeated = Contracts.RepeatedNames.Rule;

    /// <summary>Adds an error for each metric that occurs more than once among the points of one message object
    /// (<paramref name="first"/> to <c>state.Count</c>).</summary>
    private static void RefuseRepeatedMetrics(in State state, int first, ref DecodeResult result, string? prefix)
    {
        var points = state.Points.AsSpan(first, state.Count - first);
        if (points.Length < 2) return;
        if (points.Length <= 32)
        {
            for (var i = 1; i < points.Length; i++)
            {
                var metric = points[i].Metric;
                var seen = 0;
                for (var j = 0; j < i; j++)
                    if (string.Equals(points[j].Metric, metric, StringComparison.Ordinal)) seen++;
                if (seen == 1) AddError(ref result, Path(prefix, metric), Repeated); // named once, at its second occurrence
            }
            return;
        }
        var names = new HashSet<string>(points.Length, StringComparer.Ordinal);
        var repeated = new HashSet<string>(StringComparer.Ordinal);
        foreach (ref readonly var p in points)
            if (!names.Add(p.Metric) && repeated.Add(p.Metric)) AddError(ref result, Path(prefix, p.Metric), Repeated);
    }

    /// <summary>Gives the points of one message object their time: the device's <c>ts</c> (sequence 0: a resend is the
    /// same point), or else the receive time with the point's own arrival sequence number.</summary>
    private static void Stamp(ref State state, int first, long? ts)
    {
        for (var i = first; i < state.Count; i++)
        {
            state.Points[i] = ts is { } t
                ? state.Points[i] with { TimestampMs = t, DeviceTimestampMs = t }
                : state.Points[i] with { TimestampMs = state.ReceivedAtMs, DeviceTimestampMs = null, Sequence = state.FirstSequence + i };
        }
        if (ts is { } latest && (state.LatestDeviceTs is null || latest > state.LatestDeviceTs)) state.LatestDeviceTs = latest;
    }

    private void ReadPoint(ref Utf8JsonReader reader, ref State state, ref DecodeResult result, string? prefix)
    {
        string metric;
        if (!reader.ValueIsEscaped && Contracts.Identifier.IsValidUtf8(reader.ValueSpan))
        {
            metric = names.Get(reader.ValueSpan);
        }
        else
        {
            var raw = reader.GetString() ?? "";
            if (reader.ValueIsEscaped && Contracts.Identifier.IsValid(raw))
            {
                // "\u0074" is "t" (RFC 8259 §7): the same name as written plainly. Rare, so the unescaping allocates.
                metric = names.Get(Encoding.ASCII.GetBytes(raw));
            }
            else
            {
                reader.Read();
                reader.Skip();
                AddError(ref result, Path(prefix, Printable(raw)), $"metric names must be {Contracts.Identifier.Rule}");
                return;
            }
        }
        reader.Read();
        if (state.Count >= state.Limits.MaxPoints)
        {
            AddError(ref result, "", $"more than {state.Limits.MaxPoints} points in one message");
            state.Overflow = true;
            return;
        }
        switch (reader.TokenType)
        {
            case JsonTokenType.Number:
                if (reader.TryGetDouble(out var d) && double.IsFinite(d))
                    state.Points[state.Count++] = new TelemetryPoint(metric, 0, ValueKind.Number, d, null);
                else
                    AddError(ref result, Path(prefix, metric), "number is out of range");
                break;
            case JsonTokenType.True:
            case JsonTokenType.False:
                state.Points[state.Count++] = new TelemetryPoint(metric, 0, ValueKind.Boolean, reader.TokenType == JsonTokenType.True ? 1 : 0, null);
                break;
            case JsonTokenType.String:
                var max = state.Limits.MaxStringBytes;
                if (reader.ValueSpan.Length > max * 6)
                {
                    AddError(ref result, Path(prefix, metric), $"string is longer than {max} bytes");
                    break;
                }
                var text = reader.GetString()!;
                if (reader.ValueIsEscaped ? Encoding.UTF8.GetByteCount(text) > max : reader.ValueSpan.Length > max)
                    AddError(ref result, Path(prefix, metric), $"string is longer than {max} bytes");
                else if (reader.ValueIsEscaped && text.Contains('\0')) // JSON has no raw control characters: only "\u0000" makes one
                    AddError(ref result, Path(prefix, metric), NulInString);
                else
                    state.Points[state.Count++] = new TelemetryPoint(metric, 0, ValueKind.Text, 0, text);
                break;
            case JsonTokenType.Null:
                AddError(ref result, Path(prefix, metric), "null is not a value");
                break;
            default:
                AddError(ref result, Path(prefix, metric), "values must be numbers, booleans or strings, not objects or arrays");
                reader.Skip();
                break;
        }
    }

    /// <summary>Parses a timestamp; whether it is plausible is the clock policy's question, asked after decoding.</summary>
    private static long? ReadTimestamp(ref Utf8JsonReader reader, ref DecodeResult result, string path)
    {
        long ts;
        if (reader.TokenType == JsonTokenType.Number)
        {
            if (!reader.TryGetInt64(out ts))
            {
                AddError(ref result, path, "ts must be whole Unix milliseconds");
                return null;
            }
        }
        else if (reader.TokenType == JsonTokenType.String)
        {
            if (!Contracts.IsoTime.TryRead(ref reader, out var dto))
            {
                AddError(ref result, path, "ts must be Unix milliseconds or an ISO 8601 date-time");
                return null;
            }
            ts = dto.ToUnixTimeMilliseconds();
        }
        else
        {
            AddError(ref result, path, "ts must be Unix milliseconds or an ISO 8601 date-time");
            reader.Skip();
            return null;
        }
        if (ts is < 0 or > 253402300799999)
        {
            AddError(ref result, path, "ts is outside the range of dates");
            return null;
        }
        return ts;
    }

    public static string Iso(long ts) => DateTimeOffset.FromUnixTimeMilliseconds(ts).ToString("yyyy-MM-ddTHH:mm:ss.fffZ", System.Globalization.CultureInfo.InvariantCulture);

    private static string Path(string? prefix, string name) => prefix is null ? name : prefix + "." + name;

    private static string Printable(string s)
    {
        var cut = SafeText.Prefix(s, 64, "…"); // an emoji as the 64th character is kept whole or left out, never halved
        return string.Create(cut.Length, cut, static (span, src) =>
        {
            for (var i = 0; i < src.Length; i++) span[i] = char.IsControl(src[i]) ? '?' : src[i];
        });
    }

    private static void AddError(ref DecodeResult result, string field, string message)
    {
        result.Errors ??= new List<FieldError>();
        if (result.Errors.Count < MaxErrors) result.Errors.Add(new FieldError(field, message));
    }

    public static string Describe(IReadOnlyList<FieldError> errors)
    {
        var sb = new StringBuilder();
        foreach (var e in errors)
        {
            if (sb.Length > 0) sb.Append("; ");
            if (e.Field.Length > 0) sb.Append(e.Field).Append(": ");
            sb.Append(e.Message);
            if (sb.Length > 400) break;
        }
        return sb.ToString();
    }
}
