// PostgreSQL bulk writer: binary COPY of the batch into temporary staging tables, then one statement that
// inserts the new raw rows (duplicates skipped by the primary key), folds exactly those rows into the three
// rollup tables and advances each series' latest value, all in the batch's transaction.
using IoTHub.Contracts;
using Npgsql;
using NpgsqlTypes;

namespace IoTHub.Storage;

internal sealed class PostgresTelemetryStore(string connectionString, int deadLetterPayloadLimit) : ITelemetryStore, IAsyncDisposable
{
    private readonly SeriesCache _series = new();
    private readonly List<string> _missingDevices = new();
    private readonly List<string> _missingMetrics = new();
    private NpgsqlConnection? _connection;

    private static readonly string FoldSql = BuildFoldSql();

    public async Task CommitAsync(IReadOnlyList<ValidatedTelemetry> batch, List<CommittedPoint> committed, CancellationToken ct)
    {
        try
        {
            await CommitCoreAsync(batch, committed, ct);
        }
        catch
        {
            _series.Rollback();
            if (_connection is not null) await _connection.DisposeAsync();
            _connection = null;
            throw;
        }
    }

    public void Forget(string deviceId) => _series.Forget(deviceId);

    private async Task CommitCoreAsync(IReadOnlyList<ValidatedTelemetry> batch, List<CommittedPoint> committed, CancellationToken ct)
    {
        var c = await OpenAsync(ct);
        await using var tx = await c.BeginTransactionAsync(ct);
        await ResolveSeriesAsync(c, batch, ct);

        var points = 0;
        var deadLetters = 0;
        await using (var copy = await c.BeginBinaryImportAsync("COPY stage (series_id, ts, kind, number, text, device_ts) FROM STDIN (FORMAT BINARY)", ct))
        {
            foreach (var m in batch)
            {
                if (m.RejectReason is not null) { deadLetters++; continue; }
                for (var i = 0; i < m.PointCount; i++)
                {
                    var p = m.Points![i];
                    _series.TryGet(m.Source.DeviceId, p.Metric, out var sid);
                    if (p.Kind == ValueKind.Number) committed.Add(new CommittedPoint(sid, m.Source.DeviceId, p.Metric, p.TimestampMs));
                    // Synchronous writes: they only fill Npgsql's buffer (flushing when full), without a state machine per value.
                    copy.StartRow();
                    copy.Write(sid, NpgsqlDbType.Bigint);
                    copy.Write(p.TimestampMs, NpgsqlDbType.Bigint);
                    copy.Write((short)p.Kind, NpgsqlDbType.Smallint);
                    if (p.Kind == ValueKind.Text) copy.WriteNull(); else copy.Write(p.Number, NpgsqlDbType.Double);
                    if (p.Text is null) copy.WriteNull(); else copy.Write(p.Text, NpgsqlDbType.Text);
                    if (p.DeviceTimestampMs is { } dts) copy.Write(dts, NpgsqlDbType.Bigint); else copy.WriteNull();
                    points++;
                }
            }
            await copy.CompleteAsync(ct);
        }
        if (points > 0)
        {
            await using var fold = new NpgsqlCommand(FoldSql, c, tx);
            await fold.ExecuteNonQueryAsync(ct);
        }
        if (deadLetters > 0)
        {
            await using var copy = await c.BeginBinaryImportAsync("COPY dead_letters (device_id, received_at, protocol, reason, payload, payload_size) FROM STDIN (FORMAT BINARY)", ct);
            foreach (var m in batch)
            {
                if (m.RejectReason is null) continue;
                await copy.StartRowAsync(ct);
                await copy.WriteAsync(m.Source.DeviceId, NpgsqlDbType.Text, ct);
                await copy.WriteAsync(m.Source.ReceivedAtMs, NpgsqlDbType.Bigint, ct);
                await copy.WriteAsync(m.Source.Protocol.ToString().ToLowerInvariant(), NpgsqlDbType.Text, ct);
                await copy.WriteAsync(m.RejectReason, NpgsqlDbType.Text, ct);
                await copy.WriteAsync(DeadLetterPayload.Cap(m.Source.Payload, deadLetterPayloadLimit), NpgsqlDbType.Bytea, ct);
                await copy.WriteAsync(m.Source.Payload.Length, NpgsqlDbType.Integer, ct);
            }
            await copy.CompleteAsync(ct);
        }
        await tx.CommitAsync(ct);
        _series.Commit();
    }

    private async Task ResolveSeriesAsync(NpgsqlConnection c, IReadOnlyList<ValidatedTelemetry> batch, CancellationToken ct)
    {
        _missingDevices.Clear();
        _missingMetrics.Clear();
        var seen = new HashSet<(string, string)>();
        foreach (var m in batch)
        {
            for (var i = 0; i < m.PointCount; i++)
            {
                var metric = m.Points![i].Metric;
                if (!_series.TryGet(m.Source.DeviceId, metric, out _) && seen.Add((m.Source.DeviceId, metric)))
                {
                    _missingDevices.Add(m.Source.DeviceId);
                    _missingMetrics.Add(metric);
                }
            }
        }
        if (_missingDevices.Count == 0) return;
        await using var cmd = new NpgsqlCommand("""
            WITH ins AS (
              INSERT INTO series (device_id, metric) SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING
              RETURNING id, device_id, metric)
            SELECT id, device_id, metric FROM ins
            UNION ALL
            SELECT s.id, s.device_id, s.metric FROM series s JOIN unnest($1::text[], $2::text[]) AS u(d, m) ON s.device_id = u.d AND s.metric = u.m
            """, c);
        cmd.Parameters.Add(new NpgsqlParameter { Value = _missingDevices.ToArray() });
        cmd.Parameters.Add(new NpgsqlParameter { Value = _missingMetrics.ToArray() });
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct)) _series.AddPending(reader.GetString(1), reader.GetString(2), reader.GetInt64(0));
    }

    private async Task<NpgsqlConnection> OpenAsync(CancellationToken ct)
    {
        if (_connection is { State: System.Data.ConnectionState.Open }) return _connection;
        if (_connection is not null) await _connection.DisposeAsync();
        var c = new NpgsqlConnection(connectionString);
        await c.OpenAsync(ct);
        await using (var cmd = new NpgsqlCommand("""
            CREATE TEMP TABLE IF NOT EXISTS stage (series_id bigint, ts bigint, kind smallint, number double precision, text text, device_ts bigint) ON COMMIT DELETE ROWS;
            SET synchronous_commit = on;
            """, c))
        {
            await cmd.ExecuteNonQueryAsync(ct);
        }
        _connection = c;
        return c;
    }

    private static string BuildFoldSql()
    {
        var rollups = string.Join(",\n", Enumerable.Range(0, 3).Select(r => $"""
            r{r} AS (
              INSERT INTO {Resolution.Tables[r]} AS t (series_id, bucket, count, sum, min, max, last_ts, last)
              SELECT series_id, ts - (ts % {Resolution.WidthsMs[r]}), count(*), sum(number), min(number), max(number), max(ts),
                     (max(ARRAY[ts::float8, number]))[2]
              FROM ins WHERE kind = 0 GROUP BY 1, 2
              ON CONFLICT (series_id, bucket) DO UPDATE SET
                count = t.count + excluded.count, sum = t.sum + excluded.sum,
                min = LEAST(t.min, excluded.min), max = GREATEST(t.max, excluded.max),
                last = CASE WHEN excluded.last_ts >= t.last_ts THEN excluded.last ELSE t.last END,
                last_ts = GREATEST(t.last_ts, excluded.last_ts)
            )
            """));
        return $"""
            WITH ins AS (
              INSERT INTO telemetry (series_id, ts, kind, number, text, device_ts)
              SELECT series_id, ts, kind, number, text, device_ts FROM stage
              ON CONFLICT DO NOTHING
              RETURNING series_id, ts, kind, number, text
            ),
            {rollups}
            UPDATE series s SET last_ts = x.ts, last_kind = x.kind, last_number = x.number, last_text = x.text
            FROM (SELECT DISTINCT ON (series_id) series_id, ts, kind, number, text FROM ins ORDER BY series_id, ts DESC) x
            WHERE s.id = x.series_id AND (s.last_ts IS NULL OR s.last_ts <= x.ts)
            """;
    }

    public async ValueTask DisposeAsync()
    {
        if (_connection is not null) await _connection.DisposeAsync();
    }
}
