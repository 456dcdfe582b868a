// The output side of an MQTT connection (TCP, TLS or WebSocket), between MQTTnet and Kestrel. MQTTnet stops a connection
// by sending its DISCONNECT and then cancelling the receive loop, which completes the output *with an exception*; Kestrel
// then drops whatever the socket has not sent yet, and under load that was the DISCONNECT itself: the client saw the
// connection close without the reason (MQTT 5 §3.14, every server-sent DISCONNECT: protocol errors, Receive Maximum,
// session takeover, revoked credentials, shutdown). Here the output is completed without the exception, so Kestrel sends
// what was written and then closes; a peer that has not taken those bytes within the grace period is reset.
using System.IO.Pipelines;
using Microsoft.AspNetCore.Connections;

namespace IoTHub.Connectivity.Mqtt.Flow;

/// <summary>A <see cref="PipeWriter"/> that passes everything to <paramref name="inner"/>, except that completing it
/// with an error still delivers the bytes already flushed: the connection is closed gracefully, and aborted (reset)
/// only if it is still open <paramref name="grace"/> later (a peer that does not read).</summary>
internal sealed class ClosingOutput(PipeWriter inner, ConnectionContext connection, TimeProvider time, TimeSpan grace) : PipeWriter
{
    /// <summary>How long a peer has to read the last bytes once the hub closed its connection with an error: 5 s.</summary>
    public static readonly TimeSpan DefaultGrace = TimeSpan.FromSeconds(5);

    private int _completed;

    public override void Advance(int bytes) => inner.Advance(bytes);

    public override Memory<byte> GetMemory(int sizeHint = 0) => inner.GetMemory(sizeHint);

    public override Span<byte> GetSpan(int sizeHint = 0) => inner.GetSpan(sizeHint);

    public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default) => inner.FlushAsync(cancellationToken);

    public override ValueTask<FlushResult> WriteAsync(ReadOnlyMemory<byte> source, CancellationToken cancellationToken = default) =>
        inner.WriteAsync(source, cancellationToken);

    public override void CancelPendingFlush() => inner.CancelPendingFlush();

    public override bool CanGetUnflushedBytes => inner.CanGetUnflushedBytes;

    public override long UnflushedBytes => inner.UnflushedBytes;

    public override void Complete(Exception? exception = null)
    {
        if (Interlocked.Exchange(ref _completed, 1) != 0) return;
        inner.Complete();
        if (exception is not null) _ = AbortIfStillOpenAsync();
    }

    public override ValueTask CompleteAsync(Exception? exception = null)
    {
        Complete(exception);
        return ValueTask.CompletedTask;
    }

    private async Task AbortIfStillOpenAsync()
    {
        try
        {
            await Task.Delay(grace, time, connection.ConnectionClosed);
        }
        catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException)
        {
            return; // closed in time
        }
        connection.Abort(new ConnectionAbortedException($"the peer did not read the connection's last bytes within {grace.TotalSeconds:0} s"));
    }
}
