using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace IoTHub.Tests.Infrastructure;

public static class Json
{
    public static async Task<JsonNode> ReadJsonAsync(this HttpResponseMessage response)
    {
        var text = await response.Content.ReadAsStringAsync();
        return JsonNode.Parse(text) ?? throw new AssertionException("empty JSON body");
    }

    public static async Task<JsonNode> GetJsonAsync(this HttpClient http, string url)
    {
        var response = await http.GetAsync(url);
        Assert.That((int)response.StatusCode, Is.EqualTo(200), $"GET {url}: {await response.Content.ReadAsStringAsync()}");
        return await response.ReadJsonAsync();
    }

    public static StringContent Body(string json, string contentType = "application/json") => new(json, System.Text.Encoding.UTF8, contentType);

    public static JsonContent Of(object value) => JsonContent.Create(value, options: new JsonSerializerOptions(JsonSerializerDefaults.Web));
}
