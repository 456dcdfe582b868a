// The CBOR twin of the JSON decoder (MQTT 5 content type or HTTP media type application/cbor): the same three
// shapes (a map of metric: value; {"ts": ..., "values": {...}}; or an array of those), the same rules and errors.
// ts may be Unix milliseconds, an RFC 3339 text string, or a tag-0/tag-1 date. Text must be valid UTF-8, as in JSON:
// the reader's Lax mode (kept, so repeated keys are read as JSON reads them) would decode it with replacement characters.
using System.Formats.Cbor;
using System.Text;
using IoTHub.Contracts;

namespace IoTHub.Validation.Decoding;

internal sealed partial class TelemetryDecoder
{
    /// <summary>Decodes a CBOR payload; times and sequence numbers as <see cref="Decode"/>.</summary>
    public DecodeResult DecodeCbor(ReadOnlyMemory<byte> payload, long receivedAtMs, long firstSequence, in DecodeLimits limits)
    {
        var result = new DecodeResult();
        if (!TryBegin(payload.Length, receivedAtMs, firstSequence, limits, ref result, out var state)) return result;
        try
        {
            var reader = new CborReader(payload, CborConformanceMode.Lax, allowMultipleRootLevelValues: false);
            switch (reader.PeekState())
            {
                case CborReaderState.StartMap:
                    ReadCborMessage(reader, ref state, ref result, null);
                    break;
                case CborReaderState.StartArray:
                    reader.ReadStartArray();
                    var index = 0;
                    while (reader.PeekState() != CborReaderState.EndArray && !state.Overflow)
                    {
                        if (reader.PeekState() != CborReaderState.StartMap)
                        {
                            AddError(ref result, $"[{index}]", "each item of a batch must be a map");
                            reader.SkipValue();
                        }
                        else
                        {
                            ReadCborMessage(reader, ref state, ref result, $"[{index}]");
                        }
                        index++;
                    }
                    if (!state.Overflow) reader.ReadEndArray();
                    if (index == 0 && result.Errors is null) AddError(ref result, "", "the batch is empty");
                    break;
                default:
                    AddError(ref result, "", "payload must be a CBOR map or an array of maps");
                    break;
            }
            if (!state.Overflow && reader.BytesRemaining > 0) AddError(ref result, "", "unexpected content after the message");
        }
        catch (Exception ex) when (ex is CborContentException or InvalidOperationException or FormatException or DecoderFallbackException or OverflowException)
        {
            result.Errors = null;
            AddError(ref result, "", "malformed CBOR: " + ex.Message);
        }
        Finish(ref result, state);
        return result;
    }

    private void ReadCborMessage(CborReader reader, ref State state, ref DecodeResult result, string? prefix)
    {
        var first = state.Count;
        long? ts = null;
        bool hasTs = false, hasValues = false, hasFlat = false;
        reader.ReadStartMap();
        while (reader.PeekState() != CborReaderState.EndMap)
        {
            if (!IsText(reader.PeekState()))
            {
                AddError(ref result, prefix ?? "", "map keys must be text");
                reader.SkipValue();
                reader.SkipValue();
                continue;
            }
            if (ReadUtf8Text(reader) is not { } key)
            {
                AddError(ref result, prefix ?? "", NotUtf8Key);
                reader.SkipValue();
                continue;
            }
            if (key == "ts")
            {
                if (hasTs) AddError(ref result, Path(prefix, "ts"), Repeated);
                hasTs = true;
                ts = ReadCborTimestamp(reader, ref result, Path(prefix, "ts"));
            }
            else if (key == "values" && reader.PeekState() == CborReaderState.StartMap)
            {
                if (hasValues) AddError(ref result, Path(prefix, "values"), Repeated);
                hasValues = true;
                reader.ReadStartMap();
                var valuesPrefix = Path(prefix, "values");
                while (reader.PeekState() != CborReaderState.EndMap)
                {
                    if (!IsText(reader.PeekState())) { reader.SkipValue(); reader.SkipValue(); AddError(ref result, valuesPrefix, "metric names must be text"); continue; }
                    if (ReadUtf8Text(reader) is not { } metric) { reader.SkipValue(); AddError(ref result, valuesPrefix, NotUtf8Key); continue; }
                    ReadCborPoint(reader, metric, ref state, ref result, valuesPrefix);
                    if (state.Overflow) return;
                }
                reader.ReadEndMap();
            }
            else
            {
                hasFlat = true;
                ReadCborPoint(reader, key, ref state, ref result, prefix);
            }
            if (state.Overflow) return;
        }
        reader.ReadEndMap();
        if (hasValues && hasFlat) AddError(ref result, prefix ?? "", "a message with \"values\" may hold only \"ts\" beside it");
        if (state.Count == first && result.Errors is null) AddError(ref result, prefix ?? "", "the message holds no values");
        RefuseRepeatedMetrics(state, first, ref result, hasValues ? Path(prefix, "values") : prefix);
        Stamp(ref state, first, ts);
    }

    private void ReadCborPoint(CborReader reader, string name, ref State state, ref DecodeResult result, string? prefix)
    {
        if (!Contracts.Identifier.IsValid(name))
        {
            reader.SkipValue();
            AddError(ref result, Path(prefix, Printable(name)), $"metric names must be {Contracts.Identifier.Rule}");
            return;
        }
        Span<byte> ascii = stackalloc byte[name.Length];
        Encoding.ASCII.GetBytes(name, ascii);
        var metric = names.Get(ascii);
        if (state.Count >= state.Limits.MaxPoints)
        {
            AddError(ref result, "", $"more than {state.Limits.MaxPoints} points in one message");
            state.Overflow = true;
            return;
        }
        switch (reader.PeekState())
        {
            case CborReaderState.UnsignedInteger or CborReaderState.NegativeInteger:
                state.Points[state.Count++] = new TelemetryPoint(metric, 0, ValueKind.Number, (double)reader.ReadInt64(), null);
                break;
            case CborReaderState.HalfPrecisionFloat or CborReaderState.SinglePrecisionFloat or CborReaderState.DoublePrecisionFloat:
                var d = reader.ReadDouble();
                if (double.IsFinite(d)) state.Points[state.Count++] = new TelemetryPoint(metric, 0, ValueKind.Number, d, null);
                else AddError(ref result, Path(prefix, metric), "NaN and infinities are not values");
                break;
            case CborReaderState.Boolean:
                state.Points[state.Count++] = new TelemetryPoint(metric, 0, ValueKind.Boolean, reader.ReadBoolean() ? 1 : 0, null);
                break;
            case CborReaderState.TextString or CborReaderState.StartIndefiniteLengthTextString:
                var text = ReadUtf8Text(reader);
                if (text is null)
                    AddError(ref result, Path(prefix, metric), "text is not valid UTF-8");
                else if (Encoding.UTF8.GetByteCount(text) > state.Limits.MaxStringBytes)
                    AddError(ref result, Path(prefix, metric), $"string is longer than {state.Limits.MaxStringBytes} bytes");
                else if (text.Contains('\0'))
                    AddError(ref result, Path(prefix, metric), NulInString);
                else
                    state.Points[state.Count++] = new TelemetryPoint(metric, 0, ValueKind.Text, 0, text);
                break;
            case CborReaderState.Null or CborReaderState.Undefined:
                reader.SkipValue();
                AddError(ref result, Path(prefix, metric), "null is not a value");
                break;
            default:
                reader.SkipValue();
                AddError(ref result, Path(prefix, metric), "values must be numbers, booleans or strings, not maps, arrays or byte strings");
                break;
        }
    }

    private const string NotUtf8Key = "a metric name is not valid UTF-8 text";

    private static bool IsText(CborReaderState state) => state is CborReaderState.TextString or CborReaderState.StartIndefiniteLengthTextString;

    /// <summary>Reads a text string (definite or in chunks); null when its bytes are not valid UTF-8.</summary>
    private static string? ReadUtf8Text(CborReader reader)
    {
        if (reader.PeekState() == CborReaderState.TextString)
        {
            var bytes = reader.ReadDefiniteLengthTextStringBytes().Span;
            return System.Text.Unicode.Utf8.IsValid(bytes) ? Encoding.UTF8.GetString(bytes) : null;
        }
        // Indefinite length: each chunk is a definite text string, well-formed UTF-8 on its own (RFC 8949 §3.2.3).
        reader.ReadStartIndefiniteLengthTextString();
        var text = new StringBuilder();
        var valid = true;
        while (reader.PeekState() != CborReaderState.EndIndefiniteLengthTextString)
        {
            var chunk = reader.ReadDefiniteLengthTextStringBytes().Span;
            if (System.Text.Unicode.Utf8.IsValid(chunk)) text.Append(Encoding.UTF8.GetString(chunk));
            else valid = false;
        }
        reader.ReadEndIndefiniteLengthTextString();
        return valid ? text.ToString() : null;
    }

    private static long? ReadCborTimestamp(CborReader reader, ref DecodeResult result, string path)
    {
        long ts;
        switch (reader.PeekState())
        {
            case CborReaderState.UnsignedInteger or CborReaderState.NegativeInteger:
                ts = reader.ReadInt64();
                break;
            case CborReaderState.TextString or CborReaderState.StartIndefiniteLengthTextString:
                if (!Contracts.IsoTime.TryParse(ReadUtf8Text(reader), out var parsed))
                {
                    AddError(ref result, path, "ts must be Unix milliseconds or an ISO 8601 date-time");
                    return null;
                }
                ts = parsed.ToUnixTimeMilliseconds();
                break;
            case CborReaderState.Tag:
                var tag = reader.PeekTag();
                if (tag == CborTag.DateTimeString) ts = reader.ReadDateTimeOffset().ToUnixTimeMilliseconds();
                else if (tag == CborTag.UnixTimeSeconds) ts = reader.ReadUnixTimeSeconds().ToUnixTimeMilliseconds();
                else goto default;
                break;
            default:
                reader.SkipValue();
                AddError(ref result, path, "ts must be Unix milliseconds or an ISO 8601 date-time");
                return null;
        }
        if (ts is < 0 or > 253402300799999)
        {
            AddError(ref result, path, "ts is outside the range of dates");
            return null;
        }
        return ts;
    }
}
