//! Decode: MariaDB binlog event bodies → typed data. Pure functions of bytes
//! and metadata: no I/O, no clock, no global state.
//!
//! # Contract
//! - Input is an event *body*: the bytes after the 19-byte common header,
//!   without the 4-byte CRC32 (what the source's `Event::body()` returns;
//!   for FORMAT_DESCRIPTION it also drops the checksum-algorithm byte). The
//!   caller has already verified the CRC32: this module cannot tell a body
//!   that was cut short at a row or metadata boundary from a shorter valid
//!   one, because the binlog frames events, not rows.
//! - Every length and index read from the input is checked. Malformed input
//!   returns a [`DecodeError`] that names the event, the field, the offset
//!   and, for values, the table, row, image and column (index, name, type).
//!   No input makes these functions panic.
//! - Values are exact ([`Value`]): DECIMAL as text with the column's scale,
//!   times as their fields, text decoded from the column's charset without
//!   replacement characters, binary as bytes.
//!
//! # Formats
//! Taken from MariaDB 10.11's `sql/log_event.cc` (readers),
//! `sql/log_event_server.cc` (TABLE_MAP optional metadata writers),
//! `sql/log_event_client.cc` (value layouts), `sql/compat56.cc` (TIME2,
//! DATETIME2, TIMESTAMP2), `strings/decimal.c` (DECIMAL) and checked against
//! a live 10.11.19 server by `tests/decode_live.rs`. The MariaDB knowledge
//! base describes the events at
//! <https://mariadb.com/kb/en/replication-protocol/>.
//!
//! - The post-header lengths are fixed by MariaDB's FORMAT_DESCRIPTION event
//!   (table id 6 bytes: TABLE_MAP and rows v1 8, rows v2 10, QUERY 13, GTID
//!   19, ...). [`FormatDescription::check_supported`] verifies a server's
//!   FORMAT_DESCRIPTION against what this module assumes; the source calls
//!   it once per stream.
//! - Compressed events (`log_bin_compress=ON`): QUERY_COMPRESSED and
//!   *_ROWS_COMPRESSED keep their post-header (and, for rows, the width and
//!   column bitmaps) in clear; the rest (the query text, the rows data) is
//!   one record: a header byte `0x80 | n` (bit 7 set, bits 4–6 the algorithm,
//!   0 = zlib, bits 0–2 `n` in 1..=4), the uncompressed length in `n`
//!   big-endian bytes, then a zlib stream.
//!
//! # Known limits
//! - TIME/DATETIME/TIMESTAMP with fractional seconds created with
//!   `mysql56_temporal_format=OFF` (MariaDB 5.3 "hires" layout) are logged as
//!   the old type codes 11/12/7 with no metadata: their size cannot be known
//!   from the binlog. Only the classic 0-fsp layouts of those codes are
//!   decoded; MariaDB 10.11 creates TIME2/DATETIME2/TIMESTAMP2 by default.
//! - Text in every charset of MariaDB 10.11 and 11.8 (`SHOW CHARACTER SET`)
//!   is decoded as the server's `CONVERT(… USING utf8mb4)` does (see
//!   [`LEGACY`] for which decoder each uses and where MariaDB differs from
//!   the WHATWG encodings; `tests/charsets.rs` checks every code against the
//!   server). Bytes the charset does not define are an error naming the
//!   charset and the bytes, never a replacement character; so are lone
//!   surrogates (ucs2, utf32), which MariaDB stores but UTF-8 cannot hold.
//!   A collation id the server does not list is refused with
//!   [`ValueError::UnsupportedCharset`] rather than guessed.
//! - Compressed columns (`VARCHAR/TEXT/BLOB … COMPRESSED`, types 141/140)
//!   are inflated and decoded as their base type; a value may not declare
//!   more bytes than the column holds.
//! - VECTOR(n) (MariaDB 11.7+) is logged as VARBINARY(4n) and decodes as
//!   bytes; the map turns the columns configured as vectors into numbers.
//! - Without `binlog_row_metadata=FULL` there are no names, signedness,
//!   charsets or ENUM/SET labels: integers are then read as signed, text as
//!   UTF-8 (or an error), and ENUM/SET values other than 0 cannot be named.
//!   (MINIMAL still carries signedness and charsets.) Without charset
//!   metadata BINARY cannot be told from CHAR, so it is not padded.
//! - An ascii column holding bytes above 0x7f (MariaDB accepts them) is an
//!   error, not a guess.

mod charset;
mod charset_cjk;
mod charset_tables;
mod compress;
mod mariadb;
mod reader;
mod rows;
mod table_map;
mod value;

#[cfg(test)]
pub(crate) mod tests;

use std::fmt;

pub use crate::position::Gtid;
pub(crate) use charset::decode_text;
pub use charset::{cjk_whatwg_reference, Charset, CharsetMap, Legacy, LEGACY};
pub use mariadb::{
    parse_annotate_rows, parse_binlog_checkpoint, parse_format_description, parse_gtid,
    parse_gtid_list, parse_query, parse_xa_prepare, FormatDescription, GtidEvent, QueryEvent,
    XaPrepare, COMMON_HEADER_LEN,
};
pub use rows::{
    count_rows, is_rows_event, parse_rows, rows_kind, rows_table_id, RowChange, RowsEvent, RowsKind,
};
pub use table_map::{
    parse_table_map, parse_table_map_layout, table_map_names, Column, ColumnType, TableMap,
};
pub use value::Value;

// ---------------------------------------------------------------------------
// Event type codes (byte 4 of the common header). MariaDB's names.
// ---------------------------------------------------------------------------

/// A statement: `BEGIN`, `COMMIT` of non-transactional engines, DDL.
pub const QUERY_EVENT: u8 = 2;
/// The server stopped (last event of a binlog file written before a shutdown).
pub const STOP_EVENT: u8 = 3;
/// The server switches to the next binlog file.
pub const ROTATE_EVENT: u8 = 4;
/// `LAST_INSERT_ID` or `INSERT_ID` for the statement that follows.
pub const INTVAR_EVENT: u8 = 5;
/// The seeds of `RAND()` for the statement that follows.
pub const RAND_EVENT: u8 = 13;
/// A user variable the statement that follows uses.
pub const USER_VAR_EVENT: u8 = 14;
/// First event of every binlog file; fixes header and post-header lengths.
pub const FORMAT_DESCRIPTION_EVENT: u8 = 15;
/// Commit of a transaction on a transactional engine (InnoDB).
pub const XID_EVENT: u8 = 16;
/// Table id → schema, table, column types and metadata.
pub const TABLE_MAP_EVENT: u8 = 19;
/// WRITE_ROWS v1 (MariaDB's default rows format).
pub const WRITE_ROWS_EVENT_V1: u8 = 23;
/// UPDATE_ROWS v1.
pub const UPDATE_ROWS_EVENT_V1: u8 = 24;
/// DELETE_ROWS v1.
pub const DELETE_ROWS_EVENT_V1: u8 = 25;
/// The server recorded an incident: its binlog may be missing changes.
pub const INCIDENT_EVENT: u8 = 26;
/// Sent by the server when idle (not written to the binlog).
pub const HEARTBEAT_LOG_EVENT: u8 = 27;
/// Ends the group of an `XA PREPARE`: its rows commit only at a later
/// `XA COMMIT` of the same XID (see [`parse_xa_prepare`]).
pub const XA_PREPARE_LOG_EVENT: u8 = 38;
/// WRITE_ROWS v2 (MySQL 5.6+ format, read by MariaDB; MariaDB's
/// `WRITE_ROWS_EVENT`).
pub const WRITE_ROWS_EVENT_V2: u8 = 30;
/// UPDATE_ROWS v2.
pub const UPDATE_ROWS_EVENT_V2: u8 = 31;
/// DELETE_ROWS v2.
pub const DELETE_ROWS_EVENT_V2: u8 = 32;
/// The SQL text of the statement that produced the following rows events.
pub const ANNOTATE_ROWS_EVENT: u8 = 160;
/// Names the oldest binlog file still needed for crash recovery.
pub const BINLOG_CHECKPOINT_EVENT: u8 = 161;
/// Starts a transaction group: domain, sequence number (server id in the
/// header).
pub const GTID_EVENT: u8 = 162;
/// The GTID state at the start of a binlog file.
pub const GTID_LIST_EVENT: u8 = 163;
/// Encrypted binlog follows (out of scope).
pub const START_ENCRYPTION_EVENT: u8 = 164;
/// QUERY with a zlib-compressed query text.
pub const QUERY_COMPRESSED_EVENT: u8 = 165;
/// WRITE_ROWS v1 with zlib-compressed rows (MariaDB's
/// `WRITE_ROWS_COMPRESSED_EVENT_V1`).
pub const WRITE_ROWS_COMPRESSED_EVENT_V1: u8 = 166;
/// UPDATE_ROWS v1, compressed.
pub const UPDATE_ROWS_COMPRESSED_EVENT_V1: u8 = 167;
/// DELETE_ROWS v1, compressed.
pub const DELETE_ROWS_COMPRESSED_EVENT_V1: u8 = 168;
/// WRITE_ROWS v2, compressed (MariaDB's `WRITE_ROWS_COMPRESSED_EVENT`).
pub const WRITE_ROWS_COMPRESSED_EVENT_V2: u8 = 169;
/// UPDATE_ROWS v2, compressed.
pub const UPDATE_ROWS_COMPRESSED_EVENT_V2: u8 = 170;
/// DELETE_ROWS v2, compressed.
pub const DELETE_ROWS_COMPRESSED_EVENT_V2: u8 = 171;

/// A readable name of an event type code, for messages and metrics.
pub fn event_type_name(event_type: u8) -> &'static str {
    match event_type {
        QUERY_EVENT => "QUERY",
        STOP_EVENT => "STOP",
        ROTATE_EVENT => "ROTATE",
        INTVAR_EVENT => "INTVAR",
        RAND_EVENT => "RAND",
        USER_VAR_EVENT => "USER_VAR",
        FORMAT_DESCRIPTION_EVENT => "FORMAT_DESCRIPTION",
        XID_EVENT => "XID",
        TABLE_MAP_EVENT => "TABLE_MAP",
        WRITE_ROWS_EVENT_V1 => "WRITE_ROWS_V1",
        UPDATE_ROWS_EVENT_V1 => "UPDATE_ROWS_V1",
        DELETE_ROWS_EVENT_V1 => "DELETE_ROWS_V1",
        INCIDENT_EVENT => "INCIDENT",
        HEARTBEAT_LOG_EVENT => "HEARTBEAT",
        XA_PREPARE_LOG_EVENT => "XA_PREPARE",
        WRITE_ROWS_EVENT_V2 => "WRITE_ROWS_V2",
        UPDATE_ROWS_EVENT_V2 => "UPDATE_ROWS_V2",
        DELETE_ROWS_EVENT_V2 => "DELETE_ROWS_V2",
        ANNOTATE_ROWS_EVENT => "ANNOTATE_ROWS",
        BINLOG_CHECKPOINT_EVENT => "BINLOG_CHECKPOINT",
        GTID_EVENT => "GTID",
        GTID_LIST_EVENT => "GTID_LIST",
        START_ENCRYPTION_EVENT => "START_ENCRYPTION",
        QUERY_COMPRESSED_EVENT => "QUERY_COMPRESSED",
        WRITE_ROWS_COMPRESSED_EVENT_V1 => "WRITE_ROWS_COMPRESSED_V1",
        UPDATE_ROWS_COMPRESSED_EVENT_V1 => "UPDATE_ROWS_COMPRESSED_V1",
        DELETE_ROWS_COMPRESSED_EVENT_V1 => "DELETE_ROWS_COMPRESSED_V1",
        WRITE_ROWS_COMPRESSED_EVENT_V2 => "WRITE_ROWS_COMPRESSED_V2",
        UPDATE_ROWS_COMPRESSED_EVENT_V2 => "UPDATE_ROWS_COMPRESSED_V2",
        DELETE_ROWS_COMPRESSED_EVENT_V2 => "DELETE_ROWS_COMPRESSED_V2",
        _ => "unknown event type",
    }
}

// ---------------------------------------------------------------------------
// Column type codes (TABLE_MAP column types; MariaDB's enum_field_types).
// ---------------------------------------------------------------------------

/// Pre-5.0 DECIMAL (not decodable: no metadata describes it).
pub const MYSQL_TYPE_DECIMAL: u8 = 0;
/// TINYINT, 1 byte.
pub const MYSQL_TYPE_TINY: u8 = 1;
/// SMALLINT, 2 bytes little-endian.
pub const MYSQL_TYPE_SHORT: u8 = 2;
/// INT, 4 bytes little-endian.
pub const MYSQL_TYPE_LONG: u8 = 3;
/// FLOAT, 4 bytes IEEE little-endian; metadata: pack length (1 byte).
pub const MYSQL_TYPE_FLOAT: u8 = 4;
/// DOUBLE, 8 bytes IEEE little-endian; metadata: pack length (1 byte).
pub const MYSQL_TYPE_DOUBLE: u8 = 5;
/// The NULL type (no bytes).
pub const MYSQL_TYPE_NULL: u8 = 6;
/// Old TIMESTAMP: 4 bytes little-endian epoch seconds.
pub const MYSQL_TYPE_TIMESTAMP: u8 = 7;
/// BIGINT, 8 bytes little-endian.
pub const MYSQL_TYPE_LONGLONG: u8 = 8;
/// MEDIUMINT, 3 bytes little-endian.
pub const MYSQL_TYPE_INT24: u8 = 9;
/// DATE, 3 bytes little-endian: day 5 bits, month 4 bits, year above.
pub const MYSQL_TYPE_DATE: u8 = 10;
/// Old TIME: 3 bytes little-endian signed `±(h*10000 + m*100 + s)`.
pub const MYSQL_TYPE_TIME: u8 = 11;
/// Old DATETIME: 8 bytes little-endian `YYYYMMDDhhmmss`.
pub const MYSQL_TYPE_DATETIME: u8 = 12;
/// YEAR, 1 byte: 0 or year − 1900.
pub const MYSQL_TYPE_YEAR: u8 = 13;
/// DATE (internal code; same layout as [`MYSQL_TYPE_DATE`]).
pub const MYSQL_TYPE_NEWDATE: u8 = 14;
/// VARCHAR/VARBINARY; metadata: maximum length in bytes (2 bytes LE).
pub const MYSQL_TYPE_VARCHAR: u8 = 15;
/// BIT(n); metadata: n % 8, n / 8.
pub const MYSQL_TYPE_BIT: u8 = 16;
/// TIMESTAMP(fsp), MySQL 5.6 layout; metadata: fsp.
pub const MYSQL_TYPE_TIMESTAMP2: u8 = 17;
/// DATETIME(fsp), MySQL 5.6 layout; metadata: fsp.
pub const MYSQL_TYPE_DATETIME2: u8 = 18;
/// TIME(fsp), MySQL 5.6 layout; metadata: fsp.
pub const MYSQL_TYPE_TIME2: u8 = 19;
/// DECIMAL(p,s), binary layout; metadata: precision, scale.
pub const MYSQL_TYPE_NEWDECIMAL: u8 = 246;
/// TINYBLOB..LONGBLOB / TINYTEXT..LONGTEXT declared `COMPRESSED` (MariaDB
/// 10.3+): metadata as [`MYSQL_TYPE_BLOB`], each value a compressed field
/// (see `compress.rs`).
pub const MYSQL_TYPE_BLOB_COMPRESSED: u8 = 140;
/// VARCHAR/VARBINARY declared `COMPRESSED`: metadata as
/// [`MYSQL_TYPE_VARCHAR`] (the declared byte length plus the field's header
/// byte).
pub const MYSQL_TYPE_VARCHAR_COMPRESSED: u8 = 141;
/// ENUM (as a real type inside STRING metadata); metadata: pack length 1|2.
pub const MYSQL_TYPE_ENUM: u8 = 247;
/// SET (as a real type inside STRING metadata); metadata: pack length 1..8.
pub const MYSQL_TYPE_SET: u8 = 248;
/// TINYBLOB/TINYTEXT; metadata: length bytes.
pub const MYSQL_TYPE_TINY_BLOB: u8 = 249;
/// MEDIUMBLOB/MEDIUMTEXT; metadata: length bytes.
pub const MYSQL_TYPE_MEDIUM_BLOB: u8 = 250;
/// LONGBLOB/LONGTEXT (and MariaDB's JSON); metadata: length bytes.
pub const MYSQL_TYPE_LONG_BLOB: u8 = 251;
/// The BLOB/TEXT family as MariaDB logs it; metadata: length bytes 1..4.
pub const MYSQL_TYPE_BLOB: u8 = 252;
/// Pre-5.0 VARCHAR (not written by MariaDB 10.11; refused).
pub const MYSQL_TYPE_VAR_STRING: u8 = 253;
/// CHAR/BINARY (and UUID, INET6), ENUM, SET: metadata: real type, length.
pub const MYSQL_TYPE_STRING: u8 = 254;
/// GEOMETRY; metadata: length bytes (4).
pub const MYSQL_TYPE_GEOMETRY: u8 = 255;

// ---------------------------------------------------------------------------
// TABLE_MAP optional metadata field types (`binlog_row_metadata`).
// ---------------------------------------------------------------------------

/// One bit per numeric column, most significant first: 1 = UNSIGNED.
pub const META_SIGNEDNESS: u8 = 1;
/// Default collation of character columns, then (index, collation) pairs.
pub const META_DEFAULT_CHARSET: u8 = 2;
/// One collation per character column.
pub const META_COLUMN_CHARSET: u8 = 3;
/// One length-prefixed name per column (FULL only).
pub const META_COLUMN_NAME: u8 = 4;
/// Labels of each SET column (FULL only).
pub const META_SET_STR_VALUE: u8 = 5;
/// Labels of each ENUM column (FULL only).
pub const META_ENUM_STR_VALUE: u8 = 6;
/// Geometry subtype of each GEOMETRY column.
pub const META_GEOMETRY_TYPE: u8 = 7;
/// Primary key column indexes (FULL only).
pub const META_SIMPLE_PRIMARY_KEY: u8 = 8;
/// Primary key (column index, prefix length) pairs (FULL only).
pub const META_PRIMARY_KEY_WITH_PREFIX: u8 = 9;
/// Like [`META_DEFAULT_CHARSET`], for ENUM and SET columns.
pub const META_ENUM_AND_SET_DEFAULT_CHARSET: u8 = 10;
/// Like [`META_COLUMN_CHARSET`], for ENUM and SET columns.
pub const META_ENUM_AND_SET_COLUMN_CHARSET: u8 = 11;

// ---------------------------------------------------------------------------
// Flags.
// ---------------------------------------------------------------------------

/// Event header flag `LOG_EVENT_IGNORABLE_F`: a reader that does not know the
/// event type may skip the event.
pub const LOG_EVENT_IGNORABLE_F: u16 = 0x80;

/// Event header flag `LOG_EVENT_ARTIFICIAL_F`: made up by the server for the
/// reader (the first ROTATE, a GTID_LIST), not read from a binlog file.
pub const LOG_EVENT_ARTIFICIAL_F: u16 = 0x20;

/// GTID flag: a statement outside a transaction (DDL); no XID follows.
pub const GTID_FL_STANDALONE: u8 = 1;
/// GTID flag: an 8-byte commit id follows the flags.
pub const GTID_FL_GROUP_COMMIT_ID: u8 = 2;
/// GTID flag: the group is transactional.
pub const GTID_FL_TRANSACTIONAL: u8 = 4;
/// GTID flag: may be applied in parallel.
pub const GTID_FL_ALLOW_PARALLEL: u8 = 8;
/// GTID flag: the transaction waited for a row lock.
pub const GTID_FL_WAITED: u8 = 16;
/// GTID flag: the group is DDL.
pub const GTID_FL_DDL: u8 = 32;
/// GTID flag: XA PREPARE; an XID follows.
pub const GTID_FL_PREPARED_XA: u8 = 64;
/// GTID flag: XA COMMIT/ROLLBACK; an XID follows.
pub const GTID_FL_COMPLETED_XA: u8 = 128;

/// Rows event flag: last rows event of the statement.
pub const ROWS_FLAG_STMT_END: u16 = 1;
/// Rows event flag: foreign key checks were off.
pub const ROWS_FLAG_NO_FOREIGN_KEY_CHECKS: u16 = 2;
/// Rows event flag: unique checks were off.
pub const ROWS_FLAG_RELAXED_UNIQUE_CHECKS: u16 = 4;
/// Rows event flag: every column is in the image.
pub const ROWS_FLAG_COMPLETE_ROWS: u16 = 8;

// ---------------------------------------------------------------------------
// Errors.
// ---------------------------------------------------------------------------

/// Which row image a value belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Image {
    /// The row before the change (UPDATE, DELETE).
    Before,
    /// The row after the change (INSERT, UPDATE).
    After,
}

impl fmt::Display for Image {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Image::Before => "before",
            Image::After => "after",
        })
    }
}

/// A column named in an error: position, name when known, type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnRef {
    pub index: usize,
    pub name: Option<String>,
    pub type_name: &'static str,
}

impl fmt::Display for ColumnRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.index)?;
        if let Some(name) = &self.name {
            write!(f, " `{name}`")?;
        }
        write!(f, " ({})", self.type_name)
    }
}

/// Why one column value could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("needs {needed} bytes, only {available} left in the row data")]
    Truncated { needed: usize, available: usize },
    #[error("invalid value: {reason}")]
    Invalid { reason: String },
    #[error(
        "bytes are not valid {charset}: {} (invalid sequence after {valid_up_to} valid bytes); \
         MariaDB stores bytes a charset does not define unchecked, and the tailer does not guess \
         them: correct the value (or the column's charset) on the server, and move the checkpoint \
         past this transaction (`checkpoint set`) to go on without publishing it",
        hex_bytes(bytes)
    )]
    InvalidText {
        charset: String,
        valid_up_to: usize,
        /// The bytes from the invalid sequence on (at most 8).
        bytes: Vec<u8>,
    },
    #[error("charset {charset} is not supported (every charset of MariaDB 10.11 and 11.8 is)")]
    UnsupportedCharset { charset: String },
    #[error("ENUM index {index} is beyond its {labels} labels")]
    EnumIndex { index: u16, labels: usize },
    #[error("SET bit {bit} is set but the column has {labels} labels")]
    SetBit { bit: u32, labels: usize },
    #[error("values of this type cannot be decoded: {reason}")]
    Unsupported { reason: &'static str },
    #[error(
        "compressed value cannot be read: {reason} (field starts {})",
        hex_bytes(field)
    )]
    Decompress { reason: String, field: Vec<u8> },
    #[error(
        "column type code {type_code} is unknown to binlog-tailer, so its values cannot be sized"
    )]
    UnknownType { type_code: u8 },
}

/// Bytes as space-separated hex pairs, for messages.
pub(crate) fn hex_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Why an event body could not be decoded. Every variant names the event
/// and where in it; value errors name the table, row, image and column.
///
/// All of these are definite for the event at hand: the same bytes decode
/// the same way every time, so retrying does not help. The caller adds the
/// binlog position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The body ended before a field it must contain.
    #[error("{event} event: body truncated reading {field}: needs {needed} bytes at offset {offset}, only {available} left")]
    Truncated {
        event: &'static str,
        field: String,
        offset: usize,
        needed: usize,
        available: usize,
    },
    /// A field holds a value that cannot be right.
    #[error("{event} event: invalid {field} at offset {offset}: {reason}")]
    Malformed {
        event: &'static str,
        field: String,
        offset: usize,
        reason: String,
    },
    /// The function was given a body of another event type.
    #[error("event type {event_type} ({name}) is not {expected}")]
    WrongEventType {
        event_type: u8,
        name: &'static str,
        expected: &'static str,
    },
    /// A compressed query or rows record could not be inflated.
    #[error("{event} event: compressed record at offset {offset}: {reason}")]
    Decompress {
        event: &'static str,
        offset: usize,
        reason: String,
    },
    /// A TABLE_MAP names a column type this module cannot size or decode.
    #[error("TABLE_MAP of `{database}`.`{table}`: column #{column}: unsupported column type code {type_code}")]
    UnsupportedColumnType {
        database: String,
        table: String,
        column: usize,
        type_code: u8,
    },
    /// Any other error in a TABLE_MAP once its names are known, so the
    /// caller can tell whether the table matters to it.
    #[error("TABLE_MAP of `{database}`.`{table}` (table id {table_id}): {inner}")]
    TableMap {
        database: String,
        table: String,
        table_id: u64,
        inner: Box<DecodeError>,
    },
    /// A rows event was given the TABLE_MAP of another table id.
    #[error("{event} event for table id {rows_table_id} was given the TABLE_MAP of table id {map_table_id} (`{database}`.`{table}`)")]
    TableIdMismatch {
        event: &'static str,
        rows_table_id: u64,
        map_table_id: u64,
        database: String,
        table: String,
    },
    /// A rows event's column count differs from its TABLE_MAP's.
    #[error(
        "{event} event for `{database}`.`{table}` has {width} columns, its TABLE_MAP {columns}"
    )]
    ColumnCountMismatch {
        event: &'static str,
        database: String,
        table: String,
        width: u64,
        columns: usize,
    },
    /// One column value of one row image.
    #[error("{event} event for `{database}`.`{table}`, row {row}, {image} image, column {column}: {reason}")]
    Value {
        event: &'static str,
        database: String,
        table: String,
        row: usize,
        image: Image,
        /// Boxed, as `reason`, to keep `DecodeError` small on the happy path.
        column: Box<ColumnRef>,
        reason: Box<ValueError>,
    },
}
