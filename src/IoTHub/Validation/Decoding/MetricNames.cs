// Metric names repeat in every message of a device; interning them turns a per-message string allocation
// into a span lookup. The table is bounded so hostile devices cannot grow it without limit.
using System.Collections.Concurrent;
using System.Text;

namespace IoTHub.Validation.Decoding;

internal sealed class MetricNames
{
    private const int MaxEntries = 100_000;
    private readonly ConcurrentDictionary<string, string> _names = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, string>.AlternateLookup<ReadOnlySpan<char>> _lookup;

    public MetricNames() => _lookup = _names.GetAlternateLookup<ReadOnlySpan<char>>();

    /// <summary>The interned name for UTF-8 bytes already checked to be 1-64 ASCII identifier characters.</summary>
    public string Get(ReadOnlySpan<byte> asciiName)
    {
        Span<char> chars = stackalloc char[asciiName.Length];
        Encoding.ASCII.GetChars(asciiName, chars);
        if (_lookup.TryGetValue(chars, out var name)) return name;
        name = new string(chars);
        return _names.Count < MaxEntries ? _names.GetOrAdd(name, name) : name;
    }
}
