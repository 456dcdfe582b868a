namespace IoTHub.Contracts;

/// <summary>The contract's list shape: <c>{"items": [...], "next": cursor|null}</c>.</summary>
public sealed record Page<T>(IReadOnlyList<T> Items, string? Next);
