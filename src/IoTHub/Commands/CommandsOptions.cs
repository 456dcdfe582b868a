using System.ComponentModel.DataAnnotations;

namespace IoTHub.Commands;

/// <summary>Section <c>Commands</c>: how long callers wait, how long queued commands live, how big messages may be.</summary>
public sealed class CommandsOptions
{
    /// <summary>The configuration section: <c>Commands</c>.</summary>
    public const string SectionName = "Commands";

    /// <summary>How long <c>POST /devices/{id}/commands</c> waits for the device's response when the request names no timeout.</summary>
    [Range(1, 3600)]
    public int DefaultTimeoutSeconds { get; set; } = 30;

    /// <summary>The longest wait a request may ask for.</summary>
    [Range(1, 3600)]
    public int MaxTimeoutSeconds { get; set; } = 300;

    /// <summary>How long a command queued for an offline device (<c>deliverWhenOnline</c>) lives when the request names no expiry.</summary>
    [Range(1, 30 * 86400)]
    public int DefaultExpirySeconds { get; set; } = 86400;

    /// <summary>The longest expiry a request may ask for.</summary>
    [Range(1, 365 * 86400)]
    public int MaxExpirySeconds { get; set; } = 30 * 86400;

    /// <summary>Largest command parameters, command response, desired or reported state, in UTF-8 bytes.</summary>
    [Range(256, 1024 * 1024)]
    public int MaxJsonBytes { get; set; } = 64 * 1024;

    /// <summary>How often queued commands past their expiry are marked <c>expired</c>.</summary>
    public TimeSpan ExpiryCheckInterval { get; set; } = TimeSpan.FromSeconds(5);
}
