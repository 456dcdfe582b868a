// Telemetry values as the device page shows and charts them (a stored value is a number, a boolean or a string).
namespace IoTHub.Web.Components.Pages.DeviceDetail;

internal static class TelemetryText
{
    public static double? Number(object? v) => v switch { double d => d, float f => f, long l => l, int i => i, decimal m => (double)m, _ => null };

    public static string Value(object? v) => v switch
    {
        double d => d.ToString("0.###", System.Globalization.CultureInfo.InvariantCulture),
        bool b => b ? "true" : "false",
        null => "–",
        _ => v.ToString() ?? "",
    };
}
