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
    ProfileRules profiles,
    DeviceClocks clocks,
    IDevicePresence presence,
    IDeviceClock deviceClock,
    IServiceScopeFactory scopes,
    IOptions<ValidationOptions> options,
    ILogger<ValidationWorkers> log) : IHostedService
{
    private Task[] _workers = [];
    private readonly ClockPolicy _defaultClockPolicy = options.Value.DefaultClockPolicy;

    public DecodeLimits Limits { get; } = new(options.Value.MaxPayloadBytes, options.Value.MaxBatchPoints, options.Value.MaxStringBytes);

    public ClockLimits ClockLimits { get; } = new((long)options.Value.ClockDriftTolerance.TotalMilliseconds,
        (long)options.Value.MaxPastAge.TotalMilliseconds, (long)options.Value.MaxFutureAccepted.TotalMilliseconds);

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await using (var scope = scopes.CreateAsyncScope())
        {
            var mediator = scope.ServiceProvider.GetRequiredService<Mediator.IMediator>();
            types.Load(await mediator.Send(new ListSeriesKinds(), cancellationToken));
            profiles.Load(await mediator.Send(new ListTelemetryProfiles(), cancellationToken));
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
            channels.CompleteStores();
        }
    }

    private async Task RunAsync()
    {
        var reader = channels.Raw.Reader;
        while (await reader.WaitToReadAsync())
        {
            while (reader.TryRead(out var raw))
            {
                var validated = Validate(raw);
                try
                {
                    var writer = channels.StoreFor(raw.DeviceId);
                    if (!writer.TryWrite(validated)) await writer.WriteAsync(validated);
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
            var result = raw.Format == PayloadFormat.Cbor
                ? decoder.DecodeCbor(raw.Payload, raw.ReceivedAtMs, raw.Sequence, Limits)
                : decoder.Decode(raw.Payload.Span, raw.ReceivedAtMs, raw.Sequence, Limits);
            if (!result.IsValid) return new ValidatedTelemetry(raw, null, 0, result.Reason, result.Errors);
            var points = result.Points.AsSpan(0, result.Count);
            var profile = profiles.For(raw.DeviceId);
            List<FieldError>? errors = null;

            if (result.LatestDeviceTs is { } latest)
            {
                var drift = clocks.Sample(raw.DeviceId, latest - raw.ReceivedAtMs);
                var flagged = ClockPolicyRules.IsDrift(drift, ClockLimits);
                deviceClock.Drift(raw.DeviceId, drift, flagged);
                ClockPolicyRules.Apply(points, raw.ReceivedAtMs, raw.Sequence, drift, flagged, profile?.Profile.ClockPolicy ?? _defaultClockPolicy, ClockLimits, ref errors);
            }
            if (profile is not null)
            {
                foreach (ref readonly var p in points) profile.Check(p, ref errors);
            }
            errors = types.Check(raw.DeviceId, points, profile, errors);
            return errors is null
                ? new ValidatedTelemetry(raw, result.Points, result.Count, null, null)
                : new ValidatedTelemetry(raw, null, 0, TelemetryDecoder.Describe(errors), errors);
        }
        catch (Exception ex)
        {
            // A decoder bug must not lose the message: it is dead-lettered with the reason and logged once here.
            log.LogError(ex, "Unexpected failure decoding a message of device {DeviceId}", raw.DeviceId);
            return new ValidatedTelemetry(raw, null, 0, "internal error while decoding: " + ex.GetType().Name, null);
        }
    }
}

internal sealed class ForgetDeviceClock(DeviceClocks clocks) : Mediator.INotificationHandler<DeviceDeleted>
{
    public ValueTask Handle(DeviceDeleted n, CancellationToken ct)
    {
        clocks.Forget(n.DeviceId);
        return ValueTask.CompletedTask;
    }
}
