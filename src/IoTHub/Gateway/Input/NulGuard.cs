// U+0000 in any text a caller sends: PostgreSQL's text type cannot hold it, so a name, a search or a login with one
// came back as a 500 from the database (and SQLite stored what PostgreSQL refuses). It is refused at the door with a
// 400 that says why: in JSON bodies (the API's string converter), in query strings and in url-encoded forms.
// Telemetry has its own check in the decoder (a dead letter with its reason, not a 400).
using System.Text.Json;
using System.Text.Json.Serialization;

namespace IoTHub.Gateway.Input;

internal static class NulGuard
{
    public const string Message = "text may not contain U+0000";

    /// <summary>Refuses a request whose query string or url-encoded form holds U+0000 (%00).</summary>
    public static async Task InvokeAsync(HttpContext http, RequestDelegate next)
    {
        var request = http.Request;
        var refused = request.QueryString.Value?.Contains("%00", StringComparison.Ordinal) == true;
        if (!refused && request.HasFormContentType && request.ContentType?.StartsWith("application/x-www-form-urlencoded", StringComparison.OrdinalIgnoreCase) == true)
        {
            var form = await request.ReadFormAsync(http.RequestAborted);
            foreach (var (_, values) in form)
                foreach (var value in values)
                    refused |= value?.Contains('\0') == true;
        }
        if (!refused)
        {
            await next(http);
            return;
        }
        await Results.Problem(statusCode: StatusCodes.Status400BadRequest, title: "Invalid text", detail: Message).ExecuteAsync(http);
    }

    /// <summary>The API's JSON strings: the same refusal, as the JSON error that model binding turns into a 400.</summary>
    public sealed class StringConverter : JsonConverter<string>
    {
        public override string? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
        {
            string? value;
            try
            {
                value = reader.GetString();
            }
            catch (InvalidOperationException ex) when (reader.TokenType == JsonTokenType.String)
            {
                // Invalid UTF-8 or a lone surrogate escape ("\ud800"): it was answered "has the wrong JSON type".
                throw new JsonException("must be valid Unicode text (UTF-8 without stray bytes, no lone surrogate escape)", ex);
            }
            // JSON has no raw control characters: only the escape "\u0000" makes one.
            if (reader.ValueIsEscaped && value?.Contains('\0') == true) throw new JsonException(Message);
            return value;
        }

        public override void Write(Utf8JsonWriter writer, string value, JsonSerializerOptions options) => writer.WriteStringValue(value);
    }
}
