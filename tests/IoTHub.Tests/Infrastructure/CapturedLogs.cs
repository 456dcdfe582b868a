// A logger provider that keeps every line with its structured values, for specifications about what is logged.
using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace IoTHub.Tests.Infrastructure;

public sealed record LogLine(string Category, LogLevel Level, string Message, IReadOnlyDictionary<string, object?> Values)
{
    /// <summary>A structured value of the line (a template's placeholder), or null.</summary>
    public object? this[string name] => Values.TryGetValue(name, out var v) ? v : null;
}

public sealed class CapturedLogs : ILoggerProvider
{
    private readonly ConcurrentQueue<LogLine> _lines = new();

    public IReadOnlyList<LogLine> Lines => _lines.ToArray();

    public ILogger CreateLogger(string categoryName) => new Capture(categoryName, _lines);

    public void Clear() => _lines.Clear();

    public void Dispose()
    {
    }

    private sealed class Capture(string category, ConcurrentQueue<LogLine> sink) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            var values = state is IEnumerable<KeyValuePair<string, object?>> pairs
                ? pairs.GroupBy(p => p.Key).ToDictionary(g => g.Key, g => g.First().Value)
                : new Dictionary<string, object?>();
            sink.Enqueue(new LogLine(category, logLevel, formatter(state, exception), values));
        }
    }
}
