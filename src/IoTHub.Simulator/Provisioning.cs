// Creates the simulated devices through the REST API's CSV import (or reads id,token pairs from a CSV).
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

    /// <summary>Creates <paramref name="count"/> devices named prefix-0..n in one CSV import; devices left from an earlier run
    /// get a new token instead.</summary>
    public static async Task<List<SimDevice>> CreateAsync(HttpClient http, string bearer, string prefix, int count, CancellationToken ct)
    {
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
        var csv = "id,name,profile,tags\n" + string.Join('\n', Enumerable.Range(0, count).Select(i => $"{prefix}-{i},,,simulated"));
        var response = await http.PostAsync("/api/v1/devices/import", new StringContent(csv, System.Text.Encoding.UTF8, "text/csv"), ct);
        response.EnsureSuccessStatusCode();
        var report = await response.Content.ReadFromJsonAsync<JsonElement>(ct);
        var tokens = new System.Collections.Concurrent.ConcurrentDictionary<string, string>();
        var existing = new List<string>();
        foreach (var line in report.GetProperty("lines").EnumerateArray())
        {
            var id = line.GetProperty("id").GetString()!;
            if (line.GetProperty("created").GetBoolean()) tokens[id] = line.GetProperty("token").GetString()!;
            else existing.Add(id);
        }
        await Parallel.ForEachAsync(existing, new ParallelOptions { MaxDegreeOfParallelism = 8, CancellationToken = ct }, async (id, token) =>
        {
            for (var attempt = 0; ; attempt++)
            {
                var rotated = await http.PostAsync($"/api/v1/devices/{id}/rotate-token", null, token);
                if ((int)rotated.StatusCode == 429 && attempt < 50)
                {
                    await Task.Delay(rotated.Headers.RetryAfter?.Delta ?? TimeSpan.FromSeconds(1), token); // the API's per-user rate limit
                    continue;
                }
                rotated.EnsureSuccessStatusCode();
                tokens[id] = (await rotated.Content.ReadFromJsonAsync<JsonElement>(token)).GetProperty("token").GetString()!;
                return;
            }
        });
        return Enumerable.Range(0, count).Select(i => $"{prefix}-{i}").Select(id => new SimDevice(id, tokens[id])).ToList();
    }

    public static List<SimDevice> FromCsv(string path) => File.ReadLines(path)
        .Select(l => l.Split(',', StringSplitOptions.TrimEntries))
        .Where(p => p.Length >= 2 && p[0] is { Length: > 0 } && p[0] != "id")
        .Select(p => new SimDevice(p[0], p[1])).ToList();
}
