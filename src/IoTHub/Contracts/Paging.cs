using Microsoft.AspNetCore.Http.HttpResults;

namespace IoTHub.Contracts;

/// <summary>The contract's list shape: <c>{"items": [...], "next": cursor|null}</c>.</summary>
public sealed record Page<T>(IReadOnlyList<T> Items, string? Next);

/// <summary>The <c>limit</c> query parameter of list endpoints: a default when absent, 400 outside 1..max.</summary>
public static class PageLimit
{
    /// <summary>Null with the limit to use, or the validation problem to answer.</summary>
    public static ValidationProblem? Check(int? limit, int fallback, int max, out int value)
    {
        value = limit ?? fallback;
        return value < 1 || value > max
            ? TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["limit"] = [$"limit must be between 1 and {max}"] })
            : null;
    }
}
