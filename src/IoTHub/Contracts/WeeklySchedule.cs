// Days and a daily window in an IANA time zone: when an alarm rule may raise, when a firmware campaign may notify
// devices (its maintenance window). One shape on the wire, one validator, one compiled form for both modules.
using System.Globalization;
using FluentValidation;

namespace IoTHub.Contracts;

/// <summary>Days and hours in an IANA time zone.</summary>
/// <param name="TimeZone">An IANA zone id, e.g. <c>Europe/Berlin</c> (default <c>UTC</c>); daylight saving is followed.</param>
/// <param name="Days">Days of the week, <c>mon</c> to <c>sun</c>; null or empty: every day.</param>
/// <param name="From">Start of the daily window, <c>HH:mm</c> (default 00:00).</param>
/// <param name="To">End of the daily window, <c>HH:mm</c>, exclusive (default 24:00); before <paramref name="From"/>: the
/// window spans midnight and belongs to the day it starts on.</param>
public sealed record WeeklySchedule(string? TimeZone, IReadOnlyList<string>? Days, string? From, string? To)
{
    /// <summary>The day words, Monday first (ISO 8601).</summary>
    public static readonly string[] DayWords = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

    /// <summary>Minutes after midnight of an <c>HH:mm</c> (00:00 to 24:00), or null when it is not one.</summary>
    public static int? Minutes(string? hhmm)
    {
        if (hhmm is not { Length: 5 } || hhmm[2] != ':') return null;
        if (!int.TryParse(hhmm.AsSpan(0, 2), NumberStyles.None, CultureInfo.InvariantCulture, out var h)
            || !int.TryParse(hhmm.AsSpan(3, 2), NumberStyles.None, CultureInfo.InvariantCulture, out var m)) return null;
        if (h > 24 || m > 59 || (h == 24 && m != 0)) return null;
        return h * 60 + m;
    }

    /// <summary>The IANA zone (UTC for null or empty), or null when the system does not know it.</summary>
    public static TimeZoneInfo? Zone(string? id)
    {
        if (string.IsNullOrEmpty(id)) return TimeZoneInfo.Utc;
        try { return TimeZoneInfo.FindSystemTimeZoneById(id); }
        catch (TimeZoneNotFoundException) { return null; }
        catch (InvalidTimeZoneException) { return null; }
    }
}

/// <summary>Names each bad field of a <see cref="WeeklySchedule"/>.</summary>
public sealed class WeeklyScheduleValidator : AbstractValidator<WeeklySchedule>
{
    /// <summary>The rules: a known zone, day words, <c>HH:mm</c> times, a window that is not empty.</summary>
    public WeeklyScheduleValidator()
    {
        RuleFor(s => s.TimeZone).Must(z => WeeklySchedule.Zone(z) is not null).WithMessage(s => $"unknown IANA time zone '{s.TimeZone}'");
        RuleForEach(s => s.Days).Must(d => WeeklySchedule.DayWords.Contains(d)).WithMessage("days are mon, tue, wed, thu, fri, sat, sun");
        RuleFor(s => s.From).Must(t => t is null || WeeklySchedule.Minutes(t) is not null).WithMessage("from is HH:mm");
        RuleFor(s => s.To).Must(t => t is null || WeeklySchedule.Minutes(t) is not null).WithMessage("to is HH:mm");
        RuleFor(s => s).Must(s => (WeeklySchedule.Minutes(s.From) ?? 0) != (WeeklySchedule.Minutes(s.To) ?? 1440))
            .When(s => WeeklySchedule.Minutes(s.From ?? "00:00") is not null && WeeklySchedule.Minutes(s.To ?? "24:00") is not null)
            .WithName("to").WithMessage("from and to must differ");
    }
}

/// <summary>A validated <see cref="WeeklySchedule"/> ready to answer "is this instant in it?".</summary>
public sealed record CompiledWeeklySchedule(TimeZoneInfo Zone, bool[] Days, int FromMinute, int ToMinute)
{
    /// <summary>Whether the instant <paramref name="ms"/> (Unix ms) falls in the schedule. A window that spans midnight
    /// belongs to the day it starts on.</summary>
    public bool Contains(long ms)
    {
        var local = TimeZoneInfo.ConvertTime(DateTimeOffset.FromUnixTimeMilliseconds(ms), Zone);
        var minute = local.Hour * 60 + local.Minute;
        var day = ((int)local.DayOfWeek + 6) % 7; // Monday = 0
        if (FromMinute < ToMinute) return Days[day] && minute >= FromMinute && minute < ToMinute;
        var yesterday = (day + 6) % 7;
        return (Days[day] && minute >= FromMinute) || (Days[yesterday] && minute < ToMinute);
    }

    /// <summary>The compiled form of a schedule that passed <see cref="WeeklyScheduleValidator"/>; null for none.</summary>
    public static CompiledWeeklySchedule? Of(WeeklySchedule? s)
    {
        if (s is null) return null;
        var days = new bool[7];
        if (s.Days is not { Count: > 0 }) Array.Fill(days, true);
        else foreach (var d in s.Days) days[Array.IndexOf(WeeklySchedule.DayWords, d)] = true;
        return new(WeeklySchedule.Zone(s.TimeZone) ?? TimeZoneInfo.Utc, days, WeeklySchedule.Minutes(s.From) ?? 0, WeeklySchedule.Minutes(s.To) ?? 1440);
    }
}
