// Fixtures run side by side, their tests one after another: most of a test's time is spent waiting (on a commit, a
// browser, an external client, a timer). Measured on 2 cores with PostgreSQL: 13 min one fixture at a time, 7 min 44 s
// four at a time, 6 min 57 s six at a time; four keeps headroom for the tests bounded by time. A fixture that stops
// the database, kills processes or measures the whole process's memory is [NonParallelizable]: it runs alone.
[assembly: Parallelizable(ParallelScope.Fixtures)]
[assembly: LevelOfParallelism(4)]
