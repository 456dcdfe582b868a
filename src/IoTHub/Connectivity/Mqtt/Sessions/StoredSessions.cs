// Persistent MQTT sessions across a hub restart. MQTTnet keeps sessions in memory only, and cannot create one for a
// client that is not connected (MqttClientSessionsManager creates sessions in CreateClientConnection, nowhere else).
// So the hub keeps, per unexpired persistent session, its owner, expiry and subscriptions in `mqtt_sessions`; at start
// it loads them, and when the owner comes back without clean start it answers Session Present and subscribes the
// new MQTTnet session to what the old one had, before the client's first packet is read. What a restart loses: the
// messages queued for the session and the QoS 2 packet ids awaiting PUBREL (README, "MQTT sessions").
// Writes leave the broker's event threads at once: changes are coalesced per client id and written in batches.
using System.Collections.Concurrent;
using System.Text.Json;
using IoTHub.Contracts;
using IoTHub.Storage;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;
using MQTTnet.Packets;
using MQTTnet.Protocol;

namespace IoTHub.Connectivity.Mqtt.Sessions;

/// <summary>A row of <c>mqtt_sessions</c>: a persistent session that outlives its connection.</summary>
internal sealed class MqttSessionRow
{
    public string ClientId { get; set; } = "";
    public string PrincipalKind { get; set; } = "";
    public string PrincipalId { get; set; } = "";
    public string? Role { get; set; }
    /// <summary>Seconds the session outlives its last connection.</summary>
    public long ExpirySeconds { get; set; }
    /// <summary>Unix ms when its last connection ended; null while connected (or when the hub stopped without saying).</summary>
    public long? DisconnectedAt { get; set; }
    /// <summary>JSON array of <see cref="StoredSubscription"/>.</summary>
    public string Subscriptions { get; set; } = "[]";
}

internal sealed class MqttSessionRowConfiguration : IEntityTypeConfiguration<MqttSessionRow>
{
    public void Configure(EntityTypeBuilder<MqttSessionRow> b)
    {
        b.ToTable("mqtt_sessions");
        b.HasKey(x => x.ClientId);
        b.Property(x => x.ClientId).HasColumnName("client_id").HasMaxLength(256);
        b.Property(x => x.PrincipalKind).HasColumnName("principal_kind").HasMaxLength(16);
        b.Property(x => x.PrincipalId).HasColumnName("principal_id").HasMaxLength(64);
        b.Property(x => x.Role).HasColumnName("role").HasMaxLength(16);
        b.Property(x => x.ExpirySeconds).HasColumnName("expiry_seconds");
        b.Property(x => x.DisconnectedAt).HasColumnName("disconnected_at");
        b.Property(x => x.Subscriptions).HasColumnName("subscriptions");
        b.HasIndex(x => new { x.PrincipalKind, x.PrincipalId });
    }
}

/// <summary>One subscription of a stored session, as MQTTnet holds it (shared subscriptions in their internal form).</summary>
internal sealed record StoredSubscription(string Filter, int Qos, bool NoLocal, bool RetainAsPublished, int RetainHandling)
{
    public static StoredSubscription Of(MqttTopicFilter f) =>
        new(f.Topic, (int)f.QualityOfServiceLevel, f.NoLocal, f.RetainAsPublished, (int)f.RetainHandling);

    public MqttTopicFilter ToFilter() => new()
    {
        Topic = Filter,
        QualityOfServiceLevel = (MqttQualityOfServiceLevel)Qos,
        NoLocal = NoLocal,
        RetainAsPublished = RetainAsPublished,
        RetainHandling = (MqttRetainHandling)RetainHandling,
    };
}

/// <summary>A persistent session restored from the database, waiting for its client.</summary>
internal sealed record StoredSession(string ClientId, MqttPrincipal Principal, uint ExpirySeconds, long DisconnectedAtMs, IReadOnlyList<StoredSubscription> Subscriptions);

internal sealed class StoredSessions(IServiceScopeFactory scopes, SessionOwnership owners, TimeProvider time, ILogger<StoredSessions> log) : IHostedService
{
    private readonly ConcurrentDictionary<string, StoredSession> _waiting = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, MqttSessionRow?> _dirty = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _signal = new(0);
    private readonly CancellationTokenSource _stop = new();
    private Task? _writer;

    /// <summary>Sessions restored at start whose client has not come back yet (for expiry).</summary>
    public IEnumerable<StoredSession> Waiting => _waiting.Values;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await using (var scope = scopes.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<HubDb>();
            var now = time.NowMs();
            var rows = await db.Set<MqttSessionRow>().AsNoTracking().ToListAsync(cancellationToken);
            var expired = new List<string>();
            foreach (var row in rows)
            {
                // A session still "connected" in the table was cut off by a crash: it ended when the hub did, taken as now.
                var since = row.DisconnectedAt ?? now;
                if (since + row.ExpirySeconds * 1000 <= now || Principal(row) is not { } principal)
                {
                    expired.Add(row.ClientId);
                    continue;
                }
                var subscriptions = JsonSerializer.Deserialize<List<StoredSubscription>>(row.Subscriptions) ?? [];
                _waiting[row.ClientId] = new StoredSession(row.ClientId, principal, (uint)row.ExpirySeconds, since, subscriptions);
                owners.AttachStored(row.ClientId, principal);
            }
            if (expired.Count > 0) await db.Set<MqttSessionRow>().Where(r => expired.Contains(r.ClientId)).ExecuteDeleteAsync(cancellationToken);
            if (rows.Count > 0) log.LogInformation("Restored {Count} persistent MQTT sessions ({Expired} had expired)", _waiting.Count, expired.Count);
        }
        _writer = Task.Run(WriteLoopAsync, CancellationToken.None);
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _stop.CancelAsync();
        if (_writer is not null) await _writer.WaitAsync(cancellationToken);
        try
        {
            await FlushAsync(CancellationToken.None); // what the broker's shutdown wrote last
        }
        catch (Exception ex)
        {
            // The hub stops anyway; those sessions come back as their clients last left them in the database.
            log.LogWarning(ex, "Could not record the last MQTT session changes at shutdown");
        }
    }

    /// <summary>Is there a restored session for this client id, owned by this principal?</summary>
    public bool Has(string clientId, MqttPrincipal principal) => _waiting.TryGetValue(clientId, out var s) && s.Principal == principal;

    /// <summary>Takes the restored session of a client that came back (or whose session ended).</summary>
    public StoredSession? Take(string clientId) => _waiting.TryRemove(clientId, out var s) ? s : null;

    /// <summary>Records a persistent session's current state (written shortly, coalesced).</summary>
    public void Save(string clientId, MqttPrincipal principal, uint expirySeconds, long? disconnectedAtMs, IEnumerable<StoredSubscription> subscriptions)
    {
        _dirty[clientId] = new MqttSessionRow
        {
            ClientId = clientId,
            PrincipalKind = principal.Kind.ToString(),
            PrincipalId = principal.Id,
            Role = principal.Role,
            ExpirySeconds = expirySeconds,
            DisconnectedAt = disconnectedAtMs,
            Subscriptions = JsonSerializer.Serialize(subscriptions.ToList()),
        };
        _signal.Release();
    }

    /// <summary>The session ended: its row goes.</summary>
    public void Delete(string clientId)
    {
        _waiting.TryRemove(clientId, out _);
        _dirty[clientId] = null;
        _signal.Release();
    }

    private static MqttPrincipal? Principal(MqttSessionRow row) => Enum.TryParse<PrincipalKind>(row.PrincipalKind, out var kind)
        ? new MqttPrincipal(kind, row.PrincipalId, row.Role) : null;

    private async Task WriteLoopAsync()
    {
        var delay = TimeSpan.FromMilliseconds(100);
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                await _signal.WaitAsync(_stop.Token);
                await Task.Delay(TimeSpan.FromMilliseconds(50), _stop.Token); // let a connect storm's changes gather
                // Not cancelled by the stop: a write cancelled half-way lost the rows it had taken, and a session
                // saved just before a restart came back as no session at all. StopAsync waits for it (bounded by the
                // host's shutdown timeout), then writes what came after.
                await FlushAsync(CancellationToken.None);
                delay = TimeSpan.FromMilliseconds(100);
            }
            catch (OperationCanceledException) when (_stop.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                log.LogWarning(ex, "Could not record MQTT session changes; retrying in {Delay}", delay);
                try { await Task.Delay(delay, _stop.Token); } catch (OperationCanceledException) { return; }
                delay = TimeSpan.FromMilliseconds(Math.Min(delay.TotalMilliseconds * 2, 10_000));
                _signal.Release();
            }
        }
    }

    private async Task FlushAsync(CancellationToken ct)
    {
        if (_dirty.IsEmpty) return;
        var batch = new List<(string ClientId, MqttSessionRow? Row)>();
        foreach (var (id, row) in _dirty)
            if (_dirty.TryRemove(new KeyValuePair<string, MqttSessionRow?>(id, row))) batch.Add((id, row));
        try
        {
            await WriteAsync(batch, ct);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // One row the database refuses must not hold back every other session's: write them one by one, and drop a
            // row only when the database itself answers (a failing database keeps everything for the next attempt).
            var refused = new List<(string ClientId, MqttSessionRow? Row)>();
            foreach (var item in batch)
            {
                try { await WriteAsync([item], ct); }
                catch (Exception one) when (one is not OperationCanceledException) { refused.Add(item); }
            }
            if (refused.Count == 0) return;
            if (!await DatabaseAnswersAsync(ct))
            {
                foreach (var (id, row) in refused) _dirty.TryAdd(id, row); // what no newer change replaced
                throw;
            }
            foreach (var (id, _) in refused)
                log.LogError(ex, "Dropped the stored state of MQTT session {ClientId}: the database refuses it", MqttText.Printable(id));
        }
    }

    private async Task WriteAsync(IReadOnlyList<(string ClientId, MqttSessionRow? Row)> batch, CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<HubDb>();
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        var ids = batch.Select(b => b.ClientId).ToList();
        await db.Set<MqttSessionRow>().Where(r => ids.Contains(r.ClientId)).ExecuteDeleteAsync(ct);
        db.AddRange(batch.Where(b => b.Row is not null).Select(b => b.Row!));
        await db.SaveChangesAsync(ct);
        await tx.CommitAsync(ct);
    }

    private async Task<bool> DatabaseAnswersAsync(CancellationToken ct)
    {
        try
        {
            await using var scope = scopes.CreateAsyncScope();
            return await scope.ServiceProvider.GetRequiredService<HubDb>().Database.CanConnectAsync(ct);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            return false;
        }
    }
}
