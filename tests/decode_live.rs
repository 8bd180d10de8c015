//! `binlog_tailer::decode` against the real local MariaDB: a table with every
//! column type gets edge values on the primary in one transaction; the
//! replica applies it and writes it to its own binlog under the primary's
//! GTID; this test reads the replica's binlog as a replica would and checks
//! every decoded value against what was inserted (written below, by hand).
//!
//! A second run does the same with `log_bin_compress=ON` on the replica:
//! MariaDB 10.11 also compresses the row events its replica thread logs
//! (WRITE/UPDATE/DELETE_ROWS_COMPRESSED_V1, QUERY_COMPRESSED), and they must
//! decode to the same values. The setting is restored even on failure.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use binlog_tailer::decode::{
    self, count_rows, event_type_name, is_rows_event, parse_annotate_rows, parse_binlog_checkpoint,
    parse_format_description, parse_gtid, parse_gtid_list, parse_query, parse_rows,
    parse_table_map, rows_table_id, Charset, CharsetMap, ColumnType, RowsKind, TableMap, Value,
};
use futures_util::StreamExt;
use mysql_async::binlog::BinlogChecksumAlg;
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStreamRequest, Conn, Row, TxOpts};
use test_support::{connect, unique_name, Server, User};

/// Upper bound for one run; a failure must never hang the suite.
const TEST_TIMEOUT: Duration = Duration::from_secs(120);

/// The two runs change a global setting of the replica: one at a time.
static REPLICA_SETTINGS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread")]
async fn decodes_every_column_type_from_the_replica_binlog() {
    let _serial = REPLICA_SETTINGS.lock().await;
    tokio::time::timeout(TEST_TIMEOUT, run(false))
        .await
        .expect("the test did not finish within its timeout");
}

#[tokio::test(flavor = "multi_thread")]
async fn decodes_compressed_events_from_the_replica_binlog() {
    let _serial = REPLICA_SETTINGS.lock().await;
    let mut replica = connect(Server::Replica, User::Admin).await;
    let old_min_len = test_support::global_var(&mut replica, "log_bin_compress_min_len").await;
    // Restores the replica's settings when dropped: on success, on panic
    // and when the timeout drops the run.
    let _restore = SqlOnDrop {
        server: Server::Replica,
        sql: format!(
            "SET GLOBAL log_bin_compress=OFF, GLOBAL log_bin_compress_min_len={old_min_len}"
        ),
        what: "restore log_bin_compress=OFF on the replica",
    };
    replica
        .query_drop("SET GLOBAL log_bin_compress_min_len=10, GLOBAL log_bin_compress=ON")
        .await
        .expect("turn on log_bin_compress on the replica");
    drop(replica);
    tokio::time::timeout(TEST_TIMEOUT, run(true))
        .await
        .expect("the test did not finish within its timeout");
}

/// Runs one statement when dropped (on success, on panic, and when a
/// timeout drops the test's future), on a thread of its own: Drop cannot
/// await.
struct SqlOnDrop {
    server: Server,
    sql: String,
    what: &'static str,
}

impl Drop for SqlOnDrop {
    fn drop(&mut self) {
        let (server, sql) = (self.server, self.sql.clone());
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the clean-up");
            rt.block_on(async move { connect(server, User::Admin).await.query_drop(sql).await })
        })
        .join();
        match done {
            Ok(Ok(())) => eprintln!("done: {}", self.what),
            Ok(Err(e)) => eprintln!("COULD NOT {}: {e}", self.what),
            Err(_) => eprintln!("COULD NOT {} (panic)", self.what),
        }
    }
}

const CREATE_TABLE: &str = "CREATE TABLE {db}.every (
    id INT NOT NULL PRIMARY KEY,
    ti TINYINT, tu TINYINT UNSIGNED, si SMALLINT, su SMALLINT UNSIGNED,
    mi MEDIUMINT, mu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED,
    bi BIGINT, bu BIGINT UNSIGNED,
    d DECIMAL(10,2), dz DECIMAL(5,0), dl DECIMAL(65,30),
    f FLOAT, dbl DOUBLE,
    b1 BIT(1), b64 BIT(64),
    yr YEAR, dd DATE,
    t0 TIME, t1 TIME(1), t3 TIME(3), t6 TIME(6),
    dt0 DATETIME, dt3 DATETIME(3), dt6 DATETIME(6),
    ts0 TIMESTAMP NULL DEFAULT NULL, ts2 TIMESTAMP(2) NULL DEFAULT NULL,
    ts6 TIMESTAMP(6) NULL DEFAULT NULL,
    c CHAR(10) CHARACTER SET utf8mb4, v VARCHAR(100) CHARACTER SET utf8mb4,
    tx TEXT CHARACTER SET utf8mb4,
    lt VARCHAR(200) CHARACTER SET latin1,
    uca VARCHAR(20) CHARACTER SET utf8mb4 COLLATE utf8mb4_uca1400_ai_ci,
    bn BINARY(4), vb VARBINARY(20), bl BLOB,
    e ENUM('small','médium','large') CHARACTER SET utf8mb4,
    s SET('a','b','c','d','e','f','g','h','i'),
    u UUID, ip INET6, j JSON, g GEOMETRY,
    n INT
) ENGINE=InnoDB";

/// Every byte 0x80..=0xff, for the latin1 (cp1252) column.
const LATIN1_HIGH: &str = "X'808182838485868788898A8B8C8D8E8F909192939495969798999A9B9C9D9E9F\
A0A1A2A3A4A5A6A7A8A9AAABACADAEAFB0B1B2B3B4B5B6B7B8B9BABBBCBDBEBFC0C1C2C3C4C5C6C7C8C9CACBCCCDCECF\
D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDFE0E1E2E3E4E5E6E7E8E9EAEBECEDEEEFF0F1F2F3F4F5F6F7F8F9FAFBFCFDFEFF'";

fn insert_sql(db: &str) -> String {
    let long_text = "Lorem ipsum ✓ ".repeat(30);
    format!(
        "INSERT INTO {db}.every (id, ti, tu, si, su, mi, mu, i, iu, bi, bu, d, dz, dl, f, dbl, \
         b1, b64, yr, dd, t0, t1, t3, t6, dt0, dt3, dt6, ts0, ts2, ts6, c, v, tx, lt, uca, \
         bn, vb, bl, e, s, u, ip, j, g, n) VALUES \
         (1, -128, 0, -32768, 0, -8388608, 0, -2147483648, 0, -9223372036854775808, 0, \
          -99999999.99, -99999, \
          -99999999999999999999999999999999999.999999999999999999999999999999, \
          -1.5, -2.5e-300, b'0', 0, 1901, '1000-01-01', \
          '-838:59:59', '-00:00:00.1', '-00:00:00.001', '-838:59:59.999999', \
          '1000-01-01 00:00:00', '1000-01-01 00:00:00.001', '1000-01-01 00:00:00.000001', \
          '1970-01-01 00:00:01', '1970-01-01 00:00:01.01', '1970-01-01 00:00:01.000001', \
          '', '', '', '', '', '', '', '', 'small', '', \
          '00000000-0000-0000-0000-000000000000', '::', '[]', \
          ST_GeomFromText('POINT(0 0)'), NULL), \
         (2, 127, 255, 32767, 65535, 8388607, 16777215, 2147483647, 4294967295, \
          9223372036854775807, 18446744073709551615, 99999999.99, 99999, \
          99999999999999999999999999999999999.999999999999999999999999999999, \
          16777216, 1.7976931348623157e308, b'1', 0xFFFFFFFFFFFFFFFF, 2155, '9999-12-31', \
          '838:59:59', '838:59:59.9', '-12:34:56.789', '838:59:59.999999', \
          '9999-12-31 23:59:59', '9999-12-31 23:59:59.999', '9999-12-31 23:59:59.999999', \
          '2038-01-19 03:14:07', '2038-01-19 03:14:07.99', '2038-01-19 03:14:07.999999', \
          'über 🚀✓', 'Grüße, 世界 🌍', '{long_text}', {LATIN1_HIGH}, 'Ünïcödé', \
          'abcd', X'00FF00', X'DEADBEEF00', 'médium', 'a,c,i', \
          'e7a1c7d4-1234-11ee-be56-0242ac120002', '2001:db8::ff00:42:8329', \
          '{{\"a\": [1, \"ü\"]}}', ST_GeomFromText('POINT(1 2)'), NULL), \
         (3, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -0.01, 0, \
          0.000000000000000000000000000001, 0, 0.1, NULL, b'1', 0, '0000-00-00', \
          '00:00:00', '00:00:00.0', '00:00:00', '-00:00:00.000001', \
          '0000-00-00 00:00:00', '0000-00-00 00:00:00.000', '2024-02-29 12:34:56.123456', \
          0, NULL, '2024-02-29 12:34:56.5', \
          'ab  ', 'trailing  ', 'x', 'café', '', X'00', X'00', NULL, '', 'i', \
          '123e4567-e89b-42d3-a456-426614174000', '::ffff:192.0.2.1', 'null', NULL, NULL), \
         (4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, \
          NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, \
          NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, \
          NULL, NULL, NULL, NULL, NULL)"
    )
}

// --- Expected values, written by hand -------------------------------------

fn int(v: i64) -> Value {
    Value::Int(v)
}
fn uint(v: u64) -> Value {
    Value::UInt(v)
}
fn dec(s: &str) -> Value {
    Value::Decimal(s.to_owned())
}
fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}
fn bytes(b: &[u8]) -> Value {
    Value::Bytes(b.to_vec())
}
fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}
fn time(negative: bool, hours: u32, minutes: u8, seconds: u8, micros: u32, fsp: u8) -> Value {
    Value::Time {
        negative,
        hours,
        minutes,
        seconds,
        micros,
        fsp,
    }
}
#[allow(clippy::too_many_arguments)]
fn datetime(y: u16, mo: u8, d: u8, h: u8, mi: u8, s: u8, micros: u32, fsp: u8) -> Value {
    Value::DateTime {
        year: y,
        month: mo,
        day: d,
        hour: h,
        minute: mi,
        second: s,
        micros,
        fsp,
    }
}
fn ts(seconds: u32, micros: u32, fsp: u8) -> Value {
    Value::Timestamp {
        seconds,
        micros,
        fsp,
    }
}
fn date(year: u16, month: u8, day: u8) -> Value {
    Value::Date { year, month, day }
}
/// SRID 0, then WKB of a little-endian POINT(x y).
fn point(x: f64, y: f64) -> Value {
    let mut b = vec![0, 0, 0, 0, 1, 1, 0, 0, 0];
    b.extend(x.to_le_bytes());
    b.extend(y.to_le_bytes());
    Value::Bytes(b)
}

/// Rows 1-4 as inserted; columns not listed are NULL. `latin1_high` is the
/// server's own `CONVERT(lt USING utf8mb4)` of row 2.
fn expected_rows(latin1_high: &str) -> Vec<Vec<(&'static str, Value)>> {
    let long_text = "Lorem ipsum ✓ ".repeat(30);
    vec![
        vec![
            ("id", int(1)),
            ("ti", int(-128)),
            ("tu", uint(0)),
            ("si", int(-32768)),
            ("su", uint(0)),
            ("mi", int(-8388608)),
            ("mu", uint(0)),
            ("i", int(-2147483648)),
            ("iu", uint(0)),
            ("bi", int(i64::MIN)),
            ("bu", uint(0)),
            ("d", dec("-99999999.99")),
            ("dz", dec("-99999")),
            (
                "dl",
                dec("-99999999999999999999999999999999999.999999999999999999999999999999"),
            ),
            ("f", Value::Float(-1.5)),
            ("dbl", Value::Double(-2.5e-300)),
            ("b1", Value::Bit { bits: 1, value: 0 }),
            ("b64", Value::Bit { bits: 64, value: 0 }),
            ("yr", Value::Year(1901)),
            ("dd", date(1000, 1, 1)),
            ("t0", time(true, 838, 59, 59, 0, 0)),
            ("t1", time(true, 0, 0, 0, 100_000, 1)),
            ("t3", time(true, 0, 0, 0, 1_000, 3)),
            ("t6", time(true, 838, 59, 59, 999_999, 6)),
            ("dt0", datetime(1000, 1, 1, 0, 0, 0, 0, 0)),
            ("dt3", datetime(1000, 1, 1, 0, 0, 0, 1_000, 3)),
            ("dt6", datetime(1000, 1, 1, 0, 0, 0, 1, 6)),
            ("ts0", ts(1, 0, 0)),
            ("ts2", ts(1, 10_000, 2)),
            ("ts6", ts(1, 1, 6)),
            ("c", text("")),
            ("v", text("")),
            ("tx", text("")),
            ("lt", text("")),
            ("uca", text("")),
            ("bn", bytes(&[0; 4])),
            ("vb", bytes(b"")),
            ("bl", bytes(b"")),
            ("e", Value::Enum("small".into())),
            ("s", Value::Set(vec![])),
            ("u", bytes(&[0; 16])),
            ("ip", bytes(&[0; 16])),
            ("j", text("[]")),
            ("g", point(0.0, 0.0)),
        ],
        vec![
            ("id", int(2)),
            ("ti", int(127)),
            ("tu", uint(255)),
            ("si", int(32767)),
            ("su", uint(65535)),
            ("mi", int(8388607)),
            ("mu", uint(16777215)),
            ("i", int(2147483647)),
            ("iu", uint(4294967295)),
            ("bi", int(i64::MAX)),
            ("bu", uint(u64::MAX)),
            ("d", dec("99999999.99")),
            ("dz", dec("99999")),
            (
                "dl",
                dec("99999999999999999999999999999999999.999999999999999999999999999999"),
            ),
            ("f", Value::Float(16777216.0)),
            ("dbl", Value::Double(1.7976931348623157e308)),
            ("b1", Value::Bit { bits: 1, value: 1 }),
            (
                "b64",
                Value::Bit {
                    bits: 64,
                    value: u64::MAX,
                },
            ),
            ("yr", Value::Year(2155)),
            ("dd", date(9999, 12, 31)),
            ("t0", time(false, 838, 59, 59, 0, 0)),
            ("t1", time(false, 838, 59, 59, 900_000, 1)),
            ("t3", time(true, 12, 34, 56, 789_000, 3)),
            ("t6", time(false, 838, 59, 59, 999_999, 6)),
            ("dt0", datetime(9999, 12, 31, 23, 59, 59, 0, 0)),
            ("dt3", datetime(9999, 12, 31, 23, 59, 59, 999_000, 3)),
            ("dt6", datetime(9999, 12, 31, 23, 59, 59, 999_999, 6)),
            ("ts0", ts(2147483647, 0, 0)),
            ("ts2", ts(2147483647, 990_000, 2)),
            ("ts6", ts(2147483647, 999_999, 6)),
            ("c", text("über 🚀✓")),
            ("v", text("Grüße, 世界 🌍")),
            ("tx", Value::Text(long_text)),
            ("lt", text(latin1_high)),
            ("uca", text("Ünïcödé")),
            ("bn", bytes(b"abcd")),
            ("vb", bytes(&[0, 0xff, 0])),
            ("bl", bytes(&[0xde, 0xad, 0xbe, 0xef, 0])),
            ("e", Value::Enum("médium".into())),
            ("s", Value::Set(vec!["a".into(), "c".into(), "i".into()])),
            ("u", bytes(&hex("e7a1c7d4123411eebe560242ac120002"))),
            ("ip", bytes(&hex("20010db8000000000000ff0000428329"))),
            ("j", text("{\"a\": [1, \"ü\"]}")),
            ("g", point(1.0, 2.0)),
        ],
        row3(),
        vec![("id", int(4))],
    ]
}

fn row3() -> Vec<(&'static str, Value)> {
    vec![
        ("id", int(3)),
        ("ti", int(-1)),
        ("tu", uint(1)),
        ("si", int(-1)),
        ("su", uint(1)),
        ("mi", int(-1)),
        ("mu", uint(1)),
        ("i", int(-1)),
        ("iu", uint(1)),
        ("bi", int(-1)),
        ("bu", uint(1)),
        ("d", dec("-0.01")),
        ("dz", dec("0")),
        ("dl", dec("0.000000000000000000000000000001")),
        ("f", Value::Float(0.0)),
        ("dbl", Value::Double(0.1)),
        ("b64", Value::Bit { bits: 64, value: 1 }),
        ("yr", Value::Year(0)),
        ("dd", date(0, 0, 0)),
        ("t0", time(false, 0, 0, 0, 0, 0)),
        ("t1", time(false, 0, 0, 0, 0, 1)),
        ("t3", time(false, 0, 0, 0, 0, 3)),
        ("t6", time(true, 0, 0, 0, 1, 6)),
        ("dt0", datetime(0, 0, 0, 0, 0, 0, 0, 0)),
        ("dt3", datetime(0, 0, 0, 0, 0, 0, 0, 3)),
        ("dt6", datetime(2024, 2, 29, 12, 34, 56, 123_456, 6)),
        ("ts0", ts(0, 0, 0)),
        ("ts6", ts(1709210096, 500_000, 6)),
        // CHAR drops trailing spaces (as SELECT does); VARCHAR keeps them.
        ("c", text("ab")),
        ("v", text("trailing  ")),
        ("tx", text("x")),
        ("lt", text("café")),
        ("uca", text("")),
        ("bn", bytes(&[0; 4])),
        ("vb", bytes(&[0])),
        ("e", Value::Enum(String::new())),
        ("s", Value::Set(vec!["i".into()])),
        ("u", bytes(&hex("123e4567e89b42d3a456426614174000"))),
        ("ip", bytes(&hex("00000000000000000000ffffc0000201"))),
        ("j", text("null")),
    ]
}

/// Row 3 after `UPDATE ... SET v='updated', mi=-5, dz=-1 WHERE id=3`.
fn row3_updated() -> Vec<(&'static str, Value)> {
    row3()
        .into_iter()
        .map(|(name, value)| match name {
            "v" => (name, text("updated")),
            "mi" => (name, int(-5)),
            "dz" => (name, dec("-1")),
            _ => (name, value),
        })
        .collect()
}

/// A full row image in table column order: listed columns, the rest NULL.
fn full_image(table: &TableMap, values: &[(&'static str, Value)]) -> Vec<Option<Value>> {
    let by_name: HashMap<&str, &Value> = values.iter().map(|(n, v)| (*n, v)).collect();
    for (name, _) in values {
        assert!(
            table.column_index(name).is_some(),
            "expected value for unknown column {name}"
        );
    }
    table
        .columns
        .iter()
        .map(|c| {
            let name = c.name.as_deref().expect("FULL metadata gives names");
            Some(by_name.get(name).map_or(Value::Null, |v| (*v).clone()))
        })
        .collect()
}

fn assert_image(table: &TableMap, what: &str, got: &[Option<Value>], expected: &[Option<Value>]) {
    assert_eq!(got.len(), expected.len(), "{what}: column count");
    let mut mismatches = Vec::new();
    for (i, (g, e)) in got.iter().zip(expected).enumerate() {
        if g != e {
            let name = table.columns[i].name.clone().unwrap_or_default();
            mismatches.push(format!("  {name}: decoded {g:?}, inserted {e:?}"));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{what}: values differ:\n{}",
        mismatches.join("\n")
    );
}

// --- The run ----------------------------------------------------------------

/// One row image: a value (or `None`, absent) per column.
type Image = Vec<Option<Value>>;

/// What the binlog reader collected for the test's transaction.
#[derive(Default)]
struct Seen {
    /// Count of every event type in the stream, by code.
    types: BTreeMap<u8, usize>,
    /// Event types of the test transaction's events.
    transaction_types: Vec<u8>,
    table: Option<TableMap>,
    inserts: Vec<Image>,
    updates: Vec<(Image, Image)>,
    deletes: Vec<Image>,
    /// Queries of the test's schema (CREATE DATABASE/TABLE), decoded.
    ddl: Vec<String>,
    server_version: String,
}

async fn run(compressed: bool) {
    let db = unique_name(if compressed { "decode_z" } else { "decode" });
    let mut primary = connect(Server::Primary, User::Admin).await;
    let mut replica = connect(Server::Replica, User::Admin).await;

    // Where the replica's binlog stands before anything of this test.
    let status: Row = replica
        .query_first("SHOW MASTER STATUS")
        .await
        .expect("SHOW MASTER STATUS")
        .expect("the replica writes a binlog");
    let start_file: String = status.get(0).expect("File");
    let start_pos: u64 = status.get(1).expect("Position");

    let _drop_db = SqlOnDrop {
        server: Server::Primary,
        sql: format!("DROP DATABASE IF EXISTS {db}"),
        what: "drop the test's database",
    };
    primary
        .query_drop(format!(
            "CREATE DATABASE {db} CHARACTER SET utf8mb4; {}",
            CREATE_TABLE.replace("{db}", &db)
        ))
        .await
        .expect("create the test's table");
    // Zero dates and the invalid ENUM value need a lax sql_mode; UTC makes
    // TIMESTAMP literals mean the epoch seconds written below.
    primary
        .query_drop("SET SESSION sql_mode='', SESSION time_zone='+00:00'")
        .await
        .expect("session settings");
    let mut tx = primary
        .start_transaction(TxOpts::default())
        .await
        .expect("begin");
    tx.query_drop(insert_sql(&db)).await.expect("insert");
    tx.query_drop(format!(
        "UPDATE {db}.every SET v='updated', mi=-5, dz=-1 WHERE id=3"
    ))
    .await
    .expect("update");
    tx.query_drop(format!("DELETE FROM {db}.every WHERE id=4"))
        .await
        .expect("delete");
    tx.commit().await.expect("commit");
    let gtid: String = primary
        .query_first("SELECT @@last_gtid")
        .await
        .expect("SELECT @@last_gtid")
        .expect("a GTID");

    let waited: Option<i64> = replica
        .exec_first("SELECT MASTER_GTID_WAIT(?, 30)", (gtid.as_str(),))
        .await
        .expect("MASTER_GTID_WAIT");
    assert_eq!(
        waited,
        Some(0),
        "the replica did not apply {gtid} within 30 s"
    );

    // The server's own conversion of the latin1 bytes 0x80..0xff.
    let latin1_high: String = replica
        .query_first(format!(
            "SELECT CONVERT(lt USING utf8mb4) FROM {db}.every WHERE id = 2"
        ))
        .await
        .expect("select lt")
        .expect("row 2");
    assert!(latin1_high.starts_with("€\u{81}‚ƒ"), "{latin1_high:?}");
    assert!(latin1_high.ends_with("ýþÿ"), "{latin1_high:?}");

    // The charset map, as the source builds it at start-up. The UCA-14
    // collations (utf8mb4_uca1400_ai_ci = 2304) are listed only here; they
    // have a NULL id in information_schema.COLLATIONS.
    let collations: Vec<(u32, String)> = replica
        .query("SELECT ID, CHARACTER_SET_NAME FROM information_schema.COLLATION_CHARACTER_SET_APPLICABILITY")
        .await
        .expect("collations");
    let builtin = CharsetMap::builtin();
    for (id, name) in &collations {
        assert_eq!(
            builtin.resolve(*id),
            Charset::from_name(name),
            "the built-in charset table disagrees with the server on collation {id}"
        );
    }
    let charsets = CharsetMap::from_rows(collations);
    drop(replica);

    let seen = read_replica_binlog(&start_file, start_pos, &gtid, &db, &charsets).await;

    println!(
        "{} run: replica {} binlog from {start_file}:{start_pos}, transaction {gtid}",
        if compressed { "compressed" } else { "plain" },
        seen.server_version,
    );
    println!(
        "  event types in the stream: {}",
        seen.types
            .iter()
            .map(|(t, n)| format!("{} ({t}) x{n}", event_type_name(*t)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "  event types of the transaction: {}",
        seen.transaction_types
            .iter()
            .map(|t| format!("{} ({t})", event_type_name(*t)))
            .collect::<Vec<_>>()
            .join(", ")
    );

    let table = seen.table.as_ref().expect("a TABLE_MAP for the table");
    check_table_map(table, &db);

    let expected = expected_rows(&latin1_high);
    assert_eq!(seen.inserts.len(), 4, "inserted rows");
    for (i, (got, want)) in seen.inserts.iter().zip(&expected).enumerate() {
        assert_image(
            table,
            &format!("insert row {}", i + 1),
            got,
            &full_image(table, want),
        );
    }
    assert_eq!(seen.updates.len(), 1, "updated rows");
    let (before, after) = &seen.updates[0];
    assert_image(table, "update before", before, &full_image(table, &row3()));
    assert_image(
        table,
        "update after",
        after,
        &full_image(table, &row3_updated()),
    );
    assert_eq!(seen.deletes.len(), 1, "deleted rows");
    assert_image(
        table,
        "delete before",
        &seen.deletes[0],
        &full_image(table, &expected[3]),
    );

    let rows_types: Vec<u8> = seen
        .transaction_types
        .iter()
        .copied()
        .filter(|t| is_rows_event(*t))
        .collect();
    if compressed {
        assert!(
            rows_types
                .iter()
                .all(|t| (decode::WRITE_ROWS_COMPRESSED_EVENT_V1
                    ..=decode::DELETE_ROWS_COMPRESSED_EVENT_V2)
                    .contains(t)),
            "with log_bin_compress=ON the replica logs compressed rows events; saw {rows_types:?}"
        );
        assert!(
            seen.types.contains_key(&decode::QUERY_COMPRESSED_EVENT),
            "the CREATE statements were logged as QUERY_COMPRESSED"
        );
    } else {
        assert!(
            rows_types
                .iter()
                .all(|t| (decode::WRITE_ROWS_EVENT_V1..=decode::DELETE_ROWS_EVENT_V1).contains(t)),
            "MariaDB logs rows v1; saw {rows_types:?}"
        );
    }
    assert!(
        seen.ddl
            .iter()
            .any(|q| q.contains("CREATE TABLE") && q.contains(&db)),
        "the CREATE TABLE query decoded: {:?}",
        seen.ddl
    );
}

fn check_table_map(table: &TableMap, db: &str) {
    assert_eq!(table.database, db);
    assert_eq!(table.table, "every");
    assert_eq!(table.primary_key, vec![0]);
    let col = |name: &str| &table.columns[table.column_index(name).expect(name)];
    assert!(!col("id").nullable && col("n").nullable);
    assert_eq!(col("mu").unsigned, Some(true));
    assert_eq!(col("mi").unsigned, Some(false));
    assert_eq!(col("mu").type_name(), "mediumint");
    assert_eq!(
        col("dl").column_type,
        ColumnType::Decimal {
            precision: 65,
            scale: 30
        }
    );
    assert_eq!(col("c").column_type, ColumnType::Char { max_bytes: 40 });
    assert_eq!(col("lt").charset, Some(Charset::Latin1));
    assert_eq!(col("uca").collation_id, Some(2304));
    assert_eq!(col("uca").charset, Some(Charset::Utf8));
    assert_eq!(col("e").enum_values, ["small", "médium", "large"]);
    assert_eq!(col("s").set_values.len(), 9);
    // UUID and INET6 arrive as BINARY(16).
    for name in ["u", "ip", "bn"] {
        assert_eq!(col(name).charset, Some(Charset::Binary), "{name}");
        assert_eq!(col(name).type_name(), "binary", "{name}");
    }
    assert_eq!(col("u").column_type, ColumnType::Char { max_bytes: 16 });
    // JSON is LONGTEXT.
    assert_eq!(col("j").column_type, ColumnType::Blob { length_bytes: 4 });
    assert_eq!(col("j").type_name(), "longtext");
    assert_eq!(col("g").geometry_type, Some(0));
    assert_eq!(col("t0").column_type, ColumnType::Time2 { fsp: 0 });
    assert_eq!(col("ts2").column_type, ColumnType::Timestamp2 { fsp: 2 });
}

/// Streams the replica's binlog from `file:pos` as a replica would, until
/// the XID of `gtid`, decoding every event this module handles.
async fn read_replica_binlog(
    file: &str,
    pos: u64,
    gtid: &str,
    db: &str,
    charsets: &CharsetMap,
) -> Seen {
    let mut conn: Conn = connect(Server::Replica, User::Admin).await;
    conn.query_drop("SET @mariadb_slave_capability=4")
        .await
        .expect("SET @mariadb_slave_capability");
    conn.query_drop("SET @master_binlog_checksum=@@global.binlog_checksum")
        .await
        .expect("SET @master_binlog_checksum");
    let slave_id = 1000
        + (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .subsec_nanos()
            % 1_000_000);
    let mut stream = conn
        .get_binlog_stream(
            BinlogStreamRequest::new(slave_id)
                .with_filename(file.as_bytes())
                .with_pos(pos),
        )
        .await
        .expect("binlog stream");

    let mut seen = Seen::default();
    let mut maps: HashMap<u64, TableMap> = HashMap::new();
    let mut in_transaction = false;
    let mut checked_format = false;
    while let Some(event) = stream.next().await {
        let event = event.expect("binlog event");
        let header = event.header();
        let event_type = header.event_type_raw();
        let body = event.data();
        *seen.types.entry(event_type).or_default() += 1;

        // The body is exactly what the CRC32 covers with the header. (The
        // first, fake ROTATE comes before the FORMAT_DESCRIPTION that tells
        // mysql_common about checksums: its 4 CRC bytes stay in its body.)
        if checked_format || event_type == decode::FORMAT_DESCRIPTION_EVENT {
            let crc = event.checksum().expect("events carry a CRC32");
            assert_eq!(
                u32::from_le_bytes(crc),
                event.calc_checksum(BinlogChecksumAlg::BINLOG_CHECKSUM_ALG_CRC32),
                "CRC32 of a {} event",
                event_type_name(event_type)
            );
        }
        if in_transaction {
            seen.transaction_types.push(event_type);
        }

        match event_type {
            decode::FORMAT_DESCRIPTION_EVENT => {
                let fd = parse_format_description(body).expect("FORMAT_DESCRIPTION");
                fd.check_supported()
                    .expect("the server's post-header lengths are the ones decode assumes");
                seen.server_version = fd.server_version;
                checked_format = true;
            }
            decode::GTID_EVENT => {
                let ev = parse_gtid(body, header.server_id()).expect("GTID");
                in_transaction = ev.gtid.to_string() == gtid;
                if in_transaction {
                    assert!(!ev.standalone, "an InnoDB transaction is not standalone");
                    seen.transaction_types.push(event_type);
                }
            }
            decode::GTID_LIST_EVENT => {
                parse_gtid_list(body).expect("GTID_LIST");
            }
            decode::BINLOG_CHECKPOINT_EVENT => {
                let name = parse_binlog_checkpoint(body).expect("BINLOG_CHECKPOINT");
                assert!(name.contains("bin"), "{name}");
            }
            decode::ANNOTATE_ROWS_EVENT => {
                let sql = parse_annotate_rows(body);
                assert!(!sql.is_empty());
            }
            decode::QUERY_EVENT | decode::QUERY_COMPRESSED_EVENT => {
                let q = parse_query(event_type, body).expect("QUERY");
                let sql = String::from_utf8_lossy(&q.query).into_owned();
                if sql.contains(db) {
                    seen.ddl.push(sql);
                }
            }
            decode::TABLE_MAP_EVENT => {
                let map = parse_table_map(body, charsets).unwrap_or_else(|e| panic!("{e}"));
                maps.insert(map.table_id, map);
            }
            t if is_rows_event(t) => {
                let table_id = rows_table_id(t, body).expect("rows table id");
                let table = maps
                    .get(&table_id)
                    .unwrap_or_else(|| panic!("no TABLE_MAP for table id {table_id}"));
                let rows = parse_rows(t, body, table).unwrap_or_else(|e| panic!("{e}"));
                // Counting (for rows that are not published) steps over the
                // same real event by value lengths alone: same rows.
                assert_eq!(
                    count_rows(t, body, table).unwrap_or_else(|e| panic!("{e}")),
                    (rows.kind, rows.rows.len()),
                    "count_rows agrees with parse_rows on {}.{}",
                    table.database,
                    table.table
                );
                if in_transaction && table.database == db {
                    seen.table = Some(table.clone());
                    for change in rows.rows {
                        match rows.kind {
                            RowsKind::Insert => seen.inserts.push(change.after.expect("after")),
                            RowsKind::Delete => seen.deletes.push(change.before.expect("before")),
                            RowsKind::Update => seen.updates.push((
                                change.before.expect("before"),
                                change.after.expect("after"),
                            )),
                        }
                    }
                }
            }
            decode::XID_EVENT if in_transaction => break,
            _ => {}
        }
    }
    assert!(
        checked_format,
        "the stream starts with a FORMAT_DESCRIPTION"
    );
    drop(stream);
    seen
}
