// GET /metrics: every instrument of the "IoTHub" meter (and the process's own figures) in Prometheus text format.
// A MeterListener folds measurements into running totals; no exporter package, no per-scrape allocation storms.
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text;
using IoTHub.Contracts;

namespace IoTHub.Observability;

internal sealed class PrometheusExporter : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly ConcurrentDictionary<(string Name, string Labels), Total> _totals = new();
    private readonly ConcurrentDictionary<string, (string Kind, string? Description)> _instruments = new();

    private sealed class Total
    {
        public double Value;
    }

    public PrometheusExporter()
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name != HubMeter.Name) return;
            var kind = instrument is ObservableGauge<long> or ObservableGauge<double> or UpDownCounter<long> ? "gauge" : "counter";
            _instruments[instrument.Name] = (kind, instrument.Description);
            listener.EnableMeasurementEvents(instrument);
        };
        _listener.SetMeasurementEventCallback<long>((i, v, tags, _) => Record(i, v, tags, i is ObservableGauge<long>));
        _listener.SetMeasurementEventCallback<double>((i, v, tags, _) => Record(i, v, tags, i is ObservableGauge<double>));
        _listener.Start();
        PublishEveryInstrument();
    }

    /// <summary>Instruments are static fields, created when their class is first used; a scrape right after the start
    /// must still list every series (at zero), or dashboards and alerts on a missing series see nothing.</summary>
    private static void PublishEveryInstrument()
    {
        foreach (var type in typeof(PrometheusExporter).Assembly.GetTypes())
        {
            if (type.ContainsGenericParameters) continue;
            var fields = type.GetFields(System.Reflection.BindingFlags.Static | System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.NonPublic);
            if (fields.Any(f => typeof(Instrument).IsAssignableFrom(f.FieldType)))
                System.Runtime.CompilerServices.RuntimeHelpers.RunClassConstructor(type.TypeHandle);
        }
    }

    private void Record(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags, bool replace)
    {
        var labels = tags.Length == 0 ? "" : Labels(tags);
        var total = _totals.GetOrAdd((instrument.Name, labels), static _ => new Total());
        if (replace) Volatile.Write(ref total.Value, value);
        else
        {
            double current, updated;
            do
            {
                current = Volatile.Read(ref total.Value);
                updated = current + value;
            } while (Interlocked.CompareExchange(ref total.Value, updated, current) != current);
        }
    }

    private static string Labels(ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        var sb = new StringBuilder("{");
        foreach (var t in tags)
        {
            if (sb.Length > 1) sb.Append(',');
            sb.Append(t.Key).Append("=\"").Append(t.Value?.ToString()?.Replace("\\", "\\\\").Replace("\"", "\\\"")).Append('"');
        }
        return sb.Append('}').ToString();
    }

    public string Render()
    {
        _listener.RecordObservableInstruments();
        var sb = new StringBuilder();
        var measured = _totals.GroupBy(t => t.Key.Name).ToDictionary(g => g.Key);
        foreach (var name in _instruments.Keys.Union(measured.Keys).Order(StringComparer.Ordinal))
        {
            var (kind, description) = _instruments.GetValueOrDefault(name, ("counter", null));
            if (description is not null) sb.Append("# HELP ").Append(name).Append(' ').Append(description).Append('\n');
            sb.Append("# TYPE ").Append(name).Append(' ').Append(kind).Append('\n');
            if (!measured.TryGetValue(name, out var group))
            {
                sb.Append(name).Append(" 0\n"); // nothing measured yet
                continue;
            }
            foreach (var (key, total) in group.OrderBy(g => g.Key.Labels))
                sb.Append(key.Name).Append(key.Labels).Append(' ').Append(Volatile.Read(ref total.Value).ToString(CultureInfo.InvariantCulture)).Append('\n');
        }
        var process = Process.GetCurrentProcess();
        sb.Append("# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes ").Append(process.WorkingSet64).Append('\n');
        sb.Append("# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total ")
            .Append(process.TotalProcessorTime.TotalSeconds.ToString(CultureInfo.InvariantCulture)).Append('\n');
        sb.Append("# TYPE dotnet_gc_heap_bytes gauge\ndotnet_gc_heap_bytes ").Append(GC.GetTotalMemory(false)).Append('\n');
        sb.Append("# TYPE dotnet_gc_allocated_bytes_total counter\ndotnet_gc_allocated_bytes_total ").Append(GC.GetTotalAllocatedBytes(false)).Append('\n');
        sb.Append("# TYPE dotnet_gc_pause_seconds_total counter\ndotnet_gc_pause_seconds_total ")
            .Append(GC.GetTotalPauseDuration().TotalSeconds.ToString(CultureInfo.InvariantCulture)).Append('\n');
        sb.Append("# TYPE dotnet_gc_collections_total counter\n");
        for (var g = 0; g <= GC.MaxGeneration; g++)
            sb.Append("dotnet_gc_collections_total{generation=\"").Append(g).Append("\"} ").Append(GC.CollectionCount(g)).Append('\n');
        return sb.ToString();
    }

    /// <summary>Every counter's total over all its labels.</summary>
    public IReadOnlyDictionary<string, double> Totals()
    {
        _listener.RecordObservableInstruments();
        return _totals.GroupBy(t => t.Key.Name).ToDictionary(g => g.Key, g => g.Sum(t => Volatile.Read(ref t.Value.Value)));
    }

    public void Dispose() => _listener.Dispose();
}

/// <summary>Counts window events on the meter (and logs them at debug level) for dashboards.</summary>
internal sealed class HubCountersHandler(PrometheusExporter exporter) : Mediator.IRequestHandler<HubCountersQuery, IReadOnlyDictionary<string, double>>
{
    public ValueTask<IReadOnlyDictionary<string, double>> Handle(HubCountersQuery q, CancellationToken ct) => ValueTask.FromResult(exporter.Totals());
}

internal sealed class WindowEventCounter(ILogger<WindowEventCounter> log) : Mediator.INotificationHandler<WindowClosed>, Mediator.INotificationHandler<WindowCorrected>
{
    private static readonly Counter<long> Closed = HubMeter.Meter.CreateCounter<long>("iothub_windows_closed_total", description: "Window aggregates closed");
    private static readonly Counter<long> Corrected = HubMeter.Meter.CreateCounter<long>("iothub_windows_corrected_total", description: "Closed windows corrected by late points");

    public ValueTask Handle(WindowClosed n, CancellationToken ct)
    {
        Closed.Add(1, new KeyValuePair<string, object?>("resolution", n.Window.Resolution));
        log.LogDebug("Window {Resolution} {Start} of {DeviceId}/{Metric} closed with {Count} points", n.Window.Resolution, n.Window.Start, n.Window.DeviceId, n.Window.Metric, n.Window.Count);
        return ValueTask.CompletedTask;
    }

    public ValueTask Handle(WindowCorrected n, CancellationToken ct)
    {
        Corrected.Add(1, new KeyValuePair<string, object?>("resolution", n.Window.Resolution));
        return ValueTask.CompletedTask;
    }
}
