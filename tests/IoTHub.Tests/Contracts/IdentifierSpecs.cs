// The contract's identifier rule (docs/contract.md, "Identity"), on text and on UTF-8 bytes alike.
using System.Text;
using IoTHub.Contracts;

namespace IoTHub.Tests.Contracts;

public sealed class IdentifierSpecs
{
    [TestCase("pump-7", true)]
    [TestCase("a.b_c-D9", true)]
    [TestCase(".hidden", true)]
    [TestCase("v1..2", true)]
    [TestCase("...a", true)]
    [TestCase("", false)]
    [TestCase(".", false, Description = "a dot-segment: /devices/. is /devices/ to every URL parser (RFC 3986 §5.2.4)")]
    [TestCase("..", false, Description = "a dot-segment: /devices/.. is / to every URL parser")]
    [TestCase("...", false)]
    [TestCase("has space", false)]
    [TestCase("k\u00fcche", false)]
    [TestCase("a/b", false)]
    public void An_identifier_is_1_to_64_of_letters_digits_underscore_dot_and_dash_and_not_only_dots(string id, bool valid)
    {
        Assert.That(Identifier.IsValid(id), Is.EqualTo(valid), "text");
        Assert.That(Identifier.IsValidUtf8(Encoding.UTF8.GetBytes(id)), Is.EqualTo(valid), "UTF-8");
    }

    [Test]
    public void Sixty_four_characters_is_the_longest()
    {
        Assert.That(Identifier.IsValid(new string('a', 64)), Is.True);
        Assert.That(Identifier.IsValid(new string('a', 65)), Is.False);
        Assert.That(Identifier.IsValidUtf8(Encoding.UTF8.GetBytes(new string('a', 65))), Is.False);
    }
}
