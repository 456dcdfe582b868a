// Which commit failures the writer retries and which it isolates (issue #15: 22003 retried forever). Real errors from
// the real drivers where they can be provoked here, constructed ones for the rest.
using IoTHub.Storage.Queries;
using IoTHub.Storage.Write;
using System.Text;
using IoTHub.Storage;
using IoTHub.Tests.Infrastructure;
using Microsoft.Data.Sqlite;
using Npgsql;
using NpgsqlTypes;

namespace IoTHub.Tests.Storage;

public sealed class StoreErrorsTests
{
    private static async Task<Exception> PostgresFailureAsync(Func<NpgsqlConnection, Task> act, string? connectionString = null)
    {
        TestPostgres.RequireAvailable();
        await using var c = new NpgsqlConnection(connectionString ?? TestPostgres.AdminConnectionString);
        await c.OpenAsync();
        try
        {
            await act(c);
        }
        catch (Exception ex)
        {
            return ex;
        }
        throw new AssertionException("the statement did not fail");
    }

    private static async Task<Exception> SqlAsync(string sql) => await PostgresFailureAsync(async c =>
    {
        await using var cmd = new NpgsqlCommand(sql, c);
        await cmd.ExecuteNonQueryAsync();
    });

    [Test]
    public async Task Postgres_data_errors_are_permanent()
    {
        var overflow = await SqlAsync("SELECT 1.7976931348623157e308::float8 * 10");
        Assert.That(((PostgresException)overflow).SqlState, Is.EqualTo("22003"));
        var nul = await SqlAsync("SELECT convert_from('\\x00'::bytea, 'UTF8')");
        var badText = await SqlAsync("SELECT 'banana'::bigint");
        var unique = await SqlAsync("CREATE TEMP TABLE u (k int PRIMARY KEY); INSERT INTO u VALUES (1), (1)");
        var notNull = await SqlAsync("CREATE TEMP TABLE n (k int NOT NULL); INSERT INTO n VALUES (NULL)");

        foreach (var ex in new[] { overflow, nul, badText, unique, notNull })
            Assert.That(StoreErrors.IsPermanent(ex), Is.True, ex.Message);
        Assert.That(StoreErrors.Describe(overflow), Does.StartWith("22003 ").And.Contain("out of range"));
    }

    [Test]
    public async Task Npgsql_refusing_a_lone_surrogate_is_permanent()
    {
        var ex = await PostgresFailureAsync(async c =>
        {
            await using (var create = new NpgsqlCommand("CREATE TEMP TABLE t (x text)", c)) await create.ExecuteNonQueryAsync();
            await using var copy = await c.BeginBinaryImportAsync("COPY t (x) FROM STDIN (FORMAT BINARY)");
            await copy.StartRowAsync();
            await copy.WriteAsync(new string('!', 63) + "\uD83D", NpgsqlDbType.Text);
            await copy.CompleteAsync();
        });

        Assert.That(StoreErrors.IsPermanent(ex), Is.True, ex.ToString());
    }

    [Test]
    public async Task Losing_the_connection_or_a_statement_timeout_is_transient()
    {
        Exception? connect = null;
        try
        {
            await using var c = new NpgsqlConnection($"Host=127.0.0.1;Port={HubHost.FreeTcpPort()};Username=x;Password=y;Timeout=2");
            await c.OpenAsync();
        }
        catch (Exception ex)
        {
            connect = ex;
        }
        var timeout = await SqlAsync("SET statement_timeout = 50; SELECT pg_sleep(2)");
        var terminated = await PostgresFailureAsync(async c =>
        {
            await using var cmd = new NpgsqlCommand("SELECT pg_terminate_backend(pg_backend_pid())", c);
            await cmd.ExecuteNonQueryAsync();
        });

        foreach (var ex in new[] { connect!, timeout, terminated })
            Assert.That(StoreErrors.IsPermanent(ex), Is.False, ex.ToString());
    }

    [TestCase("40001", false, TestName = "Serialization failure 40001 is transient")]
    [TestCase("40P01", false, TestName = "Deadlock 40P01 is transient")]
    [TestCase("53300", false, TestName = "Too many connections 53300 is transient")]
    [TestCase("57P01", false, TestName = "Admin shutdown 57P01 is transient")]
    [TestCase("08006", false, TestName = "Connection failure 08006 is transient")]
    [TestCase("58030", false, TestName = "IO error 58030 is transient")]
    [TestCase("42P01", false, TestName = "An unknown table 42P01 (a hub-side fault, not data) is retried")]
    [TestCase("22021", true, TestName = "Character not in repertoire 22021 is permanent")]
    [TestCase("22P02", true, TestName = "Invalid text representation 22P02 is permanent")]
    [TestCase("23514", true, TestName = "Check violation 23514 is permanent")]
    [TestCase("54000", true, TestName = "Program limit exceeded 54000 (index row too big) is permanent")]
    public void Postgres_sqlstates(string sqlState, bool permanent) =>
        Assert.That(StoreErrors.IsPermanent(new PostgresException("m", "ERROR", "ERROR", sqlState)), Is.EqualTo(permanent));

    [Test]
    public void Sqlite_constraint_violation_is_permanent_and_busy_is_transient()
    {
        var file = Path.Combine(Path.GetTempPath(), "iothub-errors-" + Guid.NewGuid().ToString("N")[..8] + ".db");
        try
        {
            using var a = new SqliteConnection($"Data Source={file};Pooling=False");
            a.Open();
            using (var create = a.CreateCommand())
            {
                create.CommandText = "CREATE TABLE t (x INTEGER NOT NULL CHECK (x > 0))";
                create.ExecuteNonQuery();
            }
            var constraint = Assert.Throws<SqliteException>(() =>
            {
                using var insert = a.CreateCommand();
                insert.CommandText = "INSERT INTO t VALUES (0)";
                insert.ExecuteNonQuery();
            });
            using var hold = a.BeginTransaction();
            using (var write = a.CreateCommand())
            {
                write.Transaction = hold;
                write.CommandText = "INSERT INTO t VALUES (1)";
                write.ExecuteNonQuery();
            }
            using var b = new SqliteConnection($"Data Source={file};Pooling=False;Default Timeout=1"); // Microsoft.Data.Sqlite retries BUSY this long
            b.Open();
            var busy = Assert.Throws<SqliteException>(() =>
            {
                using var pragma = b.CreateCommand();
                pragma.CommandTimeout = 1;
                pragma.CommandText = "INSERT INTO t VALUES (2)";
                pragma.ExecuteNonQuery();
            });

            Assert.That(StoreErrors.IsPermanent(constraint!), Is.True, constraint!.Message);
            Assert.That(busy!.SqliteErrorCode, Is.EqualTo(5));
            Assert.That(StoreErrors.IsPermanent(busy), Is.False, busy.Message);
            Assert.That(StoreErrors.Describe(constraint), Does.StartWith("SQLite error 19"));
        }
        finally
        {
            SqliteConnection.ClearAllPools();
            File.Delete(file);
        }
    }

    [TestCase(18, true)]  // TOOBIG
    [TestCase(20, true)]  // MISMATCH
    [TestCase(25, true)]  // RANGE
    [TestCase(2067, true)] // SQLITE_CONSTRAINT_UNIQUE (extended)
    [TestCase(6, false)]  // LOCKED
    [TestCase(10, false)] // IOERR
    [TestCase(13, false)] // FULL
    [TestCase(3338, false)] // SQLITE_IOERR_FSYNC (extended)
    public void Sqlite_result_codes(int code, bool permanent) =>
        Assert.That(StoreErrors.IsPermanent(new SqliteException("m", code)), Is.EqualTo(permanent));

    [Test]
    public void Driver_value_refusals_are_permanent_and_io_is_transient()
    {
        Exception[] permanent =
        [
            new EncoderFallbackException("Unable to translate Unicode character \\uD83D"), new ArgumentException("x"), new InvalidCastException("x"),
            new OverflowException(), new NpgsqlException("wrapped", new EncoderFallbackException("x")),
        ];
        Exception[] transient =
        [
            new TimeoutException(), new IOException("reset"), new System.Net.Sockets.SocketException(104), new NpgsqlException("Exception while reading from stream", new IOException("x")),
            new InvalidOperationException("The connection is broken"), new NullReferenceException(),
        ];
        Assert.That(permanent.Where(e => !StoreErrors.IsPermanent(e)), Is.Empty);
        Assert.That(transient.Where(StoreErrors.IsPermanent), Is.Empty);
    }
}
