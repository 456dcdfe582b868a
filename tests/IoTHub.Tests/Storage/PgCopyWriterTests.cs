using IoTHub.Storage.Queries;
using IoTHub.Storage.Write;
using IoTHub.Storage;
using IoTHub.Tests.Infrastructure;
using Npgsql;

namespace IoTHub.Tests.Storage;

/// <summary>The PostgreSQL store's own binary COPY encoder, against a real server: what it writes is what reads back.</summary>
public sealed class PgCopyWriterTests
{
    private NpgsqlConnection? _connection;
    private NpgsqlConnection _c => _connection ?? throw new InvalidOperationException("set-up did not open a connection");

    [SetUp]
    public async Task OpenAsync()
    {
        TestPostgres.RequireAvailable();
        _connection = new NpgsqlConnection(TestPostgres.AdminConnectionString);
        await _connection.OpenAsync();
        await using var create = new NpgsqlCommand("CREATE TEMP TABLE copied (id bigint PRIMARY KEY, k smallint, x double precision, t text)", _c);
        await create.ExecuteNonQueryAsync();
    }

    // Without a server the set-up skips before it opens anything: nothing to close then.
    [TearDown]
    public async Task CloseAsync()
    {
        if (_connection is not null) await _connection.DisposeAsync();
        _connection = null;
    }

    private static int Row(string? text) => PgCopyWriter.FixedBytes(8) * 2 + PgCopyWriter.FixedBytes(2) + PgCopyWriter.TextBytes(text);

    private async Task WriteAsync(IEnumerable<(long Id, short K, double? X, string? T)> rows, bool complete = true)
    {
        await using var copy = await PgCopyWriter.BeginAsync(_c, "COPY copied (id, k, x, t) FROM STDIN (FORMAT BINARY)", CancellationToken.None);
        foreach (var (id, k, x, t) in rows)
        {
            await copy.StartRowAsync(4, Row(t), CancellationToken.None);
            copy.Int64(id);
            copy.Int16(k);
            if (x is { } v) copy.Float64(v); else copy.Null();
            if (t is null) copy.Null(); else copy.Text(t);
        }
        if (complete) await copy.CompleteAsync(CancellationToken.None);
    }

    private async Task<List<(long, short, double?, string?)>> ReadAsync()
    {
        var rows = new List<(long, short, double?, string?)>();
        await using var select = new NpgsqlCommand("SELECT id, k, x, t FROM copied ORDER BY id", _c);
        await using var r = await select.ExecuteReaderAsync();
        while (await r.ReadAsync())
            rows.Add((r.GetInt64(0), r.GetInt16(1), r.IsDBNull(2) ? null : r.GetDouble(2), r.IsDBNull(3) ? null : r.GetString(3)));
        return rows;
    }

    [Test]
    public async Task Rows_across_many_buffers_with_nulls_extremes_unicode_and_a_text_larger_than_the_buffer_read_back_unchanged()
    {
        var rows = new List<(long Id, short K, double? X, string? T)>
        {
            (long.MinValue, short.MinValue, double.MinValue, ""),
            (-1, -1, -0.5, "Grüße, 温度 🌡"),
            (0, 0, null, null),
            (1, 2, double.Epsilon, new string('x', 200 * 1024)), // larger than the 64 KiB buffer
            (long.MaxValue, short.MaxValue, double.MaxValue, "last"),
        };
        for (var i = 0; i < 10_000; i++) rows.Add((1_000 + i, (short)(i % 3), i * 0.25, i % 7 == 0 ? null : "v" + i));

        await WriteAsync(rows);

        Assert.That(await ReadAsync(), Is.EqualTo(rows.OrderBy(r => r.Id).Select(r => (r.Id, r.K, r.X, r.T)).ToList()));
    }

    [Test]
    public async Task A_duplicate_key_fails_at_completion_and_leaves_the_connection_usable()
    {
        await using (var tx = await _c.BeginTransactionAsync())
        {
            var ex = Assert.ThrowsAsync<PostgresException>(() => WriteAsync([(1, 0, 1.0, "a"), (1, 0, 2.0, "b")]));
            Assert.That(ex!.SqlState, Is.EqualTo(PostgresErrorCodes.UniqueViolation));
            await tx.RollbackAsync();
        }

        await WriteAsync([(2, 0, 2.0, "b")]);

        Assert.That(await ReadAsync(), Is.EqualTo(new List<(long, short, double?, string?)> { (2, 0, 2.0, "b") }));
    }

    [Test]
    public async Task Rows_left_without_completing_are_discarded_and_the_connection_stays_usable()
    {
        await WriteAsync(Enumerable.Range(0, 5_000).Select(i => ((long)i, (short)0, (double?)i, (string?)"x")), complete: false);

        Assert.That(await ReadAsync(), Is.Empty);
        await WriteAsync([(7, 1, 7.0, null)]);
        Assert.That(await ReadAsync(), Has.Count.EqualTo(1));
    }
}
