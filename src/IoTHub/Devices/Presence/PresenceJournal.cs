using System.Threading.Channels;

namespace IoTHub.Devices.Presence;

/// <summary>Presence changes waiting for the database, in the order they happened.</summary>
internal sealed class PresenceJournal
{
    private readonly Channel<PresenceEvent> _events = Channel.CreateBounded<PresenceEvent>(new BoundedChannelOptions(100_000)
    {
        FullMode = BoundedChannelFullMode.Wait,
        SingleReader = true,
    });

    public ChannelReader<PresenceEvent> Reader => _events.Reader;

    public async ValueTask AppendAsync(PresenceEvent e, CancellationToken ct)
    {
        try
        {
            if (!_events.Writer.TryWrite(e)) await _events.Writer.WriteAsync(e, ct);
        }
        catch (ChannelClosedException)
        {
            // The hub is stopping: the start of the next run marks every device offline anyway.
        }
    }

    public void Complete() => _events.Writer.TryComplete();
}
