// Where every protocol adapter hands telemetry to the hot path. Writing waits when the ingest channel is
// full (backpressure); for acknowledged delivery the caller then waits for the batch holding the message to commit.
using System.Threading.Channels;
using IoTHub.Contracts;

namespace IoTHub.Connectivity;

internal sealed class IngestGate(IngestChannels channels, TimeProvider time)
{
    public async ValueTask<IngestOutcome> SubmitAsync(string deviceId, TelemetryProtocol protocol, PayloadFormat format,
        ReadOnlyMemory<byte> payload, bool awaitCommit, CancellationToken ct)
    {
        var ticket = awaitCommit ? new IngestTicket() : null;
        try
        {
            await channels.Raw.Writer.WriteAsync(new RawTelemetry(deviceId, protocol, format, payload, time.NowMs(), ticket), ct);
        }
        catch (ChannelClosedException)
        {
            return IngestOutcome.Unavailable;
        }
        return ticket is null ? IngestOutcome.Stored : await ticket.Task.WaitAsync(ct);
    }
}
