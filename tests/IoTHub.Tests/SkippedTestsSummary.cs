// The test runner's console lists skipped tests by name only; this prints why, once per reason, at the end of a run.
using NUnit.Framework.Interfaces;
using NUnit.Framework.Internal;

namespace IoTHub.Tests;

/// <summary>
/// After every test in the assembly ran, writes one line per skip reason with the count of tests it skipped
/// (e.g. <c>Skipped 231 tests: PostgreSQL is not available (...)</c>), so a run without PostgreSQL, mosquitto or
/// Chromium says what it did not test and how to test it. Written to the error stream, which <c>dotnet test</c>
/// shows at its default verbosity.
/// </summary>
[SetUpFixture]
public sealed class SkippedTestsSummary
{
    [OneTimeTearDown]
    public void Report()
    {
        var reasons = new Dictionary<string, int>(StringComparer.Ordinal);
        Collect(TestExecutionContext.CurrentContext.CurrentResult, reasons);
        if (reasons.Count == 0) return;
        foreach (var (reason, count) in reasons.OrderByDescending(r => r.Value))
            TestContext.Error.WriteLine($"Skipped {count} test{(count == 1 ? "" : "s")}: {reason}");
    }

    private static void Collect(ITestResult result, Dictionary<string, int> reasons)
    {
        if (result.HasChildren)
        {
            foreach (var child in result.Children) Collect(child, reasons);
            return;
        }
        if (result.Test.IsSuite || result.ResultState.Status != TestStatus.Skipped) return;
        var reason = Reason(result.Message);
        reasons[reason] = reasons.GetValueOrDefault(reason) + 1;
    }

    // A fixture whose one-time set-up skips passes its reason to each test as "OneTimeSetUp: <reason>".
    private static string Reason(string? message)
    {
        var text = string.IsNullOrWhiteSpace(message) ? "no reason given" : message.Trim();
        return text.StartsWith("OneTimeSetUp: ", StringComparison.Ordinal) ? text["OneTimeSetUp: ".Length..] : text;
    }
}
