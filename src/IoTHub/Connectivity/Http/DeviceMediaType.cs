// The media type of a device's HTTP body, one parse for every device endpoint (each split the header by hand). A JSON
// body labelled with a charset other than UTF-8 is refused: JSON between systems is UTF-8 (RFC 8259 §8.1) and the hub
// reads the bytes as such, so `application/json; charset=utf-16` was taken and read wrong.
using Microsoft.Net.Http.Headers;

namespace IoTHub.Connectivity.Http;

internal static class DeviceMediaType
{
    /// <summary>The request's media type in lower case (RFC 9110 §8.3.1: <c>type/subtype</c> without parameters), or null
    /// when there is none or it does not parse; <paramref name="refusal"/> is why a JSON body with a charset other than
    /// UTF-8 cannot be read (answer 415 with it), else null.</summary>
    public static string? Of(HttpRequest request, out string? refusal)
    {
        refusal = null;
        if (!MediaTypeHeaderValue.TryParse(request.ContentType, out var parsed) || parsed.MediaType.Value is not { } type) return null;
        type = type.ToLowerInvariant();
        var charset = HeaderUtilities.RemoveQuotes(parsed.Charset).Value; // a parameter value may be a quoted-string (RFC 9110 §5.6.6)
        if (charset is not null && type.EndsWith("json", StringComparison.Ordinal)
            && !charset.Equals("utf-8", StringComparison.OrdinalIgnoreCase) && !charset.Equals("utf8", StringComparison.OrdinalIgnoreCase))
            refusal = $"Send UTF-8: a body in charset {Contracts.SafeText.Escaped(charset, 32)} is not read (JSON is UTF-8, RFC 8259 §8.1).";
        return type;
    }
}
