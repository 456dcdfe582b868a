// Firmware images: upload (streamed to {DataDirectory}/firmware while its SHA-256 is computed, never held whole in
// memory), list, read, delete. The file is written under a temporary name and renamed once its row committed, so a
// crash leaves no row without a file; a temporary file left by a crash is removed at the next upload.
using System.Buffers;
using System.Security.Cryptography;
using IoTHub.Contracts;
using IoTHub.Storage;
using Mediator;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Semver;

namespace IoTHub.Firmware.Artifacts;

/// <summary>A firmware image as the API shows it.</summary>
/// <param name="Id">Its id (<c>/api/v1/firmware/{id}</c>).</param>
/// <param name="Version">SemVer 2.0.0, e.g. <c>1.4.0</c> or <c>2.0.0-rc.1</c>.</param>
/// <param name="HardwareModel">The hardware model it fits, or null for any.</param>
/// <param name="Profile">The device profile it fits, or null for any.</param>
/// <param name="Notes">Release notes.</param>
/// <param name="Size">Bytes.</param>
/// <param name="Sha256">Lowercase hex SHA-256 of the image, computed by the hub.</param>
/// <param name="Signed">An Ed25519 signature over the SHA-256 was checked.</param>
/// <param name="SigningKey">The name of the key in <c>Firmware:SigningKeys</c> that verified it.</param>
/// <param name="CreatedAt">When it was uploaded.</param>
/// <param name="CreatedBy">Who uploaded it.</param>
public sealed record FirmwareArtifactView(long Id, string Version, string? HardwareModel, string? Profile, string? Notes, long Size,
    string Sha256, bool Signed, string? SigningKey, DateTimeOffset CreatedAt, string? CreatedBy)
{
    internal static FirmwareArtifactView Of(FirmwareArtifact a) => new(a.Id, a.Version, Blank(a.HardwareModel), Blank(a.ProfileId), a.Notes,
        a.Size, a.Sha256, a.SigningKey is not null, a.SigningKey, UnixTime.ToDateTime(a.CreatedAt), a.CreatedBy);

    private static string? Blank(string s) => s.Length == 0 ? null : s;
}

/// <summary>Upload an image. The body is read once, as it arrives.</summary>
/// <param name="Body">The image bytes.</param>
/// <param name="Version">SemVer 2.0.0.</param>
/// <param name="HardwareModel">Optional hardware model it fits.</param>
/// <param name="Profile">Optional device profile it fits.</param>
/// <param name="Notes">Optional release notes, at most 4,000 characters.</param>
/// <param name="Signature">Optional base64 Ed25519 signature over the image's SHA-256.</param>
/// <param name="Actor">Who uploads it.</param>
public sealed record UploadFirmwareCommand(Stream Body, string? Version, string? HardwareModel, string? Profile, string? Notes, string? Signature, string? Actor)
    : IRequest<UploadFirmwareResult>;

/// <summary>How an upload ended.</summary>
public enum UploadFirmwareOutcome
{
    /// <summary>Stored.</summary>
    Created,
    /// <summary>A field is wrong (<see cref="UploadFirmwareResult.Errors"/>).</summary>
    Invalid,
    /// <summary>The same version for the same model and profile exists.</summary>
    Conflict,
    /// <summary>Larger than <c>Firmware:MaxArtifactBytes</c>.</summary>
    TooLarge,
}

/// <summary>The outcome, the stored artifact, and each bad field.</summary>
public sealed record UploadFirmwareResult(UploadFirmwareOutcome Outcome, FirmwareArtifactView? Artifact, Dictionary<string, string[]> Errors);

/// <summary>Every artifact, newest first.</summary>
public sealed record ListFirmwareArtifactsQuery : IRequest<IReadOnlyList<FirmwareArtifactView>>;

/// <summary>One artifact, or null.</summary>
public sealed record GetFirmwareArtifactQuery(long Id) : IRequest<FirmwareArtifactView?>;

/// <summary>Delete an artifact and its file.</summary>
public sealed record DeleteFirmwareArtifactCommand(long Id) : IRequest<DeleteFirmwareArtifactOutcome>;

/// <summary>How a delete ended.</summary>
public enum DeleteFirmwareArtifactOutcome
{
    /// <summary>Gone.</summary>
    Deleted,
    /// <summary>No such artifact.</summary>
    NotFound,
    /// <summary>A draft, running or paused campaign uses it.</summary>
    InUse,
}

internal sealed class ArtifactCatalog(HubDb db, IOptions<FirmwareOptions> options, ArtifactFiles files, ImageSignature signatures, TimeProvider time,
    ILogger<ArtifactCatalog> log) :
    IRequestHandler<UploadFirmwareCommand, UploadFirmwareResult>, IRequestHandler<ListFirmwareArtifactsQuery, IReadOnlyList<FirmwareArtifactView>>,
    IRequestHandler<GetFirmwareArtifactQuery, FirmwareArtifactView?>, IRequestHandler<DeleteFirmwareArtifactCommand, DeleteFirmwareArtifactOutcome>,
    IRequestHandler<GetFirmwareDownload, FirmwareDownload?>
{
    public async ValueTask<UploadFirmwareResult> Handle(UploadFirmwareCommand c, CancellationToken ct)
    {
        var errors = new Dictionary<string, string[]>();
        if (string.IsNullOrWhiteSpace(c.Version)) errors["version"] = ["version is required (SemVer, e.g. 1.4.0)"];
        else if (c.Version.Length > 128 || !SemVersion.TryParse(c.Version, SemVersionStyles.Strict, out _))
            errors["version"] = [$"'{SafeText.Escaped(c.Version, 80)}' is not a semantic version (semver.org 2.0.0, e.g. 1.4.0 or 2.0.0-rc.1)"];
        if (!string.IsNullOrEmpty(c.HardwareModel) && !Identifier.IsValid(c.HardwareModel)) errors["hardwareModel"] = [$"a hardware model is {Identifier.Rule}"];
        if (!string.IsNullOrEmpty(c.Profile) && !Identifier.IsValid(c.Profile)) errors["profile"] = [$"a profile id is {Identifier.Rule}"];
        if (c.Notes is { Length: > 4000 }) errors["notes"] = ["notes are at most 4,000 characters"];
        byte[]? signature = null;
        if (!string.IsNullOrEmpty(c.Signature))
        {
            if (!signatures.HasKeys) errors["signature"] = ["the hub has no signing keys (Firmware:SigningKeys) to check a signature with"];
            else try { signature = Convert.FromBase64String(c.Signature); }
            catch (FormatException) { errors["signature"] = ["the signature is not base64"]; }
        }
        else if (options.Value.RequireSignature) errors["signature"] = ["this hub accepts signed images only (Firmware:RequireSignature)"];
        if (errors.Count > 0) return new(UploadFirmwareOutcome.Invalid, null, errors);

        var upload = await files.ReceiveAsync(c.Body, options.Value.MaxArtifactBytes, ct);
        if (upload is null) return new(UploadFirmwareOutcome.TooLarge, null, errors);
        try
        {
            if (upload.Size == 0) return new(UploadFirmwareOutcome.Invalid, null, new() { ["body"] = ["the image is empty"] });
            string? key = null;
            if (signature is not null && (key = signatures.Verify(upload.Sha256, signature)) is null)
                return new(UploadFirmwareOutcome.Invalid, null, new() { ["signature"] = ["the signature does not verify with any key in Firmware:SigningKeys (Ed25519 over the image's SHA-256)"] });
            var row = new FirmwareArtifact
            {
                Version = c.Version!, HardwareModel = c.HardwareModel ?? "", ProfileId = c.Profile ?? "", Notes = string.IsNullOrEmpty(c.Notes) ? null : SafeText.Storable(c.Notes),
                Size = upload.Size, Sha256 = Convert.ToHexStringLower(upload.Sha256), SigningKey = key, CreatedAt = time.NowMs(), CreatedBy = c.Actor,
            };
            if (await db.Set<FirmwareArtifact>().AnyAsync(a => a.Version == row.Version && a.HardwareModel == row.HardwareModel && a.ProfileId == row.ProfileId, ct))
                return new(UploadFirmwareOutcome.Conflict, null, errors);
            db.Add(row);
            try { await db.SaveChangesAsync(ct); }
            catch (DbUpdateException) { return new(UploadFirmwareOutcome.Conflict, null, errors); }
            files.Keep(upload, row.Id);
            upload = null;
            log.LogInformation("Stored firmware {Version} as artifact {ArtifactId}: {Size} bytes, SHA-256 {Sha256}", row.Version, row.Id, row.Size, row.Sha256);
            return new(UploadFirmwareOutcome.Created, FirmwareArtifactView.Of(row), errors);
        }
        finally
        {
            if (upload is not null) files.Discard(upload);
        }
    }

    public async ValueTask<IReadOnlyList<FirmwareArtifactView>> Handle(ListFirmwareArtifactsQuery q, CancellationToken ct) =>
        (await db.Set<FirmwareArtifact>().AsNoTracking().OrderByDescending(a => a.Id).ToListAsync(ct)).Select(FirmwareArtifactView.Of).ToList();

    public async ValueTask<FirmwareArtifactView?> Handle(GetFirmwareArtifactQuery q, CancellationToken ct) =>
        await db.Set<FirmwareArtifact>().AsNoTracking().FirstOrDefaultAsync(a => a.Id == q.Id, ct) is { } a ? FirmwareArtifactView.Of(a) : null;

    public async ValueTask<DeleteFirmwareArtifactOutcome> Handle(DeleteFirmwareArtifactCommand c, CancellationToken ct)
    {
        if (!await db.Set<FirmwareArtifact>().AnyAsync(a => a.Id == c.Id, ct)) return DeleteFirmwareArtifactOutcome.NotFound;
        if (await db.Set<FirmwareCampaign>().AnyAsync(x => x.ArtifactId == c.Id
                && (x.State == CampaignStates.Draft || x.State == CampaignStates.Running || x.State == CampaignStates.Paused), ct))
            return DeleteFirmwareArtifactOutcome.InUse;
        await db.Set<FirmwareArtifact>().Where(a => a.Id == c.Id).ExecuteDeleteAsync(ct);
        files.Delete(c.Id);
        return DeleteFirmwareArtifactOutcome.Deleted;
    }

    public async ValueTask<FirmwareDownload?> Handle(GetFirmwareDownload q, CancellationToken ct)
    {
        // Only a device with an update of this image under way may fetch it.
        var allowed = await (from e in db.Set<CampaignDevice>()
                             join x in db.Set<FirmwareCampaign>() on e.CampaignId equals x.Id
                             where e.DeviceId == q.DeviceId && e.Active == 1 && x.ArtifactId == q.ArtifactId
                             select e.CampaignId).AnyAsync(ct);
        if (!allowed) return null;
        var a = await db.Set<FirmwareArtifact>().AsNoTracking().FirstOrDefaultAsync(x => x.Id == q.ArtifactId, ct);
        return a is null ? null : new FirmwareDownload(files.PathOf(a.Id), a.Sha256, a.Size, UnixTime.ToDateTime(a.CreatedAt));
    }
}

/// <summary>The image files under <c>{DataDirectory}/firmware</c>.</summary>
internal sealed class ArtifactFiles(IOptions<DataLocation> data)
{
    private string Directory => Path.Combine(data.Value.Directory, "firmware");

    public string PathOf(long id) => Path.Combine(Directory, $"{id}.bin");

    /// <summary>An image received under a temporary name.</summary>
    public sealed record Upload(string TempPath, long Size, byte[] Sha256);

    /// <summary>Streams <paramref name="body"/> to a temporary file, hashing as it goes; null (and no file) when it grows
    /// beyond <paramref name="max"/> bytes.</summary>
    public async Task<Upload?> ReceiveAsync(Stream body, long max, CancellationToken ct)
    {
        OwnerOnly.CreateDirectory(Directory);
        var temp = Path.Combine(Directory, $"upload-{Guid.NewGuid():N}.tmp");
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = ArrayPool<byte>.Shared.Rent(81920);
        long size = 0;
        try
        {
            var fileOptions = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Options = FileOptions.Asynchronous };
            if (!OperatingSystem.IsWindows()) fileOptions.UnixCreateMode = OwnerOnly.FileMode;
            await using (var file = new FileStream(temp, fileOptions))
            {
                int n;
                while ((n = await body.ReadAsync(buffer, ct)) > 0)
                {
                    size += n;
                    if (size > max)
                    {
                        file.Close();
                        File.Delete(temp);
                        return null;
                    }
                    hash.AppendData(buffer, 0, n);
                    await file.WriteAsync(buffer.AsMemory(0, n), ct);
                }
            }
            return new Upload(temp, size, hash.GetHashAndReset());
        }
        catch
        {
            File.Delete(temp);
            throw;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    public void Keep(Upload upload, long id) => File.Move(upload.TempPath, PathOf(id), overwrite: true);

    public void Discard(Upload upload) => File.Delete(upload.TempPath);

    public void Delete(long id) => File.Delete(PathOf(id));
}
