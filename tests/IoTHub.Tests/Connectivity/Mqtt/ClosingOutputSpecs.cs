// The last packet the hub writes before it closes a connection reaches the client even when MQTTnet completes the
// output with an error (it does, every time it stops a connection); a peer that never reads is reset after the grace.
using System.Buffers;
using System.IO.Pipelines;
using IoTHub.Connectivity.Mqtt.Flow;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Time.Testing;

namespace IoTHub.Tests.Connectivity.Mqtt;

public sealed class ClosingOutputSpecs
{
    private static readonly byte[] Disconnect = [0xE0, 0x02, 0x93, 0x00];

    [Test]
    public async Task Bytes_flushed_before_an_error_completion_are_still_delivered_and_the_output_ends_cleanly()
    {
        var pipe = new Pipe();
        var connection = new DefaultConnectionContext();
        var output = new ClosingOutput(pipe.Writer, connection, new FakeTimeProvider(), TimeSpan.FromSeconds(5));
        await output.WriteAsync(Disconnect);
        output.Complete(new OperationCanceledException("the receive loop was cancelled"));

        var read = await pipe.Reader.ReadAsync();
        Assert.That(read.Buffer.ToArray(), Is.EqualTo(Disconnect), "the DISCONNECT, not an exception");
        Assert.That(read.IsCompleted, Is.True);
    }

    [Test]
    public async Task A_connection_still_open_after_the_grace_is_aborted_and_one_closed_in_time_is_not()
    {
        var time = new FakeTimeProvider();
        var slow = new AbortCounting();
        new ClosingOutput(new Pipe().Writer, slow, time, TimeSpan.FromSeconds(5)).Complete(new IOException("reset"));
        var prompt = new AbortCounting();
        new ClosingOutput(new Pipe().Writer, prompt, time, TimeSpan.FromSeconds(5)).Complete(new IOException("reset"));

        time.Advance(TimeSpan.FromSeconds(4));
        Assert.That(slow.Aborts, Is.Zero, "within the grace");
        await prompt.CloseAsync();
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.That(() => slow.Aborts, Is.EqualTo(1).After(5000, 10), "still open at the end of the grace");
        Assert.That(prompt.Aborts, Is.Zero, "closed by its peer in time");
    }

    [Test]
    public void A_clean_completion_starts_no_grace_timer()
    {
        var time = new FakeTimeProvider();
        var connection = new AbortCounting();
        new ClosingOutput(new Pipe().Writer, connection, time, TimeSpan.FromSeconds(5)).Complete();
        time.Advance(TimeSpan.FromMinutes(1));
        Assert.That(connection.Aborts, Is.Zero);
    }

    private sealed class AbortCounting : DefaultConnectionContext
    {
        private readonly CancellationTokenSource _closed = new();
        private int _aborts;

        public AbortCounting() => ConnectionClosed = _closed.Token;

        public int Aborts => Volatile.Read(ref _aborts);

        public override void Abort(ConnectionAbortedException abortReason) => Interlocked.Increment(ref _aborts);

        public Task CloseAsync() => _closed.CancelAsync();
    }
}
