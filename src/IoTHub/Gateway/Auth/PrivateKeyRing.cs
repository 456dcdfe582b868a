// The data-protection keys sign and encrypt the UI's cookies and antiforgery tokens: whoever reads them can forge a
// signed-in admin. ASP.NET Core's file repository creates its folder and key files with the process's default modes
// (0755 / 0644 under the usual umask); this one keeps the folder 0700 and makes each key file 0600 as it is stored.
using System.Xml.Linq;
using IoTHub.Storage;
using Microsoft.AspNetCore.DataProtection.Repositories;

namespace IoTHub.Gateway.Auth;

internal sealed class PrivateKeyRing : IDeletableXmlRepository
{
    private readonly DirectoryInfo _directory;
    private readonly FileSystemXmlRepository _files;

    /// <summary>Keeps the keys in <c>keys</c> under the data directory. This may run before the data directory's own
    /// check at start (the key ring is built with the hosted services), so it creates that directory 0700 too.</summary>
    public PrivateKeyRing(string dataDirectory, ILoggerFactory loggers)
    {
        _directory = new DirectoryInfo(Path.Combine(dataDirectory, "keys"));
        OwnerOnly.CreateDirectory(dataDirectory);
        OwnerOnly.CreateDirectory(_directory.FullName);
        _files = new FileSystemXmlRepository(_directory, loggers);
    }

    public IReadOnlyCollection<XElement> GetAllElements() => _files.GetAllElements();

    public void StoreElement(XElement element, string friendlyName)
    {
        _files.StoreElement(element, friendlyName);
        // The repository writes a temporary file and renames it; inside the 0700 folder nobody else could reach it meanwhile.
        foreach (var file in _directory.EnumerateFiles("*.xml")) OwnerOnly.Tighten(file.FullName);
    }

    public bool DeleteElements(Action<IReadOnlyCollection<IDeletableElement>> chooseElements) => _files.DeleteElements(chooseElements);
}
