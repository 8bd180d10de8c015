//! WRITE/UPDATE/DELETE_ROWS events: v1 (23–25), v2 (30–32) and MariaDB's
//! compressed forms (166–168 v1, 169–171 v2).
//!
//! ```text
//! post-header   table id (6 bytes LE), flags (2 bytes LE)
//!               v2 only: extra header length (2 bytes LE, counting itself),
//!               extra header
//! body          width = column count (length-encoded)
//!               columns-present bitmap ((width + 7) / 8 bytes)
//!               UPDATE only: after-image columns-present bitmap
//!               rows data: per row, per image: NULL bitmap with one bit per
//!               *present* column ((present + 7) / 8 bytes), then the
//!               non-NULL present values; UPDATE rows hold before then after
//! ```
//!
//! In the compressed forms everything up to and including the bitmaps is in
//! clear and the rows data is one compressed record (see `compress.rs`;
//! MariaDB's `row_log_event_uncompress`).

use super::compress::inflate_record;
use super::reader::{bit_is_set, Reader};
use super::table_map::TableMap;
use super::value::{decode_value, Value};
use super::*;

/// Which change a rows event carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowsKind {
    Insert,
    Update,
    Delete,
}

/// A decoded rows event.
#[derive(Debug, Clone, PartialEq)]
pub struct RowsEvent {
    pub table_id: u64,
    pub kind: RowsKind,
    /// `ROWS_FLAG_*` bits (`ROWS_FLAG_STMT_END` on the statement's last).
    pub flags: u16,
    pub rows: Vec<RowChange>,
}

/// One changed row. Insert: `after` only; Delete: `before` only; Update:
/// both. One entry per table column: `None` when the column is absent from
/// the image (its columns-present bit is clear), `Some(Value::Null)` for
/// SQL NULL.
#[derive(Debug, Clone, PartialEq)]
pub struct RowChange {
    pub before: Option<Vec<Option<Value>>>,
    pub after: Option<Vec<Option<Value>>>,
}

/// What an event type code says about a rows event.
#[derive(Debug, Clone, Copy)]
struct RowsFormat {
    kind: RowsKind,
    v2: bool,
    compressed: bool,
}

fn rows_format(event_type: u8) -> Option<RowsFormat> {
    let (kind, v2, compressed) = match event_type {
        WRITE_ROWS_EVENT_V1 => (RowsKind::Insert, false, false),
        UPDATE_ROWS_EVENT_V1 => (RowsKind::Update, false, false),
        DELETE_ROWS_EVENT_V1 => (RowsKind::Delete, false, false),
        WRITE_ROWS_EVENT_V2 => (RowsKind::Insert, true, false),
        UPDATE_ROWS_EVENT_V2 => (RowsKind::Update, true, false),
        DELETE_ROWS_EVENT_V2 => (RowsKind::Delete, true, false),
        WRITE_ROWS_COMPRESSED_EVENT_V1 => (RowsKind::Insert, false, true),
        UPDATE_ROWS_COMPRESSED_EVENT_V1 => (RowsKind::Update, false, true),
        DELETE_ROWS_COMPRESSED_EVENT_V1 => (RowsKind::Delete, false, true),
        WRITE_ROWS_COMPRESSED_EVENT_V2 => (RowsKind::Insert, true, true),
        UPDATE_ROWS_COMPRESSED_EVENT_V2 => (RowsKind::Update, true, true),
        DELETE_ROWS_COMPRESSED_EVENT_V2 => (RowsKind::Delete, true, true),
        _ => return None,
    };
    Some(RowsFormat {
        kind,
        v2,
        compressed,
    })
}

/// Whether `event_type` is one of the twelve rows event types.
pub fn is_rows_event(event_type: u8) -> bool {
    rows_format(event_type).is_some()
}

fn wrong_type(event_type: u8) -> DecodeError {
    DecodeError::WrongEventType {
        event_type,
        name: event_type_name(event_type),
        expected: "a rows event (23-25, 30-32, 166-171)",
    }
}

/// The table id of a rows event (any of 23–25, 30–32, 166–171), to find its
/// TABLE_MAP before decoding.
///
/// # Errors
/// [`DecodeError::WrongEventType`] for other types,
/// [`DecodeError::Truncated`] for a body shorter than the table id.
pub fn rows_table_id(event_type: u8, body: &[u8]) -> Result<u64, DecodeError> {
    if rows_format(event_type).is_none() {
        return Err(wrong_type(event_type));
    }
    Reader::new(event_type_name(event_type), body).u48_le("table id")
}

/// WRITE/UPDATE/DELETE_ROWS v1, v2 and their compressed forms → rows,
/// decoded with `table`, the TABLE_MAP of the event's table id.
///
/// # Errors
/// [`DecodeError::WrongEventType`], [`DecodeError::TableIdMismatch`] and
/// [`DecodeError::ColumnCountMismatch`] for a call with the wrong inputs;
/// [`DecodeError::Truncated`], [`DecodeError::Malformed`] and
/// [`DecodeError::Decompress`] for a bad body; [`DecodeError::Value`] for a
/// column value, naming the row, image and column.
pub fn parse_rows(event_type: u8, body: &[u8], table: &TableMap) -> Result<RowsEvent, DecodeError> {
    let format = rows_format(event_type).ok_or_else(|| wrong_type(event_type))?;
    let event = event_type_name(event_type);
    let mut r = Reader::new(event, body);
    let table_id = r.u48_le("table id")?;
    if table_id != table.table_id {
        return Err(DecodeError::TableIdMismatch {
            event,
            rows_table_id: table_id,
            map_table_id: table.table_id,
            database: table.database.clone(),
            table: table.table.clone(),
        });
    }
    let flags = r.u16_le("flags")?;
    if format.v2 {
        let start = r.pos();
        let extra_len = usize::from(r.u16_le("extra header length")?);
        // The length counts its own two bytes.
        let rest = extra_len.checked_sub(2).ok_or_else(|| {
            r.malformed_at(
                start,
                "extra header length",
                format!("{extra_len}, at least 2 (itself)"),
            )
        })?;
        r.skip(rest, "extra header")?;
    }
    let width = r.packed("column count")?;
    if usize::try_from(width).ok() != Some(table.columns.len()) {
        return Err(DecodeError::ColumnCountMismatch {
            event,
            database: table.database.clone(),
            table: table.table.clone(),
            width,
            columns: table.columns.len(),
        });
    }
    let bitmap_len = table.columns.len().div_ceil(8);
    let present = r.take(bitmap_len, "columns-present bitmap")?;
    let present_after = if format.kind == RowsKind::Update {
        r.take(bitmap_len, "after-image columns-present bitmap")?
    } else {
        present
    };
    // An image with no column would take no bytes: rows could not be told
    // apart (and a loop over them would never end). MariaDB never logs one.
    for (bitmap, field) in [
        (present, "columns-present bitmap"),
        (present_after, "after-image columns-present bitmap"),
    ] {
        if !(0..table.columns.len()).any(|i| bit_is_set(bitmap, i)) {
            return Err(r.malformed(field, "no column is present"));
        }
    }

    let data_offset = r.pos();
    let inflated;
    let data: &[u8] = if format.compressed {
        inflated = inflate_record(event, data_offset, r.rest())?;
        &inflated
    } else {
        r.rest()
    };
    if data.is_empty() {
        return Err(r.malformed_at(data_offset, "rows data", "the event carries no rows"));
    }

    let mut decoder = RowDecoder {
        event,
        table,
        data,
        pos: 0,
        data_offset,
        compressed: format.compressed,
    };
    let mut rows = Vec::new();
    while decoder.pos < data.len() {
        let row = rows.len();
        let change = match format.kind {
            RowsKind::Insert => RowChange {
                before: None,
                after: Some(decoder.image(row, Image::After, present)?),
            },
            RowsKind::Delete => RowChange {
                before: Some(decoder.image(row, Image::Before, present)?),
                after: None,
            },
            RowsKind::Update => {
                let before = decoder.image(row, Image::Before, present)?;
                let after = decoder.image(row, Image::After, present_after)?;
                RowChange {
                    before: Some(before),
                    after: Some(after),
                }
            }
        };
        rows.push(change);
    }
    Ok(RowsEvent {
        table_id,
        kind: format.kind,
        flags,
        rows,
    })
}

struct RowDecoder<'a> {
    event: &'static str,
    table: &'a TableMap,
    data: &'a [u8],
    pos: usize,
    /// Where the rows data starts in the body (for uncompressed events,
    /// error offsets are body offsets).
    data_offset: usize,
    compressed: bool,
}

impl RowDecoder<'_> {
    fn image(
        &mut self,
        row: usize,
        image: Image,
        present: &[u8],
    ) -> Result<Vec<Option<Value>>, DecodeError> {
        let columns = &self.table.columns;
        let present_count = (0..columns.len())
            .filter(|i| bit_is_set(present, *i))
            .count();
        let null_len = present_count.div_ceil(8);
        let rest = self.data.get(self.pos..).unwrap_or_default();
        let nulls = rest.get(..null_len).ok_or_else(|| DecodeError::Truncated {
            event: self.event,
            field: format!(
                "NULL bitmap of row {row}, {image} image{}",
                if self.compressed {
                    " (offset in the inflated rows data)"
                } else {
                    ""
                }
            ),
            offset: self.offset(),
            needed: null_len,
            available: rest.len(),
        })?;
        self.pos += null_len;

        let mut values = Vec::with_capacity(columns.len());
        let mut null_index = 0;
        for (i, column) in columns.iter().enumerate() {
            if !bit_is_set(present, i) {
                values.push(None);
                continue;
            }
            let is_null = bit_is_set(nulls, null_index);
            null_index += 1;
            if is_null {
                values.push(Some(Value::Null));
                continue;
            }
            let rest = self.data.get(self.pos..).unwrap_or_default();
            let (value, used) =
                decode_value(column, rest).map_err(|reason| DecodeError::Value {
                    event: self.event,
                    database: self.table.database.clone(),
                    table: self.table.table.clone(),
                    row,
                    image,
                    column: Box::new(column.reference(i)),
                    reason: Box::new(reason),
                })?;
            self.pos += used;
            values.push(Some(value));
        }
        Ok(values)
    }

    fn offset(&self) -> usize {
        if self.compressed {
            self.pos
        } else {
            self.data_offset + self.pos
        }
    }
}
