//! A table with every column type the tailer decodes, edge-value rows for
//! it, and the JSON each value must arrive as. The expected values are
//! written here by hand, independently of the decoder.
//!
//! A second table, `alltexts`, has one column in each character set of
//! `SHOW CHARACTER SET` (binary aside), every compressed column kind and, on
//! MariaDB 11.7+, a VECTOR: the text columns must arrive as the server's
//! own `CONVERT(… USING utf8mb4)` of what they hold, the others as written
//! here by hand. Its rows go in the same transaction as the all-types rows.

use serde_json::{json, Value as Json};

pub const CREATE_TABLE: &str = "
CREATE TABLE {db}.alltypes (
  id INT NOT NULL PRIMARY KEY,
  ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED,
  mi MEDIUMINT, miu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED,
  bi BIGINT, biu BIGINT UNSIGNED,
  dec1 DECIMAL(12,2), dec2 DECIMAL(65,30), dec3 DECIMAL(5,0),
  f FLOAT, d DOUBLE,
  b1 BIT(1), b64 BIT(64),
  y YEAR,
  dt DATE,
  tm TIME, tm6 TIME(6),
  dtm DATETIME, dtm3 DATETIME(3), dtm6 DATETIME(6),
  ts TIMESTAMP NULL DEFAULT NULL, ts6 TIMESTAMP(6) NULL DEFAULT NULL,
  c CHAR(10), vc VARCHAR(300), tx TEXT CHARACTER SET utf8mb4,
  lat VARCHAR(50) CHARACTER SET latin1,
  bin BINARY(8), vbin VARBINARY(50), bl BLOB,
  e ENUM('small', 'medium', 'large'), s SET('red', 'green', 'blue'),
  j JSON,
  u UUID, ip INET6
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4";

/// Column names in table order, after `id`.
pub const COLUMNS: &str =
    "id, ti, tiu, si, siu, mi, miu, i, iu, bi, biu, dec1, dec2, dec3, f, d, b1, b64, y, dt, \
     tm, tm6, dtm, dtm3, dtm6, ts, ts6, c, vc, tx, lat, bin, vbin, bl, e, s, j, u, ip";

/// (SQL values for one row, the `data` its event must carry).
pub fn rows() -> Vec<(String, Json)> {
    let long_text = "x".repeat(300);
    vec![
        (
            "1, -128, 0, -32768, 0, -8388608, 0, -2147483648, 0, -9223372036854775808, 0, \
             '-9999999999.99', '-12345678901234567890123456789012345.123456789012345678901234567890', -99999, \
             -3.5, -1.7976931348623157e308, b'0', b'0', 1901, '0000-00-00', \
             '-838:59:59', '-00:00:00.000001', '0000-00-00 00:00:00', '1000-01-01 00:00:00.001', '2026-11-26 13:45:30.123456', \
             '1970-01-01 00:00:01', '2038-01-19 03:14:07.999999', \
             'abc', '', 'emoji 🚀 and ünïcödé', 'café € ß', x'0102', x'00ff80', x'deadbeef00', \
             'small', 'red,blue', '{\"a\": [1, 2.5, null], \"b\": \"x\"}', \
             '123e4567-e89b-12d3-a456-426655440000', '::ffff:192.0.2.1'"
                .to_owned(),
            json!({
                "id": 1, "ti": -128, "tiu": 0, "si": -32768, "siu": 0, "mi": -8388608, "miu": 0,
                "i": -2147483648i64, "iu": 0, "bi": i64::MIN, "biu": 0,
                "dec1": "-9999999999.99",
                "dec2": "-12345678901234567890123456789012345.123456789012345678901234567890",
                "dec3": "-99999",
                "f": -3.5, "d": -1.7976931348623157e308,
                "b1": 0, "b64": 0, "y": 1901, "dt": "0000-00-00",
                "tm": "-838:59:59", "tm6": "-00:00:00.000001",
                "dtm": "0000-00-00 00:00:00", "dtm3": "1000-01-01 00:00:00.001",
                "dtm6": "2026-11-26 13:45:30.123456",
                "ts": "1970-01-01T00:00:01Z", "ts6": "2038-01-19T03:14:07.999999Z",
                "c": "abc", "vc": "", "tx": "emoji 🚀 and ünïcödé", "lat": "café € ß",
                "bin": "AQIAAAAAAAA=", "vbin": "AP+A", "bl": "3q2+7wA=",
                "e": "small", "s": ["red", "blue"],
                "j": {"a": [1, 2.5, null], "b": "x"},
                "u": "123e4567-e89b-12d3-a456-426655440000", "ip": "::ffff:192.0.2.1"
            }),
        ),
        (
            format!(
                "2, 127, 255, 32767, 65535, 8388607, 16777215, 2147483647, 4294967295, \
                 9223372036854775807, 18446744073709551615, \
                 '9999999999.99', '0.000000000000000000000000000001', 0, \
                 1.5, 2.5e-308, b'1', x'ffffffffffffffff', 2155, '9999-12-31', \
                 '838:59:59', '838:59:58.999999', '9999-12-31 23:59:59', '9999-12-31 23:59:59.999', '9999-12-31 23:59:59.999999', \
                 '2038-01-19 03:14:07', '1970-01-01 00:00:01.000001', \
                 '', '{long_text}', '', 'ÿ', x'ffffffffffffffff', '', '', \
                 'large', '', '[]', \
                 '018f3a1b-2c3d-7abc-8def-0123456789ab', '2001:db8::1'"
            ),
            json!({
                "id": 2, "ti": 127, "tiu": 255, "si": 32767, "siu": 65535, "mi": 8388607, "miu": 16777215,
                "i": 2147483647, "iu": 4294967295u64, "bi": i64::MAX, "biu": u64::MAX,
                "dec1": "9999999999.99", "dec2": "0.000000000000000000000000000001", "dec3": "0",
                "f": 1.5, "d": 2.5e-308,
                "b1": 1, "b64": u64::MAX, "y": 2155, "dt": "9999-12-31",
                "tm": "838:59:59", "tm6": "838:59:58.999999",
                "dtm": "9999-12-31 23:59:59", "dtm3": "9999-12-31 23:59:59.999",
                "dtm6": "9999-12-31 23:59:59.999999",
                "ts": "2038-01-19T03:14:07Z", "ts6": "1970-01-01T00:00:01.000001Z",
                "c": "", "vc": long_text, "tx": "", "lat": "ÿ",
                "bin": "//////////8=", "vbin": "", "bl": "",
                "e": "large", "s": [],
                "j": [],
                "u": "018f3a1b-2c3d-7abc-8def-0123456789ab", "ip": "2001:db8::1"
            }),
        ),
        (
            "3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, \
             NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, \
             NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL"
                .to_owned(),
            json!({
                "id": 3, "ti": null, "tiu": null, "si": null, "siu": null, "mi": null, "miu": null,
                "i": null, "iu": null, "bi": null, "biu": null, "dec1": null, "dec2": null, "dec3": null,
                "f": null, "d": null, "b1": null, "b64": null, "y": null, "dt": null,
                "tm": null, "tm6": null, "dtm": null, "dtm3": null, "dtm6": null, "ts": null, "ts6": null,
                "c": null, "vc": null, "tx": null, "lat": null, "bin": null, "vbin": null, "bl": null,
                "e": null, "s": null, "j": null, "u": null, "ip": null
            }),
        ),
        (
            "4, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, '-0.01', '-0.5', 1, \
             0.1, 0.1, b'1', b'101', 0, '2024-02-29', \
             '-00:00:01', '12:34:56.5', '2024-02-29 12:00:00', '2024-02-29 12:00:00.5', '2024-02-29 12:00:00.000001', \
             '0000-00-00 00:00:00', '2024-02-29 12:00:00.000100', \
             'trail   ', 'line\\nbreak\\ttab', 'é', '', x'00', x'00', x'00', \
             'medium', 'red,green,blue', '\"just a string\"', \
             '00000000-0000-0000-0000-000000000000', '::'"
                .to_owned(),
            json!({
                "id": 4, "ti": -1, "tiu": 1, "si": -1, "siu": 1, "mi": -1, "miu": 1,
                "i": -1, "iu": 1, "bi": -1, "biu": 1,
                "dec1": "-0.01", "dec2": "-0.500000000000000000000000000000", "dec3": "1",
                "f": 0.1, "d": 0.1,
                "b1": 1, "b64": 5, "y": 0, "dt": "2024-02-29",
                "tm": "-00:00:01", "tm6": "12:34:56.500000",
                "dtm": "2024-02-29 12:00:00", "dtm3": "2024-02-29 12:00:00.500",
                "dtm6": "2024-02-29 12:00:00.000001",
                "ts": "0000-00-00 00:00:00", "ts6": "2024-02-29T12:00:00.000100Z",
                "c": "trail", "vc": "line\nbreak\ttab", "tx": "é", "lat": "",
                "bin": "AAAAAAAAAAA=", "vbin": "AA==", "bl": "AA==",
                "e": "medium", "s": ["red", "green", "blue"],
                "j": "just a string",
                "u": "00000000-0000-0000-0000-000000000000", "ip": "::"
            }),
        ),
    ]
}

/// The character sets of MariaDB 10.11 and 11.8 (`SHOW CHARACTER SET`),
/// binary aside: one `alltexts` column each, `cs_<name>`.
pub const CHARSETS: &[&str] = &[
    "armscii8", "ascii", "big5", "cp1250", "cp1251", "cp1256", "cp1257", "cp850", "cp852", "cp866",
    "cp932", "dec8", "eucjpms", "euckr", "gb2312", "gbk", "geostd8", "greek", "hebrew", "hp8",
    "keybcs2", "koi8r", "koi8u", "latin1", "latin2", "latin5", "latin7", "macce", "macroman",
    "sjis", "swe7", "tis620", "ucs2", "ujis", "utf16", "utf16le", "utf32", "utf8mb3", "utf8mb4",
];

/// Text with characters of many scripts: stored in each charset, it keeps
/// the ones the charset has (the others become `?`, the insert running with
/// `sql_mode=''`), so each column holds a sample of its repertoire.
pub const SAMPLE_TEXT: &str = "Aa~\\ é ü ß ñ ç ą ł ő č ğ ş ı ā ž ÿ Ω α β П р и в ї є ґ ў \
     א ש ع ر ก ฮ Ա ա ა ჰ 中 文 漢 字 日 本 か カ ｶ 한 국 € £ ¥ © ° ± ½ × ÷ ─ ╬ ■ 🚀";

/// The compressed columns and what row 1 (long, compressible values), row
/// 2 (NULL) and row 3 (short or empty values, stored uncompressed) hold:
/// (column, its type, row 1 SQL, row 1 JSON, row 3 SQL, row 3 JSON).
fn compressed_columns() -> Vec<(&'static str, &'static str, String, Json, String, Json)> {
    let text = "compressible text é 🚀 ".repeat(40);
    let cyrillic = "Сжатый текст ".repeat(50);
    let bytes: Vec<u8> = (0..=255u8).cycle().take(2000).collect();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let b64 = |b: &[u8]| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(b)
    };
    vec![
        (
            "vcz",
            "VARCHAR(1000) COMPRESSED CHARACTER SET utf8mb4",
            format!("'{text}'"),
            json!(text),
            "'short'".into(),
            json!("short"),
        ),
        (
            "vbz",
            "VARBINARY(3000) COMPRESSED",
            format!("x'{hex}'"),
            json!(b64(&bytes)),
            "x'00ff'".into(),
            json!("AP8="),
        ),
        (
            "ttz",
            "TINYTEXT COMPRESSED CHARACTER SET utf8mb4",
            format!("'{}'", "tiny ".repeat(40)),
            json!("tiny ".repeat(40)),
            "''".into(),
            json!(""),
        ),
        (
            "tz",
            "TEXT COMPRESSED CHARACTER SET utf8mb4",
            format!("'{text}'"),
            json!(text),
            "''".into(),
            json!(""),
        ),
        (
            "mtz",
            "MEDIUMTEXT COMPRESSED CHARACTER SET cp1251",
            format!("'{cyrillic}'"),
            json!(cyrillic),
            "'Да'".into(),
            json!("Да"),
        ),
        (
            "ltz",
            "LONGTEXT COMPRESSED CHARACTER SET utf8mb4",
            format!("'{text}'"),
            json!(text),
            "'x'".into(),
            json!("x"),
        ),
        (
            "tbz",
            "TINYBLOB COMPRESSED",
            format!("x'{}'", &hex[..400]),
            json!(b64(&bytes[..200])),
            "''".into(),
            json!(""),
        ),
        (
            "bz",
            "BLOB COMPRESSED",
            format!("x'{hex}'"),
            json!(b64(&bytes)),
            "x'01'".into(),
            json!("AQ=="),
        ),
        (
            "mbz",
            "MEDIUMBLOB COMPRESSED",
            format!("x'{hex}'"),
            json!(b64(&bytes)),
            "''".into(),
            json!(""),
        ),
        (
            "lbz",
            "LONGBLOB COMPRESSED",
            format!("x'{hex}'"),
            json!(b64(&bytes)),
            "x'00'".into(),
            json!("AA=="),
        ),
    ]
}

/// `CREATE TABLE {db}.alltexts`; with a `vec VECTOR(4)` column when
/// `vector` (MariaDB 11.7+).
pub fn texts_create_table(db: &str, vector: bool) -> String {
    let mut columns = vec!["id INT NOT NULL PRIMARY KEY".to_owned()];
    columns.extend(
        CHARSETS
            .iter()
            .map(|cs| format!("cs_{cs} VARCHAR(120) CHARACTER SET {cs}")),
    );
    columns.extend(
        compressed_columns()
            .into_iter()
            .map(|(name, sql_type, ..)| format!("{name} {sql_type}")),
    );
    if vector {
        columns.push("vec VECTOR(4)".to_owned());
    }
    format!(
        "CREATE TABLE {db}.alltexts ({}) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
        columns.join(", ")
    )
}

/// The VECTOR values of rows 1 and 3, as SQL and as their JSON (each
/// float32 exactly: -0.1 is the float32 nearest to it).
fn vectors() -> [(&'static str, Json); 2] {
    [
        (
            "VEC_FromText('[1.5,-0.1,3,0.333333]')",
            json!([1.5, -0.1, 3.0, 0.333333]),
        ),
        (
            "x'000000000000008001000000ffff7f3f'",
            json!([0.0, -0.0, 1e-45, 0.99999994]),
        ),
    ]
}

/// The INSERT of the `alltexts` rows (run with `sql_mode=''`, see
/// [`SAMPLE_TEXT`]), and the JSON each must arrive as but for the
/// charset columns (their values are the server's, read after the insert
/// with [`texts_converted`]).
pub fn texts_insert(db: &str, vector: bool) -> (String, Vec<Json>) {
    let sample = SAMPLE_TEXT.replace('\\', "\\\\");
    let compressed = compressed_columns();
    let mut rows = Vec::new();
    let mut expected = Vec::new();
    for id in [1u32, 2, 3] {
        let mut sql = vec![id.to_string()];
        let mut want = serde_json::Map::new();
        want.insert("id".into(), json!(id));
        sql.extend(CHARSETS.iter().map(|_| match id {
            1 => format!("'{sample}'"),
            2 => "NULL".to_owned(),
            _ => "''".to_owned(),
        }));
        for (name, _, sql1, json1, sql3, json3) in &compressed {
            let (v, j) = match id {
                1 => (sql1.clone(), json1.clone()),
                2 => ("NULL".to_owned(), Json::Null),
                _ => (sql3.clone(), json3.clone()),
            };
            sql.push(v);
            want.insert((*name).into(), j);
        }
        if vector {
            let (v, j) = match id {
                1 => (vectors()[0].0.to_owned(), vectors()[0].1.clone()),
                2 => ("NULL".to_owned(), Json::Null),
                _ => (vectors()[1].0.to_owned(), vectors()[1].1.clone()),
            };
            sql.push(v);
            want.insert("vec".into(), j);
        }
        rows.push(format!("({})", sql.join(", ")));
        expected.push(Json::Object(want));
    }
    (
        format!("INSERT INTO {db}.alltexts VALUES {}", rows.join(",\n")),
        expected,
    )
}

/// The server's `CONVERT(cs_<name> USING utf8mb4)` of every charset column
/// of `alltexts`, by row id: what each must arrive as.
pub async fn texts_converted(
    conn: &mut mysql_async::Conn,
    db: &str,
) -> std::collections::BTreeMap<u32, serde_json::Map<String, Json>> {
    use mysql_async::prelude::Queryable;
    let select: Vec<String> = CHARSETS
        .iter()
        .map(|cs| format!("CONVERT(cs_{cs} USING utf8mb4)"))
        .collect();
    let rows: Vec<mysql_async::Row> = conn
        .query(format!(
            "SELECT id, {} FROM {db}.alltexts ORDER BY id",
            select.join(", ")
        ))
        .await
        .expect("read the texts back through CONVERT");
    let mut out = std::collections::BTreeMap::new();
    for row in rows {
        let mut values = row.unwrap().into_iter();
        let id = match values.next() {
            Some(mysql_async::Value::Int(i)) => u32::try_from(i).expect("id"),
            Some(mysql_async::Value::Bytes(b)) => {
                String::from_utf8(b).expect("id").parse().expect("id")
            }
            other => panic!("id {other:?}"),
        };
        let mut columns = serde_json::Map::new();
        for (cs, value) in CHARSETS.iter().zip(values) {
            let json = match value {
                mysql_async::Value::NULL => Json::Null,
                mysql_async::Value::Bytes(b) => {
                    Json::String(String::from_utf8(b).expect("CONVERT gives utf8mb4"))
                }
                other => panic!("cs_{cs}: {other:?}"),
            };
            columns.insert(format!("cs_{cs}"), json);
        }
        out.insert(id, columns);
    }
    out
}

/// The INSERT statement for all rows (one statement, one transaction). Run
/// it with `SET time_zone = '+00:00'` so TIMESTAMP literals are UTC.
pub fn insert(db: &str) -> String {
    let values: Vec<String> = rows()
        .into_iter()
        .map(|(sql, _)| format!("({sql})"))
        .collect();
    format!(
        "INSERT INTO {db}.alltypes ({COLUMNS}) VALUES {}",
        values.join(",\n")
    )
}

/// Creates the table in a test database, inserts the rows in one
/// transaction, runs the tailer on `server` from just before, and checks
/// that every value arrives exactly. Returns the tailer's log.
pub async fn check_every_value_arrives(
    here: crate::Here,
    prefix: &str,
    server: crate::Server,
) -> String {
    use crate::tailer::{consume_all, last_gtid, wait_for_replica, Tailed, TailerSetup, TestDb};
    use crate::{connect, unique_name, Server, User};
    use mysql_async::prelude::Queryable;
    use std::time::Duration;

    let db = TestDb::create(prefix).await;
    let mut primary = connect(Server::Primary, User::Admin).await;
    primary
        .query_drop(CREATE_TABLE.replace("{db}", &db.name))
        .await
        .expect("create alltypes");
    let version: String = primary
        .query_first("SELECT VERSION()")
        .await
        .expect("server version")
        .expect("one row");
    let vector = has_vector(&version);
    primary
        .query_drop(texts_create_table(&db.name, vector))
        .await
        .expect("create alltexts");
    wait_for_replica(&mut primary).await;
    let mut source = connect(server, User::Admin).await;
    let start: String = source
        .query_first("SELECT @@gtid_binlog_pos")
        .await
        .expect("gtid_binlog_pos")
        .unwrap_or_default();
    let topic = unique_name("alltypes");
    let texts_topic = unique_name("alltexts");
    let setup = TailerSetup::new(
        here,
        prefix,
        &[
            Tailed {
                table: db.table("alltypes"),
                topic: topic.clone(),
                event_type: "test.alltypes.created.v1".into(),
            },
            Tailed {
                table: db.table("alltexts"),
                topic: texts_topic.clone(),
                event_type: "test.alltexts.created.v1".into(),
            },
        ],
        &start,
        "",
    )
    .with_source_port(server.port());
    let mut tailer = setup.spawn();
    let (texts_sql, texts_expected) = texts_insert(&db.name, vector);
    primary
        .query_drop(format!(
            "SET time_zone = '+00:00'; START TRANSACTION; {}; \
             SET SESSION sql_mode = ''; {texts_sql}; COMMIT",
            insert(&db.name)
        ))
        .await
        .expect("insert the rows");
    let last = last_gtid(&mut primary).await;
    setup.wait_checkpoint(last, Duration::from_secs(60), Some(&mut tailer));
    check_texts(
        &consume_all(&texts_topic),
        texts_expected,
        texts_converted(&mut primary, &db.name).await,
    );
    let messages = consume_all(&topic);
    check_against_value_schema(&messages);
    check_against_value_schema(&consume_all(&texts_topic));
    let expected = rows();
    assert_eq!(messages.len(), expected.len(), "one event per row");
    for (_, want) in &expected {
        let id = want["id"].as_u64().expect("id");
        let got = messages
            .iter()
            .find(|m| m.payload["data"]["id"] == json!(id))
            .unwrap_or_else(|| panic!("no event for row {id}"));
        let got = &got.payload["data"];
        let mut wrong = Vec::new();
        for (column, value) in want.as_object().expect("object") {
            if &got[column] != value {
                wrong.push(format!("  {column}: got {}, want {value}", got[column]));
            }
        }
        assert_eq!(
            got.as_object().map(|o| o.len()),
            want.as_object().map(|o| o.len()),
            "row {id}: column count"
        );
        assert!(wrong.is_empty(), "row {id}:\n{}", wrong.join("\n"));
    }
    let log = tailer.log();
    let status = tailer.terminate(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0));
    log
}

/// Whether a server (by its `VERSION()`) has the VECTOR type: 11.7+.
pub fn has_vector(version: &str) -> bool {
    let mut parts = version
        .split(['.', '-'])
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (11, 7)
}

/// Every `alltexts` value arrived as expected: the compressed and VECTOR
/// columns as in `expected`, the charset columns as the server converts
/// them (`converted`).
fn check_texts(
    messages: &[crate::tailer::Consumed],
    expected: Vec<Json>,
    mut converted: std::collections::BTreeMap<u32, serde_json::Map<String, Json>>,
) {
    assert_eq!(messages.len(), expected.len(), "one alltexts event per row");
    for mut want in expected {
        let id = want["id"].as_u64().expect("id");
        let server = converted
            .remove(&u32::try_from(id).expect("id"))
            .unwrap_or_else(|| panic!("the server has no alltexts row {id}"));
        let want = want.as_object_mut().expect("object");
        want.extend(server);
        let got = messages
            .iter()
            .find(|m| m.payload["data"]["id"] == json!(id))
            .unwrap_or_else(|| panic!("no alltexts event for row {id}"));
        let got = &got.payload["data"];
        let wrong: Vec<String> = want
            .iter()
            .filter(|(column, value)| &got[column.as_str()] != *value)
            .map(|(column, value)| {
                format!("  {column}: got {}, want {value}", got[column.as_str()])
            })
            .collect();
        assert_eq!(
            got.as_object().map(|o| o.len()),
            Some(want.len()),
            "alltexts row {id}: column count"
        );
        assert!(wrong.is_empty(), "alltexts row {id}:\n{}", wrong.join("\n"));
    }
}

/// The definition in `schemas/column_values.v1.json` that a column of the
/// all-types tables takes, by its name.
fn value_kind(column: &str) -> &'static str {
    match column {
        "id" | "ti" | "tiu" | "si" | "siu" | "mi" | "miu" | "i" | "iu" | "bi" | "biu" => "integer",
        "dec1" | "dec2" | "dec3" => "decimal",
        "f" => "float",
        "d" => "double",
        "b1" | "b64" => "bit",
        "y" => "year",
        "dt" => "date",
        "tm" | "tm6" => "time",
        "dtm" | "dtm3" | "dtm6" => "datetime",
        "ts" | "ts6" => "timestamp",
        "bin" | "vbin" | "bl" | "vbz" | "tbz" | "bz" | "mbz" | "lbz" => "bytes",
        "e" => "enum",
        "s" => "set",
        "j" => "json",
        "u" => "uuid",
        "ip" => "inet6",
        "vec" => "vector",
        _ => "text",
    }
}

/// Every value of every event validates against the definition of
/// `schemas/column_values.v1.json` its column type names.
fn check_against_value_schema(messages: &[crate::tailer::Consumed]) {
    let text = std::fs::read_to_string(crate::repo_root().join("schemas/column_values.v1.json"))
        .expect("schemas/column_values.v1.json");
    let schema: Json = serde_json::from_str(&text).expect("the value schema is JSON");
    let mut validators = std::collections::HashMap::new();
    for message in messages {
        let data = message.payload["data"].as_object().expect("data object");
        for (column, value) in data {
            let kind = value_kind(column);
            let validator = validators.entry(kind).or_insert_with(|| {
                let mut one = schema.clone();
                one["$ref"] = json!(format!("#/$defs/{kind}"));
                jsonschema::validator_for(&one)
                    .unwrap_or_else(|e| panic!("$defs/{kind} does not compile: {e}"))
            });
            let errors: Vec<String> = validator
                .iter_errors(value)
                .map(|e| e.to_string())
                .collect();
            assert!(
                errors.is_empty(),
                "column {column} = {value} does not match $defs/{kind}: {errors:?}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn vector_from_11_7() {
        assert!(!super::has_vector("10.11.19-MariaDB-0+deb12u1-log"));
        assert!(!super::has_vector("11.4.5-MariaDB"));
        assert!(super::has_vector("11.8.9-MariaDB-0+deb13u1"));
        assert!(super::has_vector("12.0.1-MariaDB"));
    }
}
