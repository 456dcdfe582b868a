// The subscriber of the hand-built references of `ingest`: mosquitto (Debian's) receives the devices' messages and this
// process, subscribed to every device's telemetry, batch-COPYs them into PostgreSQL. It runs in its own process so its
// CPU is counted apart from the load generator's. Two shapes:
//   jsonb   QoS 0 everywhere; one row per message (device, received_at, payload jsonb): the cheapest thing that stores.
//   narrow  QoS 1 from the devices and to this subscriber (mosquitto acks a device on receipt; this process acks each
//           message when it has buffered it); one row per value (device, metric, ts, value) with IoTHub's primary key
//           (device, metric, ts); a batch is COPYed into a staging table and inserted with ON CONFLICT DO NOTHING, since
//           QoS 1 redelivers: what a careful team would build for the same guarantee as IoTHub's storage.
// It prints "stored N" (messages committed so far) every 100 ms.
using System.Buffers;
using System.Diagnostics;
using System.Text.Json;
using System.Threading.Channels;
using MQTTnet;
using MQTTnet.Protocol;
using Npgsql;
using NpgsqlTypes;

namespace IoTHub.Benchmarks;

internal sealed class ReferenceSubscriber : IAsyncDisposable
{
    private readonly Process _process;
    private long _stored;

    private ReferenceSubscriber(Process process) => _process = process;

    public int Pid => _process.Id;

    /// <summary>Messages committed to PostgreSQL so far, as the subscriber last said.</summary>
    public long Stored => Interlocked.Read(ref _stored);

    /// <summary>Messages per batch at most: the jsonb reference keeps its historical 1,000; the narrow one batches as many
    /// messages as IoTHub does points (30,000 / 3), so it is not made slower than a careful build would be.</summary>
    private static int BatchMessages(string shape) => shape == "narrow" ? 10_000 : 1_000;

    public static string CreateTableSql(string shape) => shape == "narrow"
        ? "CREATE TABLE telemetry (device text NOT NULL, metric text NOT NULL, ts timestamptz NOT NULL, value double precision, PRIMARY KEY (device, metric, ts))"
        : "CREATE TABLE telemetry (device text NOT NULL, received_at timestamptz NOT NULL, payload jsonb NOT NULL)";

    public static async Task<ReferenceSubscriber> StartAsync(int port, string connectionString, string shape)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { typeof(ReferenceSubscriber).Assembly.Location, "reference-subscriber", "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture),
                     "--shape", shape, "--postgres", connectionString })
            psi.ArgumentList.Add(a);
        psi.Environment["DOTNET_gcServer"] = "1";
        psi.Environment["DOTNET_ThreadPool_UnfairSemaphoreSpinLimit"] = "0";
        psi.Environment["DOTNET_TieredPGO"] = "0";
        var process = Process.Start(psi)!;
        var subscriber = new ReferenceSubscriber(process);
        var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is not { } line) return;
            if (line == "subscribed") ready.TrySetResult();
            else if (line.StartsWith("stored ", StringComparison.Ordinal)) Interlocked.Exchange(ref subscriber._stored, long.Parse(line[7..], System.Globalization.CultureInfo.InvariantCulture));
        };
        process.ErrorDataReceived += (_, e) => { if (e.Data is { Length: > 0 } line) Console.Error.WriteLine("  subscriber: " + line); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            await ready.Task.WaitAsync(TimeSpan.FromSeconds(30));
            return subscriber;
        }
        catch
        {
            await subscriber.DisposeAsync();
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited) _process.Kill(entireProcessTree: true);
        await _process.WaitForExitAsync();
        _process.Dispose();
    }

    private readonly record struct Received(string Device, DateTime At, byte[] Payload);

    /// <summary>In the child process: subscribes and stores until killed.</summary>
    public static async Task<int> RunAsync(int port, string shape, string connectionString)
    {
        var narrow = shape == "narrow";
        var buffer = Channel.CreateUnbounded<Received>(new UnboundedChannelOptions { SingleReader = true });
        long stored = 0;
        using var client = new MqttClientFactory().CreateMqttClient();
        client.ApplicationMessageReceivedAsync += e =>
        {
            var topic = e.ApplicationMessage.Topic;
            var start = topic.IndexOf('/') + 1;
            buffer.Writer.TryWrite(new Received(topic[start..topic.IndexOf('/', start)], DateTime.UtcNow, e.ApplicationMessage.Payload.ToArray()));
            return Task.CompletedTask; // MQTTnet acks a QoS 1 message when this returns: on receipt
        };
        // A keep-alive longer than the run: under a flood mosquitto queues its PINGRESP behind the backlog, the client would
        // give up and, at QoS 0, every message still queued would be lost, which measured the timeout, not the pipeline.
        await client.ConnectAsync(new MqttClientOptionsBuilder().WithTcpServer("127.0.0.1", port).WithClientId("copy-subscriber")
            .WithKeepAlivePeriod(TimeSpan.FromMinutes(30)).WithTimeout(TimeSpan.FromMinutes(5)).Build());
        await client.SubscribeAsync("devices/+/telemetry", narrow ? MqttQualityOfServiceLevel.AtLeastOnce : MqttQualityOfServiceLevel.AtMostOnce);
        Console.WriteLine("subscribed");
        _ = Task.Run(async () =>
        {
            while (true)
            {
                await Task.Delay(100);
                Console.WriteLine($"stored {Interlocked.Read(ref stored)}");
            }
        });

        await using var c = new NpgsqlConnection(connectionString);
        await c.OpenAsync();
        if (narrow)
        {
            await using var stage = new NpgsqlCommand("CREATE TEMP TABLE stage (device text, metric text, ts timestamptz, value double precision) ON COMMIT DELETE ROWS", c);
            await stage.ExecuteNonQueryAsync();
        }
        var max = BatchMessages(shape);
        var batch = new List<Received>(max);
        while (await buffer.Reader.WaitToReadAsync())
        {
            var deadline = DateTime.UtcNow.AddMilliseconds(5);
            while (batch.Count < max && DateTime.UtcNow < deadline)
            {
                if (buffer.Reader.TryRead(out var m)) batch.Add(m);
                else await Task.Delay(1);
            }
            if (narrow) await StoreNarrowAsync(c, batch);
            else await StoreJsonbAsync(c, batch);
            Interlocked.Add(ref stored, batch.Count);
            batch.Clear();
        }
        return 0;
    }

    private static async Task StoreJsonbAsync(NpgsqlConnection c, List<Received> batch)
    {
        await using var copy = await c.BeginBinaryImportAsync("COPY telemetry (device, received_at, payload) FROM STDIN (FORMAT BINARY)");
        foreach (var (d, at, p) in batch)
        {
            await copy.StartRowAsync();
            await copy.WriteAsync(d, NpgsqlDbType.Text);
            await copy.WriteAsync(at, NpgsqlDbType.TimestampTz);
            await copy.WriteAsync(System.Text.Encoding.UTF8.GetString(p), NpgsqlDbType.Jsonb);
        }
        await copy.CompleteAsync();
    }

    /// <summary>One row per value of <c>{"ts": ms, "values": {name: number | bool}}</c> (a bool as 0/1), the batch in one
    /// transaction: COPY into the staging table, then an insert that skips what is stored already.</summary>
    private static async Task StoreNarrowAsync(NpgsqlConnection c, List<Received> batch)
    {
        await using var tx = await c.BeginTransactionAsync();
        await using (var copy = await c.BeginBinaryImportAsync("COPY stage (device, metric, ts, value) FROM STDIN (FORMAT BINARY)"))
        {
            foreach (var m in batch) WriteValues(copy, m);
            await copy.CompleteAsync();
        }
        await using (var insert = new NpgsqlCommand("INSERT INTO telemetry SELECT * FROM stage ON CONFLICT DO NOTHING", c, tx))
            await insert.ExecuteNonQueryAsync();
        await tx.CommitAsync();
    }

    private static void WriteValues(NpgsqlBinaryImporter copy, Received m)
    {
        var reader = new Utf8JsonReader(m.Payload);
        var ts = m.At;
        reader.Read(); // {
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("ts"))
            {
                reader.Read();
                ts = DateTime.UnixEpoch.AddMilliseconds(reader.GetInt64());
            }
            else if (reader.ValueTextEquals("values"))
            {
                reader.Read(); // {
                while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                {
                    var metric = reader.GetString()!;
                    reader.Read();
                    double? value = reader.TokenType switch
                    {
                        JsonTokenType.Number => reader.GetDouble(),
                        JsonTokenType.True => 1,
                        JsonTokenType.False => 0,
                        _ => null,
                    };
                    copy.StartRow();
                    copy.Write(m.Device, NpgsqlDbType.Text);
                    copy.Write(metric, NpgsqlDbType.Text);
                    copy.Write(ts, NpgsqlDbType.TimestampTz);
                    if (value is { } v) copy.Write(v, NpgsqlDbType.Double); else copy.WriteNull();
                }
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }
    }
}
