// Problem responses (application/problem+json, RFC 9457) whose status code is part of their type. ASP.NET Core's
// ProblemHttpResult learns its status only at run time, so an endpoint that returns it must keep a hand-written
// .ProducesProblem(...) list for OpenAPI, which drifts from what the handler really answers. An endpoint declared as
// Task<Results<Ok<DeviceView>, NotFoundProblem>> is described by its own signature: the compiler refuses a response
// the signature does not name, and the OpenAPI document lists exactly the ones it does. The body is written by
// ProblemHttpResult, so it is the same problem+json as Results.Problem gives (with the problem-details service's
// traceId).
using System.Reflection;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Http.Metadata;
using Microsoft.AspNetCore.Mvc;

namespace IoTHub.Contracts;

/// <summary>An <c>application/problem+json</c> response (RFC 9457) with a fixed status code; each subclass names one
/// status and declares it to OpenAPI as <c>ProblemDetails</c>, as <c>.ProducesProblem(status)</c> would.</summary>
public abstract class StatusProblem : IResult, IStatusCodeHttpResult, IValueHttpResult, IValueHttpResult<ProblemDetails>, IContentTypeHttpResult
{
    private readonly ProblemHttpResult _problem;

    private protected StatusProblem(int status, string title, string? detail) =>
        _problem = TypedResults.Problem(detail: detail, statusCode: status, title: title);

    /// <summary>The HTTP status code, fixed by the subclass.</summary>
    public int? StatusCode => _problem.StatusCode;

    /// <summary>The problem document: <c>{"type", "title", "status", "detail"?, "traceId"}</c>.</summary>
    public ProblemDetails Value => _problem.ProblemDetails;

    object? IValueHttpResult.Value => Value;

    /// <summary>Always <c>application/problem+json</c>.</summary>
    public string ContentType => _problem.ContentType;

    /// <summary>Writes the problem through the host's <see cref="IProblemDetailsService"/>, like <c>Results.Problem</c>.</summary>
    public Task ExecuteAsync(HttpContext httpContext) => _problem.ExecuteAsync(httpContext);

    /// <summary>Declares the response to the endpoint's metadata, which OpenAPI reads.</summary>
    private protected static void Declare(EndpointBuilder builder, int status) =>
        builder.Metadata.Add(new ProducesResponseTypeMetadata(status, typeof(ProblemDetails), ["application/problem+json"]));
}

/// <summary>401 Unauthorized (RFC 9110 §15.5.2): the credentials are missing or wrong.</summary>
/// <param name="title">One line for people, e.g. "Wrong username or password".</param>
/// <param name="detail">What to do about it, or null.</param>
public sealed class UnauthorizedProblem(string title, string? detail = null)
    : StatusProblem(StatusCodes.Status401Unauthorized, title, detail), IEndpointMetadataProvider
{
    /// <summary>Declares a 401 problem response.</summary>
    public static void PopulateMetadata(MethodInfo method, EndpointBuilder builder) => Declare(builder, StatusCodes.Status401Unauthorized);
}

/// <summary>404 Not Found (RFC 9110 §15.5.5): the resource named in the path does not exist.</summary>
/// <param name="title">Names what is missing, e.g. "Device 'x' not found".</param>
/// <param name="detail">More, or null.</param>
public sealed class NotFoundProblem(string title, string? detail = null)
    : StatusProblem(StatusCodes.Status404NotFound, title, detail), IEndpointMetadataProvider
{
    /// <summary>Declares a 404 problem response.</summary>
    public static void PopulateMetadata(MethodInfo method, EndpointBuilder builder) => Declare(builder, StatusCodes.Status404NotFound);
}

/// <summary>409 Conflict (RFC 9110 §15.5.10): the request clashes with what exists, e.g. an id that is taken.</summary>
/// <param name="title">Names the clash, e.g. "Device 'x' already exists".</param>
/// <param name="detail">More, or null.</param>
public sealed class ConflictProblem(string title, string? detail = null)
    : StatusProblem(StatusCodes.Status409Conflict, title, detail), IEndpointMetadataProvider
{
    /// <summary>Declares a 409 problem response.</summary>
    public static void PopulateMetadata(MethodInfo method, EndpointBuilder builder) => Declare(builder, StatusCodes.Status409Conflict);
}

/// <summary>412 Precondition Failed (RFC 9110 §15.5.13): <c>If-Match</c> named a version that is no longer current.</summary>
/// <param name="title">One line for people.</param>
/// <param name="detail">The version asked for and the current one, or null.</param>
public sealed class PreconditionFailedProblem(string title, string? detail = null)
    : StatusProblem(StatusCodes.Status412PreconditionFailed, title, detail), IEndpointMetadataProvider
{
    /// <summary>Declares a 412 problem response.</summary>
    public static void PopulateMetadata(MethodInfo method, EndpointBuilder builder) => Declare(builder, StatusCodes.Status412PreconditionFailed);
}

/// <summary>413 Content Too Large (RFC 9110 §15.5.14): the body, or what it would make, exceeds a configured limit.</summary>
/// <param name="title">Names the limit, e.g. "At most 4 MiB of CSV".</param>
/// <param name="detail">More, or null.</param>
public sealed class ContentTooLargeProblem(string title, string? detail = null)
    : StatusProblem(StatusCodes.Status413PayloadTooLarge, title, detail), IEndpointMetadataProvider
{
    /// <summary>Declares a 413 problem response.</summary>
    public static void PopulateMetadata(MethodInfo method, EndpointBuilder builder) => Declare(builder, StatusCodes.Status413PayloadTooLarge);
}

/// <summary>415 Unsupported Media Type (RFC 9110 §15.5.16): the body's <c>Content-Type</c> is not one the endpoint reads.</summary>
/// <param name="title">One line for people.</param>
/// <param name="detail">The media types to send instead.</param>
public sealed class UnsupportedMediaTypeProblem(string title, string? detail = null)
    : StatusProblem(StatusCodes.Status415UnsupportedMediaType, title, detail), IEndpointMetadataProvider
{
    /// <summary>Declares a 415 problem response.</summary>
    public static void PopulateMetadata(MethodInfo method, EndpointBuilder builder) => Declare(builder, StatusCodes.Status415UnsupportedMediaType);
}

/// <summary>429 Too Many Requests (RFC 6585 §4): a rate or attempt limit was reached; <c>Retry-After</c> says when to try again.</summary>
/// <param name="title">One line for people.</param>
/// <param name="detail">Which limit, or null.</param>
public sealed class TooManyRequestsProblem(string title, string? detail = null)
    : StatusProblem(StatusCodes.Status429TooManyRequests, title, detail), IEndpointMetadataProvider
{
    /// <summary>Declares a 429 problem response.</summary>
    public static void PopulateMetadata(MethodInfo method, EndpointBuilder builder) => Declare(builder, StatusCodes.Status429TooManyRequests);
}
