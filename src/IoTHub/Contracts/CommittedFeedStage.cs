// The host's lifecycle for a stage downstream of the commit (window tracking, alarm rules). Hosted services stop in the
// reverse order of their registration, so such a stage stops before the writer, which must be able to finish its last
// batches: stopping does nothing here, and the stage's loop ends by itself when the writer completes the CommittedFeed.
// Once every service has stopped, StoppedAsync waits for that loop, so that nothing of it runs once the host is
// disposed (an alarm tick's purge once failed on a disposed container).

namespace IoTHub.Contracts;

/// <summary>
/// A hosted stage that consumes a <see cref="CommittedFeed"/> queue in one loop of its own. A subclass starts the loop in
/// <see cref="StartAsync"/> and hands it to <see cref="Run"/>; the loop must end when its feed queue is completed (the
/// writer has stopped). Stopping waits for that loop after every hosted service has stopped, never before.
/// </summary>
public abstract class CommittedFeedStage : IHostedLifecycleService
{
    private Task? _loop;

    /// <summary>The stage's loop: completed once the hub has stopped (or before it was started).</summary>
    internal Task Completion => _loop ?? Task.CompletedTask;

    /// <summary>Loads what the stage needs and starts its loop with <see cref="Run"/>.</summary>
    /// <param name="cancellationToken">Cancelled when the start is aborted.</param>
    public abstract Task StartAsync(CancellationToken cancellationToken);

    /// <summary>Starts <paramref name="loop"/> on the thread pool as the stage's loop.</summary>
    /// <param name="loop">The loop; it ends when the stage's feed queue completes or the token it was given is cancelled.</param>
    protected void Run(Func<Task> loop) => _loop = Task.Run(loop, CancellationToken.None);

    /// <summary>Waits at most <paramref name="timeout"/> for the loop to end, for a subclass's disposal; never throws.</summary>
    /// <param name="timeout">How long to wait.</param>
    protected async Task WaitForLoopAsync(TimeSpan timeout)
    {
        if (_loop is not null) await _loop.WaitAsync(timeout).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }

    /// <summary>Nothing: the loop ends when the writer, which stops after this stage, completes the feed.</summary>
    /// <param name="cancellationToken">Not used.</param>
    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>After every service stopped (the writer completed the feed): waits for the loop's last batches.</summary>
    /// <param name="cancellationToken">Cancelled when the host's shutdown timeout passes.</param>
    public async Task StoppedAsync(CancellationToken cancellationToken)
    {
        if (_loop is not null) await _loop.WaitAsync(cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }

    /// <summary>Nothing.</summary>
    /// <param name="cancellationToken">Not used.</param>
    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>Nothing.</summary>
    /// <param name="cancellationToken">Not used.</param>
    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>Nothing.</summary>
    /// <param name="cancellationToken">Not used.</param>
    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
