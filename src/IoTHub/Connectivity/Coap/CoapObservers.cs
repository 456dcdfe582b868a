// Observe (RFC 7641): a GET with Observe 0 registers (endpoint, token) on a resource, Observe 1 deregisters it (§3.6).
// Notifications are CONs (§4.5), so an observer that is gone is found out (no ACK after the retransmissions, or a
// Reset) and dropped. Sequence numbers are 24-bit and increase per observation (§3.4). The resources observed are a
// device's desired state, its commands and its firmware notification; what other modules deliver to a device reaches
// its observers here (DeliverToDevice), as it reaches its MQTT subscriptions in the broker.
using System.Collections.Concurrent;
using System.Text.Json;
using System.Text.Json.Nodes;
using IoTHub.Contracts;
using Microsoft.Extensions.Options;

namespace IoTHub.Connectivity.Coap;

internal sealed class CoapObservers(CoapOutbound outbound, IServiceScopeFactory scopes, IOptions<CoapOptions> options, ILogger<CoapObservers> log)
{
    private sealed class Observation(CoapPeer peer, ReadOnlyMemory<byte> token, CoapMessage blocks)
    {
        public CoapPeer Peer { get; } = peer;
        public ReadOnlyMemory<byte> Token { get; } = token;

        /// <summary>A GET asking for block 0 at the size the registration asked for (at most 1024 bytes), or for none:
        /// notifications are responses to the registration, so its block size holds for them (RFC 7641 §3.2, RFC 7959 §2.4).</summary>
        public CoapMessage Blocks { get; } = blocks;
        public int Sequence;
    }

    private readonly ConcurrentDictionary<string, ConcurrentDictionary<string, Observation>> _byResource = new(StringComparer.Ordinal);
    private int _count;

    /// <summary>Observations held now.</summary>
    public int Count => Volatile.Read(ref _count);

    /// <summary>The resource key of a device's observable resource (<c>state/desired</c>, <c>commands</c>, <c>firmware</c>).</summary>
    public static string Resource(string deviceId, string what) => deviceId + "/" + what;

    /// <summary>Does any peer observe this resource?</summary>
    public bool IsObserved(string resource) => _byResource.TryGetValue(resource, out var o) && !o.IsEmpty;

    /// <summary>Registers or deregisters the request's observation as its Observe option says, and returns the response
    /// with the Observe option when the observation stands.</summary>
    public CoapMessage Answer(CoapMessage request, CoapPeer peer, string resource, CoapMessage response)
    {
        var key = KeyOf(peer, request.Token);
        switch (request.Observe)
        {
            case 0:
                var all = _byResource.GetOrAdd(resource, _ => new(StringComparer.Ordinal));
                if (!all.ContainsKey(key) && Interlocked.Increment(ref _count) > options.Value.MaxObservers)
                {
                    Interlocked.Decrement(ref _count);
                    return response; // not registered: answered without Observe (§4.1)
                }
                var observation = all.AddOrUpdate(key, _ => new Observation(peer, request.Token, BlocksAskedIn(request)), (_, existing) => existing);
                response.AddOption(CoapOption.UInt(CoapOptionNumber.Observe, (uint)(Interlocked.Increment(ref observation.Sequence) & 0xFFFFFF)));
                return response;
            case 1:
                Remove(resource, key);
                return response;
            default:
                return response;
        }
    }

    /// <summary>Ends any observation this peer registered with this token: its registration was answered with something
    /// other than 2.05 after all (a block past the end), which tells the client it is not registered (RFC 7641 §4.1).</summary>
    public void Forget(CoapPeer peer, ReadOnlyMemory<byte> token)
    {
        var key = KeyOf(peer, token);
        foreach (var resource in _byResource.Keys) Remove(resource, key);
    }

    /// <summary>An observation's key: the peer and the registration's token (RFC 7641 §3.1 pairs them).</summary>
    private static string KeyOf(CoapPeer peer, ReadOnlyMemory<byte> token) => peer.Key + "|" + Convert.ToHexString(token.Span);

    private void Remove(string resource, string key)
    {
        if (_byResource.TryGetValue(resource, out var all) && all.TryRemove(key, out _)) Interlocked.Decrement(ref _count);
    }

    private static readonly CoapMessage WholeAsked = new() { Code = CoapCode.Get };

    private static CoapMessage BlocksAskedIn(CoapMessage registration)
    {
        if (registration.Block2 is not { } asked) return WholeAsked;
        var get = new CoapMessage { Code = CoapCode.Get };
        get.AddOption(CoapOption.UInt(CoapOptionNumber.Block2, new CoapBlock(0, false, Math.Min(asked.SizeExponent, CoapBlock2.DefaultSizeExponent)).Encode()));
        return get;
    }

    /// <summary>Sends a notification to every observer of <paramref name="resource"/>; true when at least one acknowledged it.
    /// Observers that do not acknowledge are dropped. With <paramref name="inBlocks"/> (a resource whose GET answers the
    /// same representation: desired state, pending firmware), one larger than a block carries its first block and the
    /// observer GETs the rest (RFC 7959 §2.6); a command, which no GET answers again, goes whole.</summary>
    public async Task<bool> NotifyAsync(string resource, ReadOnlyMemory<byte> json, CancellationToken ct, bool inBlocks = false)
    {
        if (!_byResource.TryGetValue(resource, out var all) || all.IsEmpty) return false;
        var delivered = false;
        foreach (var (key, o) in all)
        {
            var m = new CoapMessage { Code = CoapCode.Content, Token = o.Token, Payload = json };
            m.AddOption(CoapOption.UInt(CoapOptionNumber.Observe, (uint)(Interlocked.Increment(ref o.Sequence) & 0xFFFFFF)));
            // An empty notification (the firmware update withdrawn) is no JSON document: it carries no Content-Format.
            if (!json.IsEmpty) m.AddOption(CoapOption.UInt(CoapOptionNumber.ContentFormat, CoapContentFormat.Json));
            if (inBlocks) m = CoapBlock2.Apply(o.Blocks, m);
            if (await outbound.SendConfirmableAsync(o.Peer, m, ct)) delivered = true;
            else
            {
                Remove(resource, key);
                log.LogInformation("Dropped CoAP observer {Peer} of {Resource}: it did not acknowledge a notification", o.Peer.Key, resource);
            }
        }
        return delivered;
    }

    /// <summary>What the hub delivers to a device (DeliverToDevice) for its CoAP observers: the desired state, a command
    /// (as <c>{"commandId", "name", "params"}</c>), the firmware notification. True when someone observes it; the
    /// notifications go out in the background, as MQTT's do (a dead observer must not hold up the sender), and an
    /// acknowledged command is reported <see cref="CommandDelivered"/>.</summary>
    public bool Deliver(DeliverToDevice d)
    {
        string resource;
        ReadOnlyMemory<byte> payload = d.Payload;
        string? commandId = null;
        if (d.Subtopic == "state/desired") resource = Resource(d.DeviceId, "state/desired");
        else if (d.Subtopic == "firmware") resource = Resource(d.DeviceId, "firmware");
        else if (d.Subtopic.StartsWith("commands/", StringComparison.Ordinal))
        {
            resource = Resource(d.DeviceId, "commands");
            if (!IsObserved(resource)) return false;
            commandId = d.Subtopic["commands/".Length..];
            var command = JsonNode.Parse(d.Payload.Span) as JsonObject ?? [];
            command.Insert(0, "commandId", commandId);
            payload = JsonSerializer.SerializeToUtf8Bytes(command);
        }
        else return false;
        if (!IsObserved(resource)) return false;
        _ = Task.Run(async () =>
        {
            try
            {
                if (await NotifyAsync(resource, payload, CancellationToken.None, inBlocks: commandId is null) && commandId is not null)
                {
                    await using var scope = scopes.CreateAsyncScope();
                    await scope.ServiceProvider.GetRequiredService<Mediator.IMediator>().Publish(new CommandDelivered(d.DeviceId, commandId));
                }
            }
            catch (Exception ex)
            {
                log.LogWarning(ex, "Notifying the CoAP observers of {Resource} failed", resource);
            }
        });
        return true;
    }

    /// <summary>Drops every observation of a device (deleted, credentials revoked).</summary>
    public void Forget(string deviceId)
    {
        foreach (var what in new[] { "state/desired", "commands", "firmware" })
            if (_byResource.TryRemove(Resource(deviceId, what), out var all)) Interlocked.Add(ref _count, -all.Count);
    }

    /// <summary>Does the device observe anything (it counts as online while it does)?</summary>
    public bool Observes(string deviceId) =>
        IsObserved(Resource(deviceId, "state/desired")) || IsObserved(Resource(deviceId, "commands")) || IsObserved(Resource(deviceId, "firmware"));
}
