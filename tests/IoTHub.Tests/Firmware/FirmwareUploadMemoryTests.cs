// docs/firmware.md: an image "is streamed to {DataDirectory}/firmware/{id}.bin while its SHA-256 is computed; it is never
// held in memory whole". Measured: a 200 MiB upload, generated as it is sent, grows the process (test and hub share it)
// by far less than the image.
using System.Diagnostics;
using System.Net;
using System.Security.Cryptography;
using IoTHub.Tests.Infrastructure;

namespace IoTHub.Tests.Firmware;

[TestFixture(Store.Sqlite)]
[RunsAlone("measures the memory of the whole process")]
[OwnHost("measures the memory of the whole process while a 200 MiB image is uploaded, so no other fixture's traffic may share its hub")]
public sealed class FirmwareUploadMemoryTests(Store store) : HubFixture(store)
{
    private const long Image = 200L * 1024 * 1024;
    private const long AllowedGrowth = 32L * 1024 * 1024;

    [Test]
    public async Task A_200_MiB_upload_grows_the_process_by_less_than_32_MiB_and_is_stored_with_the_right_size_and_hash()
    {
        using var admin = await Hub.AdminAsync();
        admin.Timeout = TimeSpan.FromMinutes(3);
        // The first upload loads and compiles the code on the way; only the second is measured.
        await UploadAsync(admin, new GeneratedStream(1024 * 1024, seed: 1), "0.0.1-warmup");

        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        using var process = Process.GetCurrentProcess();
        process.Refresh();
        var baseline = process.WorkingSet64;
        var peak = baseline;
        using var stop = new CancellationTokenSource();
        var sampler = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                process.Refresh();
                peak = Math.Max(peak, process.WorkingSet64);
                try { await Task.Delay(50, stop.Token); } catch (OperationCanceledException) { }
            }
        });

        var image = new GeneratedStream(Image, seed: 2);
        HttpResponseMessage response;
        try
        {
            response = await UploadAsync(admin, image, "1.0.0-big");
        }
        finally
        {
            await stop.CancelAsync();
            await sampler;
        }
        process.Refresh();
        peak = Math.Max(peak, process.WorkingSet64);

        var body = await response.ReadJsonAsync();
        Assert.That(body["size"]!.GetValue<long>(), Is.EqualTo(Image));
        Assert.That(body["sha256"]!.GetValue<string>(), Is.EqualTo(image.Sha256), "the hash of what was sent");
        Assert.That(new FileInfo(Artifacts.FileOf(Hub, body["id"]!.GetValue<long>())).Length, Is.EqualTo(Image));
        var growth = peak - baseline;
        TestContext.Progress.WriteLine($"200 MiB upload: working set {baseline / 1048576} MiB before, peak {peak / 1048576} MiB, growth {growth / 1048576.0:0.0} MiB");
        Assert.That(growth, Is.LessThan(AllowedGrowth), $"the working set grew by {growth / 1048576.0:0.0} MiB during the upload");
    }

    private static async Task<HttpResponseMessage> UploadAsync(HttpClient admin, GeneratedStream image, string version)
    {
        var content = new StreamContent(image, 64 * 1024);
        content.Headers.ContentType = new("application/octet-stream");
        content.Headers.ContentLength = image.Size;
        var response = await admin.PostAsync($"/api/v1/firmware?version={version}", content);
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Created), await response.Content.ReadAsStringAsync());
        return response;
    }

    /// <summary>Pseudo-random bytes made as they are read (xorshift), hashed on the way: never an array of the image.</summary>
    private sealed class GeneratedStream(long size, ulong seed) : Stream
    {
        private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        private ulong _state = seed * 0x9E3779B97F4A7C15UL | 1;
        private long _position;
        private string? _sha256;

        public long Size => size;

        /// <summary>Lowercase hex SHA-256 of everything read, once it has all been read.</summary>
        public string Sha256 => _sha256 ?? throw new InvalidOperationException("not read to the end");

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => size;
        public override long Position { get => _position; set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            var n = (int)Math.Min(buffer.Length, size - _position);
            if (n <= 0)
            {
                _sha256 ??= Convert.ToHexStringLower(_hash.GetHashAndReset());
                return 0;
            }
            var span = buffer[..n];
            for (var i = 0; i < n; i += 8)
            {
                _state ^= _state << 13;
                _state ^= _state >> 7;
                _state ^= _state << 17;
                var word = _state;
                for (var j = 0; j < 8 && i + j < n; j++, word >>= 8) span[i + j] = (byte)word;
            }
            _hash.AppendData(span);
            _position += n;
            return n;
        }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => new(Read(buffer.Span));

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            Task.FromResult(Read(buffer.AsSpan(offset, count)));

        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing) _hash.Dispose();
            base.Dispose(disposing);
        }
    }
}
