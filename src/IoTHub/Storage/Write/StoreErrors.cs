// Which failures of a telemetry commit are worth retrying. The writer used to retry every failure, so one message the
// database refuses (issue #15: a rollup sum overflowing with SQLSTATE 22003, a reason Npgsql cannot encode) held the
// acks of every device behind it forever. A failure is:
// - Permanent when it follows from the data of the batch: retrying the same rows fails the same way. The writer then
//   isolates the messages that cause it (TelemetryWriter) and dead-letters them with the database's reason.
// - Transient otherwise: the connection, the server, locks, resources, or a cause not recognised. The writer retries
//   with backoff, readiness reports it, and nothing is dropped. An unknown failure is retried rather than dead-lettered
//   because treating a hub-side fault (a schema out of step, a permission) as bad data would dead-letter every message
//   of the fleet; a stall is what /health/ready then shows.
using System.Text;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace IoTHub.Storage.Write;

internal static class StoreErrors
{
    /// <summary>True when <paramref name="error"/> is caused by the data being written, so retrying it cannot succeed.</summary>
    public static bool IsPermanent(Exception error)
    {
        for (var e = error; e is not null; e = e.InnerException)
        {
            switch (e)
            {
                case PostgresException pg:
                    return IsPermanentSqlState(pg.SqlState);
                case SqliteException sqlite:
                    return IsPermanentSqlite(sqlite.SqliteErrorCode);
                case NpgsqlException { IsTransient: true }:
                case TimeoutException or IOException or System.Net.Sockets.SocketException:
                    return false;
                // The driver refusing a value before it reaches the server: text it cannot encode (a lone surrogate),
                // a value out of a type's range or of the wrong type.
                case EncoderFallbackException or DecoderFallbackException or ArgumentException or InvalidCastException or OverflowException or FormatException:
                    return true;
            }
        }
        return false;
    }

    /// <summary>PostgreSQL's classes of errors caused by data: 22 data exception (numeric overflow 22003, invalid text
    /// representation 22P02, character not in repertoire 22021, ...), 23 integrity constraint violation, 54 program
    /// limit exceeded (a value too large for an index row). Connection (08), transaction rollback (40001 serialization,
    /// 40P01 deadlock), resources (53, "too many connections" 53300), operator intervention (57, admin shutdown 57P01,
    /// statement timeout 57014), system (58) and internal (XX) errors are transient.</summary>
    public static bool IsPermanentSqlState(string sqlState) => sqlState.Length == 5 && sqlState[..2] is "22" or "23" or "54";

    /// <summary>SQLite's primary result codes caused by data: CONSTRAINT (19), MISMATCH (20), TOOBIG (18), RANGE (25).
    /// BUSY (5), LOCKED (6), NOMEM (7), INTERRUPT (9), IOERR (10), CORRUPT (11), FULL (13), CANTOPEN (14) and the rest are
    /// transient (extended codes carry the primary one in their low byte).</summary>
    public static bool IsPermanentSqlite(int errorCode) => (errorCode & 0xFF) is 18 or 19 or 20 or 25;

    /// <summary>What the database said, for a dead letter's reason: SQLSTATE or SQLite code and message, cleaned so that
    /// the reason itself can be stored, and cut to <paramref name="maxChars"/>.</summary>
    public static string Describe(Exception error, int maxChars = 300)
    {
        var text = error switch
        {
            PostgresException pg => $"{pg.SqlState} {pg.MessageText}" + (string.IsNullOrEmpty(pg.Detail) ? "" : $" ({pg.Detail})"),
            SqliteException sqlite => $"SQLite error {sqlite.SqliteErrorCode}: {sqlite.Message}",
            { InnerException: PostgresException or SqliteException } => Describe(error.InnerException!, maxChars),
            _ => $"{error.GetType().Name}: {error.Message}",
        };
        return Contracts.SafeText.Prefix(Contracts.SafeText.Storable(text), maxChars, "…");
    }
}
