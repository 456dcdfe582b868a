// The alarm pages in a real browser against the real host: alarms raised by MQTT telemetry appear live, an operator
// acknowledges one and every open page (the list, the device's badge) follows without a reload; a rule made in the
// editor raises; a viewer reads but cannot act; a phone shows the list without sideways scrolling.
using System.Net.Http.Json;
using System.Text.RegularExpressions;
using IoTHub.Tests.Alarms;
using IoTHub.Tests.Infrastructure;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace IoTHub.Tests.Web;

[TestFixture(Store.Sqlite)]
public sealed partial class AlarmPagesTests(Store store) : BrowserFixture(store)
{
    private const string Password = "alarm-password-1";
    private static readonly LocatorAssertionsToBeVisibleOptions Live = new() { Timeout = 15_000 };


    private async Task<string> UserAsync(string role)
    {
        using var admin = await Hub.AdminAsync();
        var name = role[..3] + Guid.NewGuid().ToString("N")[..6];
        var created = await admin.PostAsJsonAsync("/api/v1/users", new { username = name, password = Password, role });
        Assert.That(created.IsSuccessStatusCode, Is.True, await created.Content.ReadAsStringAsync());
        return name;
    }

    /// <summary>A device with a rule "v above 80 raises major, clears below 75".</summary>
    private async Task<(string Id, string Token)> WatchedDeviceAsync()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        await AlarmTests.CreateRuleAsync(Hub, AlarmTests.RuleJson(id, """{"severity": "major", "operator": ">", "value": 80}""", """{"operator": "<", "value": 75}"""));
        return (id, token);
    }

    private async Task RaiseAsync(string id, string token)
    {
        using var device = await Hub.ConnectAsync(id, token);
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        await AlarmTests.PublishAsync(device, id, now - 2000, 70);
        await AlarmTests.PublishAsync(device, id, now - 1000, 91.5);
        await AlarmTests.SettleAsync(Hub);
    }

    [Test]
    public async Task An_operator_sees_a_new_alarm_live_acknowledges_it_and_the_list_and_the_device_badge_follow_without_a_reload()
    {
        var (id, token) = await WatchedDeviceAsync();
        var operatorName = await UserAsync("operator");
        var page = await SignedInAsync(operatorName, Password);
        await page.GotoAsync($"/alarms?device={id}");
        await WaitForCircuitAsync(page);
        await Expect(page.GetByTestId("alarms-empty")).ToBeVisibleAsync();
        var watcher = await SignedInAsync();
        await watcher.GotoAsync($"/devices/{id}");
        await WaitForCircuitAsync(watcher);
        await Expect(watcher.GetByTestId("alarm-badge")).ToHaveCountAsync(0);

        await RaiseAsync(id, token);

        var row = page.Locator("tr[data-testid^=alarm-]").First;
        await Expect(row).ToBeVisibleAsync(Live);
        await Expect(row.GetByTestId("severity")).ToHaveTextAsync("major");
        await Expect(row.GetByTestId("state")).ToHaveTextAsync("active");
        await Expect(row).ToContainTextAsync("v = 91.5");
        await Expect(page.GetByTestId("nav-alarm-count")).ToBeVisibleAsync(Live);
        var badge = watcher.GetByTestId("alarm-badge");
        await Expect(badge).ToBeVisibleAsync(Live);
        await Expect(badge).ToHaveTextAsync("1 alarm");
        await Expect(badge).ToHaveAttributeAsync("data-severity", "major");
        await Expect(badge).ToHaveAttributeAsync("data-unacknowledged", "1");
        await Expect(watcher.GetByTestId("device-alarms")).ToContainTextAsync("rule for " + id);
        // The device's chart draws the rule's raise and clear thresholds as dashed lines.
        await Expect(watcher.Locator(".rz-chart path[stroke-dasharray]")).ToHaveCountAsync(2, new() { Timeout = 15_000 });

        await row.GetByRole(AriaRole.Button, new() { Name = "Details" }).ClickAsync();
        await Expect(page.GetByTestId("history")).ToContainTextAsync("raised");
        await page.GetByTestId("comment").FillAsync("bearing checked, replacing tomorrow");
        await page.GetByRole(AriaRole.Button, new() { Name = "Acknowledge" }).ClickAsync();
        await Expect(row.GetByTestId("handling")).ToContainTextAsync($"acknowledged by {operatorName}");
        await Expect(page.GetByTestId("history")).ToContainTextAsync("bearing checked, replacing tomorrow");
        await Expect(page.GetByRole(AriaRole.Button, new() { Name = "Acknowledge" })).ToHaveCountAsync(0);

        // The other user's device page hears of it without a reload: the badge is muted, the list says who.
        await Expect(badge).ToHaveAttributeAsync("data-unacknowledged", "0", new() { Timeout = 15_000 });
        await Expect(badge).ToHaveClassAsync(new Regex(@"\backed\b"));
        await Expect(watcher.GetByTestId("device-alarms")).ToContainTextAsync($"acknowledged by {operatorName}", new() { Timeout = 15_000 });

        await page.GetByRole(AriaRole.Button, new() { Name = "Snooze" }).ClickAsync();
        await Expect(row.GetByTestId("handling")).ToContainTextAsync("snoozed until");
        await page.GetByTestId("assignee").FillAsync("maria");
        await page.GetByRole(AriaRole.Button, new() { Name = "Assign" }).ClickAsync();
        await Expect(row.GetByTestId("handling")).ToContainTextAsync("assigned to maria");
        var stored = (await AlarmTests.AlarmsAsync(Hub, id))[0]!;
        Assert.That(stored["acknowledgedBy"]!.GetValue<string>(), Is.EqualTo(operatorName));
        Assert.That(stored["assignee"]!.GetValue<string>(), Is.EqualTo("maria"));
        Assert.That(stored["snoozedUntil"], Is.Not.Null);
        await ScreenshotAsync(page, "alarms-acknowledged");
        await ScreenshotAsync(watcher, "device-page-with-alarm");

        await watcher.GotoAsync("/devices");
        await WaitForCircuitAsync(watcher);
        await watcher.GetByTestId("search").FillAsync(id);
        await Expect(watcher.Locator(".device-list tbody tr").First.GetByTestId("alarm-badge")).ToHaveTextAsync("1 alarm", new() { Timeout = 15_000 });
    }

    [Test]
    public async Task A_rule_made_in_the_editor_names_its_faults_by_the_field_then_raises_from_mqtt_telemetry()
    {
        var (id, token) = await Hub.CreateDeviceAsync();
        var page = await SignedInAsync(await UserAsync("operator"), Password);
        await page.GotoAsync($"/alarm-rules/new?device={id}");
        await WaitForCircuitAsync(page);
        await Expect(page.GetByTestId("scope-value")).ToHaveValueAsync(id);
        await page.GetByTestId("metric").FillAsync("v");
        await page.GetByRole(AriaRole.Button, new() { Name = "Create rule" }).ClickAsync();
        await Expect(page.Locator(".field-error[data-field=Name]")).ToBeVisibleAsync();
        await Expect(page.Locator(".field-error[data-field='Raise[0].Value']").First).ToBeVisibleAsync();

        await page.GetByLabel("Name").FillAsync("Vibration too high " + id);
        await page.GetByTestId("raise-value").FillAsync("50");
        await page.GetByRole(AriaRole.Button, new() { Name = "Preview last 24 h" }).ClickAsync();
        await Expect(page.GetByTestId("preview")).ToContainTextAsync("would have raised 0 times");
        await page.GetByRole(AriaRole.Button, new() { Name = "Create rule" }).ClickAsync();
        await ExpectAddressAsync(page, "/alarm-rules/", numberedPage: true);
        await Expect(page.Locator(".field-error")).ToHaveCountAsync(0);

        using (var device = await Hub.ConnectAsync(id, token))
        {
            await AlarmTests.PublishAsync(device, id, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() - 1000, 60);
        }
        await AlarmTests.SettleAsync(Hub);
        var alarms = await AlarmTests.AlarmsAsync(Hub, id);
        Assert.That(alarms, Has.Count.EqualTo(1));
        Assert.That(alarms[0]!["rule"]!.GetValue<string>(), Is.EqualTo("Vibration too high " + id));
        Assert.That(alarms[0]!["severity"]!.GetValue<string>(), Is.EqualTo("major"));

        await page.GotoAsync("/alarm-rules");
        await WaitForCircuitAsync(page);
        await Expect(page.GetByRole(AriaRole.Link, new() { Name = "Vibration too high " + id })).ToBeVisibleAsync();
        await ScreenshotAsync(page, "alarm-rules");
    }

    [Test]
    public async Task A_viewer_reads_alarms_and_rules_but_has_no_action_buttons()
    {
        var (id, token) = await WatchedDeviceAsync();
        await RaiseAsync(id, token);
        var page = await SignedInAsync(await UserAsync("viewer"), Password);
        await page.GotoAsync($"/alarms?device={id}");
        await WaitForCircuitAsync(page);
        var row = page.Locator("tr[data-testid^=alarm-]").First;
        await Expect(row).ToBeVisibleAsync();
        await row.GetByRole(AriaRole.Button, new() { Name = "Details" }).ClickAsync();
        await Expect(page.GetByTestId("history")).ToContainTextAsync("raised");
        foreach (var name in new[] { "Acknowledge", "Snooze", "Assign", "Add comment" })
            Assert.That(await page.GetByRole(AriaRole.Button, new() { Name = name, Exact = true }).CountAsync(), Is.Zero, name);

        await page.GotoAsync("/alarm-rules");
        await WaitForCircuitAsync(page);
        await Expect(page.GetByRole(AriaRole.Link, new() { Name = "rule for " + id })).ToBeVisibleAsync();
        Assert.That(await page.GetByRole(AriaRole.Link, new() { Name = "New rule" }).CountAsync(), Is.Zero);
        Assert.That(await page.GetByRole(AriaRole.Button, new() { Name = "Delete" }).CountAsync(), Is.Zero);
        Assert.That(await page.GetByRole(AriaRole.Button, new() { Name = "Disable" }).CountAsync(), Is.Zero);
        await page.GetByRole(AriaRole.Link, new() { Name = "rule for " + id }).ClickAsync();
        await Expect(page.GetByLabel("Name")).ToBeDisabledAsync();
        Assert.That(await page.GetByRole(AriaRole.Button, new() { Name = "Save rule" }).CountAsync(), Is.Zero);
    }

    [Test]
    public async Task On_a_phone_the_alarms_page_and_the_rule_editor_do_not_scroll_sideways()
    {
        var (id, token) = await WatchedDeviceAsync();
        // A long rule name: the Rule filter's list is as wide as its longest option, and once made the page 580 px wide.
        await AlarmTests.CreateRuleAsync(Hub, AlarmTests.RuleJson(id, """{"severity": "minor", "operator": ">", "value": 99}""")
            .Replace($"rule for {id}", $"Bearing wear on pump 7 in hall B: vibration above 7 mm/s for 10 min ({id})", StringComparison.Ordinal));
        await RaiseAsync(id, token);
        var page = await SignedInAsync(width: 375);
        await page.GotoAsync($"/alarms?device={id}");
        await WaitForCircuitAsync(page);
        await Expect(page.Locator("tr[data-testid^=alarm-]").First).ToBeVisibleAsync();
        await page.Locator("tr[data-testid^=alarm-]").First.GetByRole(AriaRole.Button, new() { Name = "Details" }).ClickAsync();
        await Expect(page.GetByTestId("history")).ToBeVisibleAsync();
        await AssertNoSidewaysScrollAsync(page, "the alarms page at 375 px");
        await ScreenshotAsync(page, "alarms-375px");
        await page.GotoAsync("/alarm-rules/new");
        await WaitForCircuitAsync(page);
        await AssertNoSidewaysScrollAsync(page, "the rule editor at 375 px");
        await ScreenshotAsync(page, "rule-editor-375px");
    }
}
