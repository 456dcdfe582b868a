// A name given twice in one JSON object ({"level": 90, "level": 10}). RFC 8259 §4 says names SHOULD be unique and that
// readers differ on which of the two they keep; .NET's readers differed inside the hub: the serializer kept the last,
// the telemetry decoder kept both as two readings, and JsonNode kept both and threw on first use (a 500 after the
// parse had passed). Every JSON the hub reads from outside refuses a repeated name now, naming it, like any other
// invalid field (RFC 8949 §5.6 makes a CBOR map with a repeated key invalid too).
using System.Text.Json;
using System.Text.RegularExpressions;

namespace IoTHub.Contracts;

/// <summary>The hub's one rule and wording for a name given twice in one JSON object or CBOR map.</summary>
public static partial class RepeatedNames
{
    /// <summary>The reason, after the name or its path: "<c>level: appears more than once …</c>".</summary>
    public const string Rule = "appears more than once in one object; a name may occur once";

    /// <summary>Options for <see cref="JsonDocument"/> and <see cref="System.Text.Json.Nodes.JsonNode"/> parses of outside
    /// input: a repeated name is a <see cref="JsonException"/> at the parse (see <see cref="TryDescribe"/>).</summary>
    public static JsonDocumentOptions DocumentOptions(int maxDepth = 0) => new() { MaxDepth = maxDepth, AllowDuplicateProperties = false };

    /// <summary>When <paramref name="ex"/> is System.Text.Json's "Duplicate property 'x' encountered" error: the name and
    /// <see cref="Rule"/> (<c>'level' appears more than once …</c>).</summary>
    public static bool TryDescribe(JsonException ex, out string text)
    {
        var m = Duplicate().Match(ex.Message);
        text = m.Success ? $"'{SafeText.Prefix(m.Groups["name"].Value, 64, "…")}' {Rule}" : "";
        return m.Success;
    }

    [GeneratedRegex("^Duplicate property '(?<name>.*)' encountered", RegexOptions.Singleline)]
    private static partial Regex Duplicate();
}
