using System.Runtime.InteropServices;

namespace IoTHub.Benchmarks;

internal static class Machine
{
    public static string Describe()
    {
        var cpu = File.Exists("/proc/cpuinfo")
            ? File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim()
            : null;
        var memory = File.Exists("/proc/meminfo") ? File.ReadLines("/proc/meminfo").First().Split(':', 2)[1].Trim() : "?";
        return $"{Environment.ProcessorCount} cores ({cpu ?? RuntimeInformation.ProcessArchitecture.ToString()}), {memory} memory, " +
               $"{RuntimeInformation.OSDescription}, .NET {Environment.Version}";
    }

    /// <summary>Resident memory of a process, in MiB (Linux).</summary>
    public static double RssMiB(int pid)
    {
        var status = $"/proc/{pid}/status";
        if (!File.Exists(status)) return double.NaN;
        var line = File.ReadLines(status).FirstOrDefault(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
        return line is null ? double.NaN : long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) / 1024.0;
    }
}

/// <summary>CPU time (user + system) of a set of server processes over a measured window, from <c>/proc/[pid]/stat</c>
/// (fields 14 and 15, in clock ticks of 1/100 s: <c>getconf CLK_TCK</c> on Linux). A process that exits inside the
/// window loses what it used since the last sample, so the window is sampled where no server process ends.</summary>
internal sealed class CpuMeter
{
    private const double TicksPerSecond = 100;
    private readonly Func<IEnumerable<int>> _pids;
    private Dictionary<int, long> _start = new();

    /// <param name="pids">The processes to count, asked at each sample (PostgreSQL starts a backend per connection).</param>
    public CpuMeter(Func<IEnumerable<int>> pids) => _pids = pids;

    public void Start() => _start = Sample();

    /// <summary>CPU seconds used by the processes since <see cref="Start"/> (a process started since counts whole).</summary>
    public double Seconds()
    {
        long ticks = 0;
        foreach (var (pid, now) in Sample()) ticks += now - _start.GetValueOrDefault(pid);
        return ticks / TicksPerSecond;
    }

    private Dictionary<int, long> Sample()
    {
        var result = new Dictionary<int, long>();
        foreach (var pid in _pids())
        {
            if (Ticks(pid) is { } t) result[pid] = t;
        }
        return result;
    }

    /// <summary>utime + stime of a process (all its threads), or null when it is gone.</summary>
    public static long? Ticks(int pid) => ParseTicks($"/proc/{pid}/stat");

    private static long? ParseTicks(string path)
    {
        try
        {
            var stat = File.ReadAllText(path);
            // The command name (field 2) is in parentheses and may hold spaces: count fields after its closing one.
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return long.Parse(fields[11], System.Globalization.CultureInfo.InvariantCulture) + long.Parse(fields[12], System.Globalization.CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
            return null;
        }
    }

    /// <summary>CPU ticks of each of a process's threads whose name starts with <paramref name="prefix"/> (e.g. ".NET Tiered
    /// Com", the runtime's background JIT thread, whose name Linux cuts to 15 characters), by thread id. The runtime ends
    /// that thread when it is idle and starts a new one: compare two samples with <see cref="TicksSince"/>.</summary>
    public static Dictionary<string, long> ThreadTicks(int pid, string prefix)
    {
        var result = new Dictionary<string, long>();
        try
        {
            foreach (var task in Directory.EnumerateDirectories($"/proc/{pid}/task"))
            {
                try
                {
                    if (!File.ReadAllText(Path.Combine(task, "comm")).StartsWith(prefix, StringComparison.Ordinal)) continue;
                    if (Ticks(pid, Path.GetFileName(task)) is { } t) result[Path.GetFileName(task)] = t;
                }
                catch (IOException) { } // the thread ended
            }
        }
        catch (DirectoryNotFoundException) { }
        return result;
    }

    /// <summary>Seconds the threads of <paramref name="now"/> ran since <paramref name="then"/> (a thread new since counts
    /// whole; one that ended in between is lost, so this is a lower bound).</summary>
    public static double TicksSince(Dictionary<string, long> then, Dictionary<string, long> now) =>
        now.Sum(t => t.Value - then.GetValueOrDefault(t.Key)) / TicksPerSecond;

    private static long? Ticks(int pid, string tid) => ParseTicks($"/proc/{pid}/task/{tid}/stat");

    /// <summary>Every PostgreSQL process on the machine (postmaster, backends, WAL writer, checkpointer, autovacuum):
    /// the whole database server's work, which is what a contender costs it.</summary>
    /// <summary>Every process whose name (<c>/proc/[pid]/comm</c>) is <paramref name="name"/> (e.g. RabbitMQ's <c>beam.smp</c>).</summary>
    public static IEnumerable<int> ProcessesNamed(string name)
    {
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid)) continue;
            string comm;
            try { comm = File.ReadAllText(Path.Combine(dir, "comm")).Trim(); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { continue; }
            if (comm == name) yield return pid;
        }
    }

    public static IEnumerable<int> PostgresProcesses()
    {
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid)) continue;
            string comm;
            try { comm = File.ReadAllText(Path.Combine(dir, "comm")).Trim(); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { continue; }
            if (comm is "postgres" or "postmaster") yield return pid;
        }
    }
}
