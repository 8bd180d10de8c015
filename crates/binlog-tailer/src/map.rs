//! Map: an inserted row of a tailed table → one Kafka record holding a
//! CloudEvents 1.0 event in structured JSON mode. Pure: no I/O.
//!
//! # The event
//! ```json
//! {
//!   "specversion": "1.0",
//!   "id": "0-1-42.0",                        // GTID "." row index in the transaction
//!   "source": "/mariadb/shop/shop/orders",   // /mariadb/<cluster_name>/<database>/<table>
//!   "type": "shop.order.created.v1",
//!   "subject": "42",                         // the primary key, as in the Kafka key
//!   "time": "2026-11-26T05:33:41Z",          // commit time (binlog timestamp, 1 s resolution)
//!   "datacontenttype": "application/json",
//!   "dataschema": "urn:binlog-tailer:schema:order_created.v1",
//!   "binloggtid": "0-1-42", "binlogrow": 0, "binlogserverid": 2,
//!   "binlogfile": "mariadb-bin.000001", "binlogpos": 1234,
//!   "data": { "id": 42, "amount": "19.99", ... }   // the row's columns by name
//! }
//! ```
//! `id` depends only on the transaction's GTID and the row's place in it, so
//! a replay, a retry or a move to another server of the same replication
//! topology yields the same id. `binlogfile`/`binlogpos` locate the start of
//! the transaction on the server it was read from (`binlogserverid`).
//!
//! # Values
//! Integers, FLOAT, DOUBLE, BIT and YEAR are JSON numbers (exact: 64-bit
//! integers are written in full). DECIMAL is a string with the column's
//! scale. DATE is `YYYY-MM-DD`, TIME `[-]HH:MM:SS[.ffffff]`, DATETIME
//! `YYYY-MM-DD HH:MM:SS[.ffffff]` as stored (no zone, nothing converted),
//! TIMESTAMP an RFC 3339 UTC time; fractions have the column's precision, and
//! zero dates stay zero (`0000-00-00`, `0000-00-00 00:00:00`). Text is
//! UTF-8; binary strings and BLOBs are base64; ENUM is its label, SET an array
//! of labels; JSON columns are JSON; UUID and INET6 their text forms; NULL is
//! null.
//!
//! # Kafka record
//! Key: the primary key (one column: its value as text; several: a JSON
//! array). Headers: `content-type`, and `binlog.gtid`, `binlog.row`,
//! `binlog.server_id`, `binlog.file`, `binlog.pos` as UTF-8 text; the sink
//! adds `binlog.epoch` (live) or `binlog.replay` (replays).

use std::fmt::Write as _;
use std::sync::Arc;

use base64::Engine as _;
use serde_json::{json, Map, Number, Value as Json};

use crate::decode::Value;
use crate::position::Gtid;

/// How a column's value is published beyond what the binlog tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logical {
    /// As decoded.
    Plain,
    /// Text holding a JSON document: published as JSON.
    Json,
    /// MariaDB's UUID type (16 bytes): published as its text form.
    Uuid,
    /// MariaDB's INET6 type (16 bytes): published as its text form.
    Inet6,
}

/// One column of a tailed table, as published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnLayout {
    pub name: String,
    pub logical: Logical,
}

/// Everything needed to publish the rows of one tailed table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableLayout {
    pub database: String,
    pub table: String,
    pub topic: Arc<str>,
    pub event_type: String,
    pub dataschema: Option<String>,
    /// CloudEvents `source`.
    pub source: String,
    pub columns: Vec<ColumnLayout>,
    /// Indexes into `columns`; never empty.
    pub primary_key: Vec<usize>,
}

/// Where a row came from.
#[derive(Debug, Clone, Copy)]
pub struct RowOrigin<'a> {
    pub gtid: Gtid,
    /// Index of the row among all row changes of its transaction.
    pub row_index: u32,
    /// `@@server_id` of the server the row was read from.
    pub server_id: u32,
    pub file: &'a str,
    /// Offset of the transaction's first event in `file`.
    pub pos: u64,
    /// Commit time, Unix seconds.
    pub commit_time: u32,
}

/// A record ready for the producer.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub topic: Arc<str>,
    pub key: Vec<u8>,
    pub payload: Vec<u8>,
    pub headers: Vec<(&'static str, Vec<u8>)>,
    /// The CloudEvents id.
    pub id: String,
    /// Source transaction and the row's index in it.
    pub gtid: Gtid,
    pub row_index: u32,
}

/// A row that cannot be published as configured. Definite: the same row
/// fails the same way every time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    #[error("{table}: the row image has {found} columns, the table layout {expected}")]
    ColumnCount {
        table: String,
        found: usize,
        expected: usize,
    },
    #[error("{table}.{column}: the row image does not contain this column (binlog_row_image must be FULL)")]
    MissingColumn { table: String, column: String },
    #[error("{table}.{column}: primary key column is NULL")]
    NullKey { table: String, column: String },
    #[error("{table}.{column}: {problem}")]
    BadValue {
        table: String,
        column: String,
        problem: String,
    },
}

pub const CONTENT_TYPE: &str = "application/cloudevents+json; charset=UTF-8";
pub const HEADER_GTID: &str = "binlog.gtid";
pub const HEADER_ROW: &str = "binlog.row";
pub const HEADER_SERVER_ID: &str = "binlog.server_id";
pub const HEADER_FILE: &str = "binlog.file";
pub const HEADER_POS: &str = "binlog.pos";
/// Added by the sink: the checkpoint store's epoch (live records).
pub const HEADER_EPOCH: &str = "binlog.epoch";
/// Added by the sink: the id of the checkpoint store (live records).
pub const HEADER_STORE: &str = "binlog.store";
/// Added by the sink: `1` on records published by `replay`.
pub const HEADER_REPLAY: &str = "binlog.replay";

/// The CloudEvents id of a row.
pub fn event_id(gtid: Gtid, row_index: u32) -> String {
    format!("{gtid}.{row_index}")
}

/// Maps one inserted row (the after image) to a record.
///
/// # Errors
/// [`MapError`] when the row does not fit the layout or a value cannot be
/// published as its column says.
pub fn map_insert(
    layout: &TableLayout,
    row: &[Option<Value>],
    origin: &RowOrigin<'_>,
) -> Result<Record, MapError> {
    let full_name = || format!("{}.{}", layout.database, layout.table);
    if row.len() != layout.columns.len() {
        return Err(MapError::ColumnCount {
            table: full_name(),
            found: row.len(),
            expected: layout.columns.len(),
        });
    }
    let mut data = Map::with_capacity(row.len());
    for (column, value) in layout.columns.iter().zip(row) {
        let value = value.as_ref().ok_or_else(|| MapError::MissingColumn {
            table: full_name(),
            column: column.name.clone(),
        })?;
        let json = to_json(value, column.logical).map_err(|problem| MapError::BadValue {
            table: full_name(),
            column: column.name.clone(),
            problem,
        })?;
        data.insert(column.name.clone(), json);
    }

    let key = record_key(layout, &data)?;
    let id = event_id(origin.gtid, origin.row_index);
    let mut event = json!({
        "specversion": "1.0",
        "id": id,
        "source": layout.source,
        "type": layout.event_type,
        "subject": key,
        "time": rfc3339_seconds(i64::from(origin.commit_time)),
        "datacontenttype": "application/json",
    });
    if let (Some(schema), Json::Object(obj)) = (&layout.dataschema, &mut event) {
        obj.insert("dataschema".into(), Json::String(schema.clone()));
    }
    if let Json::Object(obj) = &mut event {
        obj.insert("binloggtid".into(), Json::String(origin.gtid.to_string()));
        obj.insert("binlogrow".into(), Json::from(origin.row_index));
        obj.insert("binlogserverid".into(), Json::from(origin.server_id));
        obj.insert("binlogfile".into(), Json::String(origin.file.to_owned()));
        obj.insert("binlogpos".into(), Json::from(origin.pos));
        obj.insert("data".into(), Json::Object(data));
    }
    let payload = serde_json::to_vec(&event).map_err(|e| MapError::BadValue {
        table: full_name(),
        column: "*".into(),
        problem: format!("cannot serialise the event: {e}"),
    })?;
    Ok(Record {
        topic: Arc::clone(&layout.topic),
        key: key.into_bytes(),
        payload,
        headers: vec![
            ("content-type", CONTENT_TYPE.as_bytes().to_vec()),
            (HEADER_GTID, origin.gtid.to_string().into_bytes()),
            (HEADER_ROW, origin.row_index.to_string().into_bytes()),
            (HEADER_SERVER_ID, origin.server_id.to_string().into_bytes()),
            (HEADER_FILE, origin.file.as_bytes().to_vec()),
            (HEADER_POS, origin.pos.to_string().into_bytes()),
        ],
        id,
        gtid: origin.gtid,
        row_index: origin.row_index,
    })
}

/// The Kafka key: one primary-key column's value as text (strings bare), or
/// a JSON array of several.
fn record_key(layout: &TableLayout, data: &Map<String, Json>) -> Result<String, MapError> {
    let value_of = |i: usize| -> Result<&Json, MapError> {
        let name = layout
            .columns
            .get(i)
            .map(|c| c.name.as_str())
            .unwrap_or("?");
        match data.get(name) {
            Some(Json::Null) | None => Err(MapError::NullKey {
                table: format!("{}.{}", layout.database, layout.table),
                column: name.to_owned(),
            }),
            Some(v) => Ok(v),
        }
    };
    match layout.primary_key.as_slice() {
        [single] => Ok(match value_of(*single)? {
            Json::String(s) => s.clone(),
            other => other.to_string(),
        }),
        several => {
            let parts = several
                .iter()
                .map(|&i| value_of(i).cloned())
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Json::Array(parts).to_string())
        }
    }
}

/// A decoded value as JSON.
///
/// # Errors
/// A description of why the value cannot be published as `logical` says.
pub fn to_json(value: &Value, logical: Logical) -> Result<Json, String> {
    match logical {
        Logical::Plain => plain_json(value),
        Logical::Json => {
            let text = match value {
                Value::Null => return Ok(Json::Null),
                Value::Text(s) => s.as_str(),
                Value::Bytes(b) => std::str::from_utf8(b)
                    .map_err(|_| "JSON column holds bytes that are not UTF-8".to_owned())?,
                other => return Err(format!("JSON column holds a non-text value {other:?}")),
            };
            serde_json::from_str(text).map_err(|e| {
                format!(
                    "not a JSON document ({e}), yet the column is listed in json_columns; if it no \
                     longer holds JSON, take it off json_columns and restart"
                )
            })
        }
        Logical::Uuid => match value {
            Value::Null => Ok(Json::Null),
            Value::Bytes(b) => uuid_text(b).map(Json::String),
            other => Err(format!("UUID column holds {other:?}")),
        },
        Logical::Inet6 => match value {
            Value::Null => Ok(Json::Null),
            Value::Bytes(b) => {
                let octets: [u8; 16] = b
                    .as_slice()
                    .try_into()
                    .map_err(|_| format!("INET6 value has {} bytes, not 16", b.len()))?;
                Ok(Json::String(std::net::Ipv6Addr::from(octets).to_string()))
            }
            other => Err(format!("INET6 column holds {other:?}")),
        },
    }
}

fn plain_json(value: &Value) -> Result<Json, String> {
    Ok(match value {
        Value::Null => Json::Null,
        Value::Int(i) => Json::from(*i),
        Value::UInt(u) => Json::from(*u),
        // Through the shortest decimal text of the f32, so 0.1f32 is 0.1.
        Value::Float(f) => finite(f.to_string().parse::<f64>().unwrap_or(f64::NAN))?,
        Value::Double(d) => finite(*d)?,
        Value::Decimal(text) => Json::String(text.clone()),
        Value::Bit { value, .. } => Json::from(*value),
        Value::Year(y) => Json::from(*y),
        Value::Date { year, month, day } => Json::String(format!("{year:04}-{month:02}-{day:02}")),
        Value::Time {
            negative,
            hours,
            minutes,
            seconds,
            micros,
            fsp,
        } => {
            let mut s = String::with_capacity(20);
            if *negative {
                s.push('-');
            }
            let _ = write!(s, "{hours:02}:{minutes:02}:{seconds:02}");
            push_fraction(&mut s, *micros, *fsp);
            Json::String(s)
        }
        Value::DateTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
            micros,
            fsp,
        } => {
            let mut s = format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}");
            push_fraction(&mut s, *micros, *fsp);
            Json::String(s)
        }
        Value::Timestamp {
            seconds,
            micros,
            fsp,
        } => {
            if *seconds == 0 && *micros == 0 {
                // MariaDB's zero TIMESTAMP: no instant, so no zone either.
                let mut s = "0000-00-00 00:00:00".to_owned();
                push_fraction(&mut s, 0, *fsp);
                Json::String(s)
            } else {
                let mut s = rfc3339_seconds(i64::from(*seconds));
                s.pop(); // the 'Z', put back after the fraction
                push_fraction(&mut s, *micros, *fsp);
                s.push('Z');
                Json::String(s)
            }
        }
        Value::Text(s) => Json::String(s.clone()),
        Value::Bytes(b) => Json::String(base64::engine::general_purpose::STANDARD.encode(b)),
        Value::Enum(label) => Json::String(label.clone()),
        Value::Set(labels) => Json::Array(labels.iter().cloned().map(Json::String).collect()),
    })
}

fn finite(f: f64) -> Result<Json, String> {
    Number::from_f64(f)
        .map(Json::Number)
        .ok_or_else(|| format!("{f} is not a finite number"))
}

/// Appends `.ffffff` cut to `fsp` digits (nothing for fsp 0).
fn push_fraction(s: &mut String, micros: u32, fsp: u8) {
    let fsp = usize::from(fsp.min(6));
    if fsp > 0 {
        let digits = format!("{micros:06}");
        s.push('.');
        s.push_str(&digits[..fsp]);
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` for Unix seconds.
pub fn rfc3339_seconds(unix: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(unix) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => "1970-01-01T00:00:00Z".to_owned(),
    }
}

/// MariaDB's text form of a UUID value from its 16 stored bytes.
fn uuid_text(stored: &[u8]) -> Result<String, String> {
    let b: [u8; 16] = stored
        .try_into()
        .map_err(|_| format!("UUID value has {} bytes, not 16", stored.len()))?;
    let bytes = uuid_from_record(b);
    let mut s = String::with_capacity(36);
    for (i, byte) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        let _ = write!(s, "{byte:02x}");
    }
    Ok(s)
}

/// MariaDB keeps UUIDs of versions 1 to 5 in the row with their five groups
/// in reverse order (`nnnnnnnnnnnn-vsss-Vhhh-mmmm-llllllll`), so that
/// time-based UUIDs sort by time; other versions are kept as written. The
/// record form tells which: in a reordered value, byte 6 holds the variant
/// (high bit set) and byte 8 the version. (MariaDB 10.11.5+, `type_uuid`.)
pub fn uuid_from_record(record: [u8; 16]) -> [u8; 16] {
    // The server's test, on signed chars: s[6] & -s[8] & 0x80.
    let b6 = i32::from(record[6] as i8);
    let b8 = i32::from(record[8] as i8);
    if b6 & -b8 & 0x80 == 0 {
        return record;
    }
    // (position in the text form, position in the record, length)
    const GROUPS: [(usize, usize, usize); 5] =
        [(0, 12, 4), (4, 10, 2), (6, 8, 2), (8, 6, 2), (10, 0, 6)];
    let mut text_order = [0u8; 16];
    for (mem, rec, len) in GROUPS {
        text_order[mem..mem + len].copy_from_slice(&record[rec..rec + len]);
    }
    text_order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> TableLayout {
        let col = |name: &str, logical| ColumnLayout {
            name: name.to_owned(),
            logical,
        };
        TableLayout {
            database: "shop".into(),
            table: "orders".into(),
            topic: Arc::from("shop.orders.v1"),
            event_type: "shop.order.created.v1".into(),
            dataschema: Some("urn:test".into()),
            source: "/mariadb/shop/shop/orders".into(),
            columns: vec![
                col("id", Logical::Plain),
                col("amount", Logical::Plain),
                col("items", Logical::Json),
                col("created_at", Logical::Plain),
            ],
            primary_key: vec![0],
        }
    }

    fn origin() -> RowOrigin<'static> {
        RowOrigin {
            gtid: Gtid {
                domain: 0,
                server_id: 1,
                seq: 42,
            },
            row_index: 3,
            server_id: 2,
            file: "mariadb-bin.000007",
            pos: 1234,
            commit_time: 1_764_135_221,
        }
    }

    #[test]
    fn an_order_row_becomes_a_cloudevent() {
        let row = vec![
            Some(Value::UInt(u64::MAX)),
            Some(Value::Decimal("19.90".into())),
            Some(Value::Text(r#"[{"sku":"a","qty":2}]"#.into())),
            Some(Value::DateTime {
                year: 2026,
                month: 11,
                day: 26,
                hour: 5,
                minute: 33,
                second: 41,
                micros: 70_828,
                fsp: 6,
            }),
        ];
        let record = map_insert(&layout(), &row, &origin()).unwrap();
        assert_eq!(record.key, b"18446744073709551615");
        assert_eq!(record.id, "0-1-42.3");
        let event: Json = serde_json::from_slice(&record.payload).unwrap();
        assert_eq!(
            event,
            json!({
                "specversion": "1.0",
                "id": "0-1-42.3",
                "source": "/mariadb/shop/shop/orders",
                "type": "shop.order.created.v1",
                "subject": "18446744073709551615",
                "time": "2025-11-26T05:33:41Z",
                "datacontenttype": "application/json",
                "dataschema": "urn:test",
                "binloggtid": "0-1-42",
                "binlogrow": 3,
                "binlogserverid": 2,
                "binlogfile": "mariadb-bin.000007",
                "binlogpos": 1234,
                "data": {
                    "id": 18446744073709551615u64,
                    "amount": "19.90",
                    "items": [{"sku": "a", "qty": 2}],
                    "created_at": "2026-11-26 05:33:41.070828"
                }
            })
        );
        let header = |name: &str| {
            record
                .headers
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| String::from_utf8(v.clone()).unwrap())
        };
        assert_eq!(header(HEADER_GTID).as_deref(), Some("0-1-42"));
        assert_eq!(header(HEADER_ROW).as_deref(), Some("3"));
        assert_eq!(header(HEADER_POS).as_deref(), Some("1234"));
    }

    #[test]
    fn values_render_exactly() {
        let plain = |v: Value| to_json(&v, Logical::Plain).unwrap();
        assert_eq!(plain(Value::Int(i64::MIN)), json!(i64::MIN));
        assert_eq!(plain(Value::Float(0.1)), json!(0.1));
        assert_eq!(plain(Value::Double(-1.5e300)), json!(-1.5e300));
        assert_eq!(
            plain(Value::Time {
                negative: true,
                hours: 838,
                minutes: 59,
                seconds: 59,
                micros: 500_000,
                fsp: 1
            }),
            json!("-838:59:59.5")
        );
        assert_eq!(
            plain(Value::Timestamp {
                seconds: 1,
                micros: 120,
                fsp: 6
            }),
            json!("1970-01-01T00:00:01.000120Z")
        );
        assert_eq!(
            plain(Value::Timestamp {
                seconds: 0,
                micros: 0,
                fsp: 0
            }),
            json!("0000-00-00 00:00:00")
        );
        assert_eq!(
            plain(Value::Date {
                year: 0,
                month: 0,
                day: 0
            }),
            json!("0000-00-00")
        );
        assert_eq!(plain(Value::Bytes(vec![0, 255, 1])), json!("AP8B"));
        assert_eq!(
            plain(Value::Set(vec!["a".into(), "c".into()])),
            json!(["a", "c"])
        );
        assert!(to_json(&Value::Text("{nope".into()), Logical::Json).is_err());
        let mut v4_mapped = [0u8; 16];
        v4_mapped[10] = 0xff;
        v4_mapped[11] = 0xff;
        v4_mapped[12..].copy_from_slice(&[192, 0, 2, 1]);
        assert_eq!(
            to_json(&Value::Bytes(v4_mapped.to_vec()), Logical::Inet6).unwrap(),
            json!("::ffff:192.0.2.1")
        );
    }

    #[test]
    fn uuids_come_back_in_text_order() {
        // A version-1 UUID 123e4567-e89b-12d3-a456-426655440000 as MariaDB stores it.
        let v1_record: [u8; 16] = [
            0x42, 0x66, 0x55, 0x44, 0x00, 0x00, 0xa4, 0x56, 0x12, 0xd3, 0xe8, 0x9b, 0x12, 0x3e,
            0x45, 0x67,
        ];
        assert_eq!(
            to_json(&Value::Bytes(v1_record.to_vec()), Logical::Uuid).unwrap(),
            json!("123e4567-e89b-12d3-a456-426655440000")
        );
        // Version 7 is stored as written.
        let v7: [u8; 16] = [
            0x01, 0x8f, 0x3a, 0x1b, 0x2c, 0x3d, 0x7a, 0xbc, 0x8d, 0xef, 0x01, 0x23, 0x45, 0x67,
            0x89, 0xab,
        ];
        assert_eq!(
            to_json(&Value::Bytes(v7.to_vec()), Logical::Uuid).unwrap(),
            json!("018f3a1b-2c3d-7abc-8def-0123456789ab")
        );
    }

    #[test]
    fn rows_that_do_not_fit_are_refused() {
        let short = vec![Some(Value::UInt(1))];
        assert!(matches!(
            map_insert(&layout(), &short, &origin()),
            Err(MapError::ColumnCount { .. })
        ));
        let null_key = vec![
            Some(Value::Null),
            Some(Value::Decimal("1.00".into())),
            Some(Value::Text("[]".into())),
            Some(Value::Null),
        ];
        assert!(matches!(
            map_insert(&layout(), &null_key, &origin()),
            Err(MapError::NullKey { .. })
        ));
    }
}
