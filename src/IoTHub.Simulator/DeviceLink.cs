// One simulated device's MQTT connection, kept up. When the hub goes away (a restart, a crash, a network cut) the
// device reconnects as a real one should: after 0.5 s, then doubling up to 5 s, each wait with ±20 % jitter so that
// a fleet does not come back in one burst. Publishers wait for the connection instead of giving up.
using MQTTnet;

namespace IoTHub.Simulator;

/// <summary>An MQTT client that reconnects with back-off until the run stops.</summary>
public sealed class DeviceLink
{
    private static readonly TimeSpan FirstRetry = TimeSpan.FromMilliseconds(500);
    private static readonly TimeSpan LastRetry = TimeSpan.FromSeconds(5);

    private readonly MqttClientOptions _options;
    private readonly Func<CancellationToken, Task>? _onConnected;
    private readonly CancellationToken _stop;
    private TaskCompletionSource _up = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _reconnecting;
    private volatile bool _closing;
    private long _reconnects;

    /// <param name="client">The device's client (not connected yet).</param>
    /// <param name="options">How it connects, on every attempt.</param>
    /// <param name="onConnected">Runs after each successful connect, before publishers resume (e.g. subscribing again).</param>
    /// <param name="stop">Ends reconnecting.</param>
    public DeviceLink(IMqttClient client, MqttClientOptions options, Func<CancellationToken, Task>? onConnected, CancellationToken stop)
    {
        Client = client;
        _options = options;
        _onConnected = onConnected;
        _stop = stop;
        client.DisconnectedAsync += OnDisconnectedAsync;
    }

    /// <summary>The device's client.</summary>
    public IMqttClient Client { get; }

    /// <summary>Times the connection came back after it was lost.</summary>
    public long Reconnects => Interlocked.Read(ref _reconnects);

    /// <summary>Whether the client is connected now.</summary>
    public bool IsConnected => Client.IsConnected;

    /// <summary>The first connect: fails at once (wrong credentials or no hub are the user's to fix, not to retry).</summary>
    public async Task ConnectAsync(CancellationToken ct)
    {
        var connect = await Client.ConnectAsync(_options, ct);
        if (connect.ResultCode != MqttClientConnectResultCode.Success) throw new InvalidOperationException($"{_options.ClientId}: {connect.ResultCode}");
        if (_onConnected is not null) await _onConnected(ct);
        _up.TrySetResult();
    }

    /// <summary>Waits until the client is connected; false if the run stopped first.</summary>
    public async Task<bool> WaitUntilConnectedAsync(CancellationToken ct)
    {
        while (!Client.IsConnected)
        {
            try
            {
                await Volatile.Read(ref _up).Task.WaitAsync(ct);
                if (!Client.IsConnected) await Task.Delay(100, ct); // lost again since: the next signal is on its way
            }
            catch (OperationCanceledException)
            {
                return false;
            }
        }
        return true;
    }

    /// <summary>Disconnects for good (no reconnect).</summary>
    public async Task CloseAsync()
    {
        _closing = true;
        try
        {
            if (Client.IsConnected) await Client.DisconnectAsync();
        }
        catch (Exception)
        {
            // closing anyway
        }
        Client.Dispose();
    }

    /// <summary>Drops the connection and, after <paramref name="off"/>, connects again as after any lost connection, as a
    /// device that reboots or loses power does; <c>onConnected</c> runs again then (subscribing, reporting its state).
    /// Returns once it is down: wait with <see cref="WaitUntilConnectedAsync"/>. Does nothing while the link is already
    /// reconnecting (the device is away anyway and comes back by itself).</summary>
    /// <param name="off">How long it stays away.</param>
    /// <param name="reason">How it goes: <see cref="MqttClientDisconnectOptionsReason.DisconnectWithWillMessage"/> for a
    /// power loss (the broker treats it as an unexpected loss), a normal disconnect for a reboot.</param>
    public async Task RestartAsync(TimeSpan off, MqttClientDisconnectOptionsReason reason)
    {
        // Holding the reconnecting flag keeps the disconnect below from starting the usual back-off at once.
        if (_closing || _stop.IsCancellationRequested || Interlocked.Exchange(ref _reconnecting, 1) == 1) return;
        Volatile.Write(ref _up, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
        try
        {
            await Client.DisconnectAsync(new MqttClientDisconnectOptionsBuilder().WithReason(reason).Build());
        }
        catch (Exception)
        {
            // down either way
        }
        _ = Task.Run(async () =>
        {
            try
            {
                await Task.Delay(off, _stop);
            }
            catch (OperationCanceledException)
            {
                // the run stopped: ReconnectAsync ends at once and lowers the flag
            }
            await ReconnectAsync();
        }, CancellationToken.None);
    }

    private Task OnDisconnectedAsync(MqttClientDisconnectedEventArgs e)
    {
        if (e.ClientWasConnected) StartReconnecting();
        return Task.CompletedTask;
    }

    private void StartReconnecting()
    {
        if (_closing || _stop.IsCancellationRequested || Interlocked.Exchange(ref _reconnecting, 1) == 1) return;
        Volatile.Write(ref _up, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
        _ = Task.Run(ReconnectAsync, CancellationToken.None);
    }

    private async Task ReconnectAsync()
    {
        var wait = FirstRetry;
        while (!_stop.IsCancellationRequested && !_closing)
        {
            try
            {
                await Task.Delay(wait * (0.8 + Random.Shared.NextDouble() * 0.4), _stop);
                using var attempt = CancellationTokenSource.CreateLinkedTokenSource(_stop);
                attempt.CancelAfter(LastRetry);
                var connect = await Client.ConnectAsync(_options, attempt.Token);
                if (connect.ResultCode == MqttClientConnectResultCode.Success)
                {
                    if (_onConnected is not null) await _onConnected(attempt.Token);
                    Interlocked.Increment(ref _reconnects);
                    Volatile.Read(ref _up).TrySetResult();
                    Volatile.Write(ref _reconnecting, 0);
                    // Lost again before the flag was down: that disconnect found a reconnect running, so start another.
                    if (!Client.IsConnected) StartReconnecting();
                    return;
                }
            }
            catch (OperationCanceledException) when (_stop.IsCancellationRequested)
            {
                break;
            }
            catch (Exception)
            {
                // refused or timed out: the hub is not back yet
            }
            wait = wait * 2 < LastRetry ? wait * 2 : LastRetry;
        }
        Volatile.Write(ref _reconnecting, 0);
    }
}
