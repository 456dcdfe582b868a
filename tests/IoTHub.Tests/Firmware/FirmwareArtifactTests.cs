// Firmware artifacts over the API (docs/firmware.md, "Artifacts"), on both stores: an upload is checked, hashed and
// stored as a file under {DataDirectory}/firmware; what is refused leaves no file behind; an image a campaign still
// uses cannot be deleted; Ed25519 signatures over the image's SHA-256 are checked against the configured keys.
using System.Net;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using IoTHub.Tests.Infrastructure;
using Org.BouncyCastle.Crypto;
using Org.BouncyCastle.Crypto.Generators;
using Org.BouncyCastle.Crypto.Parameters;
using Org.BouncyCastle.Crypto.Signers;
using Org.BouncyCastle.Security;

namespace IoTHub.Tests.Firmware;

/// <summary>Helpers the artifact fixtures share.</summary>
internal static class Artifacts
{
    /// <summary>A suffix for versions and ids no other test uses. It starts with a letter: an all-digit SemVer pre-release
    /// identifier with a leading zero ("1.0.0-0123abcd" is fine, "1.0.0-01234567" is not) is refused.</summary>
    public static string Unique() => "t" + Guid.NewGuid().ToString("N")[..7];

    public static HttpContent Octets(byte[] image, string contentType = "application/octet-stream")
    {
        var content = new ByteArrayContent(image);
        content.Headers.ContentType = new(contentType);
        return content;
    }

    /// <summary>A body whose length is not known in advance: sent chunked, without Content-Length.</summary>
    public static HttpContent Chunked(byte[] image)
    {
        var content = new StreamContent(new UnseekableStream(image));
        content.Headers.ContentType = new("application/octet-stream");
        return content;
    }

    public static Task<HttpResponseMessage> PostAsync(HttpClient http, HttpContent content, string version, string query = "") =>
        http.PostAsync($"/api/v1/firmware?version={Uri.EscapeDataString(version)}{query}", content);

    public static async Task<JsonNode> ProblemAsync(HttpResponseMessage response, HttpStatusCode expected)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.That(response.StatusCode, Is.EqualTo(expected), text);
        return text.Length > 0 ? JsonNode.Parse(text)! : new JsonObject();
    }

    /// <summary>What is left under the hub's firmware folder: every file name.</summary>
    public static string[] FilesOf(HubHost hub)
    {
        var dir = Path.Combine(hub.DataDirectory, "firmware");
        return Directory.Exists(dir) ? Directory.GetFiles(dir).Select(f => Path.GetFileName(f)).ToArray() : [];
    }

    public static string FileOf(HubHost hub, long id) => Path.Combine(hub.DataDirectory, "firmware", $"{id}.bin");

    private sealed class UnseekableStream(byte[] bytes) : Stream
    {
        private readonly MemoryStream _inner = new(bytes);
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => _inner.Read(buffer, offset, Math.Min(count, 1024));
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}

/// <summary>An Ed25519 key pair made for the test, and signatures the way docs/firmware.md says to make them.</summary>
internal sealed class SigningKey
{
    private readonly AsymmetricCipherKeyPair _pair;

    public SigningKey()
    {
        var generator = new Ed25519KeyPairGenerator();
        generator.Init(new Ed25519KeyGenerationParameters(new SecureRandom()));
        _pair = generator.GenerateKeyPair();
    }

    /// <summary>The raw 32-byte public key in base64, as Firmware:SigningKeys takes it.</summary>
    public string PublicKey => Convert.ToBase64String(((Ed25519PublicKeyParameters)_pair.Public).GetEncoded());

    /// <summary>A base64 signature over <paramref name="message"/>.</summary>
    public string Sign(byte[] message)
    {
        var signer = new Ed25519Signer();
        signer.Init(true, _pair.Private);
        signer.BlockUpdate(message, 0, message.Length);
        return Convert.ToBase64String(signer.GenerateSignature());
    }

    /// <summary>A signature over the image's SHA-256 digest: what the hub checks.</summary>
    public string SignImage(byte[] image) => Sign(SHA256.HashData(image));
}

[TestFixture(Store.Sqlite)]
[TestFixture(Store.Postgres)]
public sealed class FirmwareArtifactTests(Store store) : HubFixture(store)
{
    [Test]
    public async Task An_upload_is_created_with_its_size_and_lowercase_SHA_256_and_is_stored_as_a_file()
    {
        using var admin = await Hub.AdminAsync();
        var image = FirmwareCampaignTests.Image(12_345, 11);
        var u = Artifacts.Unique();
        var response = await Artifacts.PostAsync(admin, Artifacts.Octets(image), $"1.2.3-{u}", $"&hardwareModel=m-{u}&notes=first%20build");
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Created), await response.Content.ReadAsStringAsync());
        var body = await response.ReadJsonAsync();
        var id = body["id"]!.GetValue<long>();
        Assert.That(response.Headers.Location!.ToString(), Does.EndWith($"/api/v1/firmware/{id}"));
        Assert.That(body["version"]!.GetValue<string>(), Is.EqualTo($"1.2.3-{u}"));
        Assert.That(body["hardwareModel"]!.GetValue<string>(), Is.EqualTo($"m-{u}"));
        Assert.That(body["notes"]!.GetValue<string>(), Is.EqualTo("first build"));
        Assert.That(body["size"]!.GetValue<long>(), Is.EqualTo(12_345));
        var sha = body["sha256"]!.GetValue<string>();
        Assert.That(sha, Is.EqualTo(Convert.ToHexStringLower(SHA256.HashData(image))));
        Assert.That(sha, Does.Match("^[0-9a-f]{64}$"));
        Assert.That(body["signed"]!.GetValue<bool>(), Is.False);
        Assert.That(body["signingKey"], Is.Null);

        Assert.That(await File.ReadAllBytesAsync(Artifacts.FileOf(Hub, id)), Is.EqualTo(image));
        var read = await admin.GetJsonAsync($"/api/v1/firmware/{id}");
        Assert.That(read["sha256"]!.GetValue<string>(), Is.EqualTo(sha));
        var list = await admin.GetJsonAsync("/api/v1/firmware");
        Assert.That(list["items"]!.AsArray().Select(a => a!["id"]!.GetValue<long>()), Does.Contain(id));
    }

    [Test]
    public async Task A_chunked_upload_without_a_length_is_stored_whole()
    {
        using var admin = await Hub.AdminAsync();
        var image = FirmwareCampaignTests.Image(100_000, 12);
        var response = await Artifacts.PostAsync(admin, Artifacts.Chunked(image), $"1.2.4-{Artifacts.Unique()}");
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Created), await response.Content.ReadAsStringAsync());
        var body = await response.ReadJsonAsync();
        Assert.That(body["size"]!.GetValue<long>(), Is.EqualTo(100_000));
        Assert.That(body["sha256"]!.GetValue<string>(), Is.EqualTo(Convert.ToHexStringLower(SHA256.HashData(image))));
    }

    [TestCase("1.4")]
    [TestCase("v1.4.0")]
    [TestCase("1.4.0.1")]
    [TestCase("01.4.0")]
    [TestCase("latest")]
    [TestCase("")]
    public async Task A_version_that_is_not_SemVer_is_a_400_naming_version(string version)
    {
        using var admin = await Hub.AdminAsync();
        var before = Artifacts.FilesOf(Hub);
        var problem = await Artifacts.ProblemAsync(await Artifacts.PostAsync(admin, Artifacts.Octets([1, 2, 3]), version), HttpStatusCode.BadRequest);
        Assert.That(problem["errors"]!["version"], Is.Not.Null, problem.ToJsonString());
        Assert.That(Artifacts.FilesOf(Hub), Is.EquivalentTo(before), "nothing stored");
    }

    [Test]
    public async Task A_missing_version_is_a_400_naming_version()
    {
        using var admin = await Hub.AdminAsync();
        var problem = await Artifacts.ProblemAsync(await admin.PostAsync("/api/v1/firmware", Artifacts.Octets([1, 2, 3])), HttpStatusCode.BadRequest);
        Assert.That(problem["errors"]!["version"], Is.Not.Null, problem.ToJsonString());
    }

    [TestCase("application/json")]
    [TestCase("multipart/form-data; boundary=x")]
    [TestCase("text/plain")]
    public async Task An_image_that_is_not_sent_as_octet_stream_is_a_415(string contentType)
    {
        using var admin = await Hub.AdminAsync();
        var content = new ByteArrayContent([1, 2, 3]);
        content.Headers.TryAddWithoutValidation("Content-Type", contentType);
        await Artifacts.ProblemAsync(await Artifacts.PostAsync(admin, content, $"1.0.0-{Artifacts.Unique()}"), HttpStatusCode.UnsupportedMediaType);
    }

    [Test]
    public async Task The_same_version_for_the_same_model_and_profile_is_a_409_and_another_model_is_not()
    {
        using var admin = await Hub.AdminAsync();
        var u = Artifacts.Unique();
        var version = $"2.0.0-{u}";
        await FirmwareCampaignTests.UploadAsync(admin, [1, 2, 3], version, $"&hardwareModel=a-{u}");
        var files = Artifacts.FilesOf(Hub);
        await Artifacts.ProblemAsync(await Artifacts.PostAsync(admin, Artifacts.Octets([4, 5, 6]), version, $"&hardwareModel=a-{u}"), HttpStatusCode.Conflict);
        Assert.That(Artifacts.FilesOf(Hub), Is.EquivalentTo(files), "the refused image left no file");
        await FirmwareCampaignTests.UploadAsync(admin, [4, 5, 6], version, $"&hardwareModel=b-{u}");
    }

    [Test]
    public async Task An_empty_image_is_a_400_and_leaves_no_file()
    {
        using var admin = await Hub.AdminAsync();
        var files = Artifacts.FilesOf(Hub);
        var problem = await Artifacts.ProblemAsync(await Artifacts.PostAsync(admin, Artifacts.Octets([]), $"1.0.0-{Artifacts.Unique()}"), HttpStatusCode.BadRequest);
        Assert.That(problem["errors"]!["body"], Is.Not.Null, problem.ToJsonString());
        Assert.That(Artifacts.FilesOf(Hub), Is.EquivalentTo(files));
    }

    [Test]
    public async Task A_signature_on_a_hub_without_signing_keys_is_a_400_naming_signature()
    {
        using var admin = await Hub.AdminAsync();
        var image = FirmwareCampaignTests.Image(100, 13);
        var signature = Uri.EscapeDataString(new SigningKey().SignImage(image));
        var problem = await Artifacts.ProblemAsync(await Artifacts.PostAsync(admin, Artifacts.Octets(image), $"1.0.0-{Artifacts.Unique()}", $"&signature={signature}"),
            HttpStatusCode.BadRequest);
        Assert.That(problem["errors"]!["signature"], Is.Not.Null, problem.ToJsonString());
    }

    [Test]
    public async Task An_image_a_draft_campaign_uses_cannot_be_deleted_until_the_campaign_is_deleted_then_its_file_is_gone()
    {
        using var admin = await Hub.AdminAsync();
        var artifact = await FirmwareCampaignTests.UploadAsync(admin, FirmwareCampaignTests.Image(2048, 14), $"3.0.0-{Artifacts.Unique()}");
        var id = artifact["id"]!.GetValue<long>();
        Assert.That(File.Exists(Artifacts.FileOf(Hub, id)), Is.True);
        var campaign = await FirmwareCampaignTests.CreateCampaignAsync(admin, new { name = "uses it", artifactId = id, target = new { deviceIds = new[] { "nobody" } } });

        var problem = await Artifacts.ProblemAsync(await admin.DeleteAsync($"/api/v1/firmware/{id}"), HttpStatusCode.Conflict);
        Assert.That(problem.ToJsonString(), Does.Contain("campaign"));
        Assert.That(File.Exists(Artifacts.FileOf(Hub, id)), Is.True, "still there");
        Assert.That((await admin.GetAsync($"/api/v1/firmware/{id}")).StatusCode, Is.EqualTo(HttpStatusCode.OK));

        Assert.That((await admin.DeleteAsync($"/api/v1/firmware-campaigns/{campaign}")).StatusCode, Is.EqualTo(HttpStatusCode.NoContent));
        Assert.That((await admin.DeleteAsync($"/api/v1/firmware/{id}")).StatusCode, Is.EqualTo(HttpStatusCode.NoContent));
        Assert.That(File.Exists(Artifacts.FileOf(Hub, id)), Is.False, "the file is gone with the artifact");
        Assert.That((await admin.GetAsync($"/api/v1/firmware/{id}")).StatusCode, Is.EqualTo(HttpStatusCode.NotFound));
        Assert.That((await admin.DeleteAsync($"/api/v1/firmware/{id}")).StatusCode, Is.EqualTo(HttpStatusCode.NotFound));
    }

    [Test]
    public async Task A_viewer_can_read_artifacts_but_not_upload_or_delete_them()
    {
        using var admin = await Hub.AdminAsync();
        var artifact = await FirmwareCampaignTests.UploadAsync(admin, [9, 9, 9], $"4.0.0-{Artifacts.Unique()}");
        using var viewer = Hub.WithApiKey(await Hub.CreateApiKeyAsync("viewer"));
        var files = Artifacts.FilesOf(Hub);

        Assert.That((await Artifacts.PostAsync(viewer, Artifacts.Octets([1, 2, 3]), $"4.0.1-{Artifacts.Unique()}")).StatusCode, Is.EqualTo(HttpStatusCode.Forbidden));
        Assert.That((await Artifacts.PostAsync(viewer, Artifacts.Octets([1, 2, 3], "text/plain"), $"4.0.1-{Artifacts.Unique()}")).StatusCode,
            Is.EqualTo(HttpStatusCode.Forbidden), "authorization is answered before the content type");
        Assert.That((await viewer.DeleteAsync($"/api/v1/firmware/{artifact["id"]}")).StatusCode, Is.EqualTo(HttpStatusCode.Forbidden));
        Assert.That(Artifacts.FilesOf(Hub), Is.EquivalentTo(files));
        Assert.That((await viewer.GetJsonAsync($"/api/v1/firmware/{artifact["id"]}"))["version"], Is.Not.Null);

        using var anonymous = Hub.Anonymous();
        Assert.That((await Artifacts.PostAsync(anonymous, Artifacts.Octets([1, 2, 3]), $"4.0.2-{Artifacts.Unique()}")).StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized));
    }
}

/// <summary>A hub with a small image limit and one signing key, "lab".</summary>
[TestFixture(Store.Sqlite)]
[TestFixture(Store.Postgres)]
public sealed class FirmwareArtifactLimitTests(Store store) : HubFixture(store)
{
    private readonly SigningKey _lab = new();

    protected override IDictionary<string, string?> Settings => new Dictionary<string, string?>
    {
        ["Firmware:MaxArtifactBytes"] = "4096",
        ["Firmware:SigningKeys:lab"] = _lab.PublicKey,
    };

    [Test]
    public async Task An_image_over_the_limit_is_a_413_and_leaves_no_file_whether_its_length_is_announced_or_not()
    {
        using var admin = await Hub.AdminAsync();
        var image = FirmwareCampaignTests.Image(5000, 21);
        var announced = await Artifacts.PostAsync(admin, Artifacts.Octets(image), $"1.0.0-{Artifacts.Unique()}");
        await Artifacts.ProblemAsync(announced, HttpStatusCode.RequestEntityTooLarge);
        var chunked = await Artifacts.PostAsync(admin, Artifacts.Chunked(image), $"1.0.1-{Artifacts.Unique()}");
        await Artifacts.ProblemAsync(chunked, HttpStatusCode.RequestEntityTooLarge);
        var oneOver = await Artifacts.PostAsync(admin, Artifacts.Chunked(image[..4097]), $"1.0.2-{Artifacts.Unique()}");
        await Artifacts.ProblemAsync(oneOver, HttpStatusCode.RequestEntityTooLarge);

        Assert.That(Artifacts.FilesOf(Hub).Where(f => !f.EndsWith(".bin", StringComparison.Ordinal)), Is.Empty, "no temporary file left");
        var list = await admin.GetJsonAsync("/api/v1/firmware");
        Assert.That(list["items"]!.AsArray().Select(a => a!["version"]!.GetValue<string>()), Has.None.StartsWith("1.0."));
    }

    [Test]
    public async Task An_image_of_exactly_the_limit_is_taken()
    {
        using var admin = await Hub.AdminAsync();
        var artifact = await FirmwareCampaignTests.UploadAsync(admin, FirmwareCampaignTests.Image(4096, 22), $"1.1.0-{Artifacts.Unique()}");
        Assert.That(artifact["size"]!.GetValue<long>(), Is.EqualTo(4096));
        var chunked = await Artifacts.PostAsync(admin, Artifacts.Chunked(FirmwareCampaignTests.Image(4096, 23)), $"1.1.1-{Artifacts.Unique()}");
        Assert.That(chunked.StatusCode, Is.EqualTo(HttpStatusCode.Created), await chunked.Content.ReadAsStringAsync());
    }

    [Test]
    public async Task A_valid_signature_over_the_SHA_256_digest_marks_the_image_signed_by_the_key_that_verified_it()
    {
        using var admin = await Hub.AdminAsync();
        var image = FirmwareCampaignTests.Image(3000, 24);
        var artifact = await FirmwareCampaignTests.UploadAsync(admin, image, $"2.0.0-{Artifacts.Unique()}", $"&signature={Uri.EscapeDataString(_lab.SignImage(image))}");
        Assert.That(artifact["signed"]!.GetValue<bool>(), Is.True);
        Assert.That(artifact["signingKey"]!.GetValue<string>(), Is.EqualTo("lab"));
        var read = await admin.GetJsonAsync($"/api/v1/firmware/{artifact["id"]}");
        Assert.That(read["signingKey"]!.GetValue<string>(), Is.EqualTo("lab"));
    }

    private static IEnumerable<TestCaseData> BadSignatures()
    {
        yield return new TestCaseData("the image itself").SetArgDisplayNames("over the image, not its digest");
        yield return new TestCaseData("another image").SetArgDisplayNames("over another image's digest");
        yield return new TestCaseData("another key").SetArgDisplayNames("by a key the hub does not know");
        yield return new TestCaseData("not base64").SetArgDisplayNames("not base64");
        yield return new TestCaseData("short").SetArgDisplayNames("too short");
    }

    [TestCaseSource(nameof(BadSignatures))]
    public async Task A_signature_that_does_not_verify_is_a_400_naming_signature_and_leaves_no_file(string how)
    {
        using var admin = await Hub.AdminAsync();
        var image = FirmwareCampaignTests.Image(3000, 25);
        var signature = how switch
        {
            "the image itself" => _lab.Sign(image),
            "another image" => _lab.SignImage(FirmwareCampaignTests.Image(3000, 26)),
            "another key" => new SigningKey().SignImage(image),
            "not base64" => "not*base64!",
            _ => Convert.ToBase64String(new byte[10]),
        };
        var files = Artifacts.FilesOf(Hub);
        var version = $"2.1.0-{Artifacts.Unique()}";
        var problem = await Artifacts.ProblemAsync(await Artifacts.PostAsync(admin, Artifacts.Octets(image), version, $"&signature={Uri.EscapeDataString(signature)}"),
            HttpStatusCode.BadRequest);
        Assert.That(problem["errors"]!["signature"], Is.Not.Null, problem.ToJsonString());
        Assert.That(Artifacts.FilesOf(Hub), Is.EquivalentTo(files));
        // Refused, not stored: the same version can be uploaded properly.
        await FirmwareCampaignTests.UploadAsync(admin, image, version, $"&signature={Uri.EscapeDataString(_lab.SignImage(image))}");
    }

    [Test]
    public async Task Without_RequireSignature_an_unsigned_image_is_still_taken()
    {
        using var admin = await Hub.AdminAsync();
        var artifact = await FirmwareCampaignTests.UploadAsync(admin, [1, 2, 3], $"2.2.0-{Artifacts.Unique()}");
        Assert.That(artifact["signed"]!.GetValue<bool>(), Is.False);
    }
}

/// <summary>A hub that takes signed images only.</summary>
[TestFixture(Store.Sqlite)]
[TestFixture(Store.Postgres)]
public sealed class FirmwareRequireSignatureTests(Store store) : HubFixture(store)
{
    private readonly SigningKey _lab = new();

    protected override IDictionary<string, string?> Settings => new Dictionary<string, string?>
    {
        ["Firmware:SigningKeys:lab"] = _lab.PublicKey,
        ["Firmware:RequireSignature"] = "true",
    };

    [Test]
    public async Task An_unsigned_image_is_refused_naming_signature_and_a_signed_one_is_taken()
    {
        using var admin = await Hub.AdminAsync();
        var image = FirmwareCampaignTests.Image(1000, 31);
        var version = $"1.0.0-{Artifacts.Unique()}";
        var problem = await Artifacts.ProblemAsync(await Artifacts.PostAsync(admin, Artifacts.Octets(image), version), HttpStatusCode.BadRequest);
        Assert.That(problem["errors"]!["signature"], Is.Not.Null, problem.ToJsonString());
        Assert.That(Artifacts.FilesOf(Hub), Is.Empty);

        var artifact = await FirmwareCampaignTests.UploadAsync(admin, image, version, $"&signature={Uri.EscapeDataString(_lab.SignImage(image))}");
        Assert.That(artifact["signingKey"]!.GetValue<string>(), Is.EqualTo("lab"));
    }
}
