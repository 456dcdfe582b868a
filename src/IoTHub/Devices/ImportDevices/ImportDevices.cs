// POST /devices/import (text/csv): one device per line, `id,name,profile,tags` (tags separated by ';'; a header
// line is recognised and skipped). Each line is validated and created on its own: the report says, line by line,
// which were created (with their tokens, shown this once) and why the others were refused.
using FluentValidation;
using IoTHub.Contracts;
using IoTHub.Devices.CreateDevice;
using Mediator;
using Microsoft.AspNetCore.Http.HttpResults;

namespace IoTHub.Devices.ImportDevices;

/// <summary>Creates a device for each line of <paramref name="Csv"/> (<c>id,name,profile,tags</c>, at most 10,000 lines;
/// see the file's header), each on its own.</summary>
public sealed record ImportDevicesCommand(string Csv) : IRequest<ImportReport>;

/// <summary>What became of one CSV line.</summary>
/// <param name="Line">Its line number in the CSV, from 1 (a header line counts).</param>
/// <param name="Id">The device id: the one given, or the generated one when it was created without.</param>
/// <param name="Created">True when the device was registered.</param>
/// <param name="Token">The new device's token, shown this once (like <c>CreatedDevice.token</c>); null when not created.</param>
/// <param name="Error">Why the line was refused (a line CSV cannot read, invalid field, id taken, unknown profile, too many
/// fields); null when created.</param>
public sealed record ImportedLine(int Line, string? Id, bool Created, string? Token, string? Error);

/// <summary>The answer to <c>POST /api/v1/devices/import</c> (200 even when some lines failed):
/// <c>{"created", "failed", "lines": [{"line", "id", "created", "token", "error"}]}</c>.</summary>
/// <param name="Created">Devices registered.</param>
/// <param name="Failed">Lines refused.</param>
/// <param name="Lines">Every non-blank line that was not the header, in order.</param>
public sealed record ImportReport(int Created, int Failed, IReadOnlyList<ImportedLine> Lines);

internal sealed class ImportDevicesHandler(IMediator mediator, IValidator<CreateDeviceRequest> validator) : IRequestHandler<ImportDevicesCommand, ImportReport>
{
    public const int MaxLines = 10_000;

    /// <summary>CRLF (RFC 4180 §2.1), LF, and CR alone (a file saved by an old Mac tool was one line, its header, and
    /// imported nothing without a word).</summary>
    private static readonly string[] LineEnds = ["\r\n", "\r", "\n"];

    public async ValueTask<ImportReport> Handle(ImportDevicesCommand c, CancellationToken ct)
    {
        var lines = new List<ImportedLine>();
        var number = 0;
        foreach (var line in c.Csv.Split(LineEnds, StringSplitOptions.None))
        {
            number++;
            if (line.Trim().Length == 0) continue;
            var fields = SplitCsv(line, out var unreadable);
            if (number == 1 && fields is [var first, ..] && first.Trim().Equals("id", StringComparison.OrdinalIgnoreCase)) continue;
            if (lines.Count >= MaxLines)
            {
                lines.Add(new ImportedLine(number, null, false, null, $"more than {MaxLines} lines; the rest was not read"));
                break;
            }
            if (fields is null)
            {
                lines.Add(new ImportedLine(number, null, false, null, unreadable));
                continue;
            }
            string? Field(int i) => i < fields.Count && fields[i].Trim().Length > 0 ? fields[i].Trim() : null;
            var request = new CreateDeviceRequest(Field(0), Field(1), Field(2),
                Field(3)?.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
            if (fields.Count > 4)
            {
                lines.Add(new ImportedLine(number, Field(0), false, null, "expected at most 4 fields: id,name,profile,tags"));
                continue;
            }
            var v = await validator.ValidateAsync(request, ct);
            if (!v.IsValid)
            {
                lines.Add(new ImportedLine(number, Field(0), false, null, string.Join("; ", v.Errors.Select(e => e.ErrorMessage))));
                continue;
            }
            var result = await mediator.Send(request, ct);
            lines.Add(result.Outcome switch
            {
                CreateDeviceOutcome.Created => new ImportedLine(number, result.Device!.Id, true, result.Device.Token, null),
                CreateDeviceOutcome.UnknownProfile => new ImportedLine(number, request.Id, false, null, $"no profile '{request.Profile}'"),
                _ => new ImportedLine(number, request.Id, false, null, $"device '{request.Id}' already exists"),
            });
        }
        return new ImportReport(lines.Count(l => l.Created), lines.Count(l => !l.Created), lines);
    }

    /// <summary>Splits one CSV line into fields as RFC 4180 §2 writes them: a field is either plain (no quote in it) or
    /// wholly in double quotes, with <c>""</c> for a quote inside; spaces around a quoted field are allowed. A line the
    /// rule cannot read is refused with the column and why, rather than guessed at: an unclosed quote (a field may not
    /// span lines here: a device's fields hold no line breaks), text after a closing quote, a quote inside a plain field.</summary>
    /// <returns>The fields (untrimmed), or null and <paramref name="error"/>.</returns>
    internal static List<string>? SplitCsv(string line, out string? error)
    {
        var fields = new List<string>();
        var current = new System.Text.StringBuilder();
        var i = 0;
        while (true)
        {
            var column = fields.Count + 1;
            var start = i;
            while (i < line.Length && line[i] == ' ') i++;
            if (i < line.Length && line[i] == '"')
            {
                for (i++; ; i++)
                {
                    if (i >= line.Length)
                    {
                        error = $"column {column} opens a quote that is not closed on this line";
                        return null;
                    }
                    if (line[i] != '"') current.Append(line[i]);
                    else if (i + 1 < line.Length && line[i + 1] == '"') { current.Append('"'); i++; }
                    else break;
                }
                for (i++; i < line.Length && line[i] == ' '; i++) { }
                if (i < line.Length && line[i] != ',')
                {
                    error = $"column {column} has text after its closing quote (quote the whole field, as RFC 4180 §2 says)";
                    return null;
                }
            }
            else
            {
                i = start;
                for (; i < line.Length && line[i] != ','; i++)
                {
                    if (line[i] == '"')
                    {
                        error = $"column {column} has a quote inside an unquoted field (quote the whole field and double the quote inside it, as RFC 4180 §2 says)";
                        return null;
                    }
                    current.Append(line[i]);
                }
            }
            fields.Add(current.ToString());
            current.Clear();
            if (i >= line.Length)
            {
                error = null;
                return fields;
            }
            i++; // the comma
        }
    }

    /// <summary>The number (from 1) of the first line that is not valid UTF-8, or null when all are.</summary>
    internal static int? InvalidUtf8Line(ReadOnlySpan<byte> csv)
    {
        if (System.Text.Unicode.Utf8.IsValid(csv)) return null;
        var line = 1;
        for (var i = 0; i < csv.Length;)
        {
            if (System.Text.Rune.DecodeFromUtf8(csv[i..], out _, out var consumed) != System.Buffers.OperationStatus.Done) return line;
            if (csv[i] == (byte)'\n') line++;
            i += consumed;
        }
        return line;
    }

    public static void Map(RouteGroupBuilder api) =>
        api.MapPost("/devices/import", async Task<Results<Ok<ImportReport>, ContentTooLargeProblem, UnsupportedMediaTypeProblem, ValidationProblem>> (HttpRequest http,
                IMediator m, CancellationToken ct) =>
            {
                var mediaType = http.ContentType?.Split(';')[0].Trim().ToLowerInvariant();
                if (mediaType is not ("text/csv" or "text/plain"))
                    return new UnsupportedMediaTypeProblem("Unsupported media type", "Send text/csv: id,name,profile,tags (tags separated by ';').");
                const int max = 4 * 1024 * 1024;
                if (http.ContentLength > max) return new ContentTooLargeProblem("At most 4 MiB of CSV");
                using var body = new MemoryStream();
                var buffer = new byte[81920];
                for (int read; (read = await http.Body.ReadAsync(buffer, ct)) > 0;)
                {
                    if (body.Length + read > max) return new ContentTooLargeProblem("At most 4 MiB of CSV");
                    body.Write(buffer, 0, read);
                }
                // Not UTF-8 (a file saved as Latin-1, say) was read with U+FFFD for each bad byte and names stored so.
                var bytes = body.GetBuffer().AsSpan(0, (int)body.Length);
                if (InvalidUtf8Line(bytes) is { } bad)
                    return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["csv"] = [$"line {bad} is not valid UTF-8: save the file as UTF-8"] });
                var csv = System.Text.Encoding.UTF8.GetString(bytes);
                return TypedResults.Ok(await m.Send(new ImportDevicesCommand(csv.TrimStart('\uFEFF')), ct));
            })
            .RequireAuthorization("operator")
            // No Accepts(...) metadata: it would make routing answer 415 before authorization answers 401/403.
            .WithName("ImportDevices").WithSummary("Create devices from CSV (id,name,profile,tags); a report per line, tokens shown once").WithTags("Devices");
}
