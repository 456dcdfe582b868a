// Block-wise answers to GET (RFC 7959 §2.4): a representation larger than a block, or one asked for in blocks, goes out
// one Block2 block at a time at the size the client asks for (or 1024 bytes), with an ETag so that the client can tell
// when the representation changed between its requests (§2.4, RFC 7252 §5.10.6) and Size2 on the first block (§4).
// The firmware image serves its own blocks from the file; this is for everything else a GET answers.
using System.Security.Cryptography;

namespace IoTHub.Connectivity.Coap;

/// <summary>Cuts a GET's 2.05 answer into the Block2 block the request asks for (RFC 7959 §2.4).</summary>
public static class CoapBlock2
{
    /// <summary>SZX 6: the block size used when the client names none, 1024 bytes (RFC 7959 §2.2).</summary>
    public const int DefaultSizeExponent = 6;

    /// <summary>The block of <paramref name="response"/> that <paramref name="request"/> asks for. Unchanged when it is
    /// not a 2.05, already carries Block2, or fits in 1024 bytes and no block was asked for; a block past the end is
    /// 4.02 (the block number is the Block2 option's, RFC 7959 §2.4).</summary>
    public static CoapMessage Apply(CoapMessage request, CoapMessage response)
    {
        if (response.Code != CoapCode.Content || response.HasOption(CoapOptionNumber.Block2)) return response;
        var whole = response.Payload;
        var asked = request.Block2;
        if (asked is null && whole.Length <= 1 << (DefaultSizeExponent + 4)) return response;
        var block = asked ?? new CoapBlock(0, false, DefaultSizeExponent);
        var offset = (long)block.Number * block.Size;
        if (offset >= whole.Length && !(offset == 0 && whole.Length == 0))
            return CoapResources.Diagnostic(CoapCode.BadOption, $"block {block.Number} is past the end of the representation ({whole.Length} bytes)");
        var length = (int)Math.Min(block.Size, whole.Length - offset);
        if (!response.HasOption(CoapOptionNumber.ETag)) response.AddOption(new CoapOption(CoapOptionNumber.ETag, SHA256.HashData(whole.Span)[..8]));
        response.Payload = whole.Slice((int)offset, length);
        response.AddOption(CoapOption.UInt(CoapOptionNumber.Block2, new CoapBlock(block.Number, offset + length < whole.Length, block.SizeExponent).Encode()));
        if (block.Number == 0) response.AddOption(CoapOption.UInt(CoapOptionNumber.Size2, (uint)whole.Length));
        return response;
    }
}
