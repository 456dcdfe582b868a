// PostgreSQL bulk writer, one transaction per batch, two ways:
// - fast (the usual case): binary COPY of the raw rows straight into `telemetry`, and of the batch's rollups and
//   latest values, folded in memory, into staging tables; one statement then upserts those. Any duplicate (a resend
//   after a lost ack) makes COPY fail on the primary key, and the whole transaction rolls back.
// - checked (after such a failure, for the next batches): COPY into staging, then one statement that inserts the new
//   raw rows skipping duplicates, folds exactly those rows into the rollups and advances the latest values.
// Both keep the rollups equal to a GROUP BY over the stored raw rows. The fast way spares PostgreSQL the duplicate
// check, the RETURNING set and the SQL aggregation: ~45 % of its work on a 15,000-point batch timed by hand.
using IoTHub.Contracts;
using Npgsql;
using NpgsqlTypes;

namespace IoTHub.Storage;

internal sealed class PostgresTelemetryStore(string connectionString, int deadLetterPayloadLimit) : ITelemetryStore, IAsyncDisposable
{
    private readonly SeriesCache _series = new();
    private readonly List<string> _missingDevices = new();
    private readonly List<string> _missingMetrics = new();
    private readonly BatchFold _fold = new();
    private NpgsqlConnection? _connection;
    private int _checkedBatches;

    /// <summary>Batches that take the checked way after a duplicate: a device that resends usually resends several.</summary>
    private const int CheckedAfterDuplicate = 20;

    private static readonly string FoldSql = BuildFoldSql();
    private static readonly string UpsertStagedSql = BuildUpsertStagedSql();

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
        if (_checkedBatches == 0)
        {
            try
            {
                await CommitBatchAsync(c, batch, committed, checkDuplicates: false, ct);
                return;
            }
            catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.UniqueViolation)
            {
                // Some point of the batch is stored already (or twice in it); the transaction has rolled back.
                _series.Rollback();
                committed.Clear();
                _checkedBatches = CheckedAfterDuplicate;
                WriterMetrics.DuplicateRetries.Add(1);
            }
        }
        else
        {
            _checkedBatches--;
        }
        await CommitBatchAsync(c, batch, committed, checkDuplicates: true, ct);
    }

    /// <summary>One batch in one transaction: the fast way (<paramref name="checkDuplicates"/> false) COPYs points straight
    /// into `telemetry` and merges the rollups folded here; the checked way stages them and lets SQL skip duplicates and fold.</summary>
    private async Task CommitBatchAsync(NpgsqlConnection c, IReadOnlyList<ValidatedTelemetry> batch, List<CommittedPoint> committed,
        bool checkDuplicates, CancellationToken ct)
    {
        await using var tx = await c.BeginTransactionAsync(ct);
        await ResolveSeriesAsync(c, batch, ct);
        _fold.Clear();
        var points = await CopyPointsAsync(c, checkDuplicates ? "stage" : "telemetry", batch, committed, checkDuplicates ? null : _fold, ct);
        if (points > 0)
        {
            if (checkDuplicates) await FoldStagedAsync(c, tx, ct);
            else await MergeFoldAsync(c, tx, ct);
        }
        await WriteDeadLettersAsync(c, batch, ct);
        await tx.CommitAsync(ct);
        _series.Commit();
    }

    /// <summary>Inserts the staged points that are new, folds exactly those into the rollups and advances the latest values.</summary>
    private static async Task FoldStagedAsync(NpgsqlConnection c, NpgsqlTransaction tx, CancellationToken ct)
    {
        await using var fold = new NpgsqlCommand(FoldSql, c, tx);
        await fold.ExecuteNonQueryAsync(ct);
    }

    /// <summary>Stages the batch's folded rollups and latest values and merges them in one statement.</summary>
    private async Task MergeFoldAsync(NpgsqlConnection c, NpgsqlTransaction tx, CancellationToken ct)
    {
        var rollupRow = PgCopyWriter.FixedBytes(2) + 8 * PgCopyWriter.FixedBytes(8); // res, then eight bigints or doubles
        await using (var copy = await PgCopyWriter.BeginAsync(c, "COPY stage_rollup (res, series_id, bucket, count, sum, min, max, last_ts, last) FROM STDIN (FORMAT BINARY)", ct))
        {
            for (short r = 0; r < _fold.Rollups.Length; r++)
            {
                foreach (var ((series, bucket), acc) in _fold.Rollups[r])
                {
                    await copy.StartRowAsync(9, rollupRow, ct);
                    copy.Int16(r);
                    copy.Int64(series);
                    copy.Int64(bucket);
                    copy.Int64(acc.Count);
                    copy.Float64(acc.Sum);
                    copy.Float64(acc.Min);
                    copy.Float64(acc.Max);
                    copy.Int64(acc.LastTs);
                    copy.Float64(acc.Last);
                }
            }
            await copy.CompleteAsync(ct);
        }
        await using (var copy = await PgCopyWriter.BeginAsync(c, "COPY stage_latest (series_id, ts, kind, number, text) FROM STDIN (FORMAT BINARY)", ct))
        {
            foreach (var (series, p) in _fold.Latest) await WritePointAsync(copy, series, p, withDeviceTime: false, ct);
            await copy.CompleteAsync(ct);
        }
        await using var upsert = new NpgsqlCommand(UpsertStagedSql, c, tx);
        await upsert.ExecuteNonQueryAsync(ct);
    }

    /// <summary>COPYs the batch's valid points into <paramref name="table"/> (and folds them into <paramref name="fold"/>
    /// when given); returns how many.</summary>
    private async Task<int> CopyPointsAsync(NpgsqlConnection c, string table, IReadOnlyList<ValidatedTelemetry> batch, List<CommittedPoint> committed,
        BatchFold? fold, CancellationToken ct)
    {
        var points = 0;
        await using var copy = await PgCopyWriter.BeginAsync(c, $"COPY {table} (series_id, ts, kind, number, text, device_ts) FROM STDIN (FORMAT BINARY)", ct);
        foreach (var m in batch)
        {
            if (m.RejectReason is not null) continue;
            for (var i = 0; i < m.PointCount; i++)
            {
                ref readonly var p = ref m.Points![i];
                _series.TryGet(m.Source.DeviceId, p.Metric, out var sid);
                if (p.Kind == ValueKind.Number) committed.Add(new CommittedPoint(sid, m.Source.DeviceId, p.Metric, p.TimestampMs));
                fold?.Add(sid, p);
                await WritePointAsync(copy, sid, p, withDeviceTime: true, ct);
                points++;
            }
        }
        await copy.CompleteAsync(ct);
        return points;
    }

    /// <summary>One row of (series_id, ts, kind, number, text[, device_ts]). Completes synchronously (without an
    /// allocation) unless the buffer has to be flushed first.</summary>
    private static async ValueTask WritePointAsync(PgCopyWriter copy, long seriesId, TelemetryPoint p, bool withDeviceTime, CancellationToken ct)
    {
        await copy.StartRowAsync(withDeviceTime ? (short)6 : (short)5, PgCopyWriter.FixedBytes(8) * 4 + PgCopyWriter.FixedBytes(2) + PgCopyWriter.TextBytes(p.Text), ct);
        copy.Int64(seriesId);
        copy.Int64(p.TimestampMs);
        copy.Int16((short)p.Kind);
        if (p.Kind == ValueKind.Text) copy.Null(); else copy.Float64(p.Number);
        if (p.Text is null) copy.Null(); else copy.Text(p.Text);
        if (!withDeviceTime) return;
        if (p.DeviceTimestampMs is { } dts) copy.Int64(dts); else copy.Null();
    }

    private async Task WriteDeadLettersAsync(NpgsqlConnection c, IReadOnlyList<ValidatedTelemetry> batch, CancellationToken ct)
    {
        var any = false;
        foreach (var m in batch) any |= m.RejectReason is not null;
        if (any)
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
            CREATE TEMP TABLE IF NOT EXISTS stage_rollup (res smallint, series_id bigint, bucket bigint, count bigint, sum double precision, min double precision, max double precision, last_ts bigint, last double precision) ON COMMIT DELETE ROWS;
            CREATE TEMP TABLE IF NOT EXISTS stage_latest (series_id bigint, ts bigint, kind smallint, number double precision, text text) ON COMMIT DELETE ROWS;
            SET synchronous_commit = on;
            """, c))
        {
            await cmd.ExecuteNonQueryAsync(ct);
        }
        _connection = c;
        return c;
    }

    /// <summary>The merge of a batch's rollup into a stored one: rollups are mergeable, so batches and hubs combine.</summary>
    private const string MergeRollup = """
        ON CONFLICT (series_id, bucket) DO UPDATE SET
          count = t.count + excluded.count, sum = t.sum + excluded.sum,
          min = LEAST(t.min, excluded.min), max = GREATEST(t.max, excluded.max),
          last = CASE WHEN excluded.last_ts >= t.last_ts THEN excluded.last ELSE t.last END,
          last_ts = GREATEST(t.last_ts, excluded.last_ts)
        """;

    private const string AdvanceLatest = "WHERE s.id = x.series_id AND (s.last_ts IS NULL OR s.last_ts <= x.ts)";

    private static string BuildUpsertStagedSql()
    {
        var rollups = string.Join(",\n", Enumerable.Range(0, 3).Select(r => $"""
            r{r} AS (
              INSERT INTO {Resolution.Tables[r]} AS t (series_id, bucket, count, sum, min, max, last_ts, last)
              SELECT series_id, bucket, count, sum, min, max, last_ts, last FROM stage_rollup WHERE res = {r}
              {MergeRollup}
            )
            """));
        return $"""
            WITH {rollups}
            UPDATE series s SET last_ts = x.ts, last_kind = x.kind, last_number = x.number, last_text = x.text
            FROM stage_latest x
            {AdvanceLatest}
            """;
    }

    private static string BuildFoldSql()
    {
        var rollups = string.Join(",\n", Enumerable.Range(0, 3).Select(r => $"""
            r{r} AS (
              INSERT INTO {Resolution.Tables[r]} AS t (series_id, bucket, count, sum, min, max, last_ts, last)
              SELECT series_id, ts - (ts % {Resolution.WidthsMs[r]}), count(*), sum(number), min(number), max(number), max(ts),
                     (max(ARRAY[ts::float8, number]))[2]
              FROM ins WHERE kind = 0 GROUP BY 1, 2
              {MergeRollup}
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
            {AdvanceLatest}
            """;
    }

    public async ValueTask DisposeAsync()
    {
        if (_connection is not null) await _connection.DisposeAsync();
    }
}
