// Creates the simulated devices through the REST API (or reads id,token pairs from a CSV).
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;

namespace IoTHub.Simulator;

public static class Provisioning
{
    public static async Task<string> LoginAsync(HttpClient http, string username, string password, CancellationToken ct)
    {
        var response = await http.PostAsJsonAsync("/api/v1/auth/token", new { username, password }, ct);
        response.EnsureSuccessStatusCode();
        return (await response.Content.ReadFromJsonAsync<JsonElement>(ct)).GetProperty("token").GetString()!;
    }

    /// <summary>Creates <paramref name="count"/> devices named prefix-0..n (replacing any left from an earlier run).</summary>
    public static async Task<List<SimDevice>> CreateAsync(HttpClient http, string bearer, string prefix, int count, CancellationToken ct)
    {
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
        var devices = new SimDevice[count];
        await Parallel.ForEachAsync(Enumerable.Range(0, count), new ParallelOptions { MaxDegreeOfParallelism = 16, CancellationToken = ct }, async (i, token) =>
        {
            var id = $"{prefix}-{i}";
            var response = await http.PostAsJsonAsync("/api/v1/devices", new { id, tags = new[] { "simulated" } }, token);
            if ((int)response.StatusCode == 409)
            {
                var rotated = await http.PostAsync($"/api/v1/devices/{id}/rotate-token", null, token);
                rotated.EnsureSuccessStatusCode();
                devices[i] = new SimDevice(id, (await rotated.Content.ReadFromJsonAsync<JsonElement>(token)).GetProperty("token").GetString()!);
                return;
            }
            response.EnsureSuccessStatusCode();
            devices[i] = new SimDevice(id, (await response.Content.ReadFromJsonAsync<JsonElement>(token)).GetProperty("token").GetString()!);
        });
        return devices.ToList();
    }

    public static List<SimDevice> FromCsv(string path) => File.ReadLines(path)
        .Select(l => l.Split(',', StringSplitOptions.TrimEntries))
        .Where(p => p.Length >= 2 && p[0] is { Length: > 0 } && p[0] != "id")
        .Select(p => new SimDevice(p[0], p[1])).ToList();
}
