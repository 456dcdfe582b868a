// The firmware pages over an in-memory stand-in of their data (FakeFirmwareData): how they look and behave at 1280
// and 375 px with a halted campaign, failures, a draft and an image in use.
using IoTHub.Tests.Infrastructure;
using IoTHub.Web.Components.Pages.Firmware;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace IoTHub.Tests.Web;

[TestFixture(Store.Sqlite)]
public sealed class FirmwarePagesFakeTests(Store store) : BrowserFixture(store)
{
    protected override void Configure(WebApplicationBuilder builder) => builder.Services.Replace(ServiceDescriptor.Singleton<IFirmwareData, FakeFirmwareData>());

    [TestCase(1280)]
    [TestCase(375)]
    public async Task The_firmware_pages_render(int width)
    {
        var page = await SignedInAsync(width: width);
        await page.GotoAsync("/firmware");
        await WaitForCircuitAsync(page);
        await Expect(page.GetByTestId("artifacts")).ToBeVisibleAsync();
        await AssertNoSidewaysScrollAsync(page, $"/firmware at {width}");
        await ScreenshotAsync(page, $"fake-firmware-{width}");

        await page.Locator("tr[data-artifact='2']").GetByRole(AriaRole.Button, new() { Name = "Delete" }).ClickAsync();
        await page.Locator(".rz-dialog").GetByRole(AriaRole.Button, new() { Name = "Delete", Exact = true }).ClickAsync();
        await Expect(page.GetByTestId("delete-error")).ToContainTextAsync("still used");
        await ScreenshotAsync(page, $"fake-firmware-409-{width}");

        await page.GotoAsync("/firmware/campaigns");
        await WaitForCircuitAsync(page);
        await Expect(page.GetByTestId("campaigns")).ToBeVisibleAsync();
        await AssertNoSidewaysScrollAsync(page, $"/firmware/campaigns at {width}");
        await ScreenshotAsync(page, $"fake-campaigns-{width}");

        await page.GotoAsync("/firmware/campaigns/7");
        await WaitForCircuitAsync(page);
        await Expect(page.GetByTestId("halt-reason")).ToBeVisibleAsync();
        await AssertNoSidewaysScrollAsync(page, $"/firmware/campaigns/7 at {width}");
        await ScreenshotAsync(page, $"fake-campaign-{width}");

        await page.GotoAsync("/firmware/campaigns/new?artifact=2");
        await WaitForCircuitAsync(page);
        await page.GetByTestId("target-tag").FillAsync("floor-2");
        await page.GetByTestId("target-tag").PressAsync("Tab");
        await Expect(page.GetByTestId("preview-wave")).ToHaveCountAsync(4);
        await AssertNoSidewaysScrollAsync(page, $"the wizard at {width}");
        await ScreenshotAsync(page, $"fake-wizard-{width}");

        var (id, _) = await Hub.CreateDeviceAsync();
        await page.GotoAsync($"/devices/{id}");
        await WaitForCircuitAsync(page);
        await Expect(page.GetByTestId("firmware-version")).ToHaveTextAsync("1.3.2");
        await AssertNoSidewaysScrollAsync(page, $"the device page at {width}");
        await ScreenshotAsync(page, $"fake-device-{width}");
    }
}
