// Without a profile, a metric's first stored value fixes its type: once "temperature" has been a number,
// "banana" is an error, not a new kind of temperature. (A profile, where assigned, declares types explicitly.)
// Kept in memory, loaded once at start, so the hot path never asks the database.
using System.Collections.Concurrent;
using IoTHub.Contracts;
using Mediator;

namespace IoTHub.Validation;

internal sealed class SeriesTypes
{
    private readonly ConcurrentDictionary<(string DeviceId, string Metric), ValueKind> _kinds = new();

    public void Load(IEnumerable<SeriesKind> kinds)
    {
        foreach (var k in kinds) _kinds.TryAdd((k.DeviceId, k.Metric), k.Kind);
    }

    /// <summary>Checks every point against its series' type; records the types of a valid message's new series.</summary>
    public List<FieldError>? Check(string deviceId, ReadOnlySpan<TelemetryPoint> points, CompiledProfile? profile, List<FieldError>? errors)
    {
        var unseen = false;
        foreach (ref readonly var p in points)
        {
            if (profile?.Declares(p.Metric) == true) continue; // the profile's declared type rules
            if (!_kinds.TryGetValue((deviceId, p.Metric), out var kind))
            {
                unseen = true;
                continue;
            }
            if (kind != p.Kind)
                (errors ??= []).Add(new FieldError(p.Metric, $"expected {Name(kind)}, got {Name(p.Kind)} (this metric has always been {Name(kind)})"));
        }
        // TryAdd takes a bucket lock, so it runs only for a series seen for the first time, not per message.
        if (errors is null && unseen)
        {
            foreach (ref readonly var p in points)
                if (!_kinds.ContainsKey((deviceId, p.Metric))) _kinds.TryAdd((deviceId, p.Metric), p.Kind);
        }
        return errors;
    }

    public void Forget(string deviceId)
    {
        foreach (var key in _kinds.Keys)
            if (key.DeviceId == deviceId) _kinds.TryRemove(key, out _);
    }

    public static string Name(ValueKind k) => k switch { ValueKind.Number => "a number", ValueKind.Boolean => "a boolean", _ => "a string" };
}

internal sealed class ForgetSeriesTypes(SeriesTypes types) : INotificationHandler<DeviceDeleted>
{
    public ValueTask Handle(DeviceDeleted n, CancellationToken ct)
    {
        types.Forget(n.DeviceId);
        return ValueTask.CompletedTask;
    }
}
