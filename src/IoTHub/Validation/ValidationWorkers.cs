// The decode-and-validate stage of the hot path: workers drain the ingest channel, turn each message into
// typed points or a dead letter with its reason, and pass it on to the store channel. On shutdown they finish
// what was received, then close the store channel so the writer can drain and stop.
using IoTHub.Contracts;
using IoTHub.Validation.Decoding;
using Microsoft.Extensions.Options;

namespace IoTHub.Validation;

internal sealed class ValidationWorkers(
    IngestChannels channels,
    TelemetryDecoder decoder,
    SeriesTypes types,
    IDevicePresence presence,
    IServiceScopeFactory scopes,
    IOptions<ValidationOptions> options,
    ILogger<ValidationWorkers> log) : IHostedService
{
    private Task[] _workers = [];

    public DecodeLimits Limits { get; } = new(
        options.Value.MaxPayloadBytes, options.Value.MaxBatchPoints, options.Value.MaxStringBytes,
        (long)options.Value.MaxPastAge.TotalMilliseconds, (long)options.Value.ClockDriftTolerance.TotalMilliseconds);

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await using (var scope = scopes.CreateAsyncScope())
        {
            types.Load(await scope.ServiceProvider.GetRequiredService<Mediator.IMediator>().Send(new ListSeriesKinds(), cancellationToken));
        }
        var n = options.Value.Workers > 0 ? options.Value.Workers : Environment.ProcessorCount;
        _workers = Enumerable.Range(0, n).Select(_ => Task.Run(RunAsync, CancellationToken.None)).ToArray();
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        channels.Raw.Writer.TryComplete();
        try
        {
            await Task.WhenAll(_workers).WaitAsync(cancellationToken);
        }
        finally
        {
            channels.Store.Writer.TryComplete();
        }
    }

    private async Task RunAsync()
    {
        var reader = channels.Raw.Reader;
        var writer = channels.Store.Writer;
        while (await reader.WaitToReadAsync())
        {
            while (reader.TryRead(out var raw))
            {
                var validated = Validate(raw);
                try
                {
                    await writer.WriteAsync(validated);
                }
                catch (System.Threading.Channels.ChannelClosedException)
                {
                    raw.Ticket?.TrySetResult(IngestOutcome.Unavailable);
                }
            }
        }
    }

    public ValidatedTelemetry Validate(in RawTelemetry raw)
    {
        presence.Seen(raw.DeviceId, raw.ReceivedAtMs);
        try
        {
            var result = decoder.Decode(raw.Payload.Span, raw.ReceivedAtMs, Limits);
            if (!result.IsValid) return new ValidatedTelemetry(raw, null, 0, result.Reason, result.Errors);
            if (types.Check(raw.DeviceId, result.Points.AsSpan(0, result.Count)) is { } typeErrors)
                return new ValidatedTelemetry(raw, null, 0, TelemetryDecoder.Describe(typeErrors), typeErrors);
            return new ValidatedTelemetry(raw, result.Points, result.Count, null, null);
        }
        catch (Exception ex)
        {
            // A decoder bug must not lose the message: it is dead-lettered with the reason and logged once here.
            log.LogError(ex, "Unexpected failure decoding a message of device {DeviceId}", raw.DeviceId);
            return new ValidatedTelemetry(raw, null, 0, "internal error while decoding: " + ex.GetType().Name, null);
        }
    }
}
