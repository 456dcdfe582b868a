// Browser tests drive Debian's Chromium (headless) through Playwright against the real host. Each test saves a
// screenshot as a test artifact and fails on any console error the pages logged.
using IoTHub.Tests.Infrastructure;
using System.Text.RegularExpressions;
using Microsoft.Playwright;

namespace IoTHub.Tests.Web;

public abstract class BrowserFixture(Store store) : HubFixture(store)
{
    public const string ChromiumPath = "/usr/bin/chromium";
    private IPlaywright? _playwright;
    protected IBrowser Browser { get; private set; } = null!;
    private readonly List<string> _consoleErrors = [];
    private readonly List<IBrowserContext> _contexts = [];

    [OneTimeSetUp]
    public async Task StartBrowser()
    {
        if (!File.Exists(ChromiumPath))
        {
            if (Environment.GetEnvironmentVariable("CI") is "true" or "1") Assert.Fail($"{ChromiumPath} is missing (apt-get install chromium)");
            Assert.Ignore($"{ChromiumPath} is not installed (apt-get install chromium)");
        }
        // Expect(...) has its own default of 5 s, which SetDefaultTimeout does not change: with fixtures running in
        // parallel on two cores a page can take longer than that to show what it will show.
        Assertions.SetDefaultExpectTimeout(15_000);
        _playwright = await Playwright.CreateAsync();
        Browser = await _playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = ChromiumPath, Headless = true, Args = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        });
    }

    [OneTimeTearDown]
    public async Task StopBrowser()
    {
        if (Browser is not null) await Browser.DisposeAsync();
        _playwright?.Dispose();
    }

    [SetUp]
    public void ClearConsole() => _consoleErrors.Clear();

    /// <summary>A fresh browser context (its own cookies) with a page, at the given viewport width.</summary>
    protected async Task<IPage> NewPageAsync(int width = 1280, int height = 900)
    {
        var context = await Browser.NewContextAsync(new BrowserNewContextOptions
        {
            BaseURL = Hub.BaseAddress.ToString().TrimEnd('/'), ViewportSize = new ViewportSize { Width = width, Height = height },
            Permissions = ["clipboard-read", "clipboard-write"],
        });
        _contexts.Add(context);
        context.SetDefaultTimeout(15_000);
        var page = await context.NewPageAsync();
        page.Console += (_, message) =>
        {
            if (message.Type == "error") lock (_consoleErrors) _consoleErrors.Add($"{page.Url}: {message.Text}");
        };
        page.PageError += (_, error) => { lock (_consoleErrors) _consoleErrors.Add($"{page.Url}: {error}"); };
        return page;
    }

    protected async Task<IPage> SignedInAsync(string username = "admin", string password = HubHost.AdminPassword, int width = 1280)
    {
        var page = await NewPageAsync(width);
        await page.GotoAsync("/login");
        await page.GetByLabel("Username").FillAsync(username);
        await page.GetByLabel("Password").FillAsync(password);
        await page.GetByRole(AriaRole.Button, new() { Name = "Sign in" }).ClickAsync();
        await Assertions.Expect(page).Not.ToHaveURLAsync(new Regex("/login"), new() { Timeout = 30_000 });
        await WaitForCircuitAsync(page);
        return page;
    }

    /// <summary>Waits until the page's address is <paramref name="path"/> (followed by a number when
    /// <paramref name="numberedPage"/>, e.g. <c>/alarm-rules/12</c>), with any query. It polls the address
    /// (<c>Expect(page).ToHaveURLAsync</c>) rather than waiting for a navigation event: WaitForURLAsync checks the address
    /// once, then listens for the next navigation, and a client-side navigation (Blazor's NavigateTo, an enhanced link)
    /// that lands between the two is never seen (CI: a 15 s timeout with the page already at the address).</summary>
    protected static Task ExpectAddressAsync(IPage page, string path, bool numberedPage = false) =>
        Assertions.Expect(page).ToHaveURLAsync(
            new Regex("^https?://[^/]+" + Regex.Escape(path) + (numberedPage ? @"\d+" : "") + @"(\?.*)?$"), new() { Timeout = 30_000 });

    /// <summary>Waits until the page is the sign-in page (a refused page sends the browser there with a return address).</summary>
    protected static Task ExpectLoginAsync(IPage page) => ExpectAddressAsync(page, "/login");

    /// <summary>The element's box once it is laid out: BoundingBoxAsync answers null at once, without waiting, while
    /// Blazor re-renders the element (CI once read null right after a viewport change).</summary>
    protected static async Task<LocatorBoundingBoxResult> BoxAsync(ILocator locator)
    {
        LocatorBoundingBoxResult? box = null;
        await WaitFor.ConditionAsync(async () => (box = await locator.BoundingBoxAsync()) is not null, "the element is laid out");
        return box!;
    }

    /// <summary>Waits until the page runs on its Blazor circuit, so clicks reach the server and typed text is not replaced
    /// by the interactive render: the layout marks itself <c>data-interactive="true"</c> only when rendered interactively.
    /// (It waited for the network to be idle, <c>window.Blazor</c>, then 300 ms, which was a guess: the script loads before
    /// the circuit renders, and on a loaded machine the first interactive render can take longer.)</summary>
    protected static Task WaitForCircuitAsync(IPage page) =>
        Assertions.Expect(page.Locator(".shell[data-interactive=true]")).ToBeAttachedAsync(new() { Timeout = 30_000 });

    /// <summary>Fails when the page scrolls sideways (document.documentElement.scrollWidth &gt; window.innerWidth), naming
    /// the elements that stick out.</summary>
    protected static async Task AssertNoSidewaysScrollAsync(IPage page, string what)
    {
        var overflow = await page.EvaluateAsync<int>("() => document.documentElement.scrollWidth - window.innerWidth");
        if (overflow <= 0) return;
        var wide = await page.EvaluateAsync<string>("""
            () => [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > window.innerWidth)
                .slice(0, 5).map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right)).join('; ')
            """);
        Assert.Fail($"{what} scrolls sideways by {overflow} px: {wide}");
    }

    protected async Task ScreenshotAsync(IPage page, string name)
    {
        var folder = Path.Combine(TestContext.CurrentContext.WorkDirectory, "screenshots");
        Directory.CreateDirectory(folder);
        var file = Path.Combine(folder, $"{name}.png");
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = file, FullPage = true });
        TestContext.AddTestAttachment(file, name);
    }

    /// <summary>After a failure: each open page's address, what it shows (text), and a screenshot attached to the result,
    /// so a failure seen only in CI says where the page was.</summary>
    private async Task DescribePagesAsync()
    {
        var n = 0;
        foreach (var page in _contexts.SelectMany(c => c.Pages))
        {
            try
            {
                var text = await page.InnerTextAsync("body", new() { Timeout = 2_000 });
                TestContext.Out.WriteLine($"page {++n}: {page.Url}\n{(text.Length > 3000 ? text[..3000] + " …" : text)}");
                lock (_consoleErrors) foreach (var e in _consoleErrors) TestContext.Out.WriteLine($"console: {e}");
                await ScreenshotAsync(page, $"failure-{TestContext.CurrentContext.Test.MethodName}-{n}");
            }
            catch (PlaywrightException ex)
            {
                TestContext.Out.WriteLine($"page {++n}: {page.Url} could not be described: {ex.Message}");
            }
        }
    }

    [TearDown]
    public async Task CloseContexts()
    {
        if (TestContext.CurrentContext.Result.Outcome.Status == NUnit.Framework.Interfaces.TestStatus.Failed) await DescribePagesAsync();
        foreach (var c in _contexts) await c.DisposeAsync();
        _contexts.Clear();
        if (TestContext.CurrentContext.Result.Outcome.Status == NUnit.Framework.Interfaces.TestStatus.Passed)
            lock (_consoleErrors) Assert.That(_consoleErrors, Is.Empty, "the pages logged console errors");
    }
}
