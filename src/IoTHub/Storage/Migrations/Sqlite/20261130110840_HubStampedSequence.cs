using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace IoTHub.Storage.Migrations.Sqlite
{
    /// <inheritdoc />
    public partial class HubStampedSequence : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            // Raw telemetry is keyed by (series_id, ts, seq): 0 for a point at its device's timestamp (a resend is the same
            // row), the hub's arrival sequence number for a point it stamped (docs/adr/0005). SQLite cannot change the key
            // of a WITHOUT ROWID table in place: the table is copied. Existing rows get 0.
            migrationBuilder.Sql("""
                CREATE TABLE telemetry_new (
                    series_id INTEGER NOT NULL,
                    ts INTEGER NOT NULL,
                    seq INTEGER NOT NULL DEFAULT 0,
                    kind INTEGER NOT NULL,
                    number REAL NULL,
                    text TEXT NULL,
                    device_ts INTEGER NULL,
                    PRIMARY KEY (series_id, ts, seq)
                ) WITHOUT ROWID;
                INSERT INTO telemetry_new (series_id, ts, seq, kind, number, text, device_ts)
                SELECT series_id, ts, 0, kind, number, text, device_ts FROM telemetry;
                DROP TABLE telemetry;
                ALTER TABLE telemetry_new RENAME TO telemetry;
                """);
            // Sums written before they saturated may be infinite: clamp them, so that the merge never meets one and no
            // answer carries one (SQLite keeps no NaN: it stores NULL, which the NOT NULL column refused).
            foreach (var table in new[] { "rollup_1m", "rollup_1h", "rollup_1d" })
            {
                migrationBuilder.Sql($"""
                    UPDATE {table} SET sum = CASE WHEN sum > 0 THEN 1.7976931348623157e308 ELSE -1.7976931348623157e308 END
                    WHERE sum > 1.7976931348623157e308 OR sum < -1.7976931348623157e308;
                    """);
            }

            migrationBuilder.AddColumn<long>(
                name: "last_seq",
                table: "series",
                type: "INTEGER",
                nullable: false,
                defaultValue: 0L);

            migrationBuilder.AddColumn<long>(
                name: "last_seq",
                table: "rollup_1m",
                type: "INTEGER",
                nullable: false,
                defaultValue: 0L);

            migrationBuilder.AddColumn<long>(
                name: "last_seq",
                table: "rollup_1h",
                type: "INTEGER",
                nullable: false,
                defaultValue: 0L);

            migrationBuilder.AddColumn<long>(
                name: "last_seq",
                table: "rollup_1d",
                type: "INTEGER",
                nullable: false,
                defaultValue: 0L);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            // A downgrade keeps one point per (series, millisecond): the old key cannot hold hub-stamped readings that share one.
            migrationBuilder.Sql("""
                CREATE TABLE telemetry_old (
                    series_id INTEGER NOT NULL,
                    ts INTEGER NOT NULL,
                    kind INTEGER NOT NULL,
                    number REAL NULL,
                    text TEXT NULL,
                    device_ts INTEGER NULL,
                    PRIMARY KEY (series_id, ts)
                ) WITHOUT ROWID;
                INSERT OR IGNORE INTO telemetry_old (series_id, ts, kind, number, text, device_ts)
                SELECT series_id, ts, kind, number, text, device_ts FROM telemetry ORDER BY series_id, ts, seq;
                DROP TABLE telemetry;
                ALTER TABLE telemetry_old RENAME TO telemetry;
                """);
            migrationBuilder.DropColumn(
                name: "last_seq",
                table: "series");

            migrationBuilder.DropColumn(
                name: "last_seq",
                table: "rollup_1m");

            migrationBuilder.DropColumn(
                name: "last_seq",
                table: "rollup_1h");

            migrationBuilder.DropColumn(
                name: "last_seq",
                table: "rollup_1d");
        }
    }
}
