// A request the endpoint cannot bind (a body that is not the JSON it takes, a query value of the wrong type) was a bare
// {"title":"Bad Request","status":400} that named nothing. Endpoints throw instead (RouteHandlerOptions.ThrowOnBadRequest)
// and this handler answers the problem (RFC 9457) with what was wrong and where: the JSON path of the body's field or
// the query parameter. Nothing is logged as an error: bad input is the caller's, not the hub's.
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Diagnostics;

namespace IoTHub.Gateway.Input;

internal sealed partial class BadRequestProblems(IProblemDetailsService problems) : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext http, Exception exception, CancellationToken ct)
    {
        if (exception is not BadHttpRequestException bad || http.Response.HasStarted) return false;
        http.Response.StatusCode = bad.StatusCode;
        return await problems.TryWriteAsync(new ProblemDetailsContext
        {
            HttpContext = http,
            Exception = exception,
            ProblemDetails =
            {
                Status = bad.StatusCode,
                Title = bad.StatusCode == StatusCodes.Status400BadRequest ? "Invalid request" : null,
                Detail = Detail(bad),
            },
        });
    }

    /// <summary>What was wrong, for the caller: the field's JSON path and the reason, or the query parameter and value.</summary>
    internal static string Detail(BadHttpRequestException bad)
    {
        if (bad.InnerException is JsonException json)
        {
            var reason = json.Message;
            var cut = reason.IndexOf(" Path:", StringComparison.Ordinal);
            if (cut >= 0) reason = reason[..cut];
            if (Contracts.RepeatedNames.TryDescribe(json, out var repeated)) reason = repeated;
            else if (ConvertedTo().Match(reason) is { Success: true } m) reason = Expected(m.Groups["type"].Value);
            else if (!reason.Contains(Contracts.RepeatedNames.Rule, StringComparison.Ordinal)
                     && (reason.StartsWith("'", StringComparison.Ordinal) || reason.Contains("invalid", StringComparison.OrdinalIgnoreCase))) reason = "is not valid JSON: " + reason;
            return json.Path is { Length: > 1 } path ? $"body {path}: {reason}" : $"body: {reason}";
        }
        if (FailedToBind().Match(bad.Message) is { Success: true } q)
            return $"{q.Groups["name"].Value}: '{SafeText(q.Groups["value"].Value)}' {Expected(q.Groups["type"].Value)}";
        return bad.Message;
    }

    /// <summary>What a value of <paramref name="type"/> (as .NET names it in its message: <c>System.Int32</c>,
    /// <c>Nullable`1[System.Int32]</c>, <c>int?</c>) must be, in JSON and query terms; when .NET names the request's
    /// type rather than the field's, that the field has the wrong type.</summary>
    private static string Expected(string type) =>
        DateType().IsMatch(type) ? $"must be an ISO 8601 date-time, e.g. {Contracts.IsoTime.Example}"
        : BooleanType().IsMatch(type) ? "must be true or false"
        : StringType().IsMatch(type) ? "must be a string"
        : NumberType().IsMatch(type) ? "must be a number"
        : ArrayType().IsMatch(type) ? "must be an array"
        : "has the wrong JSON type for this field, or a number out of its range (the API reference at /docs shows each field's type)";

    [GeneratedRegex(@"\bDate(Time(Offset)?|Only)\b")]
    private static partial Regex DateType();

    [GeneratedRegex(@"\b(bool|Boolean)\b")]
    private static partial Regex BooleanType();

    [GeneratedRegex(@"\b(string|String)\b")]
    private static partial Regex StringType();

    [GeneratedRegex(@"\b(u?int|u?long|u?short|double|float|decimal|U?Int(16|32|64)|Double|Single|Decimal)\b")]
    private static partial Regex NumberType();

    [GeneratedRegex(@"(\[\]|\bList`1|\bIEnumerable|\bArray\b)")]
    private static partial Regex ArrayType();

    private static string SafeText(string value) => Contracts.SafeText.Escaped(value, 64);

    [GeneratedRegex(@"could not be converted to (?<type>\S+?)\.?$")]
    private static partial Regex ConvertedTo();

    [GeneratedRegex(@"^Failed to bind parameter ""(?<type>\S+) (?<name>\w+)"" from ""(?<value>.*)""\.$", RegexOptions.Singleline)]
    private static partial Regex FailedToBind();
}
