// Messages of the telemetry hot path. They cross Connectivity → Validation → Storage through bounded channels,
// never through the mediator, so they are structs or pooled where a message would otherwise allocate.
using System.Threading.Channels;

namespace IoTHub.Contracts;

/// <summary>The protocol a telemetry message arrived over; dead letters record it as <c>mqtt</c>, <c>http</c> or <c>coap</c>.</summary>
public enum TelemetryProtocol : byte
{
    /// <summary>MQTT 3.1.1 or 5.0, over TCP, TLS or WebSocket (topic <c>devices/{id}/telemetry</c>).</summary>
    Mqtt = 0,
    /// <summary><c>POST /api/v1/devices/{id}/telemetry</c>.</summary>
    Http = 1,
    /// <summary>CoAP (RFC 7252) <c>POST /devices/{id}/telemetry</c> (or the ThingsBoard path <c>/api/v1/{token}/telemetry</c>).</summary>
    Coap = 2,
}

/// <summary>How a telemetry payload is encoded (CONTRACT.md, "Telemetry payload"); both decode to the same points.</summary>
public enum PayloadFormat : byte
{
    /// <summary>UTF-8 JSON (RFC 8259), the default.</summary>
    Json = 0,
    /// <summary>CBOR (RFC 8949): MQTT 5 content type <c>application/cbor</c>, HTTP <c>Content-Type: application/cbor</c>.</summary>
    Cbor = 1,
}

/// <summary>What became of a telemetry message, as its acknowledgement tells the device (MQTT PUBACK, HTTP status).</summary>
public enum IngestStatus : byte
{
    /// <summary>Committed as telemetry.</summary>
    Stored,
    /// <summary>Invalid: committed to the dead-letter store with <see cref="IngestOutcome.Reason"/>.</summary>
    Rejected,
    /// <summary>The hub is stopping; the sender must retry.</summary>
    Unavailable,
}

/// <summary>The answer to one telemetry message, given once the batch holding it has committed.</summary>
/// <param name="Status">Stored, dead-lettered or refused for now.</param>
/// <param name="Reason">Why it was rejected or refused, one line for the device (MQTT 5 PUBACK reason string, HTTP problem
/// <c>detail</c>); null when stored.</param>
/// <param name="Errors">Each invalid field of a rejected message (HTTP 400 names them in <c>errors</c>); null otherwise.</param>
public readonly record struct IngestOutcome(IngestStatus Status, string? Reason = null, IReadOnlyList<FieldError>? Errors = null)
{
    /// <summary>Committed as telemetry: MQTT PUBACK 0x00, HTTP 202.</summary>
    public static readonly IngestOutcome Stored = new(IngestStatus.Stored);

    /// <summary>Not taken because the hub is stopping: HTTP 503; MQTT 5 PUBACK 0x80; on MQTT 3.1.1 no PUBACK and the
    /// connection closes, so the device resends after reconnecting.</summary>
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

/// <summary>The type of a telemetry value; a series keeps the kind of its first stored value. The byte is the stored <c>kind</c> column.</summary>
public enum ValueKind : byte
{
    /// <summary>A finite IEEE 754 double (JSON number; NaN and infinities are rejected).</summary>
    Number = 0,
    /// <summary>JSON <c>true</c>/<c>false</c>, stored as 1/0 in the number column.</summary>
    Boolean = 1,
    /// <summary>A short string, at most <c>Validation:MaxStringBytes</c> UTF-8 bytes (default 1 KiB).</summary>
    Text = 2,
}

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

/// <summary>A numeric point that is in the store now (its series id is the store's), for windowed aggregation and
/// alarm rules. <paramref name="Value"/> is the stored value; <paramref name="TimestampMs"/> its Unix ms.</summary>
public readonly record struct CommittedPoint(long SeriesId, string DeviceId, string Metric, long TimestampMs, double Value);

/// <summary>The bounded channels of the ingest path; their capacity is the backpressure. Validated messages go to one
/// store channel per writer, chosen by device, so each device's series are only ever written by one writer (no two
/// transactions contend for the same rows) and a device's messages commit in order.</summary>
public sealed class IngestChannels
{
    private readonly Channel<ValidatedTelemetry>[] _stores;

    /// <summary>Creates the channels. Producers wait when one is full: that wait is the backpressure that slows acks.</summary>
    /// <param name="rawCapacity">Messages received and not yet validated (<c>Storage:IngestQueueCapacity</c>).</param>
    /// <param name="storeCapacity">Validated messages waiting for a writer, shared among the writers' channels
    /// (<c>Storage:StoreQueueCapacity</c>).</param>
    /// <param name="writers">Store channels, one per writer (at least 1).</param>
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

    /// <summary>Protocol adapters → validation workers: authenticated, undecoded messages.</summary>
    public Channel<RawTelemetry> Raw { get; }

    /// <summary>Validation → the writers: one channel per writer, read only by that writer.</summary>
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

    /// <summary>No more validated messages (validation has drained and stopped): each writer commits what it holds and ends.</summary>
    public void CompleteStores()
    {
        foreach (var c in _stores) c.Writer.TryComplete();
    }
}

/// <summary>The value kind each stored series has had so far (its implicit type), for validation at start.</summary>
public sealed record ListSeriesKinds : Mediator.IRequest<IReadOnlyList<SeriesKind>>;

/// <summary>The value kind a stored series (one metric of one device) has: a later value of another kind is rejected.</summary>
/// <param name="DeviceId">The device.</param>
/// <param name="Metric">The metric name.</param>
/// <param name="Kind">The kind of its stored values.</param>
public sealed record SeriesKind(string DeviceId, string Metric, ValueKind Kind);

/// <summary>What a device profile declares about one metric.</summary>
public sealed record MetricRule(string Name, ValueKind Kind, string? Unit, double? Min, double? Max);

/// <summary>What to do with points whose device clock is off by more than the tolerance.</summary>
public enum ClockPolicy
{
    /// <summary><c>reject</c>: dead-letter the message (MQTT 5 PUBACK 0x99, HTTP 400).</summary>
    Reject,
    /// <summary><c>serverTime</c>: store the points at receive time and keep the device's time beside them (<c>deviceTs</c>).</summary>
    ServerTime,
    /// <summary><c>accept</c>: store the points at the device's time; the drift is still flagged on the device.</summary>
    Accept,
}

/// <summary>A device profile as validation needs it.</summary>
public sealed record TelemetryProfile(string Id, bool RejectUnknownMetrics, ClockPolicy ClockPolicy, IReadOnlyList<MetricRule> Metrics);

/// <summary>Every profile and which devices use which, for validation at start.</summary>
public sealed record ListTelemetryProfiles : Mediator.IRequest<TelemetryProfiles>;

/// <summary>The answer to <see cref="ListTelemetryProfiles"/>.</summary>
/// <param name="Profiles">Every profile.</param>
/// <param name="Assignments">Each device that has a profile, with that profile's id.</param>
public sealed record TelemetryProfiles(IReadOnlyList<TelemetryProfile> Profiles, IReadOnlyList<(string DeviceId, string ProfileId)> Assignments);

/// <summary>A profile was created or replaced; validation applies it to the next message of each device using it.</summary>
public sealed record ProfileChanged(TelemetryProfile Profile) : Mediator.INotification;

/// <summary>A profile was deleted (only unused profiles can be).</summary>
public sealed record ProfileDeleted(string ProfileId) : Mediator.INotification;

/// <summary>A device's profile changed: <paramref name="ProfileId"/> is the new one, or null when it has none now
/// (also published when a device is deleted).</summary>
public sealed record DeviceProfileAssigned(string DeviceId, string? ProfileId) : Mediator.INotification;

/// <summary>Receives per-device clock-drift estimates (device time minus receive time); lock-free, called per message.</summary>
public interface IDeviceClock
{
    /// <summary>Records the latest drift of a device's clock.</summary>
    /// <param name="deviceId">The device.</param>
    /// <param name="driftMs">Device time minus receive time, in milliseconds (positive: the device's clock is ahead).</param>
    /// <param name="flagged">True when the drift exceeds <c>Validation:ClockDriftTolerance</c>; shown on the device.</param>
    void Drift(string deviceId, long driftMs, bool flagged);
}
