// Where every protocol adapter hands telemetry to the hot path. Writing waits when the ingest channel is
// full (backpressure); for acknowledged delivery the caller then waits for the batch holding the message to commit.
using System.Threading.Channels;
using IoTHub.Contracts;

namespace IoTHub.Connectivity;

internal sealed class IngestGate(IngestChannels channels, TimeProvider time)
{
    private readonly ArrivalSequence _sequence = new(time);

    public async ValueTask<IngestOutcome> SubmitAsync(string deviceId, TelemetryProtocol protocol, PayloadFormat format,
        ReadOnlyMemory<byte> payload, bool awaitCommit, CancellationToken ct)
    {
        var ticket = awaitCommit ? new IngestTicket() : null;
        if (!await EnqueueAsync(deviceId, protocol, format, payload, ticket, ct)) return IngestOutcome.Unavailable;
        return ticket is null ? IngestOutcome.Stored : await ticket.Task.WaitAsync(ct);
    }

    /// <summary>Queues a message without waiting for its commit; <paramref name="ticket"/> completes when it has.
    /// False when the hot path is shutting down (the ticket is then never completed).</summary>
    public async ValueTask<bool> EnqueueAsync(string deviceId, TelemetryProtocol protocol, PayloadFormat format,
        ReadOnlyMemory<byte> payload, IngestTicket? ticket, CancellationToken ct)
    {
        try
        {
            var item = new RawTelemetry(deviceId, protocol, format, payload, time.NowMs(), _sequence.Reserve(payload.Length), ticket);
            if (!channels.Raw.Writer.TryWrite(item)) await channels.Raw.Writer.WriteAsync(item, ct);
            return true;
        }
        catch (ChannelClosedException)
        {
            return false;
        }
    }
}
