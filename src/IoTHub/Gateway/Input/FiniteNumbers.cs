// Numbers in request bodies: JSON has no NaN or infinity, but .NET reads 1e400 as +∞ (IEEE 754 rounding) and, with the
// web defaults' "numbers in strings", "NaN" and "Infinity" as themselves. A profile bound of 1e400 was taken, then
// failed to be written back as JSON: a 500 with a stack trace for every attempt. Every double of every request body
// is read here instead: a finite number, or a 400 that names the field.
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace IoTHub.Gateway.Input;

internal static class FiniteNumbers
{
    public const string Message = "must be a finite number (JSON has no NaN or infinity, and ±1.8e308 is the largest)";

    /// <summary>The API's <see cref="double"/> (and, through it, <c>double?</c>): a JSON number, or a number in a string
    /// as the web defaults allow; never NaN or ±∞.</summary>
    public sealed class DoubleConverter : JsonConverter<double>
    {
        public override double Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
        {
            double value;
            if (reader.TokenType == JsonTokenType.Number)
            {
                if (!reader.TryGetDouble(out value)) throw new JsonException(Message);
            }
            else if (reader.TokenType == JsonTokenType.String && (options.NumberHandling & JsonNumberHandling.AllowReadingFromString) != 0)
            {
                if (!double.TryParse(reader.GetString(), NumberStyles.Float, CultureInfo.InvariantCulture, out value)) throw new JsonException(Message);
            }
            else
            {
                throw new JsonException("must be a number");
            }
            return double.IsFinite(value) ? value : throw new JsonException(Message);
        }

        public override void Write(Utf8JsonWriter writer, double value, JsonSerializerOptions options) => writer.WriteNumberValue(value);
    }
}
