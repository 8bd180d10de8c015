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
use std::sync::{Arc, OnceLock};

use base64::Engine as _;
use serde_json::{Number, Value as Json};

use crate::decode::Value;

mod json;
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
    /// MariaDB's VECTOR(n) type (11.7+; 4n bytes, n little-endian float32):
    /// published as an array of n numbers, each the shortest decimal that
    /// reads back as the same float32.
    Vector,
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
    /// The event's texts that are the same for every row of this layout,
    /// escaped on first use (`LayoutText::default()` when building one), so
    /// the other fields must not change once a row has been written: a
    /// changed table is a new layout.
    pub text: LayoutText,
}

/// The parts of a layout's events that do not change from row to row, as
/// JSON text, made from the layout's other fields the first time a row is
/// written, so that each row does not escape them again. Not part of a
/// layout's equality: it is derived from the fields that are.
#[derive(Debug, Clone, Default)]
pub struct LayoutText(OnceLock<EventText>);

impl PartialEq for LayoutText {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for LayoutText {}

#[derive(Debug, Clone)]
struct EventText {
    /// `,"source":…,"type":…,"subject":`
    after_id: Vec<u8>,
    /// `,"datacontenttype":"application/json"` and `,"dataschema":…` when
    /// there is one, then `,"binloggtid":`.
    after_time: Vec<u8>,
    /// Each column's `"name":`, after a `,` for all but the first.
    columns: Vec<Vec<u8>>,
}

impl LayoutText {
    fn get(&self, layout: &TableLayout) -> serde_json::Result<&EventText> {
        if let Some(text) = self.0.get() {
            return Ok(text);
        }
        let text = EventText::of(layout)?;
        Ok(self.0.get_or_init(|| text))
    }
}

impl EventText {
    fn of(layout: &TableLayout) -> serde_json::Result<EventText> {
        let mut after_id = b",\"source\":".to_vec();
        serde_json::to_writer(&mut after_id, layout.source.as_str())?;
        after_id.extend_from_slice(b",\"type\":");
        serde_json::to_writer(&mut after_id, layout.event_type.as_str())?;
        after_id.extend_from_slice(b",\"subject\":");
        let mut after_time = b",\"datacontenttype\":\"application/json\"".to_vec();
        if let Some(schema) = &layout.dataschema {
            after_time.extend_from_slice(b",\"dataschema\":");
            serde_json::to_writer(&mut after_time, schema.as_str())?;
        }
        after_time.extend_from_slice(b",\"binloggtid\":");
        let columns = layout
            .columns
            .iter()
            .enumerate()
            .map(|(i, column)| {
                let mut name = if i > 0 { b",".to_vec() } else { Vec::new() };
                serde_json::to_writer(&mut name, column.name.as_str())?;
                name.push(b':');
                Ok(name)
            })
            .collect::<serde_json::Result<_>>()?;
        Ok(EventText {
            after_id,
            after_time,
            columns,
        })
    }
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
    pub headers: Headers,
    /// The CloudEvents id.
    pub id: String,
    /// Source transaction and the row's index in it.
    pub gtid: Gtid,
    pub row_index: u32,
    /// `database.table` of a snapshot record (its `binlog.snapshot.table`
    /// header); `None` for rows read from the binlog.
    pub snapshot_table: Option<Arc<str>>,
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
/// Added by the sink on snapshot records: the snapshot's id.
pub const HEADER_SNAPSHOT: &str = "binlog.snapshot";
/// Added by the sink on snapshot records: `database.table` of the row.
pub const HEADER_SNAPSHOT_TABLE: &str = "binlog.snapshot.table";

/// The CloudEvents id of a row.
pub fn event_id(gtid: Gtid, row_index: u32) -> String {
    let mut text = String::with_capacity(32);
    push_gtid(&mut text, gtid);
    id_of(&text, row_index)
}

/// [`event_id`] from the GTID's text.
fn id_of(gtid: &str, row_index: u32) -> String {
    let mut id = String::with_capacity(gtid.len() + 11);
    id.push_str(gtid);
    id.push('.');
    id.push_str(itoa::Buffer::new().format(row_index));
    id
}

/// Appends a GTID's text (`domain-server_id-seq`, as its `Display` writes
/// it) without the formatting machinery: this runs for every record.
fn push_gtid(out: &mut String, gtid: Gtid) {
    let mut digits = itoa::Buffer::new();
    out.push_str(digits.format(gtid.domain));
    out.push('-');
    out.push_str(digits.format(gtid.server_id));
    out.push('-');
    out.push_str(digits.format(gtid.seq));
}

/// A record's headers ([`Headers::NAMES`], in that order): their values
/// one after another in one buffer, so a record costs one allocation for
/// all of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    values: Vec<u8>,
    /// Where each value ends in `values`.
    ends: [u32; 6],
}

impl Headers {
    /// The header names, in the order the values are kept and sent.
    pub const NAMES: [&'static str; 6] = [
        "content-type",
        HEADER_GTID,
        HEADER_ROW,
        HEADER_SERVER_ID,
        HEADER_FILE,
        HEADER_POS,
    ];

    fn new(gtid: &str, origin: &RowOrigin<'_>) -> Headers {
        let mut values =
            Vec::with_capacity(CONTENT_TYPE.len() + gtid.len() + origin.file.len() + 32);
        let mut ends = [0u32; 6];
        let mut digits = itoa::Buffer::new();
        let mut end = |i: usize, values: &Vec<u8>| {
            ends[i] = u32::try_from(values.len()).unwrap_or(u32::MAX);
        };
        values.extend_from_slice(CONTENT_TYPE.as_bytes());
        end(0, &values);
        values.extend_from_slice(gtid.as_bytes());
        end(1, &values);
        values.extend_from_slice(digits.format(origin.row_index).as_bytes());
        end(2, &values);
        values.extend_from_slice(digits.format(origin.server_id).as_bytes());
        end(3, &values);
        values.extend_from_slice(origin.file.as_bytes());
        end(4, &values);
        values.extend_from_slice(digits.format(origin.pos).as_bytes());
        end(5, &values);
        Headers { values, ends }
    }

    /// How many headers.
    pub fn len(&self) -> usize {
        Self::NAMES.len()
    }

    /// Never: every record has all of them.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Each header's name and value.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &[u8])> + '_ {
        let mut start = 0usize;
        Self::NAMES.iter().zip(self.ends).map(move |(name, end)| {
            let end = (end as usize).min(self.values.len());
            let value = self.values.get(start..end).unwrap_or_default();
            start = end;
            (*name, value)
        })
    }

    /// The names' and values' bytes, as a producer sends them.
    pub fn bytes(&self) -> usize {
        const NAMES_BYTES: usize = {
            let mut sum = 0;
            let mut i = 0;
            while i < Headers::NAMES.len() {
                sum += Headers::NAMES[i].len();
                i += 1;
            }
            sum
        };
        NAMES_BYTES + self.values.len()
    }

    /// Bytes held.
    pub fn size(&self) -> usize {
        self.values.capacity()
    }
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
    map_row(layout, row, origin, None)
}

/// What marks a snapshot record (see `snapshot`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotMark {
    /// The CloudEvents extension `binlogsnapshot`: the snapshot's id.
    pub snapshot: String,
    /// The event id is this followed by the Kafka key:
    /// `snapshot:<read view position>:<database>.<table>:`.
    pub id_prefix: String,
    /// `database.table`.
    pub table: Arc<str>,
}

impl SnapshotMark {
    /// The mark of rows of `layout` read in the view at `position` of
    /// snapshot `snapshot`.
    pub fn new(snapshot: &str, position: &str, layout: &TableLayout) -> Self {
        SnapshotMark {
            snapshot: snapshot.to_owned(),
            id_prefix: format!("snapshot:{position}:{}.{}:", layout.database, layout.table),
            table: Arc::from(format!("{}.{}", layout.database, layout.table)),
        }
    }
}

/// Maps one row read by a snapshot to a record: the event of an insert of
/// the same row, but for its id (`<mark's prefix><key>`), the extension
/// `binlogsnapshot`, and `origin` being the read view's position (`row_index`
/// 0) and time.
///
/// # Errors
/// As [`map_insert`].
pub fn map_snapshot_row(
    layout: &TableLayout,
    row: &[Option<Value>],
    origin: &RowOrigin<'_>,
    mark: &SnapshotMark,
) -> Result<Record, MapError> {
    map_row(layout, row, origin, Some(mark))
}

fn map_row(
    layout: &TableLayout,
    row: &[Option<Value>],
    origin: &RowOrigin<'_>,
    mark: Option<&SnapshotMark>,
) -> Result<Record, MapError> {
    let full_name = || format!("{}.{}", layout.database, layout.table);
    if row.len() != layout.columns.len() {
        return Err(MapError::ColumnCount {
            table: full_name(),
            found: row.len(),
            expected: layout.columns.len(),
        });
    }
    let mut values = Vec::with_capacity(row.len());
    for (column, value) in layout.columns.iter().zip(row) {
        let value = value.as_ref().ok_or_else(|| MapError::MissingColumn {
            table: full_name(),
            column: column.name.clone(),
        })?;
        let out = column_out(value, column.logical).map_err(|problem| MapError::BadValue {
            table: full_name(),
            column: column.name.clone(),
            problem,
        })?;
        values.push(out);
    }

    let key = record_key(layout, &values)?;
    let mut gtid = String::with_capacity(32);
    push_gtid(&mut gtid, origin.gtid);
    let id = match mark {
        None => id_of(&gtid, origin.row_index),
        Some(mark) => format!("{}{key}", mark.id_prefix),
    };
    let snapshot = mark.map(|m| m.snapshot.as_str());
    let mut payload = Vec::with_capacity(
        payload_capacity(layout, &values, &id, origin) + snapshot.map_or(0, |s| s.len() + 20),
    );
    write_event(
        &mut payload,
        layout,
        &values,
        Ids {
            key: &key,
            id: &id,
            gtid: &gtid,
            snapshot,
        },
        origin,
    )
    .map_err(|e| MapError::BadValue {
        table: full_name(),
        column: "*".into(),
        problem: format!("cannot serialise the event: {e}"),
    })?;
    Ok(Record {
        topic: Arc::clone(&layout.topic),
        key: key.into_bytes(),
        payload,
        headers: Headers::new(&gtid, origin),
        id,
        gtid: origin.gtid,
        row_index: origin.row_index,
        snapshot_table: mark.map(|m| Arc::clone(&m.table)),
    })
}

/// About how long the event of `values` is, so that its buffer is
/// allocated once rather than grown (and copied) while it is written.
fn payload_capacity(
    layout: &TableLayout,
    values: &[Out],
    id: &str,
    origin: &RowOrigin<'_>,
) -> usize {
    // Member names, punctuation, the time and the numbers.
    const FIXED: usize = 320;
    let columns: usize = layout
        .columns
        .iter()
        .zip(values)
        .map(|(column, value)| {
            column.name.len()
                + 4
                + match value {
                    Out::Compact(text) => text.len(),
                    Out::Value(Json::String(s)) => s.len() + 2,
                    Out::Value(_) => 24,
                }
        })
        .sum();
    FIXED
        + 2 * id.len()
        + layout.source.len()
        + layout.event_type.len()
        + layout.dataschema.as_ref().map_or(0, String::len)
        + origin.file.len()
        + columns
}

/// The texts [`write_event`] writes beside the row.
struct Ids<'a> {
    key: &'a str,
    id: &'a str,
    gtid: &'a str,
    /// The `binlogsnapshot` extension of snapshot records.
    snapshot: Option<&'a str>,
}

/// Writes the event (the document the module documentation shows) into
/// `out`, compact, its members in that order and the row's columns in the
/// table's order: the same bytes as serde_json gives the same document built
/// as a value (`tests::the_payload_writer_matches_serde_json` compares them),
/// without building it. Strings and values go through serde_json, so the
/// escaping and number forms are its own; the texts that are the same for
/// every row of the table were escaped once, in [`TableLayout::text`], and
/// the integers are written by itoa, whose digits are serde_json's.
fn write_event(
    out: &mut Vec<u8>,
    layout: &TableLayout,
    values: &[Out],
    ids: Ids<'_>,
    origin: &RowOrigin<'_>,
) -> serde_json::Result<()> {
    let Ids {
        key,
        id,
        gtid,
        snapshot,
    } = ids;
    let text = layout.text.get(layout)?;
    let mut digits = itoa::Buffer::new();
    out.extend_from_slice(b"{\"specversion\":\"1.0\",\"id\":");
    serde_json::to_writer(&mut *out, id)?;
    out.extend_from_slice(&text.after_id);
    serde_json::to_writer(&mut *out, key)?;
    out.extend_from_slice(b",\"time\":");
    push_commit_time(out, origin.commit_time);
    out.extend_from_slice(&text.after_time);
    serde_json::to_writer(&mut *out, gtid)?;
    out.extend_from_slice(b",\"binlogrow\":");
    out.extend_from_slice(digits.format(origin.row_index).as_bytes());
    out.extend_from_slice(b",\"binlogserverid\":");
    out.extend_from_slice(digits.format(origin.server_id).as_bytes());
    out.extend_from_slice(b",\"binlogfile\":");
    serde_json::to_writer(&mut *out, origin.file)?;
    out.extend_from_slice(b",\"binlogpos\":");
    out.extend_from_slice(digits.format(origin.pos).as_bytes());
    if let Some(snapshot) = snapshot {
        out.extend_from_slice(b",\"binlogsnapshot\":");
        serde_json::to_writer(&mut *out, snapshot)?;
    }
    out.extend_from_slice(b",\"data\":{");
    for (name, value) in text.columns.iter().zip(values) {
        out.extend_from_slice(name);
        match value {
            Out::Value(value) => serde_json::to_writer(&mut *out, value)?,
            Out::Compact(text) => out.extend_from_slice(text),
        }
    }
    out.extend_from_slice(b"}}");
    Ok(())
}

/// The Kafka key: one primary-key column's value as text (strings bare), or
/// a JSON array of several.
fn record_key(layout: &TableLayout, values: &[Out]) -> Result<String, MapError> {
    let value_of = |i: usize| -> Result<std::borrow::Cow<'_, Json>, MapError> {
        let value = match values.get(i) {
            Some(Out::Value(v)) => Some(std::borrow::Cow::Borrowed(v)),
            // A JSON column in the key (unusual): its value again.
            Some(Out::Compact(text)) => serde_json::from_slice(text)
                .ok()
                .map(std::borrow::Cow::Owned),
            None => None,
        };
        match value {
            Some(v) if !v.is_null() => Ok(v),
            _ => Err(MapError::NullKey {
                table: format!("{}.{}", layout.database, layout.table),
                column: layout
                    .columns
                    .get(i)
                    .map_or_else(|| "?".to_owned(), |c| c.name.clone()),
            }),
        }
    };
    match layout.primary_key.as_slice() {
        [single] => Ok(single_key(&*value_of(*single)?)),
        several => {
            let parts = several
                .iter()
                .map(|&i| value_of(i).map(std::borrow::Cow::into_owned))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Json::Array(parts).to_string())
        }
    }
}

/// The key of a one-column primary key: a string bare, anything else as
/// its JSON text. The usual integer is written by itoa directly (the same
/// digits serde_json writes) rather than through a formatter.
fn single_key(value: &Json) -> String {
    if let Json::Number(n) = value {
        if let Some(u) = n.as_u64() {
            return itoa::Buffer::new().format(u).to_owned();
        }
        if let Some(i) = n.as_i64() {
            return itoa::Buffer::new().format(i).to_owned();
        }
    }
    match value {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A column's value in the event: a JSON value, or a JSON column's text
/// already in the compact form serde_json would write for its value.
enum Out {
    Value(Json),
    Compact(Vec<u8>),
}

/// [`to_json`], but a JSON column's text is copied into its compact form
/// without building a value (see [`json`]).
fn column_out(value: &Value, logical: Logical) -> Result<Out, String> {
    let text = match (logical, value) {
        (Logical::Json, Value::Text(s)) => s.as_str(),
        (Logical::Json, Value::Bytes(b)) => match std::str::from_utf8(b) {
            Ok(text) => text,
            Err(_) => return to_json(value, logical).map(Out::Value),
        },
        _ => return to_json(value, logical).map(Out::Value),
    };
    let mut out = Vec::with_capacity(text.len());
    match json::compact(text, &mut out) {
        Ok(()) => Ok(Out::Compact(out)),
        // A repeated key, or not JSON (whose error `to_json` words).
        Err(json::NotCopied::RepeatedKey | json::NotCopied::Invalid) => {
            to_json(value, logical).map(Out::Value)
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
        Logical::Vector => match value {
            Value::Null => Ok(Json::Null),
            Value::Bytes(b) => vector_json(b),
            other => Err(format!("VECTOR column holds {other:?}")),
        },
    }
}

/// A VECTOR value: float32 little-endian, each published exactly (the
/// shortest decimal of the f32, as FLOAT columns are).
fn vector_json(bytes: &[u8]) -> Result<Json, String> {
    if !bytes.len().is_multiple_of(4) {
        return Err(format!(
            "VECTOR value has {} bytes, not a multiple of 4 (float32)",
            bytes.len()
        ));
    }
    bytes
        .chunks_exact(4)
        .map(|c| {
            let f = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            float_json(f)
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Json::Array)
}

/// A float32 as JSON: through its shortest decimal text, so 0.1f32 is 0.1.
fn float_json(f: f32) -> Result<Json, String> {
    finite(f.to_string().parse::<f64>().unwrap_or(f64::NAN))
}

fn plain_json(value: &Value) -> Result<Json, String> {
    Ok(match value {
        Value::Null => Json::Null,
        Value::Int(i) => Json::from(*i),
        Value::UInt(u) => Json::from(*u),
        Value::Float(f) => float_json(*f)?,
        Value::Double(d) => finite(*d)?,
        Value::Decimal(text) => Json::String(text.clone()),
        Value::Bit { value, .. } => Json::from(*value),
        Value::Year(y) => Json::from(*y),
        Value::Date { year, month, day } => {
            let mut s = String::with_capacity(10);
            push_date(&mut s, *year, *month, *day);
            Json::String(s)
        }
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
            push_clock(&mut s, *hours, *minutes, *seconds, *micros, *fsp);
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
            let mut s = String::with_capacity(26);
            push_date(&mut s, *year, *month, *day);
            s.push(' ');
            push_clock(&mut s, u32::from(*hour), *minute, *second, *micros, *fsp);
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

/// Appends `n` in decimal, zero-padded to at least `width` digits: what
/// `{n:0width$}` writes, without the formatting machinery (dates and times
/// are on every order's path).
fn push_padded(s: &mut String, n: u32, width: usize) {
    let mut digits = itoa::Buffer::new();
    let text = digits.format(n);
    for _ in text.len()..width {
        s.push('0');
    }
    s.push_str(text);
}

/// Appends `YYYY-MM-DD`.
fn push_date(s: &mut String, year: u16, month: u8, day: u8) {
    push_padded(s, u32::from(year), 4);
    s.push('-');
    push_padded(s, u32::from(month), 2);
    s.push('-');
    push_padded(s, u32::from(day), 2);
}

/// Appends `HH:MM:SS` and the fraction cut to `fsp` digits (TIME's hours
/// may have three digits).
fn push_clock(s: &mut String, hours: u32, minutes: u8, seconds: u8, micros: u32, fsp: u8) {
    push_padded(s, hours, 2);
    s.push(':');
    push_padded(s, u32::from(minutes), 2);
    s.push(':');
    push_padded(s, u32::from(seconds), 2);
    push_fraction(s, micros, fsp);
}

/// Appends `.ffffff` cut to `fsp` digits (nothing for fsp 0): the first
/// `fsp` digits of `micros` zero-padded to six.
fn push_fraction(s: &mut String, micros: u32, fsp: u8) {
    let fsp = usize::from(fsp.min(6));
    if fsp > 0 {
        let mut digits = itoa::Buffer::new();
        let text = digits.format(micros).as_bytes();
        let pad = 6usize.saturating_sub(text.len());
        s.push('.');
        for i in 0..fsp {
            let digit = match i.checked_sub(pad) {
                None => b'0',
                Some(j) => text.get(j).copied().unwrap_or(b'0'),
            };
            s.push(char::from(digit));
        }
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

/// Appends a commit time (Unix seconds, as the binlog stores it) as a JSON
/// string in the form [`rfc3339_seconds`] gives, computed directly: the
/// proleptic Gregorian date of a day count (the civil-from-days
/// arithmetic), no allocation. `tests::commit_times_match_rfc3339_seconds`
/// checks it against the time crate.
fn push_commit_time(out: &mut Vec<u8>, unix: u32) {
    let days = i64::from(unix / 86_400);
    let secs = unix % 86_400;
    // Days since 0000-03-01, in 400-year eras of 146,097 days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let two = |out: &mut Vec<u8>, n: i64| {
        out.push(b'0' + (n / 10 % 10) as u8);
        out.push(b'0' + (n % 10) as u8);
    };
    out.push(b'"');
    two(out, year / 100);
    two(out, year % 100);
    out.push(b'-');
    two(out, month);
    out.push(b'-');
    two(out, day);
    out.push(b'T');
    two(out, i64::from(secs / 3_600));
    out.push(b':');
    two(out, i64::from(secs / 60 % 60));
    out.push(b':');
    two(out, i64::from(secs % 60));
    out.extend_from_slice(b"Z\"");
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
    use serde_json::{json, Map};

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
            text: LayoutText::default(),
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

    /// The document as a serde_json value, built the way the module
    /// documentation shows it: what [`write_event`] must write byte for byte.
    fn reference_payload(
        layout: &TableLayout,
        row: &[Option<Value>],
        origin: &RowOrigin<'_>,
    ) -> Vec<u8> {
        let mut data = Map::new();
        let mut values = Vec::new();
        for (column, value) in layout.columns.iter().zip(row) {
            let json = to_json(value.as_ref().unwrap(), column.logical).unwrap();
            data.insert(column.name.clone(), json.clone());
            values.push(Out::Value(json));
        }
        let key = record_key(layout, &values).unwrap();
        let mut event = json!({
            "specversion": "1.0",
            "id": event_id(origin.gtid, origin.row_index),
            "source": layout.source,
            "type": layout.event_type,
            "subject": key,
            "time": rfc3339_seconds(i64::from(origin.commit_time)),
            "datacontenttype": "application/json",
        });
        let obj = event.as_object_mut().unwrap();
        if let Some(schema) = &layout.dataschema {
            obj.insert("dataschema".into(), Json::String(schema.clone()));
        }
        obj.insert("binloggtid".into(), Json::String(origin.gtid.to_string()));
        obj.insert("binlogrow".into(), Json::from(origin.row_index));
        obj.insert("binlogserverid".into(), Json::from(origin.server_id));
        obj.insert("binlogfile".into(), Json::String(origin.file.to_owned()));
        obj.insert("binlogpos".into(), Json::from(origin.pos));
        obj.insert("data".into(), Json::Object(data));
        serde_json::to_vec(&event).unwrap()
    }

    #[test]
    fn the_payload_writer_matches_serde_json() {
        let col = |name: &str, logical| ColumnLayout {
            name: name.to_owned(),
            logical,
        };
        let mut odd = TableLayout {
            database: "db \"x\"".into(),
            table: "t".into(),
            topic: Arc::from("t"),
            event_type: "type \u{2028} é".into(),
            dataschema: Some("urn:\\schema\"".into()),
            source: "/mariadb/c/db \"x\"/t".into(),
            columns: vec![
                col("id", Logical::Plain),
                col("région", Logical::Plain),
                col("quote\"name", Logical::Plain),
                col("doc", Logical::Json),
                col("u", Logical::Uuid),
                col("ip", Logical::Inet6),
                col("f", Logical::Plain),
                col("d", Logical::Plain),
                col("n", Logical::Plain),
                col("b", Logical::Plain),
                col("dec", Logical::Plain),
                col("ts", Logical::Plain),
            ],
            primary_key: vec![0, 1],
            text: LayoutText::default(),
        };
        let row = vec![
            Some(Value::Int(i64::MIN)),
            Some(Value::Text(
                "tab\tnl\nctl\u{1}\u{7f} \\ \" 😀 \u{2028}".into(),
            )),
            Some(Value::Enum("a\"b".into())),
            Some(Value::Text(
                r#"{"z":1,"a":[1.5,"x\u0001",null,{"k":true}],"e":1e300}"#.into(),
            )),
            Some(Value::Bytes(vec![0x12; 16])),
            Some(Value::Bytes(vec![0; 16])),
            Some(Value::Float(0.1)),
            Some(Value::Double(-1.25e-300)),
            Some(Value::Null),
            Some(Value::Bytes(vec![0, 255, 10, 34])),
            Some(Value::Decimal("-0.000000000000000000000000000001".into())),
            Some(Value::Timestamp {
                seconds: 0,
                micros: 5,
                fsp: 6,
            }),
        ];
        for schema in [odd.dataschema.clone(), None] {
            // A changed layout is a new layout: its texts are made again.
            odd = TableLayout {
                dataschema: schema,
                text: LayoutText::default(),
                ..odd
            };
            let record = map_insert(&odd, &row, &origin()).unwrap();
            assert_eq!(
                String::from_utf8_lossy(&record.payload),
                String::from_utf8_lossy(&reference_payload(&odd, &row, &origin()))
            );
        }
        let record = map_insert(
            &layout(),
            &[
                Some(Value::UInt(u64::MAX)),
                Some(Value::Decimal("19.90".into())),
                Some(Value::Text("[]".into())),
                Some(Value::Null),
            ],
            &origin(),
        )
        .unwrap();
        assert_eq!(
            record.payload,
            reference_payload(
                &layout(),
                &[
                    Some(Value::UInt(u64::MAX)),
                    Some(Value::Decimal("19.90".into())),
                    Some(Value::Text("[]".into())),
                    Some(Value::Null),
                ],
                &origin()
            )
        );
    }

    #[test]
    fn commit_times_match_rfc3339_seconds() {
        let mut samples = vec![
            0,
            59,
            86_399,
            86_400,
            951_782_400,   // 2000-02-29
            951_868_800,   // 2000-03-01
            1_709_164_800, // 2024-02-29
            2_147_483_647,
            2_147_483_648,
            4_102_444_800, // 2100-01-01
            u32::MAX,
        ];
        let mut t: u32 = 1;
        while let Some(next) = t.checked_mul(3) {
            samples.push(next - 1);
            t = next;
        }
        samples.extend((0..2_000u32).map(|i| i.wrapping_mul(2_654_435_761)));
        for unix in samples {
            let mut out = Vec::new();
            push_commit_time(&mut out, unix);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                format!("\"{}\"", rfc3339_seconds(i64::from(unix))),
                "{unix}"
            );
        }
        assert_eq!(
            event_id(
                Gtid {
                    domain: u32::MAX,
                    server_id: 0,
                    seq: u64::MAX
                },
                7
            ),
            format!("{}-0-{}.7", u32::MAX, u64::MAX)
        );
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
                .map(|(_, v)| String::from_utf8(v.to_vec()).unwrap())
        };
        assert_eq!(header(HEADER_GTID).as_deref(), Some("0-1-42"));
        assert_eq!(header(HEADER_ROW).as_deref(), Some("3"));
        assert_eq!(header(HEADER_POS).as_deref(), Some("1234"));
    }

    #[test]
    fn padded_digits_and_fractions_match_format() {
        for n in [
            0u32,
            1,
            9,
            10,
            59,
            99,
            100,
            838,
            999,
            1000,
            2026,
            9999,
            10_000,
            999_999,
            1_000_000,
            u32::MAX,
        ] {
            for width in [2usize, 4, 6] {
                let mut s = String::new();
                push_padded(&mut s, n, width);
                assert_eq!(s, format!("{n:0width$}"));
            }
            for fsp in 0..=7u8 {
                let mut s = String::new();
                push_fraction(&mut s, n, fsp);
                let digits = format!("{n:06}");
                let want = match usize::from(fsp.min(6)) {
                    0 => String::new(),
                    f => format!(".{}", &digits[..f]),
                };
                assert_eq!(s, want, "micros {n} fsp {fsp}");
            }
        }
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
    fn vectors_are_arrays_of_exact_float32() {
        let bytes: Vec<u8> = [1.5f32, -0.1, 3.0, f32::MIN_POSITIVE, 1e30, -0.0]
            .iter()
            .flat_map(|f| f.to_le_bytes())
            .collect();
        let got = to_json(&Value::Bytes(bytes), Logical::Vector).unwrap();
        assert_eq!(got.to_string(), "[1.5,-0.1,3.0,1.1754944e-38,1e+30,-0.0]");
        // Each number reads back as the same float32.
        for (n, want) in
            got.as_array()
                .unwrap()
                .iter()
                .zip([1.5f32, -0.1, 3.0, f32::MIN_POSITIVE, 1e30, -0.0])
        {
            assert_eq!((n.as_f64().unwrap() as f32).to_bits(), want.to_bits());
        }
        assert_eq!(
            to_json(&Value::Bytes(Vec::new()), Logical::Vector).unwrap(),
            json!([])
        );
        assert_eq!(to_json(&Value::Null, Logical::Vector).unwrap(), Json::Null);
        let err = to_json(&Value::Bytes(vec![0; 6]), Logical::Vector).unwrap_err();
        assert!(err.contains("6 bytes, not a multiple of 4"), "{err}");
        let nan = f32::NAN.to_le_bytes().to_vec();
        assert!(to_json(&Value::Bytes(nan), Logical::Vector).is_err());
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

    #[test]
    fn a_single_key_is_the_values_json_text_with_strings_bare() {
        for value in [
            json!(0),
            json!(7),
            json!(u64::MAX),
            json!(-1),
            json!(i64::MIN),
            json!(2.5),
            json!(1e300),
            json!(true),
        ] {
            assert_eq!(single_key(&value), value.to_string(), "{value}");
        }
        assert_eq!(single_key(&json!("a\"b")), "a\"b");
    }
}
