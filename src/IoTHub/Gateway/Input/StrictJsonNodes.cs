// JSON values taken as they are (command params, desired state): JsonNode, JsonObject and JsonArray fields of request
// bodies. The serializer's own converters threw ArgumentException ("an item with the same key has already been added")
// for a name given twice in one object, a 500, or kept both names and sent them on to the device. Read here instead:
// a repeated name is a 400 naming it (Contracts/RepeatedNames), as it is everywhere else.
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
            JsonNode? node;
            try
            {
                node = JsonNode.Parse(value.RootElement.GetRawText(), documentOptions: RepeatedNames.DocumentOptions(options.MaxDepth));
            }
            catch (JsonException ex) when (RepeatedNames.TryDescribe(ex, out var repeated))
            {
                throw new JsonException(ex.Path is { Length: > 1 } path ? $"{repeated} (at {path} of this value)" : repeated);
            }
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
