namespace IoTHub.Devices.Presence;

/// <summary>What a batch of presence events does to the database, worked out in memory and in event order: the
/// final state of each device, the new connection rows (closed already when their disconnect is in the same batch),
/// and the closes of rows opened before the batch, in rounds so that one statement never closes one key twice.</summary>
internal sealed class PresencePlan
{
    public readonly record struct Close(string DeviceId, string ClientId, long At, string? Reason);

    public Dictionary<string, (bool Online, long LastSeen)> Devices { get; } = new(StringComparer.Ordinal);
    public List<DeviceConnection> NewConnections { get; } = new();
    public List<List<Close>> CloseRounds { get; } = new();

    public static PresencePlan From(IReadOnlyList<PresenceEvent> batch)
    {
        var plan = new PresencePlan();
        var open = new Dictionary<(string, string), List<DeviceConnection>>();
        var closes = new Dictionary<(string, string), int>();
        foreach (var e in batch)
        {
            plan.Devices[e.DeviceId] = (e.Online, e.LastSeen);
            var key = (e.DeviceId, e.ClientId);
            if (e.IsConnect)
            {
                var row = new DeviceConnection
                {
                    DeviceId = e.DeviceId, ClientId = e.ClientId, Protocol = e.Protocol ?? "", RemoteAddress = e.RemoteAddress, ConnectedAt = e.At,
                };
                plan.NewConnections.Add(row);
                if (!open.TryGetValue(key, out var rows)) open[key] = rows = new List<DeviceConnection>();
                rows.Add(row);
                continue;
            }
            // A disconnect closes the newest open connection of that device and client id, as the database would.
            if (open.TryGetValue(key, out var pending) && pending.Count > 0)
            {
                var row = pending[^1];
                pending.RemoveAt(pending.Count - 1);
                row.DisconnectedAt = e.At;
                row.DisconnectReason = e.Reason;
                continue;
            }
            var n = closes.GetValueOrDefault(key);
            closes[key] = n + 1;
            if (plan.CloseRounds.Count == n) plan.CloseRounds.Add(new List<Close>());
            plan.CloseRounds[n].Add(new Close(e.DeviceId, e.ClientId, e.At, e.Reason));
        }
        return plan;
    }
}
