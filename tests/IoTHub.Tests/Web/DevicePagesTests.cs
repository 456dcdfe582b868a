// The device list and the device page as a phone (375 px) and a desktop (1280 px) show them, with real data: a
// profile with units, telemetry, a device clock that runs behind, an open MQTT connection and a dead letter.
using System.Net.Http.Json;
using System.Text.RegularExpressions;
using IoTHub.Tests.Infrastructure;
using Microsoft.Playwright;
using MQTTnet;
using MQTTnet.Protocol;
using static Microsoft.Playwright.Assertions;

namespace IoTHub.Tests.Web;

[TestFixture(Store.Sqlite)]
public sealed partial class DevicePagesTests(Store store) : BrowserFixture(store)
{
    private const int Phone = 375;
    private const int Desktop = 1280;

    // The broker listens on every address (not the tests' usual 127.0.0.1), as it does by default: a dual-stack
    // socket then sees an IPv4 client as ::ffff:127.0.0.1, the address form the page must not show.
    protected override IDictionary<string, string?>? Settings => new Dictionary<string, string?> { ["Mqtt:Host"] = null };

    [GeneratedRegex(@"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC[+-]\d\d:\d\d$")]
    private static partial Regex AbsoluteTime();

    [GeneratedRegex(@"^(just now|\d+ s ago|1 min ago)$")]
    private static partial Regex Recently();

    private static MqttApplicationMessage Telemetry(string id, string json) =>
        new MqttApplicationMessageBuilder().WithTopic($"devices/{id}/telemetry").WithPayload(json).WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build();

    /// <summary>A device of a profile that declares temperature (°C) before humidity (%), with a name.</summary>
    private async Task<(string Id, string Token)> DeviceWithProfileAsync(string name)
    {
        using var admin = await Hub.AdminAsync();
        var profile = "thermo-" + Guid.NewGuid().ToString("N")[..6];
        var created = await admin.PostAsJsonAsync("/api/v1/profiles", new
        {
            id = profile, name = "Thermostat",
            metrics = new object[] { new { name = "temperature", type = "number", unit = "°C" }, new { name = "humidity", type = "number", unit = "%" } },
        });
        Assert.That((int)created.StatusCode, Is.EqualTo(201), await created.Content.ReadAsStringAsync());
        var id = "kitchen-" + Guid.NewGuid().ToString("N")[..8];
        var device = await admin.PostAsJsonAsync("/api/v1/devices", new { id, name, profile, tags = new[] { "lab", "floor1" } });
        Assert.That((int)device.StatusCode, Is.EqualTo(201), await device.Content.ReadAsStringAsync());
        return (id, (await device.ReadJsonAsync())["token"]!.GetValue<string>());
    }

    [Test]
    public async Task On_a_phone_the_device_list_shows_each_device_readable_and_tappable()
    {
        var (id, token) = await DeviceWithProfileAsync("Kitchen thermostat by the window");
        using (var device = await Hub.ConnectAsync(id, token)) await device.PublishAsync(Telemetry(id, """{"temperature": 21.5}"""));
        var page = await SignedInAsync(width: Phone);
        await page.GotoAsync("/devices");
        await WaitForCircuitAsync(page);
        await page.GetByTestId("search").FillAsync(id);
        await Expect(page.GetByText("1 of")).ToBeVisibleAsync();

        var link = page.GetByRole(AriaRole.Link, new() { Name = id, Exact = true });
        await Expect(link).ToBeVisibleAsync();
        var cell = page.Locator(".device-list tbody tr").First.Locator("td").First;
        var cellBox = await BoxAsync(cell);
        var linkBox = await BoxAsync(link);
        Assert.That(cellBox.Width, Is.GreaterThan(250), "the Device column takes the phone's width");
        Assert.That(linkBox.Width, Is.GreaterThan(100), "the device id is shown in full");
        Assert.That(linkBox.Height, Is.GreaterThanOrEqualTo(24), "the link is a finger-sized target (WCAG 2.5.8)");
        await Expect(cell).ToContainTextAsync("Kitchen thermostat by the window");
        var lastSeen = page.Locator(".device-list tbody tr").First.Locator("time");
        await Expect(lastSeen).ToHaveTextAsync(Recently());
        await Expect(lastSeen).ToHaveAttributeAsync("title", AbsoluteTime());
        await AssertNoSidewaysScrollAsync(page, "the device list at 375 px");
        await ScreenshotAsync(page, "devices-list-375px");

        await page.SetViewportSizeAsync(Desktop, 900);
        Assert.That((await BoxAsync(cell)).Width, Is.GreaterThan(180), "the Device column at 1280 px");
        await AssertNoSidewaysScrollAsync(page, "the device list at 1280 px");
        await ScreenshotAsync(page, "devices-list-1280px");

        await page.SetViewportSizeAsync(Phone, 900);
        await link.ClickAsync();
        await ExpectAddressAsync(page, $"/devices/{id}");
        await Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Kitchen thermostat by the window" })).ToBeVisibleAsync();
    }

    [Test]
    public async Task The_device_page_with_data_fits_a_phone_and_says_times_drift_and_connections_as_people_do()
    {
        var (id, token) = await DeviceWithProfileAsync("Hallway thermostat");
        using var device = await Hub.ConnectAsync(id, token); // stays open: the page shows it as open
        for (var i = 0; i < 3; i++) await device.PublishAsync(Telemetry(id, $$"""{"humidity": {{40 + i}}, "temperature": {{20.5 + i}}}"""));
        // A reading stamped by a device clock three minutes behind the hub's.
        var behind = DateTimeOffset.UtcNow.AddMinutes(-3).ToUnixTimeMilliseconds();
        await device.PublishAsync(Telemetry(id, $$$"""[{"ts": {{{behind}}}, "values": {"temperature": 22.5}}]"""));
        var refused = await device.PublishAsync(Telemetry(id, """{"temperature": "banana"}"""));
        Assert.That((int)refused.ReasonCode, Is.EqualTo(0x99), "the bad payload is refused (and dead-lettered)");

        var page = await SignedInAsync(width: Phone);
        await page.GotoAsync($"/devices/{id}");
        await WaitForCircuitAsync(page);
        await Expect(page.Locator("[data-metric=temperature]")).ToContainTextAsync("°C");

        // Last seen: relative, the absolute time on hover.
        await Expect(page.GetByTestId("last-seen")).ToHaveTextAsync(Recently());
        await Expect(page.GetByTestId("last-seen")).ToHaveAttributeAsync("title", AbsoluteTime());
        // Clock drift in human units, with a real minus sign, and what it means on hover.
        await Expect(page.GetByTestId("clock-drift")).ToHaveTextAsync(new Regex(@"^\u22123(\.\d)? min$"));
        await Expect(page.GetByTestId("clock-drift")).ToHaveAttributeAsync("title", new Regex("behind the hub's"));

        // The chart starts on the profile's first metric (not the alphabetically first), its axis in the profile's unit.
        await Expect(page.GetByTestId("metric")).ToHaveValueAsync("temperature");
        await Expect(page.Locator(".rz-chart text", new() { HasText = "°C" }).First).ToBeVisibleAsync();
        await Expect(page.GetByTestId("chart-empty")).ToHaveCountAsync(0);

        // The open connection is "open", from an IPv4 address written as one.
        var connections = page.GetByTestId("connections");
        await Expect(connections.GetByTestId("connection-open")).ToHaveTextAsync("open");
        await Expect(connections).Not.ToContainTextAsync("connected");
        await Expect(connections).ToContainTextAsync("127.0.0.1:");
        await Expect(connections).Not.ToContainTextAsync("::ffff:");
        await Expect(page.GetByTestId("device-dead-letters")).ToContainTextAsync("banana", new() { Timeout = 15_000 });

        await AssertNoSidewaysScrollAsync(page, "the device page at 375 px");
        await ScreenshotAsync(page, "device-page-375px");
        await page.SetViewportSizeAsync(Desktop, 900);
        await AssertNoSidewaysScrollAsync(page, "the device page at 1280 px");
        await ScreenshotAsync(page, "device-page-1280px");
    }

    [Test]
    public async Task A_device_without_data_says_so_in_every_table_and_in_the_chart()
    {
        var (id, _) = await Hub.CreateDeviceAsync();
        var page = await SignedInAsync(width: Phone);
        await page.GotoAsync($"/devices/{id}");
        await WaitForCircuitAsync(page);

        await Expect(page.GetByTestId("latest-empty")).ToHaveTextAsync("No telemetry yet.");
        await Expect(page.GetByTestId("connections-empty")).ToHaveTextAsync("No connections yet.");
        await Expect(page.GetByTestId("dead-letters-empty")).ToContainTextAsync("No dead letters");
        await Expect(page.GetByTestId("chart-empty")).ToContainTextAsync("No numeric telemetry yet");
        Assert.That(await page.Locator(".rz-chart").CountAsync(), Is.Zero, "no chart with placeholder axes before there is data");
        await Expect(page.GetByTestId("last-seen")).ToHaveTextAsync("never");
        await Expect(page.GetByTestId("clock-drift")).ToHaveTextAsync("unknown");
        await AssertNoSidewaysScrollAsync(page, "the empty device page at 375 px");
        await ScreenshotAsync(page, "device-page-empty-375px");
    }

    [Test]
    public async Task On_a_phone_the_navigation_folds_behind_a_menu_button()
    {
        var page = await SignedInAsync(width: Phone);
        var menu = page.GetByRole(AriaRole.Button, new() { Name = "Menu" });
        var devices = page.GetByRole(AriaRole.Navigation, new() { Name = "Main" }).GetByRole(AriaRole.Link, new() { Name = "Devices" });
        await Expect(menu).ToHaveAttributeAsync("aria-expanded", "false");
        await Expect(devices).ToBeHiddenAsync();
        Assert.That((await BoxAsync(page.Locator(".topbar"))).Height, Is.LessThan(70), "the closed top bar is one line");

        await menu.ClickAsync();
        await Expect(menu).ToHaveAttributeAsync("aria-expanded", "true");
        await Expect(devices).ToBeVisibleAsync();
        await Expect(page.GetByRole(AriaRole.Button, new() { Name = "Sign out" })).ToBeVisibleAsync();
        await ScreenshotAsync(page, "navigation-open-375px");

        await devices.ClickAsync();
        await ExpectAddressAsync(page, "/devices");
        await Expect(devices).ToBeHiddenAsync();
        await Expect(menu).ToHaveAttributeAsync("aria-expanded", "false");

        await page.SetViewportSizeAsync(Desktop, 900);
        await Expect(menu).ToBeHiddenAsync();
        await Expect(devices).ToBeVisibleAsync();
    }

    [Test]
    public async Task The_audit_log_says_results_as_status_text_and_shortens_long_targets()
    {
        // A 64-character id makes a target longer than the column shows.
        var (id, _) = await Hub.CreateDeviceAsync("audit-" + new string('x', 58));
        var page = await SignedInAsync(width: Desktop);
        await page.GotoAsync($"/devices/{id}");
        await WaitForCircuitAsync(page);
        await page.GetByRole(AriaRole.Button, new() { Name = "Disable" }).ClickAsync();
        await Expect(page.GetByRole(AriaRole.Button, new() { Name = "Enable" })).ToBeVisibleAsync();

        await page.GotoAsync("/audit");
        await WaitForCircuitAsync(page);
        var row = page.GetByTestId("audit").Locator("tbody tr", new() { HasText = "UpdateDevice" }).First;
        await Expect(row.Locator("td[data-label=Result]")).ToHaveTextAsync("200 OK");
        var target = row.Locator(".target");
        await Expect(target).ToHaveAttributeAsync("title", $"id={id} enabled=False");
        var shown = await target.InnerTextAsync();
        Assert.That(shown, Has.Length.LessThanOrEqualTo(40).And.EndWith("…"));
        await Expect(page.GetByTestId("audit")).ToContainTextAsync("201 Created"); // the device's creation over the API
        await ScreenshotAsync(page, "audit-1280px");

        await page.SetViewportSizeAsync(Phone, 900);
        await AssertNoSidewaysScrollAsync(page, "the audit log at 375 px");
    }
}
