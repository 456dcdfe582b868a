// Date-times as the contract reads them (docs/contract.md: "times are ISO 8601 UTC"): the ISO 8601 extended format
// that System.Text.Json reads (RFC 3339 and more, e.g. 2026-12-02T08:00:00Z, 2026-12-02T09:00:00+01:00,
// 2026-12-02T08:00:00.123), where a date-time that names no offset is UTC. .NET's own readers (Utf8JsonReader's
// TryGetDateTimeOffset, the JSON serializer, DateTimeOffset.Parse) take such a time as the hub's local time, so the same
// device message was stored an hour early on a hub in Berlin, refused as "ahead of the hub's clock" in New York and
// stored right on a hub in UTC.
using System.Text.Json;
using System.Text.Json.Serialization;

namespace IoTHub.Contracts;

/// <summary>ISO 8601 date-times read the same way wherever the hub runs: without an offset, UTC.</summary>
public static class IsoTime
{
    /// <summary>An example for error messages.</summary>
    public const string Example = "2026-12-02T08:00:00Z";

    /// <summary>Reads the string token <paramref name="reader"/> is on; false when it is not an ISO 8601 date-time.</summary>
    public static bool TryRead(ref Utf8JsonReader reader, out DateTimeOffset value)
    {
        value = default;
        if (reader.TokenType != JsonTokenType.String || !reader.TryGetDateTimeOffset(out var withOffset)) return false;
        // TryGetDateTime says whether the text named an offset: Unspecified when it did not (Utc for Z, Local for ±hh:mm).
        value = reader.TryGetDateTime(out var clock) && clock.Kind == DateTimeKind.Unspecified
            ? new DateTimeOffset(clock.Ticks, TimeSpan.Zero)
            : withOffset;
        return true;
    }

    /// <summary>Parses UTF-8 text (e.g. a CBOR text string); false when it is not an ISO 8601 date-time.</summary>
    public static bool TryParse(ReadOnlySpan<byte> utf8, out DateTimeOffset value)
    {
        value = default;
        if (utf8.Length is 0 or > 64 || utf8.IndexOfAny((byte)'"', (byte)'\\') >= 0) return false;
        Span<byte> quoted = stackalloc byte[utf8.Length + 2];
        quoted[0] = quoted[^1] = (byte)'"';
        utf8.CopyTo(quoted[1..]);
        var reader = new Utf8JsonReader(quoted);
        try
        {
            return reader.Read() && TryRead(ref reader, out value);
        }
        catch (JsonException)
        {
            return false; // not valid UTF-8 or a control character
        }
    }

    /// <summary>Parses text (e.g. a query parameter); false when it is not an ISO 8601 date-time.</summary>
    public static bool TryParse(string? text, out DateTimeOffset value)
    {
        value = default;
        return text is not null && text.Length <= 64 && TryParse(System.Text.Encoding.UTF8.GetBytes(text), out value);
    }

    /// <summary>The API's JSON date-times (<see cref="DateTimeOffset"/> and, through it, <c>DateTimeOffset?</c>): read
    /// with <see cref="TryRead"/>, written as System.Text.Json writes them (ISO 8601 with the offset).</summary>
    public sealed class JsonConverter : JsonConverter<DateTimeOffset>
    {
        /// <inheritdoc/>
        /// <exception cref="JsonException">The token is not an ISO 8601 date-time string.</exception>
        public override DateTimeOffset Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
            TryRead(ref reader, out var value) ? value : throw new JsonException($"a date-time is an ISO 8601 string, e.g. {Example}");

        /// <inheritdoc/>
        public override void Write(Utf8JsonWriter writer, DateTimeOffset value, JsonSerializerOptions options) => writer.WriteStringValue(value);
    }
}
