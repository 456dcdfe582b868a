// Window aggregates never become non-finite (issue #15: two values of 1.7976931348623157e308 in one minute overflowed
// the rollup sum; PostgreSQL raised 22003 and the writer retried it forever, SQLite stored Infinity and the API then
// answered 500). The rule: every value the contract accepts is stored, and a sum saturates at ±double.MaxValue, in the
// C# fold and in every SQL merge, written so that PostgreSQL never evaluates an overflowing addition. An average is
// clamped into [min, max], where the true average always lies, so a saturated window still reports a sound average.
namespace IoTHub.Contracts;

/// <summary>Sums that saturate instead of overflowing, and numbers made finite for an answer.</summary>
internal static class FiniteAggregates
{
    /// <summary>The largest double, as SQL text both databases read as exactly <see cref="double.MaxValue"/>.</summary>
    private const string MaxSql = "1.7976931348623157e308";

    /// <summary>a + b, or ±<see cref="double.MaxValue"/> where that would overflow; a non-finite input (a row written
    /// before this rule) counts as its saturated value.</summary>
    public static double Add(double a, double b)
    {
        var sum = Finite(a) + Finite(b);
        return double.IsFinite(sum) ? sum : sum > 0 ? double.MaxValue : double.MinValue;
    }

    /// <summary>±Infinity as ±<see cref="double.MaxValue"/>, NaN as 0: what an answer carries in place of a non-finite
    /// number an older version may have stored.</summary>
    public static double Finite(double x) => double.IsFinite(x) ? x : double.IsNaN(x) ? 0 : x > 0 ? double.MaxValue : double.MinValue;

    /// <summary>The mean of a window: sum / count, kept within [min, max], where the true mean lies also when the sum
    /// saturated (two values of double.MaxValue average double.MaxValue, not half of it).</summary>
    public static double Average(double sum, long count, double min, double max)
    {
        if (count <= 0) return 0;
        var lo = Finite(min);
        return Math.Clamp(Finite(sum) / count, lo, Math.Max(lo, Finite(max)));
    }

    /// <summary>SQL for the saturating sum of two float columns, the same text for SQLite and PostgreSQL. Each branch
    /// only evaluates what cannot overflow (MaxValue - a for a &gt; 0 lies in [0, MaxValue]), so PostgreSQL's float
    /// overflow check (SQLSTATE 22003) is never reached.</summary>
    public static string SqlAdd(string a, string b) =>
        $"(CASE WHEN {a} > 0 AND {b} > {MaxSql} - {a} THEN {MaxSql} WHEN {a} < 0 AND {b} < -{MaxSql} - {a} THEN -{MaxSql} ELSE {a} + {b} END)";
}
