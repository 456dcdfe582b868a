// The CoAP device API (CONTRACT.md, "CoAP device API"; README, "CoAP"): the same resources as the HTTP device API,
// authenticated with ?token= (or the DTLS session's PSK identity), feeding the same ingest gate. Telemetry is answered
// 2.04 only once durably stored; errors carry a diagnostic payload naming the problem (RFC 7252 §5.5.2).
//   GET  .well-known/core                              the asking device's resources in link-format (RFC 6690)
//   POST devices/{id}/telemetry                       JSON (50, the default) or CBOR (60)
//   POST api/v1/{token}/telemetry                      the ThingsBoard path, for devices flashed for it
//   GET  devices/{id}/state/desired                    Observe (RFC 7641): a notification per change
//   POST devices/{id}/state/reported                   a JSON merge patch
//   GET  devices/{id}/commands                         Observe: each command as a notification
//   POST devices/{id}/commands/{commandId}/response
//   GET  devices/{id}/firmware/pending                 Observe: the firmware notification
//   POST devices/{id}/firmware/progress
//   GET  devices/{id}/firmware/{artifactId}            the image, in Block2 blocks (RFC 7959)
using System.Text;
using IoTHub.Contracts;
using Mediator;
using Microsoft.Extensions.Options;

namespace IoTHub.Connectivity.Coap;

internal sealed class CoapResources(IngestGate gate, IDeviceAuthenticator devices, DeviceRateLimiter rate, IServiceScopeFactory scopes,
    CoapBlockUploads uploads, CoapObservers observers, CoapPresence presence, IOptions<ConnectivityOptions> connectivity)
{
    /// <summary>A response with a diagnostic payload (UTF-8 text, RFC 7252 §5.5.2).</summary>
    public static CoapMessage Diagnostic(CoapCode code, string text) => new() { Code = code, Payload = Encoding.UTF8.GetBytes(text) };

    private static CoapMessage Code(CoapCode code) => new() { Code = code };

    private static CoapMessage Json(CoapCode code, ReadOnlyMemory<byte> json)
    {
        var m = new CoapMessage { Code = code, Payload = json };
        m.AddOption(CoapOption.UInt(CoapOptionNumber.ContentFormat, CoapContentFormat.Json));
        return m;
    }

    /// <summary>The answer to a request; a GET's 2.05 in the Block2 block it asks for (<see cref="CoapBlock2"/>).</summary>
    public async Task<CoapMessage> HandleAsync(CoapMessage m, CoapPeer peer, CancellationToken ct)
    {
        var response = await RouteAsync(m, peer, ct);
        if (m.Code != CoapCode.Get) return response;
        response = CoapBlock2.Apply(m, response);
        if (m.Observe == 0 && response.Code != CoapCode.Content) observers.Forget(peer, m.Token);
        return response;
    }

    private async Task<CoapMessage> RouteAsync(CoapMessage m, CoapPeer peer, CancellationToken ct)
    {
        foreach (var o in m.Options)
            if (CoapOptionNumber.IsCritical(o.Number) && !CoapOptionNumber.IsKnown(o.Number))
                return Diagnostic(CoapCode.BadOption, $"unrecognized critical option {o.Number} (RFC 7252 §5.4.1)");
        if (m.HasOption(CoapOptionNumber.ProxyUri) || m.HasOption(CoapOptionNumber.ProxyScheme))
            return Diagnostic(CoapCode.ProxyingNotSupported, "this server is not a proxy (RFC 7252 §5.7.2)");
        var path = m.UriPath ?? [];
        // The firmware image has an ETag and checks If-Match against it; no other resource has one (RFC 7252 §5.10.8).
        if (path is not ["devices", _, "firmware", var image] || image is "pending" or "progress")
            if (PreconditionFailed(m, null) is { } failed) return failed;
        if (path is ["api", "v1", var token, "telemetry"]) return await ThingsBoardAsync(m, peer, token, ct);
        if (path is [".well-known", "core"]) return await DiscoveryAsync(m, peer, ct);
        if (path is not ["devices", var deviceId, ..]) return Diagnostic(CoapCode.NotFound, "no such resource; see the README's CoAP section");
        var rest = path.Skip(2).ToArray();
        var method = m.Code;
        // The only representations served: JSON, and an image as octet-stream (RFC 7252 §5.10.4: otherwise 4.06).
        var offered = rest is ["firmware", var a] && a != "pending" ? CoapContentFormat.OctetStream : CoapContentFormat.Json;
        if (method == CoapCode.Get && m.Accept is { } accept && accept != offered)
            return Diagnostic(CoapCode.NotAcceptable, $"this resource is served as Content-Format {offered} only");
        return rest switch
        {
            ["telemetry"] => method == CoapCode.Post ? await TelemetryAsync(m, peer, deviceId, ct) : NotAllowed("POST"),
            ["state", "desired"] => method == CoapCode.Get ? await DesiredAsync(m, peer, deviceId, ct) : NotAllowed("GET"),
            ["state", "reported"] => method == CoapCode.Post ? await ReportedAsync(m, peer, deviceId, ct) : NotAllowed("POST"),
            ["commands"] => method == CoapCode.Get ? await CommandsAsync(m, peer, deviceId, ct) : NotAllowed("GET"),
            ["commands", var commandId, "response"] => method == CoapCode.Post ? await CommandResponseAsync(m, peer, deviceId, commandId, ct) : NotAllowed("POST"),
            ["firmware", "pending"] => method == CoapCode.Get ? await PendingFirmwareAsync(m, peer, deviceId, ct) : NotAllowed("GET"),
            ["firmware", "progress"] => method == CoapCode.Post ? await FirmwareProgressAsync(m, peer, deviceId, ct) : NotAllowed("POST"),
            ["firmware", var artifact] when long.TryParse(artifact, out var artifactId) =>
                method == CoapCode.Get ? await FirmwareImageAsync(m, peer, deviceId, artifactId, ct) : NotAllowed("GET"),
            _ => Diagnostic(CoapCode.NotFound, "no such resource; see the README's CoAP section"),
        };
    }

    /// <summary>RFC 6690 discovery of the asking device's resources (<see cref="CoapDiscovery"/>): 2.05 in link-format,
    /// filtered by the query; 4.01 without a DTLS identity or <c>?token=</c>.</summary>
    private async Task<CoapMessage> DiscoveryAsync(CoapMessage m, CoapPeer peer, CancellationToken ct)
    {
        if (m.Code != CoapCode.Get) return NotAllowed("GET");
        if (m.Accept is { } accept && accept != CoapContentFormat.LinkFormat)
            return Diagnostic(CoapCode.NotAcceptable, $"this resource is served as Content-Format {CoapContentFormat.LinkFormat} only");
        DeviceIdentity? device;
        if (peer.AuthenticatedDevice is { } dtls) device = await devices.FindAsync(dtls, ct);
        else if (Query(m, "token") is { } token) device = await devices.AuthenticateTokenAsync(token, ct);
        else return Diagnostic(CoapCode.Unauthorized, "discovery lists a device's own resources: add ?token={device token} (or use DTLS with PSK)");
        var (admitted, refusal) = Admit(m, device, peer);
        if (refusal is not null) return refusal;
        var links = CoapDiscovery.Filter(CoapDiscovery.LinksOf(admitted!.DeviceId), CoapDiscovery.FiltersOf(m.UriQuery, "token"));
        var response = new CoapMessage { Code = CoapCode.Content, Payload = CoapDiscovery.Format(links) };
        response.AddOption(CoapOption.UInt(CoapOptionNumber.ContentFormat, CoapContentFormat.LinkFormat));
        return response;
    }

    /// <summary>4.12 when a condition of the request does not hold (RFC 7252 §5.10.8): If-None-Match asks that the
    /// resource not exist, and every resource here exists; If-Match holds with an empty value (the resource exists) or
    /// with the representation's <paramref name="etag"/> (null: the resource has none).</summary>
    private static CoapMessage? PreconditionFailed(CoapMessage m, byte[]? etag)
    {
        if (m.HasOption(CoapOptionNumber.IfNoneMatch)) return Diagnostic(CoapCode.PreconditionFailed, "If-None-Match: the resource exists");
        var asked = false;
        foreach (var o in m.Options)
        {
            if (o.Number != CoapOptionNumber.IfMatch) continue;
            if (o.Value.Length == 0 || etag is not null && o.Value.Span.SequenceEqual(etag)) return null;
            asked = true;
        }
        return asked
            ? Diagnostic(CoapCode.PreconditionFailed, etag is null ? "If-Match: this resource has no ETag" : "If-Match: the image's ETag is another")
            : null;
    }

    /// <summary>4.15 unless the body is JSON (no Content-Format, or 50).</summary>
    private static CoapMessage? NotJson(CoapMessage m) =>
        m.ContentFormat is null or CoapContentFormat.Json ? null : Diagnostic(CoapCode.UnsupportedContentFormat, "send JSON (Content-Format 50)");

    private static CoapMessage NotAllowed(string allowed) => Diagnostic(CoapCode.MethodNotAllowed, $"use {allowed}");

    /// <summary>The device the request speaks for, or the response that refuses it: 4.01 without the right token (or DTLS
    /// identity), 4.03 when disabled, 4.29 over the device's message rate.</summary>
    private async ValueTask<(DeviceIdentity? Device, CoapMessage? Refusal)> AuthenticateAsync(CoapMessage m, CoapPeer peer, string deviceId, CancellationToken ct)
    {
        DeviceIdentity? device;
        if (peer.AuthenticatedDevice is { } dtls)
        {
            if (dtls != deviceId) return (null, Diagnostic(CoapCode.Forbidden, $"this DTLS session is device {dtls}, not {Printable(deviceId)}"));
            device = await devices.FindAsync(deviceId, ct);
        }
        else
        {
            var token = Query(m, "token");
            if (token is null) return (null, Diagnostic(CoapCode.Unauthorized, "add ?token={device token} to the URI (or use DTLS with PSK)"));
            device = await devices.AuthenticateAsync(deviceId, token, ct);
        }
        return Admit(m, device, peer);
    }

    /// <summary>Admits an authenticated device: 4.01 when unknown, 4.03 when disabled, 4.29 over its message rate. A
    /// Block1 block with more to follow (RFC 7959 §2.3) is part of one message, not a message: only the request that
    /// completes it counts toward the rate, so a body sent in small blocks is limited as the one message it is. Likewise
    /// a GET for a later Block2 block (§2.4) fetches the rest of one answer: only block 0 counts (a firmware image or a
    /// large desired state read in small blocks was refused 4.29 part way).</summary>
    private (DeviceIdentity?, CoapMessage?) Admit(CoapMessage m, DeviceIdentity? device, CoapPeer peer)
    {
        if (device is null) return (null, Diagnostic(CoapCode.Unauthorized, "unknown device or wrong token"));
        if (!device.Enabled) return (null, Diagnostic(CoapCode.Forbidden, "the device is disabled"));
        var continuation = m.Block1 is { More: true } || m.Code == CoapCode.Get && m.Block2 is { Number: > 0 };
        if (!continuation && !rate.TryAcquire(device.DeviceId))
        {
            var refusal = Diagnostic(CoapCode.TooManyRequests, $"at most {rate.Limit} messages a second");
            refusal.AddOption(CoapOption.UInt(CoapOptionNumber.MaxAge, 1));
            return (null, refusal);
        }
        presence.Seen(device.DeviceId, peer);
        return (device, null);
    }

    private static string? Query(CoapMessage m, string name)
    {
        foreach (var q in m.UriQuery ?? [])
            if (q.Length > name.Length && q.StartsWith(name, StringComparison.Ordinal) && q[name.Length] == '=') return q[(name.Length + 1)..];
        return null;
    }

    private static string Printable(string s) => SafeText.Escaped(s, 64);

    // ---- telemetry ----------------------------------------------------------------------------------------------------

    private async Task<CoapMessage> TelemetryAsync(CoapMessage m, CoapPeer peer, string deviceId, CancellationToken ct)
    {
        var (device, refusal) = await AuthenticateAsync(m, peer, deviceId, ct);
        return refusal ?? await IngestAsync(m, peer, device!.DeviceId, ct);
    }

    private async Task<CoapMessage> ThingsBoardAsync(CoapMessage m, CoapPeer peer, string token, CancellationToken ct)
    {
        if (m.Code != CoapCode.Post) return NotAllowed("POST");
        var device = await devices.AuthenticateTokenAsync(token, ct);
        // A DTLS session speaks only for its own device, whatever token the path carries (README, "CoAP").
        if (device is not null && peer.AuthenticatedDevice is { } dtls && dtls != device.DeviceId)
            return Diagnostic(CoapCode.Forbidden, $"this DTLS session is device {dtls}, not the device of that token");
        var (admitted, refusal) = Admit(m, device, peer);
        return refusal ?? await IngestAsync(m, peer, admitted!.DeviceId, ct);
    }

    private async Task<CoapMessage> IngestAsync(CoapMessage m, CoapPeer peer, string deviceId, CancellationToken ct)
    {
        var format = m.ContentFormat switch
        {
            null or CoapContentFormat.Json => PayloadFormat.Json,
            CoapContentFormat.Cbor => PayloadFormat.Cbor,
            _ => (PayloadFormat?)null,
        };
        if (format is null) return Diagnostic(CoapCode.UnsupportedContentFormat, "send JSON (Content-Format 50) or CBOR (60)");
        var (body, early) = Assemble(m, peer);
        if (early is not null) return early;
        if (m.Type == CoapType.NonConfirmable)
        {
            return await gate.EnqueueAsync(deviceId, TelemetryProtocol.Coap, format.Value, body, ticket: null, ct)
                ? Code(CoapCode.Changed) : Diagnostic(CoapCode.ServiceUnavailable, "the hub is shutting down");
        }
        var outcome = await gate.SubmitAsync(deviceId, TelemetryProtocol.Coap, format.Value, body, awaitCommit: true, ct);
        var response = outcome.Status switch
        {
            IngestStatus.Stored => Code(CoapCode.Changed),
            IngestStatus.Rejected => Diagnostic(CoapCode.BadRequest, Reason(outcome)),
            _ => Diagnostic(CoapCode.ServiceUnavailable, outcome.Reason ?? "unavailable"),
        };
        if (m.Block1 is { } last) response.AddOption(CoapOption.UInt(CoapOptionNumber.Block1, new CoapBlock(last.Number, false, last.SizeExponent).Encode()));
        return response;
    }

    private static string Reason(IngestOutcome o)
    {
        // The reason already names each field's problem (TelemetryDecoder.Describe); the errors are listed only without one.
        var text = o.Reason ?? (o.Errors is { Count: > 0 } errors
            ? string.Join("; ", errors.Take(5).Select(e => e.Field.Length == 0 ? e.Message : $"{e.Field}: {e.Message}"))
            : "invalid telemetry");
        return SafeText.Prefix(text + " (kept in the dead-letter store)", 1000);
    }

    /// <summary>The whole request body: the payload, or a Block1 upload once its last block arrived. Otherwise the
    /// answer for this block (2.31 Continue, 4.08, 4.13).</summary>
    private (ReadOnlyMemory<byte> Body, CoapMessage? Answer) Assemble(CoapMessage m, CoapPeer peer)
    {
        var max = connectivity.Value.MaxPayloadBytes;
        if (m.Size1 is { } announced && announced > max) return (default, TooLarge(max));
        if (m.Block1 is not { } block)
            return m.Payload.Length > max ? (default, TooLarge(max)) : (m.Payload, null);
        var result = uploads.Add(BodyKey(m, peer), block, m.Payload, max);
        switch (result.Outcome)
        {
            case CoapBlockUploads.Outcome.Continue:
                var next = Code(CoapCode.Continue);
                next.AddOption(CoapOption.UInt(CoapOptionNumber.Block1, new CoapBlock(block.Number, true, result.SizeExponent).Encode()));
                return (default, next);
            case CoapBlockUploads.Outcome.TooLarge:
                return (default, TooLarge(max));
            case CoapBlockUploads.Outcome.Incomplete:
                return (default, Diagnostic(CoapCode.RequestEntityIncomplete, $"block {block.Number} does not follow the blocks received so far (RFC 7959 §2.9.2)"));
            case CoapBlockUploads.Outcome.Busy:
                return (default, Diagnostic(CoapCode.ServiceUnavailable, "too many block-wise uploads at once; try again"));
            default:
                return (result.Body, null);
        }
    }

    /// <summary>What ties the blocks of one body together: the endpoint, the request URI and the Request-Tag (RFC 9175).</summary>
    private static string BodyKey(CoapMessage m, CoapPeer peer) =>
        $"{peer.Key}|{string.Join('/', m.UriPath ?? [])}?{string.Join('&', m.UriQuery ?? [])}|{(m.GetOption(RequestTag) is { } tag ? Convert.ToHexString(tag.Value.Span) : "")}";

    /// <summary>The Request-Tag option (RFC 9175 §3.2): elective, repeatable, 0-8 bytes.</summary>
    private const ushort RequestTag = 292;

    private static CoapMessage TooLarge(int max)
    {
        var m = Diagnostic(CoapCode.RequestEntityTooLarge, $"the limit is {max} bytes");
        m.AddOption(CoapOption.UInt(CoapOptionNumber.Size1, (uint)max));
        return m;
    }

    // ---- device state and commands ------------------------------------------------------------------------------------

    private async Task<CoapMessage> DesiredAsync(CoapMessage m, CoapPeer peer, string deviceId, CancellationToken ct)
    {
        var (_, refusal) = await AuthenticateAsync(m, peer, deviceId, ct);
        if (refusal is not null) return refusal;
        var state = await SendAsync(new GetDesiredStateMessage(deviceId), ct) ?? """{"version":0,"state":{}}"""u8.ToArray();
        return observers.Answer(m, peer, CoapObservers.Resource(deviceId, "state/desired"), Json(CoapCode.Content, state));
    }

    private async Task<CoapMessage> ReportedAsync(CoapMessage m, CoapPeer peer, string deviceId, CancellationToken ct)
    {
        var (_, refusal) = await AuthenticateAsync(m, peer, deviceId, ct);
        if (refusal is not null) return refusal;
        if (NotJson(m) is { } notJson) return notJson;
        var (body, early) = Assemble(m, peer);
        if (early is not null) return early;
        var outcome = await SendAsync(new ReportDeviceState(deviceId, body), ct);
        return outcome?.Version is { } v
            ? Json(CoapCode.Changed, Encoding.UTF8.GetBytes($$"""{"version":{{v}}}"""))
            : Diagnostic(CoapCode.BadRequest, outcome?.Error ?? "could not record the reported state");
    }

    private async Task<CoapMessage> CommandsAsync(CoapMessage m, CoapPeer peer, string deviceId, CancellationToken ct)
    {
        var (_, refusal) = await AuthenticateAsync(m, peer, deviceId, ct);
        if (refusal is not null) return refusal;
        var answer = observers.Answer(m, peer, CoapObservers.Resource(deviceId, "commands"), Json(CoapCode.Content, "{}"u8.ToArray()));
        // An observer of its commands is ready for them: queued ones go out now, as notifications.
        if (answer.Observe is not null) await PublishAsync(new DeviceReadyForCommands(deviceId), ct);
        return answer;
    }

    private async Task<CoapMessage> CommandResponseAsync(CoapMessage m, CoapPeer peer, string deviceId, string commandId, CancellationToken ct)
    {
        var (_, refusal) = await AuthenticateAsync(m, peer, deviceId, ct);
        if (refusal is not null) return refusal;
        if (NotJson(m) is { } notJson) return notJson;
        var (body, early) = Assemble(m, peer);
        if (early is not null) return early;
        var error = await SendAsync(new RecordCommandResponse(deviceId, commandId, body), ct);
        return error is null ? Code(CoapCode.Changed) : Diagnostic(CoapCode.BadRequest, error);
    }

    // ---- firmware -----------------------------------------------------------------------------------------------------

    private async Task<CoapMessage> PendingFirmwareAsync(CoapMessage m, CoapPeer peer, string deviceId, CancellationToken ct)
    {
        var (_, refusal) = await AuthenticateAsync(m, peer, deviceId, ct);
        if (refusal is not null) return refusal;
        var pending = await SendAsync(new GetPendingFirmware(deviceId), ct);
        // Nothing pending is an empty 2.05 without a Content-Format (an empty payload is no JSON document; HTTP says 204).
        return observers.Answer(m, peer, CoapObservers.Resource(deviceId, "firmware"), pending is { Length: > 0 } ? Json(CoapCode.Content, pending) : Code(CoapCode.Content));
    }

    private async Task<CoapMessage> FirmwareProgressAsync(CoapMessage m, CoapPeer peer, string deviceId, CancellationToken ct)
    {
        var (_, refusal) = await AuthenticateAsync(m, peer, deviceId, ct);
        if (refusal is not null) return refusal;
        if (NotJson(m) is { } notJson) return notJson;
        var error = await SendAsync(new RecordFirmwareProgress(deviceId, m.Payload), ct);
        return error is null ? Code(CoapCode.Changed) : Diagnostic(CoapCode.BadRequest, error);
    }

    /// <summary>One Block2 block of the image (RFC 7959 §2.4): the block the client asks for, or block 0 at the size it
    /// proposes (1024 bytes when it proposes none), with Size2 and an ETag (the first 8 bytes of the SHA-256).</summary>
    private async Task<CoapMessage> FirmwareImageAsync(CoapMessage m, CoapPeer peer, string deviceId, long artifactId, CancellationToken ct)
    {
        var (_, refusal) = await AuthenticateAsync(m, peer, deviceId, ct);
        if (refusal is not null) return refusal;
        if (await SendAsync(new GetFirmwareDownload(deviceId, artifactId), ct) is not { } file || !File.Exists(file.Path))
            return Diagnostic(CoapCode.NotFound, $"device {deviceId} has no update in progress with firmware artifact {artifactId}");
        var etag = Convert.FromHexString(file.Sha256[..16]);
        if (PreconditionFailed(m, etag) is { } failed) return failed;
        var block = m.Block2 ?? new CoapBlock(0, false, 6);
        var offset = (long)block.Number * block.Size;
        if (offset >= file.Size && !(offset == 0 && file.Size == 0)) return Diagnostic(CoapCode.BadOption, $"block {block.Number} is past the end of the image ({file.Size} bytes)");
        var length = (int)Math.Min(block.Size, file.Size - offset);
        var buffer = new byte[length];
        await using (var stream = new FileStream(file.Path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.Asynchronous))
        {
            stream.Position = offset;
            await stream.ReadExactlyAsync(buffer, ct);
        }
        var response = new CoapMessage { Code = CoapCode.Content, Payload = buffer };
        response.AddOption(CoapOption.UInt(CoapOptionNumber.ContentFormat, CoapContentFormat.OctetStream));
        response.AddOption(new CoapOption(CoapOptionNumber.ETag, etag));
        response.AddOption(CoapOption.UInt(CoapOptionNumber.Block2, new CoapBlock(block.Number, offset + length < file.Size, block.SizeExponent).Encode()));
        if (block.Number == 0) response.AddOption(CoapOption.UInt(CoapOptionNumber.Size2, (uint)Math.Min(file.Size, uint.MaxValue)));
        return response;
    }

    private async Task<T?> SendAsync<T>(IRequest<T> request, CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        return await scope.ServiceProvider.GetRequiredService<IMediator>().Send(request, ct);
    }

    private async Task PublishAsync(INotification n, CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        await scope.ServiceProvider.GetRequiredService<IMediator>().Publish(n, ct);
    }
}
