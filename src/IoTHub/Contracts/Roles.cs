namespace IoTHub.Contracts;

/// <summary>Viewers read; operators also manage devices and send commands; admins also manage users, keys and settings.</summary>
public static class Roles
{
    /// <summary><c>admin</c>: everything, including users, API keys, the audit log and retention runs.</summary>
    public const string Admin = "admin";

    /// <summary><c>operator</c>: what a viewer may, and manage devices, profiles, desired state and commands.</summary>
    public const string Operator = "operator";

    /// <summary><c>viewer</c>: read only (devices, telemetry, commands, dead letters); on MQTT, subscribe only.</summary>
    public const string Viewer = "viewer";

    /// <summary>Every role, most powerful first.</summary>
    public static readonly string[] All = [Admin, Operator, Viewer];

    /// <summary>True for exactly <c>admin</c>, <c>operator</c> or <c>viewer</c> (case matters).</summary>
    public static bool IsValid(string? role) => role is Admin or Operator or Viewer;
}
