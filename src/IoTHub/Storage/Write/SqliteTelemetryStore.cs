// SQLite bulk writer: one connection, prepared statements, one transaction per batch. Rollups are folded in
// memory for the rows that were really inserted (not duplicates) and upserted in the same transaction; their sums
// saturate at ±double.MaxValue (FiniteAggregates) instead of becoming Infinity.
using IoTHub.Contracts;
using Microsoft.Data.Sqlite;

namespace IoTHub.Storage.Write;

internal sealed class SqliteTelemetryStore(string connectionString, int deadLetterPayloadLimit) : ITelemetryStore, IDisposable
{
    private readonly SeriesCache _series = new();
    private readonly BatchFold _fold = new();
    private SqliteConnection? _connection;
    private SqliteCommand? _insertPoint, _insertSeries, _selectSeries, _updateLatest, _insertDeadLetter;
    private readonly SqliteCommand?[] _upsertRollup = new SqliteCommand?[3];

    public Task CommitAsync(IReadOnlyList<ValidatedTelemetry> batch, List<CommittedPoint> committed, CancellationToken ct)
    {
        try
        {
            Commit(batch, committed);
        }
        catch
        {
            _series.Rollback();
            Close();
            throw;
        }
        return Task.CompletedTask;
    }

    public void Forget(string deviceId) => _series.Forget(deviceId);

    private void Commit(IReadOnlyList<ValidatedTelemetry> batch, List<CommittedPoint> committed)
    {
        var connection = Open();
        using var tx = connection.BeginTransaction();
        foreach (var cmd in Commands()) cmd.Transaction = tx;
        _fold.Clear();

        foreach (var message in batch)
        {
            if (message.RejectReason is not null)
            {
                InsertDeadLetter(message);
                continue;
            }
            for (var i = 0; i < message.PointCount; i++)
            {
                ref readonly var p = ref message.Points![i];
                var seriesId = SeriesId(message.Source.DeviceId, p.Metric);
                var insert = _insertPoint!;
                insert.Parameters[0].Value = seriesId;
                insert.Parameters[1].Value = p.TimestampMs;
                insert.Parameters[2].Value = p.Sequence;
                insert.Parameters[3].Value = (int)p.Kind;
                insert.Parameters[4].Value = p.Kind == ValueKind.Text ? DBNull.Value : p.Number;
                insert.Parameters[5].Value = (object?)p.Text ?? DBNull.Value;
                insert.Parameters[6].Value = p.DeviceTimestampMs is { } dts ? dts : DBNull.Value;
                if (insert.ExecuteNonQuery() == 0) continue; // a resent point: stored once, counted once
                _fold.Add(seriesId, p);
                if (p.Kind == ValueKind.Number) committed.Add(new CommittedPoint(seriesId, message.Source.DeviceId, p.Metric, p.TimestampMs, p.Number));
            }
        }

        for (var r = 0; r < 3; r++)
        {
            var upsert = _upsertRollup[r]!;
            foreach (var ((series, bucket), acc) in _fold.Rollups[r])
            {
                upsert.Parameters[0].Value = series;
                upsert.Parameters[1].Value = bucket;
                upsert.Parameters[2].Value = acc.Count;
                upsert.Parameters[3].Value = acc.Sum;
                upsert.Parameters[4].Value = acc.Min;
                upsert.Parameters[5].Value = acc.Max;
                upsert.Parameters[6].Value = acc.LastTs;
                upsert.Parameters[7].Value = acc.LastSeq;
                upsert.Parameters[8].Value = acc.Last;
                upsert.ExecuteNonQuery();
            }
        }
        foreach (var (series, p) in _fold.Latest)
        {
            var u = _updateLatest!;
            u.Parameters[0].Value = series;
            u.Parameters[1].Value = p.TimestampMs;
            u.Parameters[2].Value = p.Sequence;
            u.Parameters[3].Value = (int)p.Kind;
            u.Parameters[4].Value = p.Kind == ValueKind.Text ? DBNull.Value : p.Number;
            u.Parameters[5].Value = (object?)p.Text ?? DBNull.Value;
            u.ExecuteNonQuery();
        }
        tx.Commit();
        _series.Commit();
    }

    private long SeriesId(string deviceId, string metric)
    {
        if (_series.TryGet(deviceId, metric, out var id)) return id;
        _insertSeries!.Parameters[0].Value = deviceId;
        _insertSeries.Parameters[1].Value = metric;
        _insertSeries.ExecuteNonQuery();
        _selectSeries!.Parameters[0].Value = deviceId;
        _selectSeries.Parameters[1].Value = metric;
        id = (long)_selectSeries.ExecuteScalar()!;
        _series.AddPending(deviceId, metric, id);
        return id;
    }

    private void InsertDeadLetter(in ValidatedTelemetry message)
    {
        var cmd = _insertDeadLetter!;
        cmd.Parameters[0].Value = message.Source.DeviceId;
        cmd.Parameters[1].Value = message.Source.ReceivedAtMs;
        cmd.Parameters[2].Value = message.Source.Protocol.ToString().ToLowerInvariant();
        cmd.Parameters[3].Value = SafeText.Storable(message.RejectReason!); // as PostgreSQL stores it
        cmd.Parameters[4].Value = DeadLetterPayload.Cap(message.Source.Payload, deadLetterPayloadLimit);
        cmd.Parameters[5].Value = message.Source.Payload.Length;
        cmd.ExecuteNonQuery();
    }

    private SqliteConnection Open()
    {
        if (_connection is not null) return _connection;
        var c = new SqliteConnection(connectionString);
        c.Open();
        using (var pragma = c.CreateCommand())
        {
            // cache_size: SQLite's default page cache is 2 MB, while one batch touches the newest index page of every
            // series and three rollup pages: past a few thousand series each commit re-read them from the OS. 64 MB holds
            // them: 13,900 → 16,000 msg/s over a 40 s run with 1,000 devices (3,000 series).
            pragma.CommandText = "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=10000; PRAGMA cache_size=-65536;";
            pragma.ExecuteNonQuery();
        }
        _insertPoint = Prepare(c, "INSERT INTO telemetry (series_id, ts, seq, kind, number, text, device_ts) VALUES ($1,$2,$3,$4,$5,$6,$7) ON CONFLICT DO NOTHING", 7);
        _insertSeries = Prepare(c, "INSERT INTO series (device_id, metric) VALUES ($1,$2) ON CONFLICT DO NOTHING", 2);
        _selectSeries = Prepare(c, "SELECT id FROM series WHERE device_id = $1 AND metric = $2", 2);
        _updateLatest = Prepare(c, $"UPDATE series SET last_ts = $2, last_seq = $3, last_kind = $4, last_number = $5, last_text = $6 WHERE id = $1 AND (last_ts IS NULL OR {ArrivalOrder.SqlAtOrAfter("$2", "$3", "last_ts", "last_seq")})", 6);
        _insertDeadLetter = Prepare(c, "INSERT INTO dead_letters (device_id, received_at, protocol, reason, payload, payload_size) VALUES ($1,$2,$3,$4,$5,$6)", 6);
        for (var r = 0; r < 3; r++)
        {
            var t = Resolution.Tables[r];
            var later = ArrivalOrder.SqlAtOrAfter("excluded.last_ts", "excluded.last_seq", $"{t}.last_ts", $"{t}.last_seq");
            _upsertRollup[r] = Prepare(c, $"""
                INSERT INTO {t} (series_id, bucket, count, sum, min, max, last_ts, last_seq, last) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)
                ON CONFLICT (series_id, bucket) DO UPDATE SET
                  count = {t}.count + excluded.count, sum = {FiniteAggregates.SqlAdd($"{t}.sum", "excluded.sum")},
                  min = MIN({t}.min, excluded.min), max = MAX({t}.max, excluded.max),
                  last = CASE WHEN {later} THEN excluded.last ELSE {t}.last END,
                  last_seq = CASE WHEN {later} THEN excluded.last_seq ELSE {t}.last_seq END,
                  last_ts = MAX({t}.last_ts, excluded.last_ts)
                """, 9);
        }
        _connection = c;
        return c;
    }

    private static SqliteCommand Prepare(SqliteConnection c, string sql, int parameters)
    {
        var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        for (var i = 1; i <= parameters; i++) cmd.Parameters.Add(new SqliteParameter("$" + i, null));
        cmd.Prepare();
        return cmd;
    }

    private IEnumerable<SqliteCommand> Commands()
    {
        yield return _insertPoint!;
        yield return _insertSeries!;
        yield return _selectSeries!;
        yield return _updateLatest!;
        yield return _insertDeadLetter!;
        foreach (var u in _upsertRollup) yield return u!;
    }

    private void Close()
    {
        if (_connection is null) return;
        foreach (var cmd in Commands()) cmd?.Dispose();
        _connection.Dispose();
        _connection = null;
    }

    public void Dispose() => Close();
}
