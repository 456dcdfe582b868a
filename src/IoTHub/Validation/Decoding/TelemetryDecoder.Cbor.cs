// The CBOR twin of the JSON decoder (MQTT 5 content type or HTTP media type application/cbor): the same three
// shapes (a map of metric: value; {"ts": ..., "values": {...}}; or an array of those), the same rules and errors.
// ts may be Unix milliseconds, an RFC 3339 text string, or a tag-0/tag-1 date.
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
        bool hasValues = false, hasFlat = false;
        reader.ReadStartMap();
        while (reader.PeekState() != CborReaderState.EndMap)
        {
            if (reader.PeekState() != CborReaderState.TextString)
            {
                AddError(ref result, prefix ?? "", "map keys must be text");
                reader.SkipValue();
                reader.SkipValue();
                continue;
            }
            var key = reader.ReadTextString();
            if (key == "ts")
            {
                ts = ReadCborTimestamp(reader, ref result, Path(prefix, "ts"));
            }
            else if (key == "values" && reader.PeekState() == CborReaderState.StartMap)
            {
                hasValues = true;
                reader.ReadStartMap();
                var valuesPrefix = Path(prefix, "values");
                while (reader.PeekState() != CborReaderState.EndMap)
                {
                    var metric = reader.PeekState() == CborReaderState.TextString ? reader.ReadTextString() : null;
                    if (metric is null) { reader.SkipValue(); reader.SkipValue(); AddError(ref result, valuesPrefix, "metric names must be text"); continue; }
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
            case CborReaderState.TextString:
                var text = reader.ReadTextString();
                if (Encoding.UTF8.GetByteCount(text) > state.Limits.MaxStringBytes)
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

    private static long? ReadCborTimestamp(CborReader reader, ref DecodeResult result, string path)
    {
        long ts;
        switch (reader.PeekState())
        {
            case CborReaderState.UnsignedInteger or CborReaderState.NegativeInteger:
                ts = reader.ReadInt64();
                break;
            case CborReaderState.TextString:
                if (!DateTimeOffset.TryParse(reader.ReadTextString(), System.Globalization.CultureInfo.InvariantCulture,
                        System.Globalization.DateTimeStyles.AssumeUniversal, out var parsed))
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
