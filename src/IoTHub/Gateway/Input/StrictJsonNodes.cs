// JSON values taken as they are (command params, desired state): JsonNode, JsonObject and JsonArray fields of request
// bodies, and bodies that are one. The serializer's own converters threw ArgumentException ("an item with the same key has
// already been added") for a name given twice in one object, a 500, or kept both names and sent them on to the device; and
// they took what failed later (a lone surrogate escape, 63 levels, invalid UTF-8, 1e400, U+0000). Read here instead, by
// the rules of Contracts/FreeFormJson: a value that breaks one is a 400 naming the field and why.
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using IoTHub.Contracts;

namespace IoTHub.Gateway.Input;

internal sealed class StrictJsonNodes : JsonConverterFactory
{
    public override bool CanConvert(Type typeToConvert) => typeof(JsonNode).IsAssignableFrom(typeToConvert);

    public override JsonConverter? CreateConverter(Type typeToConvert, JsonSerializerOptions options) =>
        (JsonConverter?)Activator.CreateInstance(typeof(NodeConverter<>).MakeGenericType(typeToConvert));

    private sealed class NodeConverter<T> : JsonConverter<T> where T : JsonNode
    {
        public override T? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
        {
            using var value = JsonDocument.ParseValue(ref reader);
            var node = FreeFormJson.Parse(JsonMarshal.GetRawUtf8Value(value.RootElement), out var error);
            if (error is not null) throw new JsonException(error);
            return node switch
            {
                null => null,
                T typed => typed,
                _ => throw new JsonException(typeof(T) == typeof(JsonObject) ? "must be a JSON object" : "must be a JSON array"),
            };
        }

        public override void Write(Utf8JsonWriter writer, T value, JsonSerializerOptions options) => value.WriteTo(writer, options);
    }
}
