using IoTHub.Simulator.Firmware;

namespace IoTHub.Tests.Simulator;

public sealed class FirmwareDownloadTests
{
    private const string Token = "device-token";

    [Test]
    public async Task Downloads_the_image_in_ranges_of_the_chunk_size_with_the_device_token_and_hashes_it()
    {
        await using var server = await ImageServer.StartAsync(10_000);
        using var http = new HttpClient();
        using var download = new FirmwareDownload(http, server.ImageUrl, Token, server.Image.Length, chunkSize: 4096);
        var progress = new List<long>();

        await download.FetchAsync(server.Image.Length, bytes => { progress.Add(bytes); return Task.CompletedTask; }, CancellationToken.None);

        Assert.That(server.Ranges, Is.EqualTo(new[] { "bytes=0-4095", "bytes=4096-8191", "bytes=8192-9999" }));
        Assert.That(server.Authorizations, Is.All.EqualTo("Bearer " + Token));
        Assert.That(progress, Is.EqualTo(new long[] { 4096, 8192, 10_000 }));
        Assert.That(download.IsComplete, Is.True);
        Assert.That(download.Sha256, Is.EqualTo(server.Sha256));
    }

    [Test]
    public async Task Stopped_halfway_it_resumes_with_the_range_after_the_bytes_it_holds()
    {
        await using var server = await ImageServer.StartAsync(10_000);
        using var http = new HttpClient();
        using var download = new FirmwareDownload(http, server.ImageUrl, Token, server.Image.Length, chunkSize: 4096);

        await download.FetchAsync(5_000, null, CancellationToken.None);
        var held = download.Received;
        await download.FetchAsync(server.Image.Length, null, CancellationToken.None);

        Assert.That(held, Is.EqualTo(8192), "whole chunks, up to the first past the stop");
        Assert.That(server.Ranges, Is.EqualTo(new[] { "bytes=0-4095", "bytes=4096-8191", "bytes=8192-9999" }));
        Assert.That(download.Sha256, Is.EqualTo(server.Sha256));
    }

    [Test]
    public async Task A_connection_cut_mid_body_keeps_the_bytes_that_arrived_and_asks_again_from_the_next_one()
    {
        await using var server = await ImageServer.StartAsync(10_000);
        server.BreakOnceAt(5_000);
        using var http = new HttpClient();
        using var download = new FirmwareDownload(http, server.ImageUrl, Token, server.Image.Length, chunkSize: 4096);

        await download.FetchAsync(server.Image.Length, null, CancellationToken.None);

        Assert.That(server.Ranges, Is.EqualTo(new[] { "bytes=0-4095", "bytes=4096-8191", "bytes=5000-9095", "bytes=9096-9999" }));
        Assert.That(download.Sha256, Is.EqualTo(server.Sha256));
    }

    [Test]
    public async Task A_503_is_waited_out_for_as_long_as_its_Retry_After_says_then_the_same_range_is_asked_again()
    {
        await using var server = await ImageServer.StartAsync(3_000);
        server.AnswerBusy(1);
        using var http = new HttpClient();
        using var download = new FirmwareDownload(http, server.ImageUrl, Token, server.Image.Length, chunkSize: 4096);
        var started = DateTime.UtcNow;

        await download.FetchAsync(server.Image.Length, null, CancellationToken.None);

        Assert.That(DateTime.UtcNow - started, Is.GreaterThanOrEqualTo(TimeSpan.FromSeconds(0.95)));
        Assert.That(download.Busy, Is.EqualTo(1));
        Assert.That(server.Ranges, Is.EqualTo(new[] { "bytes=0-2999", "bytes=0-2999" }));
        Assert.That(download.Sha256, Is.EqualTo(server.Sha256));
    }

    [Test]
    public async Task A_refused_download_fails_with_the_status()
    {
        await using var server = await ImageServer.StartAsync(3_000);
        using var http = new HttpClient();
        using var download = new FirmwareDownload(http, new Uri(server.Address, "/api/v1/devices/other/firmware/3"), Token, 3_000, chunkSize: 4096);

        var failure = Assert.ThrowsAsync<FirmwareDownloadException>(() => download.FetchAsync(3_000, null, CancellationToken.None));

        Assert.That(failure!.Message, Does.StartWith("HTTP 404"));
    }

    [Test]
    public async Task A_different_image_than_announced_hashes_differently()
    {
        await using var server = await ImageServer.StartAsync(3_000);
        using var http = new HttpClient();
        // Announced smaller than it is: the device asks for what it was told and so holds a different image.
        using var download = new FirmwareDownload(http, server.ImageUrl, Token, 2_000, chunkSize: 4096);

        await download.FetchAsync(2_000, null, CancellationToken.None);

        Assert.That(download.Received, Is.EqualTo(2_000));
        Assert.That(download.Sha256, Is.Not.EqualTo(server.Sha256));
    }
}
