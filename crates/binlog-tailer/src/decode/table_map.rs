//! TABLE_MAP (event 19): table id → schema, table, columns.
//!
//! ```text
//! post-header  table id (6 bytes LE), flags (2 bytes LE)
//! body         schema length (1), schema, 0x00, table length (1), table, 0x00,
//!              column count (length-encoded), column types (1 byte each),
//!              metadata length (length-encoded), metadata (per column, by type),
//!              NULL bitmap ((count + 7) / 8 bytes, bit i = column i nullable),
//!              optional metadata: (type 1 byte, length length-encoded, value)*
//! ```
//!
//! Which columns the optional fields describe (from MariaDB's
//! `Table_map_log_event::init_*_field`, confirmed against 10.11.19):
//! - SIGNEDNESS: one bit per *numeric* column (TINYINT, SMALLINT,
//!   MEDIUMINT, INT, BIGINT, YEAR, FLOAT, DOUBLE, DECIMAL; not BIT), most
//!   significant bit first. YEAR is numeric and always unsigned.
//! - DEFAULT_CHARSET / COLUMN_CHARSET: *character* columns: CHAR, BINARY,
//!   VARCHAR, VARBINARY, the TEXT/BLOB family, GEOMETRY (binary), and UUID
//!   and INET6 (logged as BINARY(16)); not ENUM/SET, which have
//!   ENUM_AND_SET_DEFAULT_CHARSET / ENUM_AND_SET_COLUMN_CHARSET. Indexes in
//!   DEFAULT_CHARSET count character columns only.

use super::charset::{decode_text, Charset, CharsetMap};
use super::reader::{bit_is_set, Reader};
use super::*;

/// A decoded TABLE_MAP event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableMap {
    pub table_id: u64,
    /// The TABLE_MAP flags word.
    pub flags: u16,
    pub database: String,
    pub table: String,
    pub columns: Vec<Column>,
    /// Column indexes of the primary key, from SIMPLE_PRIMARY_KEY or
    /// PRIMARY_KEY_WITH_PREFIX; empty when the table has none or the
    /// metadata is absent.
    pub primary_key: Vec<usize>,
    /// Prefix length (in characters) of each primary key column, 0 for the
    /// whole column; same order as `primary_key`.
    pub primary_key_prefixes: Vec<u64>,
}

/// One column of a [`TableMap`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// `None` when `binlog_row_metadata` is not FULL.
    pub name: Option<String>,
    /// The real type, e.g. [`ColumnType::Enum`] for a MYSQL_TYPE_STRING whose
    /// metadata says ENUM.
    pub column_type: ColumnType,
    pub nullable: bool,
    /// Numeric columns with SIGNEDNESS metadata only; `None` otherwise.
    pub unsigned: Option<bool>,
    /// Character columns, ENUM and SET; `None` when the metadata is absent
    /// or not applicable.
    pub charset: Option<Charset>,
    /// The collation id `charset` was resolved from.
    pub collation_id: Option<u32>,
    /// ENUM labels (ENUM_STR_VALUE), decoded with their charset.
    pub enum_values: Vec<String>,
    /// SET labels (SET_STR_VALUE).
    pub set_values: Vec<String>,
    /// GEOMETRY subtype (GEOMETRY_TYPE: 0 geometry, 1 point, ...).
    pub geometry_type: Option<u64>,
    /// The type code as the TABLE_MAP lists it (ENUM/SET/CHAR all show as
    /// [`MYSQL_TYPE_STRING`]).
    pub type_code: u8,
    /// The metadata word as MariaDB's `table_def` composes it (0 if none).
    pub metadata: u16,
}

/// The real type of a column, with what decoding needs from its metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    TinyInt,
    SmallInt,
    MediumInt,
    Int,
    BigInt,
    Float,
    Double,
    Decimal {
        precision: u8,
        scale: u8,
    },
    Bit {
        bits: u16,
    },
    Year,
    Date,
    /// Old TIME (type 11), no fractional seconds.
    Time,
    /// TIME(fsp), MySQL 5.6 layout (type 19).
    Time2 {
        fsp: u8,
    },
    /// Old DATETIME (type 12), no fractional seconds.
    DateTime,
    /// DATETIME(fsp), MySQL 5.6 layout (type 18).
    DateTime2 {
        fsp: u8,
    },
    /// Old TIMESTAMP (type 7), no fractional seconds.
    Timestamp,
    /// TIMESTAMP(fsp), MySQL 5.6 layout (type 17).
    Timestamp2 {
        fsp: u8,
    },
    /// CHAR(n)/BINARY(n), UUID, INET6: `max_bytes` is the declared length in
    /// bytes (n × the charset's maximum character width).
    Char {
        max_bytes: u16,
    },
    /// VARCHAR(n)/VARBINARY(n): `max_bytes` as for `Char`.
    VarChar {
        max_bytes: u16,
    },
    /// The TEXT/BLOB family (and MariaDB's JSON): the length prefix takes
    /// `length_bytes` (1 TINY, 2 plain, 3 MEDIUM, 4 LONG).
    Blob {
        length_bytes: u8,
    },
    /// ENUM stored in `pack_len` (1 or 2) bytes.
    Enum {
        pack_len: u8,
    },
    /// SET stored in `pack_len` (1..=8) bytes.
    Set {
        pack_len: u8,
    },
    /// GEOMETRY (WKB with a 4-byte SRID in front), length prefix of
    /// `length_bytes`.
    Geometry {
        length_bytes: u8,
    },
    /// VARCHAR/VARBINARY(n) `COMPRESSED` (type 141): `max_bytes` is the
    /// declared length in bytes plus the compressed field's header byte;
    /// the value is published as the VARCHAR/VARBINARY it holds.
    VarCharCompressed {
        max_bytes: u16,
    },
    /// TEXT/BLOB family `COMPRESSED` (type 140), length prefix of
    /// `length_bytes`; published as the TEXT/BLOB it holds.
    BlobCompressed {
        length_bytes: u8,
    },
    /// The NULL type: no bytes.
    Null,
    /// A type code this module does not know, in a map read by
    /// [`parse_table_map_layout`] (a table that is not tailed): its values,
    /// and those of every later column, cannot be sized. A row where all of
    /// them are NULL can still be stepped over.
    Unknown {
        type_code: u8,
    },
}

impl ColumnType {
    /// Whether SIGNEDNESS metadata has a bit for this column.
    pub fn is_numeric(&self) -> bool {
        matches!(
            self,
            ColumnType::TinyInt
                | ColumnType::SmallInt
                | ColumnType::MediumInt
                | ColumnType::Int
                | ColumnType::BigInt
                | ColumnType::Year
                | ColumnType::Float
                | ColumnType::Double
                | ColumnType::Decimal { .. }
        )
    }

    /// Whether (DEFAULT|COLUMN)_CHARSET metadata has an entry for this
    /// column.
    pub fn is_character(&self) -> bool {
        matches!(
            self,
            ColumnType::Char { .. }
                | ColumnType::VarChar { .. }
                | ColumnType::Blob { .. }
                | ColumnType::Geometry { .. }
                | ColumnType::VarCharCompressed { .. }
                | ColumnType::BlobCompressed { .. }
        )
    }

    /// Whether ENUM_AND_SET_*_CHARSET metadata has an entry for this column.
    pub fn is_enum_or_set(&self) -> bool {
        matches!(self, ColumnType::Enum { .. } | ColumnType::Set { .. })
    }
}

impl Column {
    /// The SQL type name, for messages: `"int"`, `"mediumint"`,
    /// `"decimal"`, `"varchar"`, `"varbinary"`, `"enum"`, ...
    pub fn type_name(&self) -> &'static str {
        let binary = self.charset == Some(Charset::Binary);
        match self.column_type {
            ColumnType::TinyInt => "tinyint",
            ColumnType::SmallInt => "smallint",
            ColumnType::MediumInt => "mediumint",
            ColumnType::Int => "int",
            ColumnType::BigInt => "bigint",
            ColumnType::Float => "float",
            ColumnType::Double => "double",
            ColumnType::Decimal { .. } => "decimal",
            ColumnType::Bit { .. } => "bit",
            ColumnType::Year => "year",
            ColumnType::Date => "date",
            ColumnType::Time | ColumnType::Time2 { .. } => "time",
            ColumnType::DateTime | ColumnType::DateTime2 { .. } => "datetime",
            ColumnType::Timestamp | ColumnType::Timestamp2 { .. } => "timestamp",
            ColumnType::Char { .. } if binary => "binary",
            ColumnType::Char { .. } => "char",
            ColumnType::VarChar { .. } if binary => "varbinary",
            ColumnType::VarChar { .. } => "varchar",
            ColumnType::Blob { length_bytes } => match (length_bytes, binary) {
                (1, true) => "tinyblob",
                (1, false) => "tinytext",
                (2, true) => "blob",
                (2, false) => "text",
                (3, true) => "mediumblob",
                (3, false) => "mediumtext",
                (_, true) => "longblob",
                (_, false) => "longtext",
            },
            ColumnType::Enum { .. } => "enum",
            ColumnType::Set { .. } => "set",
            ColumnType::Geometry { .. } => "geometry",
            ColumnType::VarCharCompressed { .. } if binary => "varbinary compressed",
            ColumnType::VarCharCompressed { .. } => "varchar compressed",
            ColumnType::BlobCompressed { length_bytes } => match (length_bytes, binary) {
                (1, true) => "tinyblob compressed",
                (1, false) => "tinytext compressed",
                (2, true) => "blob compressed",
                (2, false) => "text compressed",
                (3, true) => "mediumblob compressed",
                (3, false) => "mediumtext compressed",
                (_, true) => "longblob compressed",
                (_, false) => "longtext compressed",
            },
            ColumnType::Null => "null",
            ColumnType::Unknown { .. } => "unknown type",
        }
    }

    /// This column named for an error message.
    pub fn reference(&self, index: usize) -> ColumnRef {
        ColumnRef {
            index,
            name: self.name.clone(),
            type_name: self.type_name(),
        }
    }
}

impl TableMap {
    /// Where a column is, by name (FULL metadata only).
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns
            .iter()
            .position(|c| c.name.as_deref() == Some(name))
    }
}

const EVENT: &str = "TABLE_MAP";

/// TABLE_MAP (event 19) body → [`TableMap`], including the optional
/// metadata MariaDB 10.11 writes with `binlog_row_metadata=FULL` (unknown
/// optional fields are skipped by their length).
///
/// # Errors
/// [`DecodeError::Truncated`] or [`DecodeError::Malformed`] while the names
/// are read; after that every error comes wrapped in
/// [`DecodeError::TableMap`] (or is [`DecodeError::UnsupportedColumnType`])
/// and names the schema and table, so the caller can ignore tables it does
/// not tail.
pub fn parse_table_map(body: &[u8], charsets: &CharsetMap) -> Result<TableMap, DecodeError> {
    let mut r = Reader::new(EVENT, body);
    let table_id = r.u48_le("table id")?;
    let flags = r.u16_le("flags")?;
    let database = read_name(&mut r, "schema name")?;
    let table = read_name(&mut r, "table name")?;
    parse_columns(&mut r, table_id, flags, &database, &table, Some(charsets)).map_err(|inner| {
        match inner {
            e @ DecodeError::UnsupportedColumnType { .. } => e,
            inner => DecodeError::TableMap {
                database: database.clone(),
                table: table.clone(),
                table_id,
                inner: Box::new(inner),
            },
        }
    })
}

/// The schema and table a TABLE_MAP body names, to decide how much of it
/// to read ([`parse_table_map`] or [`parse_table_map_layout`]).
///
/// # Errors
/// [`DecodeError::Truncated`] or [`DecodeError::Malformed`] for a body that
/// ends or goes wrong before the names do.
pub fn table_map_names(body: &[u8]) -> Result<(String, String), DecodeError> {
    let mut r = Reader::new(EVENT, body);
    r.u48_le("table id")?;
    r.u16_le("flags")?;
    let database = read_name(&mut r, "schema name")?;
    let table = read_name(&mut r, "table name")?;
    Ok((database, table))
}

/// TABLE_MAP body → [`TableMap`] with only what stepping over rows needs:
/// the column types, their metadata and the NULL bitmap. The optional
/// metadata (names, signedness, charsets, ENUM/SET labels, keys) is not read
/// at all, and a type code this module does not know becomes
/// [`ColumnType::Unknown`] (with every later column, whose metadata can no
/// longer be found) instead of an error. For tables that are not tailed:
/// nothing about their columns can make this fail, only a body that is
/// truncated or malformed before the metadata ends.
///
/// # Errors
/// As [`parse_table_map`], without [`DecodeError::UnsupportedColumnType`].
pub fn parse_table_map_layout(body: &[u8]) -> Result<TableMap, DecodeError> {
    let mut r = Reader::new(EVENT, body);
    let table_id = r.u48_le("table id")?;
    let flags = r.u16_le("flags")?;
    let database = read_name(&mut r, "schema name")?;
    let table = read_name(&mut r, "table name")?;
    parse_columns(&mut r, table_id, flags, &database, &table, None).map_err(|inner| {
        DecodeError::TableMap {
            database: database.clone(),
            table: table.clone(),
            table_id,
            inner: Box::new(inner),
        }
    })
}

/// A 1-byte length, the name, a NUL byte.
fn read_name(r: &mut Reader<'_>, field: &str) -> Result<String, DecodeError> {
    let len = usize::from(r.u8(field)?);
    let start = r.pos();
    let bytes = r.take(len, field)?;
    let name = std::str::from_utf8(bytes)
        .map_err(|e| r.malformed_at(start, field, format!("not UTF-8: {e}")))?
        .to_owned();
    let nul = r.u8(field)?;
    if nul != 0 {
        return Err(r.malformed(field, format!("ends with {nul:#04x}, not NUL")));
    }
    Ok(name)
}

fn parse_columns(
    r: &mut Reader<'_>,
    table_id: u64,
    flags: u16,
    database: &str,
    table: &str,
    charsets: Option<&CharsetMap>,
) -> Result<TableMap, DecodeError> {
    let count = r.packed_usize("column count")?;
    let types = r.take(count, "column types")?;
    let metadata_len = r.packed_usize("metadata length")?;
    let mut meta = r.sub(metadata_len, "column metadata")?;
    let mut columns = Vec::with_capacity(count);
    // Layout only (no charsets given): past an unknown type, no metadata
    // can be placed.
    let mut lost = false;
    for (index, &type_code) in types.iter().enumerate() {
        let read = if lost {
            Err(ColumnMetaError::Unsupported)
        } else {
            read_column_metadata(&mut meta, type_code, index)
        };
        let (column_type, metadata) = match read {
            Ok(t) => t,
            Err(ColumnMetaError::Unsupported) if charsets.is_none() => {
                lost = true;
                (ColumnType::Unknown { type_code }, 0)
            }
            Err(ColumnMetaError::Unsupported) => {
                return Err(DecodeError::UnsupportedColumnType {
                    database: database.to_owned(),
                    table: table.to_owned(),
                    column: index,
                    type_code,
                })
            }
            Err(ColumnMetaError::Decode(e)) => return Err(e),
        };
        columns.push(Column {
            name: None,
            column_type,
            nullable: false,
            unsigned: None,
            charset: None,
            collation_id: None,
            enum_values: Vec::new(),
            set_values: Vec::new(),
            geometry_type: None,
            type_code,
            metadata,
        });
    }
    if !meta.is_empty() && !lost {
        return Err(meta.malformed(
            "column metadata",
            format!("{} bytes left after the last column's", meta.remaining()),
        ));
    }
    let nulls = r.take(count.div_ceil(8), "NULL bitmap")?;
    for (i, column) in columns.iter_mut().enumerate() {
        column.nullable = bit_is_set(nulls, i);
    }

    let mut map = TableMap {
        table_id,
        flags,
        database: database.to_owned(),
        table: table.to_owned(),
        columns,
        primary_key: Vec::new(),
        primary_key_prefixes: Vec::new(),
    };
    if let Some(charsets) = charsets {
        let optional = read_optional_metadata(r)?;
        optional.apply(&mut map, charsets)?;
    }
    Ok(map)
}

enum ColumnMetaError {
    Unsupported,
    Decode(DecodeError),
}

impl From<DecodeError> for ColumnMetaError {
    fn from(e: DecodeError) -> Self {
        ColumnMetaError::Decode(e)
    }
}

/// Reads one column's metadata (its size depends on the type, see
/// MariaDB's `table_def::table_def`) and resolves the real type.
fn read_column_metadata(
    meta: &mut Reader<'_>,
    type_code: u8,
    index: usize,
) -> Result<(ColumnType, u16), ColumnMetaError> {
    let field = |what: &str| format!("{what} of column #{index}");
    let one = |meta: &mut Reader<'_>, what: &str| meta.u8(&field(what));
    let t = match type_code {
        MYSQL_TYPE_TINY => (ColumnType::TinyInt, 0),
        MYSQL_TYPE_SHORT => (ColumnType::SmallInt, 0),
        MYSQL_TYPE_INT24 => (ColumnType::MediumInt, 0),
        MYSQL_TYPE_LONG => (ColumnType::Int, 0),
        MYSQL_TYPE_LONGLONG => (ColumnType::BigInt, 0),
        MYSQL_TYPE_YEAR => (ColumnType::Year, 0),
        MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE => (ColumnType::Date, 0),
        MYSQL_TYPE_TIME => (ColumnType::Time, 0),
        MYSQL_TYPE_DATETIME => (ColumnType::DateTime, 0),
        MYSQL_TYPE_TIMESTAMP => (ColumnType::Timestamp, 0),
        MYSQL_TYPE_NULL => (ColumnType::Null, 0),
        MYSQL_TYPE_FLOAT | MYSQL_TYPE_DOUBLE => {
            let start = meta.pos();
            let pack_len = one(meta, "pack length")?;
            let (t, expected) = if type_code == MYSQL_TYPE_FLOAT {
                (ColumnType::Float, 4)
            } else {
                (ColumnType::Double, 8)
            };
            if pack_len != expected {
                return Err(meta
                    .malformed_at(
                        start,
                        &field("pack length"),
                        format!("{pack_len}, expected {expected}"),
                    )
                    .into());
            }
            (t, u16::from(pack_len))
        }
        MYSQL_TYPE_NEWDECIMAL => {
            let start = meta.pos();
            let precision = one(meta, "DECIMAL precision")?;
            let scale = one(meta, "DECIMAL scale")?;
            // MariaDB: precision 1..=65, scale 0..=38 and at most precision.
            if !(1..=65).contains(&precision) || scale > 38 || scale > precision {
                return Err(meta
                    .malformed_at(
                        start,
                        &field("DECIMAL precision and scale"),
                        format!("DECIMAL({precision},{scale}) is out of range"),
                    )
                    .into());
            }
            (
                ColumnType::Decimal { precision, scale },
                (u16::from(precision) << 8) | u16::from(scale),
            )
        }
        MYSQL_TYPE_BIT => {
            let start = meta.pos();
            let extra_bits = one(meta, "BIT length")?;
            let bytes = one(meta, "BIT length")?;
            let bits = u16::from(bytes) * 8 + u16::from(extra_bits);
            if extra_bits > 7 || !(1..=64).contains(&bits) {
                return Err(meta
                    .malformed_at(
                        start,
                        &field("BIT length"),
                        format!("{bytes} bytes + {extra_bits} bits is not BIT(1..64)"),
                    )
                    .into());
            }
            (
                ColumnType::Bit { bits },
                u16::from(extra_bits) | (u16::from(bytes) << 8),
            )
        }
        MYSQL_TYPE_VARCHAR => {
            let max_bytes = meta.u16_le(&field("VARCHAR length"))?;
            (ColumnType::VarChar { max_bytes }, max_bytes)
        }
        MYSQL_TYPE_VARCHAR_COMPRESSED => {
            let start = meta.pos();
            let max_bytes = meta.u16_le(&field("VARCHAR COMPRESSED length"))?;
            if max_bytes == 0 {
                return Err(meta
                    .malformed_at(
                        start,
                        &field("VARCHAR COMPRESSED length"),
                        "0, at least 1 (the header byte)",
                    )
                    .into());
            }
            (ColumnType::VarCharCompressed { max_bytes }, max_bytes)
        }
        MYSQL_TYPE_TIME2 | MYSQL_TYPE_DATETIME2 | MYSQL_TYPE_TIMESTAMP2 => {
            let start = meta.pos();
            let fsp = one(meta, "fractional second precision")?;
            if fsp > 6 {
                return Err(meta
                    .malformed_at(
                        start,
                        &field("fractional second precision"),
                        format!("{fsp} is above 6"),
                    )
                    .into());
            }
            let t = match type_code {
                MYSQL_TYPE_TIME2 => ColumnType::Time2 { fsp },
                MYSQL_TYPE_DATETIME2 => ColumnType::DateTime2 { fsp },
                _ => ColumnType::Timestamp2 { fsp },
            };
            (t, u16::from(fsp))
        }
        MYSQL_TYPE_TINY_BLOB
        | MYSQL_TYPE_MEDIUM_BLOB
        | MYSQL_TYPE_LONG_BLOB
        | MYSQL_TYPE_BLOB
        | MYSQL_TYPE_BLOB_COMPRESSED
        | MYSQL_TYPE_GEOMETRY => {
            let start = meta.pos();
            let length_bytes = one(meta, "length size")?;
            if !(1..=4).contains(&length_bytes) {
                return Err(meta
                    .malformed_at(
                        start,
                        &field("length size"),
                        format!("{length_bytes}, expected 1 to 4"),
                    )
                    .into());
            }
            let t = match type_code {
                MYSQL_TYPE_GEOMETRY => ColumnType::Geometry { length_bytes },
                MYSQL_TYPE_BLOB_COMPRESSED => ColumnType::BlobCompressed { length_bytes },
                _ => ColumnType::Blob { length_bytes },
            };
            (t, u16::from(length_bytes))
        }
        MYSQL_TYPE_STRING | MYSQL_TYPE_ENUM | MYSQL_TYPE_SET => {
            let start = meta.pos();
            let byte0 = one(meta, "real type")?;
            let byte1 = one(meta, "length")?;
            let word = (u16::from(byte0) << 8) | u16::from(byte1);
            // CHAR longer than 255 bytes keeps bits 8-9 of its length,
            // inverted, in bits 4-5 of the real type byte (MySQL bug
            // #37426); real types 0xf7, 0xf8, 0xfe all have those bits set.
            let (real_type, length) = if byte0 & 0x30 != 0x30 {
                (
                    byte0 | 0x30,
                    u16::from(byte1) | (u16::from((byte0 & 0x30) ^ 0x30) << 4),
                )
            } else {
                (byte0, u16::from(byte1))
            };
            let bad = |reason: String| -> ColumnMetaError {
                meta.malformed_at(start, &field("real type"), reason).into()
            };
            let t = match real_type {
                MYSQL_TYPE_STRING => ColumnType::Char { max_bytes: length },
                MYSQL_TYPE_ENUM if matches!(byte1, 1 | 2) => ColumnType::Enum { pack_len: byte1 },
                MYSQL_TYPE_SET if (1..=8).contains(&byte1) => ColumnType::Set { pack_len: byte1 },
                MYSQL_TYPE_ENUM | MYSQL_TYPE_SET => {
                    return Err(bad(format!(
                        "{} stored in {byte1} bytes",
                        if real_type == MYSQL_TYPE_ENUM {
                            "ENUM"
                        } else {
                            "SET"
                        }
                    )))
                }
                other => return Err(bad(format!("real type {other} in CHAR metadata"))),
            };
            (t, word)
        }
        _ => return Err(ColumnMetaError::Unsupported),
    };
    Ok(t)
}

/// The optional metadata fields, as read, before they are matched to
/// columns.
#[derive(Default)]
struct Optional<'a> {
    signedness: Option<Field<'a>>,
    charsets: Option<(Field<'a>, CharsetField)>,
    enum_set_charsets: Option<(Field<'a>, CharsetField)>,
    names: Option<Field<'a>>,
    set_labels: Option<Field<'a>>,
    enum_labels: Option<Field<'a>>,
    geometry_types: Option<Field<'a>>,
    primary_key: Option<(Field<'a>, bool)>,
}

/// One optional field's value and where it starts in the body.
struct Field<'a> {
    bytes: &'a [u8],
    offset: usize,
    name: &'static str,
}

impl<'a> Field<'a> {
    fn reader(&self) -> Reader<'a> {
        // A reader whose errors carry body offsets.
        let mut r = Reader::new(EVENT, self.bytes);
        r.set_base(self.offset);
        r
    }
}

#[derive(Clone, Copy)]
enum CharsetField {
    /// Default collation, then (index, collation) pairs.
    Default,
    /// One collation per column.
    PerColumn,
}

fn read_optional_metadata<'a>(r: &mut Reader<'a>) -> Result<Optional<'a>, DecodeError> {
    let mut opt = Optional::default();
    while !r.is_empty() {
        let field_start = r.pos();
        let kind = r.u8("optional metadata type")?;
        let len = r.packed_usize("optional metadata length")?;
        let offset = r.pos();
        let bytes = r.take(len, "optional metadata value")?;
        let name = match kind {
            META_SIGNEDNESS => "SIGNEDNESS",
            META_DEFAULT_CHARSET => "DEFAULT_CHARSET",
            META_COLUMN_CHARSET => "COLUMN_CHARSET",
            META_COLUMN_NAME => "COLUMN_NAME",
            META_SET_STR_VALUE => "SET_STR_VALUE",
            META_ENUM_STR_VALUE => "ENUM_STR_VALUE",
            META_GEOMETRY_TYPE => "GEOMETRY_TYPE",
            META_SIMPLE_PRIMARY_KEY => "SIMPLE_PRIMARY_KEY",
            META_PRIMARY_KEY_WITH_PREFIX => "PRIMARY_KEY_WITH_PREFIX",
            META_ENUM_AND_SET_DEFAULT_CHARSET => "ENUM_AND_SET_DEFAULT_CHARSET",
            META_ENUM_AND_SET_COLUMN_CHARSET => "ENUM_AND_SET_COLUMN_CHARSET",
            // Unknown fields (a newer server) are skipped by their length.
            _ => continue,
        };
        let field = Field {
            bytes,
            offset,
            name,
        };
        let slot_taken = match kind {
            META_SIGNEDNESS => opt.signedness.replace(field).is_some(),
            META_DEFAULT_CHARSET => opt
                .charsets
                .replace((field, CharsetField::Default))
                .is_some(),
            META_COLUMN_CHARSET => opt
                .charsets
                .replace((field, CharsetField::PerColumn))
                .is_some(),
            META_COLUMN_NAME => opt.names.replace(field).is_some(),
            META_SET_STR_VALUE => opt.set_labels.replace(field).is_some(),
            META_ENUM_STR_VALUE => opt.enum_labels.replace(field).is_some(),
            META_GEOMETRY_TYPE => opt.geometry_types.replace(field).is_some(),
            META_SIMPLE_PRIMARY_KEY => opt.primary_key.replace((field, false)).is_some(),
            META_PRIMARY_KEY_WITH_PREFIX => opt.primary_key.replace((field, true)).is_some(),
            META_ENUM_AND_SET_DEFAULT_CHARSET => opt
                .enum_set_charsets
                .replace((field, CharsetField::Default))
                .is_some(),
            _ => opt
                .enum_set_charsets
                .replace((field, CharsetField::PerColumn))
                .is_some(),
        };
        if slot_taken {
            return Err(r.malformed_at(
                field_start,
                name,
                "given twice (or with its alternative form)",
            ));
        }
    }
    Ok(opt)
}

impl Optional<'_> {
    fn apply(self, map: &mut TableMap, charsets: &CharsetMap) -> Result<(), DecodeError> {
        let columns = &mut map.columns;
        if let Some(field) = &self.signedness {
            let numeric: Vec<usize> = indexes(columns, ColumnType::is_numeric);
            let needed = numeric.len().div_ceil(8);
            if field.bytes.len() != needed {
                return Err(field.reader().malformed(
                    field.name,
                    format!(
                        "{} bytes for {} numeric columns, expected {needed}",
                        field.bytes.len(),
                        numeric.len()
                    ),
                ));
            }
            for (k, &i) in numeric.iter().enumerate() {
                let byte = field.bytes.get(k / 8).copied().unwrap_or(0);
                if let Some(column) = columns.get_mut(i) {
                    column.unsigned = Some(byte & (0x80 >> (k % 8)) != 0);
                }
            }
        }
        if let Some((field, form)) = &self.charsets {
            let targets = indexes(columns, ColumnType::is_character);
            let ids = read_collations(field, *form, targets.len())?;
            for (&i, id) in targets.iter().zip(ids) {
                if let Some(column) = columns.get_mut(i) {
                    column.collation_id = Some(id);
                    column.charset = Some(charsets.resolve(id));
                }
            }
        }
        if let Some((field, form)) = &self.enum_set_charsets {
            let targets = indexes(columns, ColumnType::is_enum_or_set);
            let ids = read_collations(field, *form, targets.len())?;
            for (&i, id) in targets.iter().zip(ids) {
                if let Some(column) = columns.get_mut(i) {
                    column.collation_id = Some(id);
                    column.charset = Some(charsets.resolve(id));
                }
            }
        }
        if let Some(field) = &self.names {
            let mut r = field.reader();
            let mut names = Vec::with_capacity(columns.len());
            while !r.is_empty() {
                let len = r.packed_usize("COLUMN_NAME length")?;
                let start = r.pos();
                let bytes = r.take(len, "COLUMN_NAME")?;
                let name = std::str::from_utf8(bytes)
                    .map_err(|e| r.malformed_at(start, "COLUMN_NAME", format!("not UTF-8: {e}")))?;
                names.push(name.to_owned());
            }
            if names.len() != columns.len() {
                return Err(field.reader().malformed(
                    field.name,
                    format!("{} names for {} columns", names.len(), columns.len()),
                ));
            }
            for (column, name) in columns.iter_mut().zip(names) {
                column.name = Some(name);
            }
        }
        for (slot, is_set) in [(&self.enum_labels, false), (&self.set_labels, true)] {
            let Some(field) = slot else { continue };
            let targets = indexes(columns, |t| {
                matches!(
                    (t, is_set),
                    (ColumnType::Enum { .. }, false) | (ColumnType::Set { .. }, true)
                )
            });
            let mut r = field.reader();
            let mut lists = Vec::with_capacity(targets.len());
            while !r.is_empty() {
                let count = r.packed_usize("label count")?;
                let mut labels = Vec::new();
                for _ in 0..count {
                    let len = r.packed_usize("label length")?;
                    let start = r.pos();
                    labels.push((start, r.take(len, "label")?));
                }
                lists.push(labels);
            }
            if lists.len() != targets.len() {
                return Err(field.reader().malformed(
                    field.name,
                    format!(
                        "{} label lists for {} {} columns",
                        lists.len(),
                        targets.len(),
                        if is_set { "SET" } else { "ENUM" }
                    ),
                ));
            }
            for (&i, labels) in targets.iter().zip(lists) {
                let Some(column) = columns.get_mut(i) else {
                    continue;
                };
                // Labels are in the column's charset; binary labels (ENUM
                // ... CHARACTER SET binary) must still be UTF-8 to be text.
                let charset = match &column.charset {
                    Some(Charset::Binary) => None,
                    other => other.as_ref(),
                };
                let mut decoded = Vec::with_capacity(labels.len());
                for (start, bytes) in labels {
                    let label = decode_text(bytes, charset).map_err(|e| {
                        r.malformed_at(start, field.name, format!("label of column #{i}: {e}"))
                    })?;
                    decoded.push(label);
                }
                if is_set {
                    if decoded.len() > 64 {
                        return Err(field.reader().malformed(
                            field.name,
                            format!(
                                "column #{i} has {} labels; SET has at most 64",
                                decoded.len()
                            ),
                        ));
                    }
                    column.set_values = decoded;
                } else {
                    column.enum_values = decoded;
                }
            }
        }
        if let Some(field) = &self.geometry_types {
            let targets = indexes(columns, |t| matches!(t, ColumnType::Geometry { .. }));
            let mut r = field.reader();
            let mut kinds = Vec::with_capacity(targets.len());
            while !r.is_empty() {
                kinds.push(r.packed("geometry type")?);
            }
            if kinds.len() != targets.len() {
                return Err(field.reader().malformed(
                    field.name,
                    format!(
                        "{} types for {} GEOMETRY columns",
                        kinds.len(),
                        targets.len()
                    ),
                ));
            }
            for (&i, kind) in targets.iter().zip(kinds) {
                if let Some(column) = columns.get_mut(i) {
                    column.geometry_type = Some(kind);
                }
            }
        }
        if let Some((field, with_prefix)) = &self.primary_key {
            let mut r = field.reader();
            while !r.is_empty() {
                let start = r.pos();
                let index = r.packed_usize("primary key column")?;
                if index >= columns.len() {
                    return Err(r.malformed_at(
                        start,
                        field.name,
                        format!("column #{index} of a {}-column table", columns.len()),
                    ));
                }
                let prefix = if *with_prefix {
                    r.packed("primary key prefix")?
                } else {
                    0
                };
                map.primary_key.push(index);
                map.primary_key_prefixes.push(prefix);
            }
        }
        Ok(())
    }
}

/// Indexes of the columns whose type passes `pick`.
fn indexes(columns: &[Column], pick: impl Fn(&ColumnType) -> bool) -> Vec<usize> {
    columns
        .iter()
        .enumerate()
        .filter(|(_, c)| pick(&c.column_type))
        .map(|(i, _)| i)
        .collect()
}

/// The collation id of each of `count` columns, from a DEFAULT_CHARSET-like
/// or COLUMN_CHARSET-like field.
fn read_collations(
    field: &Field<'_>,
    form: CharsetField,
    count: usize,
) -> Result<Vec<u32>, DecodeError> {
    let mut r = field.reader();
    let collation = |r: &mut Reader<'_>| -> Result<u32, DecodeError> {
        let start = r.pos();
        let id = r.packed("collation id")?;
        u32::try_from(id)
            .map_err(|_| r.malformed_at(start, field.name, format!("collation id {id}")))
    };
    match form {
        CharsetField::Default => {
            let default = collation(&mut r)?;
            let mut ids = vec![default; count];
            while !r.is_empty() {
                let start = r.pos();
                let index = r.packed_usize("character column index")?;
                let id = collation(&mut r)?;
                let slot = ids.get_mut(index).ok_or_else(|| {
                    r.malformed_at(
                        start,
                        field.name,
                        format!("character column #{index} of {count}"),
                    )
                })?;
                *slot = id;
            }
            Ok(ids)
        }
        CharsetField::PerColumn => {
            let mut ids = Vec::with_capacity(count);
            while !r.is_empty() {
                ids.push(collation(&mut r)?);
            }
            if ids.len() != count {
                return Err(field.reader().malformed(
                    field.name,
                    format!("{} collations for {count} columns", ids.len()),
                ));
            }
            Ok(ids)
        }
    }
}
