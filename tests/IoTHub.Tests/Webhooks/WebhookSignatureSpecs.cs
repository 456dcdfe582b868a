using System.Text;
using IoTHub.Webhooks.Signing;

namespace IoTHub.Tests.Webhooks;

/// <summary>The signature against the Standard Webhooks specification's published test vector, and against the
/// test's own verifier.</summary>
public sealed class WebhookSignatureSpecs
{
    // From the specification's reference libraries' tests (standard-webhooks/standard-webhooks).
    private const string VectorSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    private const string VectorId = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    private const long VectorTimestamp = 1614265330;
    private static readonly byte[] VectorBody = Encoding.UTF8.GetBytes("""{"test": 2432232314}""");
    private const string VectorSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    [Test]
    public void The_signature_of_the_specification_test_vector_is_the_published_one() =>
        Assert.That(WebhookSignature.Sign(VectorId, VectorTimestamp, VectorBody, [VectorSecret]), Is.EqualTo(VectorSignature));

    [Test]
    public void The_test_verifier_accepts_the_test_vector_and_refuses_a_changed_body() =>
        Assert.Multiple(() =>
        {
            var at = DateTimeOffset.FromUnixTimeSeconds(VectorTimestamp);
            Assert.That(StandardWebhooksVerifier.Verify(VectorSecret, VectorId, "1614265330", VectorBody, VectorSignature, at), Is.True);
            Assert.That(StandardWebhooksVerifier.Verify(VectorSecret, VectorId, "1614265330", Encoding.UTF8.GetBytes("""{"test": 2432232315}"""), VectorSignature, at), Is.False);
            Assert.That(StandardWebhooksVerifier.Verify(VectorSecret, VectorId, "1614265330", VectorBody, VectorSignature, at.AddMinutes(10)), Is.False, "too old");
        });

    [Test]
    public void The_csharp_verifier_in_the_readme_accepts_the_test_vector_within_its_tolerance() =>
        Assert.That(ReadmeVerify(VectorSecret, VectorId, "1614265330", VectorBody, VectorSignature, DateTimeOffset.FromUnixTimeSeconds(VectorTimestamp + 10)), Is.True);

    // README.md, "Webhooks", with the clock passed in.
    private static bool ReadmeVerify(string secret, string id, string timestamp, byte[] body, string signatures, DateTimeOffset now)
    {
        if (!long.TryParse(timestamp, out var ts) || Math.Abs(now.ToUnixTimeSeconds() - ts) > 300) return false;
        var key = Convert.FromBase64String(secret.StartsWith("whsec_") ? secret[6..] : secret);
        byte[] signed = [.. Encoding.UTF8.GetBytes($"{id}.{timestamp}."), .. body];
        var expected = Encoding.ASCII.GetBytes(Convert.ToBase64String(System.Security.Cryptography.HMACSHA256.HashData(key, signed)));
        return signatures.Split(' ').Any(s => s.StartsWith("v1,")
            && System.Security.Cryptography.CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(s[3..]), expected));
    }

    [Test]
    public void During_a_rotation_both_secrets_sign_space_separated_and_either_verifies()
    {
        var current = WebhookSignature.NewSecret();
        var previous = WebhookSignature.NewSecret();
        var header = WebhookSignature.Sign("msg_1", 1_700_000_000, "{}"u8, [current, previous]);
        var at = DateTimeOffset.FromUnixTimeSeconds(1_700_000_000);
        Assert.Multiple(() =>
        {
            Assert.That(header.Split(' '), Has.Length.EqualTo(2).And.All.StartWith("v1,"));
            Assert.That(StandardWebhooksVerifier.Verify(current, "msg_1", "1700000000", "{}"u8.ToArray(), header, at), Is.True);
            Assert.That(StandardWebhooksVerifier.Verify(previous, "msg_1", "1700000000", "{}"u8.ToArray(), header, at), Is.True);
            Assert.That(StandardWebhooksVerifier.Verify(WebhookSignature.NewSecret(), "msg_1", "1700000000", "{}"u8.ToArray(), header, at), Is.False);
        });
    }

    [Test]
    public void A_new_secret_is_whsec_and_the_base64_of_32_random_bytes()
    {
        var a = WebhookSignature.NewSecret();
        Assert.Multiple(() =>
        {
            Assert.That(a, Does.StartWith("whsec_"));
            Assert.That(Convert.FromBase64String(a["whsec_".Length..]), Has.Length.EqualTo(32));
            Assert.That(WebhookSignature.NewSecret(), Is.Not.EqualTo(a));
        });
    }
}
