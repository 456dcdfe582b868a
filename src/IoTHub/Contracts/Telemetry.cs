// Messages of the telemetry hot path. They cross Connectivity → Validation → Storage through bounded channels,
// never through the mediator, so they are structs or pooled where a message would otherwise allocate.
using System.Threading.Channels;

namespace IoTHub.Contracts;

public enum TelemetryProtocol : byte { Mqtt = 0, Http = 1, Coap = 2 }

public enum PayloadFormat : byte { Json = 0, Cbor = 1 }

public enum IngestStatus : byte
{
    /// <summary>Committed as telemetry.</summary>
    Stored,
    /// <summary>Invalid: committed to the dead-letter store with <see cref="IngestOutcome.Reason"/>.</summary>
    Rejected,
    /// <summary>The hub is stopping; the sender must retry.</summary>
    Unavailable,
}

public readonly record struct IngestOutcome(IngestStatus Status, string? Reason = null, IReadOnlyList<FieldError>? Errors = null)
{
    public static readonly IngestOutcome Stored = new(IngestStatus.Stored);
    public static readonly IngestOutcome Unavailable = new(IngestStatus.Unavailable, "the hub is shutting down");
}

/// <summary>One problem with one field of a payload, e.g. <c>values.temperature</c>: "expected a number".</summary>
public sealed record FieldError(string Field, string Message);

/// <summary>Completed once the batch holding the message has committed (or the hub stops).</summary>
public sealed class IngestTicket() : TaskCompletionSource<IngestOutcome>(TaskCreationOptions.RunContinuationsAsynchronously);

/// <summary>A message as a protocol adapter received it: authenticated, not yet decoded. <paramref name="Sequence"/> is
/// the first of the arrival sequence numbers reserved for it (<see cref="ArrivalSequence"/>): its point at index k, when
/// the hub stamps that point's time, is told apart from every other point by <c>Sequence + k</c>.</summary>
public readonly record struct RawTelemetry(
    string DeviceId,
    TelemetryProtocol Protocol,
    PayloadFormat Format,
    ReadOnlyMemory<byte> Payload,
    long ReceivedAtMs,
    long Sequence,
    IngestTicket? Ticket);

public enum ValueKind : byte { Number = 0, Boolean = 1, Text = 2 }

/// <summary>One typed value of one metric at one time.</summary>
public readonly record struct TelemetryPoint(string Metric, long TimestampMs, ValueKind Kind, double Number, string? Text)
{
    /// <summary>Device time when it was replaced by receive time (clock-drift policy <c>serverTime</c>).</summary>
    public long? DeviceTimestampMs { get; init; }

    /// <summary>0 for a point at its device's own timestamp (a resend of it is the same point, stored once); for a point
    /// the hub stamped (no <c>ts</c>, or <c>serverTime</c> replaced it) its arrival sequence number, unique in the
    /// process and increasing with arrival, so it never collides with another reading in the same millisecond.</summary>
    public long Sequence { get; init; }
}

/// <summary>A decoded message on its way to the store: its points, or the reason it is dead-lettered.</summary>
public readonly record struct ValidatedTelemetry(
    RawTelemetry Source,
    TelemetryPoint[]? Points,
    int PointCount,
    string? RejectReason,
    IReadOnlyList<FieldError>? Errors);

/// <summary>A numeric point that is in the store now (its series id is the store's), for windowed aggregation.</summary>
public readonly record struct CommittedPoint(long SeriesId, string DeviceId, string Metric, long TimestampMs);

/// <summary>The bounded channels of the ingest path; their capacity is the backpressure. Validated messages go to one
/// store channel per writer, chosen by device, so each device's series are only ever written by one writer (no two
/// transactions contend for the same rows) and a device's messages commit in order.</summary>
public sealed class IngestChannels
{
    private readonly Channel<ValidatedTelemetry>[] _stores;

    public IngestChannels(int rawCapacity, int storeCapacity, int writers = 1)
    {
        Raw = Channel.CreateBounded<RawTelemetry>(new BoundedChannelOptions(rawCapacity)
        {
            FullMode = BoundedChannelFullMode.Wait,
            SingleReader = false,
            SingleWriter = false,
        });
        _stores = new Channel<ValidatedTelemetry>[Math.Max(1, writers)];
        for (var i = 0; i < _stores.Length; i++)
        {
            _stores[i] = Channel.CreateBounded<ValidatedTelemetry>(new BoundedChannelOptions(Math.Max(1, storeCapacity / _stores.Length))
            {
                FullMode = BoundedChannelFullMode.Wait,
                SingleReader = true,
                SingleWriter = false,
            });
        }
    }

    public Channel<RawTelemetry> Raw { get; }

    public IReadOnlyList<Channel<ValidatedTelemetry>> Stores => _stores;

    /// <summary>The store channel (and so the writer) of a device.</summary>
    public ChannelWriter<ValidatedTelemetry> StoreFor(string deviceId) =>
        _stores.Length == 1 ? _stores[0].Writer : _stores[(uint)string.GetHashCode(deviceId, StringComparison.Ordinal) % (uint)_stores.Length].Writer;

    /// <summary>Messages received but not yet handed to a writer's batch (the ingest lag).</summary>
    public int Backlog
    {
        get
        {
            var n = Raw.Reader.Count;
            foreach (var c in _stores) n += c.Reader.Count;
            return n;
        }
    }

    public void CompleteStores()
    {
        foreach (var c in _stores) c.Writer.TryComplete();
    }
}

/// <summary>The value kind each stored series has had so far (its implicit type), for validation at start.</summary>
public sealed record ListSeriesKinds : Mediator.IRequest<IReadOnlyList<SeriesKind>>;

public sealed record SeriesKind(string DeviceId, string Metric, ValueKind Kind);

/// <summary>What a device profile declares about one metric.</summary>
public sealed record MetricRule(string Name, ValueKind Kind, string? Unit, double? Min, double? Max);

/// <summary>What to do with points whose device clock is off by more than the tolerance.</summary>
public enum ClockPolicy { Reject, ServerTime, Accept }

/// <summary>A device profile as validation needs it.</summary>
public sealed record TelemetryProfile(string Id, bool RejectUnknownMetrics, ClockPolicy ClockPolicy, IReadOnlyList<MetricRule> Metrics);

/// <summary>Every profile and which devices use which, for validation at start.</summary>
public sealed record ListTelemetryProfiles : Mediator.IRequest<TelemetryProfiles>;

public sealed record TelemetryProfiles(IReadOnlyList<TelemetryProfile> Profiles, IReadOnlyList<(string DeviceId, string ProfileId)> Assignments);

public sealed record ProfileChanged(TelemetryProfile Profile) : Mediator.INotification;

public sealed record ProfileDeleted(string ProfileId) : Mediator.INotification;

public sealed record DeviceProfileAssigned(string DeviceId, string? ProfileId) : Mediator.INotification;

/// <summary>Receives per-device clock-drift estimates (device time minus receive time); lock-free, called per message.</summary>
public interface IDeviceClock
{
    void Drift(string deviceId, long driftMs, bool flagged);
}
