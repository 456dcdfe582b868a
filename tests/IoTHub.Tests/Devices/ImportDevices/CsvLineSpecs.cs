// One line of a device import, read as RFC 4180 §2 writes fields. An outside tester's line with an unclosed quote was
// imported as if the quote had been closed at the end of the line; a quote inside a plain field vanished silently.
using IoTHub.Devices.ImportDevices;

namespace IoTHub.Tests.Devices.ImportDevices;

public sealed class CsvLineSpecs
{
    [TestCase("a,b,c,d", new[] { "a", "b", "c", "d" })]
    [TestCase("a,,,", new[] { "a", "", "", "" })]
    [TestCase("", new[] { "" })]
    [TestCase("a,\"Kitchen, north\",p", new[] { "a", "Kitchen, north", "p" })]
    [TestCase("a,\"the \"\"big\"\" one\"", new[] { "a", "the \"big\" one" })]
    [TestCase("a, \"spaced\" ,b", new[] { "a", "spaced", "b" })]
    [TestCase("\"\",x", new[] { "", "x" })]
    [TestCase("a,\"\"\"\"", new[] { "a", "\"" })]
    [TestCase("a,b;c;d", new[] { "a", "b;c;d" })]
    public void Plain_and_quoted_fields_are_read_as_RFC_4180_writes_them(string line, string[] expected)
    {
        var fields = ImportDevicesHandler.SplitCsv(line, out var error);
        Assert.That(error, Is.Null);
        Assert.That(fields, Is.EqualTo(expected));
    }

    [TestCase("a,\"Kitchen", "column 2 opens a quote that is not closed on this line")]
    [TestCase("\"a\"\"", "column 1 opens a quote that is not closed on this line")]
    [TestCase("a,\"Kitchen\" north,p", "column 2 has text after its closing quote")]
    [TestCase("a,My \"big\" sensor", "column 2 has a quote inside an unquoted field")]
    [TestCase("dev\",x", "column 1 has a quote inside an unquoted field")]
    public void A_line_CSV_cannot_read_is_refused_with_its_column_and_why(string line, string reason)
    {
        var fields = ImportDevicesHandler.SplitCsv(line, out var error);
        Assert.That(fields, Is.Null);
        Assert.That(error, Does.StartWith(reason));
    }
}
