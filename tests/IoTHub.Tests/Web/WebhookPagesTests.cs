// The webhook pages against the real hub and a receiver on 127.0.0.1 (so the hub runs with
// Webhooks:AllowPrivateNetworks=true): register an endpoint, see its secret once, test it, follow the delivery log,
// replay; other roles never see the pages; both pages fit a phone.
using System.Net.Http.Json;
using IoTHub.Tests.Infrastructure;
using IoTHub.Tests.Webhooks;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace IoTHub.Tests.Web;

[TestFixture(Store.Sqlite)]
public sealed class WebhookPagesTests(Store store) : BrowserFixture(store)
{
    private WebhookReceiver _receiver = null!;

    protected override IDictionary<string, string?> Settings => new Dictionary<string, string?>
    {
        ["Webhooks:AllowPrivateNetworks"] = "true",
        ["Webhooks:PollInterval"] = "00:00:00.5",
        ["Webhooks:RequestTimeout"] = "00:00:02",
    };

    [OneTimeSetUp]
    public async Task StartReceiver() => _receiver = await WebhookReceiver.StartAsync();

    [OneTimeTearDown]
    public async Task StopReceiver() => await _receiver.DisposeAsync();

    private static string NewPath() => "ui-" + Guid.NewGuid().ToString("N")[..10];

    private static ILocator Row(IPage page, string url) => page.Locator("tr[data-endpoint]").Filter(new() { HasText = url });

    [Test]
    public async Task An_admin_registers_an_endpoint_sees_its_secret_once_tests_it_and_replays_the_delivery()
    {
        var path = NewPath();
        var url = _receiver.Url(path);
        var page = await SignedInAsync();
        await page.GetByRole(AriaRole.Navigation, new() { Name = "Main" }).GetByRole(AriaRole.Link, new() { Name = "Webhooks" }).ClickAsync();
        await ExpectAddressAsync(page, "/webhooks");
        await WaitForCircuitAsync(page);

        // The API's validator speaks next to the field.
        await page.GetByLabel("URL").FillAsync("ftp://example.com/hook");
        await page.GetByRole(AriaRole.Button, new() { Name = "Create endpoint" }).ClickAsync();
        await Expect(page.GetByTestId("url-error")).ToBeVisibleAsync();

        await page.GetByLabel("URL").FillAsync(url);
        await page.GetByLabel("device.online").CheckAsync();
        await page.GetByLabel("Description").FillAsync("Browser test receiver");
        await page.GetByRole(AriaRole.Button, new() { Name = "Create endpoint" }).ClickAsync();
        await Expect(page.GetByTestId("url-error")).ToHaveCountAsync(0);
        await Expect(page.GetByText("You will not see this secret again")).ToBeVisibleAsync();
        var secret = await page.GetByTestId("webhook-secret").InnerTextAsync();
        Assert.That(secret, Does.StartWith("whsec_"));
        await Expect(Row(page, url)).ToContainTextAsync("device.online");
        await Expect(Row(page, url)).ToContainTextAsync("enabled");
        await ScreenshotAsync(page, "webhook-created-secret-once");

        await page.ReloadAsync();
        await WaitForCircuitAsync(page);
        await Expect(Row(page, url)).ToBeVisibleAsync();
        Assert.That(await page.GetByTestId("webhook-secret").CountAsync(), Is.Zero, "the secret is not shown after a reload");
        Assert.That(await page.ContentAsync(), Does.Not.Contain(secret));

        await Row(page, url).GetByRole(AriaRole.Button, new() { Name = "Send test event" }).ClickAsync();
        await Expect(Row(page, url).GetByTestId("test-outcome")).ToContainTextAsync("succeeded", new() { Timeout = 15_000 });
        var first = (await _receiver.WaitForAsync(r => r.Any(x => x.Path == "/" + path), what: "the test event")).Single(x => x.Path == "/" + path);
        Assert.That(first.Type, Is.EqualTo("webhook.test"));
        Assert.That(StandardWebhooksVerifier.Verify(secret, first.Id, first.Timestamp, first.Body, first.Signature, DateTimeOffset.UtcNow), Is.True,
            "the delivery is signed with the secret the page showed");
        await ScreenshotAsync(page, "webhook-test-succeeded");

        await Row(page, url).GetByRole(AriaRole.Link, new() { Name = "Delivery log" }).ClickAsync();
        await ExpectAddressAsync(page, "/webhooks/", numberedPage: true);
        await WaitForCircuitAsync(page);
        var log = page.GetByTestId("deliveries");
        await Expect(log.GetByTestId("delivery-status")).ToHaveTextAsync(["succeeded"]);
        await Expect(log.GetByTestId("webhook-id")).ToHaveTextAsync([first.Id!]);
        await Expect(log).ToContainTextAsync("webhook.test");
        await Expect(log).ToContainTextAsync("200 OK");

        await log.GetByRole(AriaRole.Button, new() { Name = "Replay" }).ClickAsync();
        var both = await _receiver.WaitForAsync(r => r.Count(x => x.Path == "/" + path) == 2, what: "the replay");
        Assert.That(both.Where(x => x.Path == "/" + path).Select(x => x.Id), Is.EqualTo(new[] { first.Id, first.Id }), "a replay carries the same webhook-id");
        // The live log shows the replay without a reload, newest first.
        await Expect(log.GetByTestId("delivery-status")).ToHaveTextAsync(["succeeded", "succeeded"], new() { Timeout = 15_000 });
        await Expect(log.GetByTestId("webhook-id")).ToHaveTextAsync([first.Id!, first.Id!]);
        await ScreenshotAsync(page, "webhook-delivery-log-replayed");

        // A time range: the API's validator answers next to the field; a range of test events only replays nothing.
        await page.GetByTestId("replay-from").FillAsync("2026-01-02T10:00");
        await page.GetByTestId("replay-to").FillAsync("2026-01-01T10:00");
        await page.GetByRole(AriaRole.Button, new() { Name = "Replay time range" }).ClickAsync();
        await Expect(page.GetByText("to must be after from")).ToBeVisibleAsync();
        await page.GetByTestId("replay-to").FillAsync("2026-01-03T10:00");
        await page.GetByRole(AriaRole.Button, new() { Name = "Replay time range" }).ClickAsync();
        await Expect(page.GetByText("Nothing to replay in that range")).ToBeVisibleAsync();
        await Expect(page.GetByText("to must be after from")).ToHaveCountAsync(0);
    }

    [TestCase("viewer")]
    [TestCase("operator")]
    public async Task Viewers_and_operators_do_not_see_the_webhook_pages_and_are_sent_away_from_them(string role)
    {
        using var admin = await Hub.AdminAsync();
        var name = role[..4] + Guid.NewGuid().ToString("N")[..6];
        var created = await admin.PostAsJsonAsync("/api/v1/users", new { username = name, password = "not-an-admin-1", role });
        Assert.That(created.IsSuccessStatusCode, Is.True, await created.Content.ReadAsStringAsync());
        var hook = await admin.PostAsJsonAsync("/api/v1/webhooks", new { url = _receiver.Url(NewPath()), enabled = false });
        var id = (await hook.ReadJsonAsync())["webhook"]!["id"]!.GetValue<long>();

        var page = await SignedInAsync(name, "not-an-admin-1");
        await Expect(page.GetByRole(AriaRole.Navigation, new() { Name = "Main" }).GetByRole(AriaRole.Link, new() { Name = "Devices" })).ToBeVisibleAsync();
        Assert.That(await page.GetByRole(AriaRole.Link, new() { Name = "Webhooks" }).CountAsync(), Is.Zero, "no nav entry");

        await page.GotoAsync("/webhooks");
        await ExpectLoginAsync(page);
        Assert.That(await page.GetByTestId("webhooks").CountAsync(), Is.Zero);
        await page.GotoAsync($"/webhooks/{id}");
        await ExpectLoginAsync(page);
        Assert.That(await page.GetByTestId("endpoint-url").CountAsync(), Is.Zero);
    }

    [Test]
    public async Task Both_webhook_pages_fit_375_px_without_sideways_scrolling_and_say_when_they_are_empty()
    {
        using var admin = await Hub.AdminAsync();
        var longUrl = _receiver.Url(NewPath() + "/" + new string('x', 120) + "?token=" + new string('y', 60));
        var hook = await admin.PostAsJsonAsync("/api/v1/webhooks", new { url = longUrl, eventTypes = new[] { "alarm.raised", "alarm.cleared", "device.offline" },
            description = "A receiver with a long address" });
        var id = (await hook.ReadJsonAsync())["webhook"]!["id"]!.GetValue<long>();

        var page = await SignedInAsync(width: 375);
        await page.GotoAsync($"/webhooks/{id}");
        await WaitForCircuitAsync(page);
        await Expect(page.GetByTestId("deliveries-empty")).ToBeVisibleAsync();
        await AssertNoSidewaysScrollAsync(page, "an empty delivery log at 375 px");

        Assert.That((await admin.PostAsync($"/api/v1/webhooks/{id}/test", null)).IsSuccessStatusCode, Is.True);
        await Expect(page.GetByTestId("delivery-status")).ToHaveTextAsync(["succeeded"], new() { Timeout = 15_000 });
        await AssertNoSidewaysScrollAsync(page, "the delivery log at 375 px");
        await ScreenshotAsync(page, "webhook-delivery-log-375px");

        await page.GotoAsync("/webhooks");
        await WaitForCircuitAsync(page);
        await Expect(Row(page, longUrl)).ToBeVisibleAsync();
        await AssertNoSidewaysScrollAsync(page, "/webhooks at 375 px");
        await Row(page, longUrl).GetByRole(AriaRole.Button, new() { Name = "Rotate secret" }).ClickAsync();
        await page.Locator(".rz-dialog").GetByRole(AriaRole.Button, new() { Name = "Rotate", Exact = true }).ClickAsync();
        await Expect(page.GetByTestId("webhook-secret")).ToContainTextAsync("whsec_");
        await AssertNoSidewaysScrollAsync(page, "/webhooks with a secret shown at 375 px");
        await ScreenshotAsync(page, "webhooks-375px");

        await Row(page, longUrl).GetByRole(AriaRole.Button, new() { Name = "Disable" }).ClickAsync();
        await page.Locator(".rz-dialog").GetByRole(AriaRole.Button, new() { Name = "Disable", Exact = true }).ClickAsync();
        await Expect(Row(page, longUrl).GetByTestId("state")).ToHaveTextAsync("disabled");
        await Expect(Row(page, longUrl).GetByRole(AriaRole.Button, new() { Name = "Send test event" })).ToBeDisabledAsync();
        await Row(page, longUrl).GetByRole(AriaRole.Button, new() { Name = "Enable" }).ClickAsync();
        await Expect(Row(page, longUrl).GetByTestId("state")).ToHaveTextAsync("enabled");

        await Row(page, longUrl).GetByRole(AriaRole.Button, new() { Name = "Delete" }).ClickAsync();
        await page.Locator(".rz-dialog").GetByRole(AriaRole.Button, new() { Name = "Delete", Exact = true }).ClickAsync();
        await Expect(Row(page, longUrl)).ToHaveCountAsync(0);
        Assert.That((await admin.GetAsync($"/api/v1/webhooks/{id}")).StatusCode, Is.EqualTo(System.Net.HttpStatusCode.NotFound));
    }
}
