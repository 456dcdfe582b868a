// PostgreSQL's binary COPY format written straight into Npgsql's raw COPY stream. Npgsql's NpgsqlBinaryImporter
// binds a converter and runs a (synchronous) state machine for every value: with six values a point it was the largest
// piece of the hub's own code in a `perf` profile of PostgreSQL ingest. Here a row is a few big-endian stores into a
// pooled buffer, which goes to the server in 64 KiB writes, asynchronously. Only the types the telemetry tables use.
// Format: https://www.postgresql.org/docs/current/sql-copy.html ("Binary Format").
using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using Npgsql;

namespace IoTHub.Storage.Write;

internal sealed class PgCopyWriter : IAsyncDisposable
{
    private const int BufferSize = 64 * 1024;

    // Signature "PGCOPY\n\377\r\n\0", flags (int32 0: no OIDs), header extension length (int32 0).
    private static ReadOnlySpan<byte> Header => [(byte)'P', (byte)'G', (byte)'C', (byte)'O', (byte)'P', (byte)'Y', (byte)'\n', 0xFF, (byte)'\r', (byte)'\n', 0, 0, 0, 0, 0, 0, 0, 0, 0];

    private readonly NpgsqlRawCopyStream _stream;
    private byte[] _buffer;
    private int _position;
    private bool _completed;

    private PgCopyWriter(NpgsqlRawCopyStream stream)
    {
        _stream = stream;
        _buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
        Header.CopyTo(_buffer);
        _position = Header.Length;
    }

    /// <summary>Starts <c>COPY table (columns) FROM STDIN (FORMAT BINARY)</c>.</summary>
    public static async Task<PgCopyWriter> BeginAsync(NpgsqlConnection connection, string copyFromStdinBinary, CancellationToken ct) =>
        new(await connection.BeginRawBinaryCopyAsync(copyFromStdinBinary, ct));

    /// <summary>Starts a row of <paramref name="columns"/> fields, after making room for <paramref name="maxBytes"/>
    /// (the row's largest encoded size: <see cref="FixedBytes"/> per fixed-size field plus <see cref="TextBytes"/>).</summary>
    public ValueTask StartRowAsync(short columns, int maxBytes, CancellationToken ct)
    {
        if (_buffer.Length - _position >= maxBytes + 2)
        {
            Int16Raw(columns);
            return ValueTask.CompletedTask;
        }
        return FlushThenStartAsync(columns, maxBytes, ct);
    }

    private async ValueTask FlushThenStartAsync(short columns, int maxBytes, CancellationToken ct)
    {
        await FlushAsync(ct);
        if (_buffer.Length < maxBytes + 2)
        {
            // A row larger than the buffer (a long text value): a buffer that holds it.
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = ArrayPool<byte>.Shared.Rent(maxBytes + 2);
        }
        Int16Raw(columns);
    }

    /// <summary>Encoded size of a fixed-size field of <paramref name="valueBytes"/> bytes (its length prefix included).</summary>
    public static int FixedBytes(int valueBytes) => 4 + valueBytes;

    /// <summary>Largest encoded size of a text field (or a NULL in its place).</summary>
    public static int TextBytes(string? value) => 4 + (value is null ? 0 : Encoding.UTF8.GetMaxByteCount(value.Length));

    public void Int16(short value)
    {
        Length(2);
        Int16Raw(value);
    }

    public void Int64(long value)
    {
        Length(8);
        BinaryPrimitives.WriteInt64BigEndian(_buffer.AsSpan(_position), value);
        _position += 8;
    }

    public void Float64(double value)
    {
        Length(8);
        BinaryPrimitives.WriteDoubleBigEndian(_buffer.AsSpan(_position), value);
        _position += 8;
    }

    public void Text(string value)
    {
        var written = Encoding.UTF8.GetBytes(value, _buffer.AsSpan(_position + 4));
        Length(written);
        _position += written;
    }

    public void Null() => Length(-1);

    /// <summary>Ends the data and the COPY; a constraint the rows break (a duplicate key) is thrown from here.</summary>
    public async Task CompleteAsync(CancellationToken ct)
    {
        if (_buffer.Length - _position < 2) await FlushAsync(ct);
        Int16Raw(-1); // trailer
        await FlushAsync(ct);
        _completed = true;
        await _stream.DisposeAsync();
    }

    private async ValueTask FlushAsync(CancellationToken ct)
    {
        await _stream.WriteAsync(_buffer.AsMemory(0, _position), ct);
        _position = 0;
    }

    private void Length(int length)
    {
        BinaryPrimitives.WriteInt32BigEndian(_buffer.AsSpan(_position), length);
        _position += 4;
    }

    private void Int16Raw(short value)
    {
        BinaryPrimitives.WriteInt16BigEndian(_buffer.AsSpan(_position), value);
        _position += 2;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_completed)
        {
            // An exception left the rows half written: cancelling tells the server to discard them. That exception is
            // already on its way to the caller (and rolls the transaction back), so a second one from here is not.
            try { await _stream.CancelAsync(); } catch (Exception) { }
            try { await _stream.DisposeAsync(); } catch (Exception) { }
        }
        ArrayPool<byte>.Shared.Return(_buffer);
    }
}
