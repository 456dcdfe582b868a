// One device's download of a firmware image (docs/firmware.md, "Download"): GETs in byte ranges with the device token,
// resuming from the byte it holds after an interruption, and waiting as long as a 503's Retry-After says when the hub
// has too many downloads at once.
using System.Buffers;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;

namespace IoTHub.Simulator.Firmware;

/// <summary>A download that failed for good (refused, not found, a range the hub cannot serve, the network gone).</summary>
public sealed class FirmwareDownloadException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>Downloads one firmware image in ranges of a set size, keeping what it has received across interruptions.</summary>
public sealed class FirmwareDownload : IDisposable
{
    private const int NetworkRetries = 5;
    private static readonly TimeSpan LeastWait = TimeSpan.FromMilliseconds(100);

    private readonly HttpClient _http;
    private readonly Uri _url;
    private readonly string _token;
    private readonly int _chunkSize;
    private readonly TimeProvider _time;
    // The SHA-256 state of the bytes received so far stands in for the bytes: it is all the check needs, and a fleet
    // downloading one image at once would otherwise hold it once per device.
    private IncrementalHash _sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    private EntityTagHeaderValue? _etag;

    /// <param name="http">The client to download with.</param>
    /// <param name="url">The image's address.</param>
    /// <param name="token">The device token, sent as bearer.</param>
    /// <param name="size">The image's size from the notification.</param>
    /// <param name="chunkSize">Bytes per request.</param>
    /// <param name="time">For the waits (a 503's Retry-After, network retries).</param>
    public FirmwareDownload(HttpClient http, Uri url, string token, long size, int chunkSize, TimeProvider? time = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(chunkSize);
        (_http, _url, _token, Size, _chunkSize, _time) = (http, url, token, size, chunkSize, time ?? TimeProvider.System);
    }

    /// <summary>The image's size from the notification.</summary>
    public long Size { get; }

    /// <summary>Bytes received so far (the next request starts here).</summary>
    public long Received { get; private set; }

    /// <summary>Times the hub answered 503 and the download waited.</summary>
    public int Busy { get; private set; }

    /// <summary>Whether it holds the whole image.</summary>
    public bool IsComplete => Received >= Size;

    /// <summary>The SHA-256 of the bytes received so far, lowercase hex.</summary>
    public string Sha256 => Convert.ToHexStringLower(_sha.GetCurrentHash());

    /// <summary>Requests ranges until it holds at least <paramref name="until"/> bytes (at most the whole image), calling
    /// <paramref name="progress"/> with the bytes held after each response.</summary>
    /// <exception cref="FirmwareDownloadException">The hub refused, or the network stayed away.</exception>
    public async Task FetchAsync(long until, Func<long, Task>? progress, CancellationToken ct)
    {
        var failures = 0;
        while (Received < Math.Min(until, Size))
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, _url);
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _token);
            request.Headers.Range = new RangeHeaderValue(Received, Math.Min(Received + _chunkSize, Size) - 1);
            // Resume only the same image: if it changed, the hub answers with the whole new one instead of a range.
            if (_etag is not null) request.Headers.IfRange = new RangeConditionHeaderValue(_etag);
            try
            {
                using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
                if (response.StatusCode == HttpStatusCode.ServiceUnavailable)
                {
                    Busy++;
                    await Task.Delay(RetryAfter(response), _time, ct);
                    continue;
                }
                await TakeAsync(response, ct);
                failures = 0;
            }
            catch (Exception ex) when (ex is HttpRequestException or IOException or TaskCanceledException && !ct.IsCancellationRequested)
            {
                // The hub went away, or the connection broke mid-body (what arrived is kept): ask again from there.
                if (++failures > NetworkRetries) throw new FirmwareDownloadException($"network: {ex.Message}", ex);
                await Task.Delay(TimeSpan.FromMilliseconds(250 << failures), _time, ct);
            }
            if (progress is not null) await progress(Received);
        }
    }

    public void Dispose() => _sha.Dispose();

    private async Task TakeAsync(HttpResponseMessage response, CancellationToken ct)
    {
        switch (response.StatusCode)
        {
            case HttpStatusCode.PartialContent:
                if (response.Content.Headers.ContentRange?.From != Received)
                    throw new FirmwareDownloadException($"asked for bytes from {Received}, got {response.Content.Headers.ContentRange}");
                break;
            case HttpStatusCode.OK:
                // The whole image: the hub does not serve ranges, or If-Range found the image changed. Start over with it.
                _sha.Dispose();
                _sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
                Received = 0;
                _etag = null;
                break;
            default:
                throw new FirmwareDownloadException($"HTTP {(int)response.StatusCode} {response.ReasonPhrase}");
        }
        if (response.Headers.ETag is { IsWeak: false } etag) _etag = etag;
        var before = Received;
        await using var body = await response.Content.ReadAsStreamAsync(ct);
        var buffer = ArrayPool<byte>.Shared.Rent(16 * 1024);
        try
        {
            int read;
            while ((read = await body.ReadAsync(buffer, ct)) > 0)
            {
                _sha.AppendData(buffer, 0, read);
                Received += read;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
        if (Received == before) throw new FirmwareDownloadException($"the hub sent no bytes from {Received} (the image is {Size} bytes)");
    }

    private TimeSpan RetryAfter(HttpResponseMessage response)
    {
        var wait = response.Headers.RetryAfter switch
        {
            { Delta: { } delta } => delta,
            { Date: { } date } => date - _time.GetUtcNow(),
            _ => TimeSpan.FromSeconds(1),
        };
        return wait > LeastWait ? wait : LeastWait; // "Retry-After: 0" must not turn into a busy loop against a busy hub
    }
}
