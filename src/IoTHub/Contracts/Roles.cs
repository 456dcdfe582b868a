namespace IoTHub.Contracts;

/// <summary>Viewers read; operators also manage devices and send commands; admins also manage users, keys and settings.</summary>
public static class Roles
{
    public const string Admin = "admin";
    public const string Operator = "operator";
    public const string Viewer = "viewer";
    public static readonly string[] All = [Admin, Operator, Viewer];

    public static bool IsValid(string? role) => role is Admin or Operator or Viewer;
}
