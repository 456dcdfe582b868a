// JSON the hub keeps as written and passes on (desired and reported state, command params and results): it is not
// checked field by field like telemetry or typed API bodies, so it is checked as a whole when it comes in, against what
// would make it fail later. An outside tester found each of these accepted and failing afterwards: a lone surrogate
// escape ("\ud800") read fine as JSON and threw when the text was read (a 500, or a command response acked as taken and
// then lost); 63 levels of nesting were stored and then every read of the device's state or command list was a 500
// (the API writes JSON at most 64 deep, envelope included); invalid UTF-8 was stored as U+FFFD; 1e400 was passed on to
// devices as written; U+0000, which the contract refuses in all text, was stored.
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Unicode;

namespace IoTHub.Contracts;

/// <summary>The rules for JSON taken as a whole from outside: valid UTF-8, at most <see cref="MaxDepth"/> levels, each name
/// once per object (<see cref="RepeatedNames"/>), text that is Unicode without U+0000, and finite numbers.</summary>
public static class FreeFormJson
{
    /// <summary>The deepest nesting taken (an object or array counts a level): what a device may report back is what it may
    /// be sent, and half the API's 64 leaves room for the envelope any response puts it in.</summary>
    public const int MaxDepth = 32;

    /// <summary>Parses UTF-8 JSON from outside. Null and <paramref name="error"/> when it breaks a rule: a phrase to put
    /// after what the JSON is and a colon (<c>reported state: not valid UTF-8</c>, <c>…: $.a.label: contains U+0000 …</c>).</summary>
    public static JsonNode? Parse(ReadOnlySpan<byte> utf8, out string? error)
    {
        if (!Utf8.IsValid(utf8))
        {
            error = "not valid UTF-8";
            return null;
        }
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(utf8, documentOptions: RepeatedNames.DocumentOptions(MaxDepth));
        }
        catch (JsonException ex)
        {
            error = RepeatedNames.TryDescribe(ex, out var repeated) ? repeated
                : ex.Message.Contains("depth", StringComparison.OrdinalIgnoreCase) ? $"nested deeper than the maximum depth of {MaxDepth} levels"
                : "not valid JSON: " + ex.Message;
            return null;
        }
        error = Check(node);
        return error is null ? node : null;
    }

    /// <summary>The first text or number in <paramref name="node"/> that breaks a rule, with its JSON path
    /// (<c>$.battery.label: …</c>), or null. Depth and repeated names are the parser's to refuse.</summary>
    public static string? Check(JsonNode? node)
    {
        var path = "$";
        try
        {
            return Walk(node, ref path);
        }
        catch (InvalidOperationException)
        {
            // System.Text.Json reads "\ud800" as JSON and throws when the text (or the name) is read as a string.
            return $"{path}: holds a lone surrogate escape (\\ud800-\\udfff without its pair), which is not Unicode text";
        }
    }

    private static string? Walk(JsonNode? node, ref string path)
    {
        switch (node)
        {
            case JsonObject o:
                var at = path;
                foreach (var (name, value) in o)
                {
                    if (name.Contains('\0')) return $"{at}: a name contains U+0000, which no text may hold";
                    path = at + "." + name;
                    if (Walk(value, ref path) is { } problem) return problem;
                }
                path = at;
                return null;
            case JsonArray a:
                var array = path;
                for (var i = 0; i < a.Count; i++)
                {
                    path = $"{array}[{i}]";
                    if (Walk(a[i], ref path) is { } problem) return problem;
                }
                path = array;
                return null;
            case JsonValue v when v.GetValueKind() == JsonValueKind.String:
                return v.GetValue<string>().Contains('\0') ? $"{path}: contains U+0000, which no text may hold" : null;
            case JsonValue v when v.GetValueKind() == JsonValueKind.Number:
                return v.TryGetValue<double>(out var d) && double.IsFinite(d) ? null
                    : $"{path}: must be a finite number (JSON has no NaN or infinity, and ±1.8e308 is the largest)";
            default:
                return null;
        }
    }
}
