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
use std::borrow::Cow;

use super::value::{decode_value, value_len, Value};
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
    let head = RowsHead::parse(event_type, body, table)?;
    let mut decoder = head.decoder(table)?;
    let mut rows = Vec::new();
    while decoder.pos < decoder.data.len() {
        let row = rows.len();
        let change = match head.format.kind {
            RowsKind::Insert => RowChange {
                before: None,
                after: Some(decoder.image(row, Image::After, head.present)?),
            },
            RowsKind::Delete => RowChange {
                before: Some(decoder.image(row, Image::Before, head.present)?),
                after: None,
            },
            RowsKind::Update => {
                let before = decoder.image(row, Image::Before, head.present)?;
                let after = decoder.image(row, Image::After, head.present_after)?;
                RowChange {
                    before: Some(before),
                    after: Some(after),
                }
            }
        };
        rows.push(change);
    }
    Ok(RowsEvent {
        table_id: head.table_id,
        kind: head.format.kind,
        flags: head.flags,
        rows,
    })
}

/// The rows of a rows event that is only counted (a table that is not
/// tailed, or a change that is not published): the same checks of the body
/// and of every value's length as [`parse_rows`], without building values,
/// so a row of any size costs no memory beyond the event itself (and no
/// character set has to be known). Returns the kind and the row count.
///
/// # Errors
/// As [`parse_rows`], except that a value's content is not checked, only
/// its length.
pub fn count_rows(
    event_type: u8,
    body: &[u8],
    table: &TableMap,
) -> Result<(RowsKind, usize), DecodeError> {
    let head = RowsHead::parse(event_type, body, table)?;
    let mut decoder = head.decoder(table)?;
    let mut rows = 0;
    while decoder.pos < decoder.data.len() {
        match head.format.kind {
            RowsKind::Insert => decoder.skip_image(rows, Image::After, head.present)?,
            RowsKind::Delete => decoder.skip_image(rows, Image::Before, head.present)?,
            RowsKind::Update => {
                decoder.skip_image(rows, Image::Before, head.present)?;
                decoder.skip_image(rows, Image::After, head.present_after)?;
            }
        }
        rows += 1;
    }
    Ok((head.format.kind, rows))
}

/// The kind of change a rows event type carries, `None` for other types.
pub fn rows_kind(event_type: u8) -> Option<RowsKind> {
    rows_format(event_type).map(|f| f.kind)
}

/// A rows event up to its rows data, checked against its TABLE_MAP.
struct RowsHead<'a> {
    format: RowsFormat,
    event: &'static str,
    table_id: u64,
    flags: u16,
    present: &'a [u8],
    present_after: &'a [u8],
    /// The rows data as stored (compressed or not), and where it starts.
    data: &'a [u8],
    data_offset: usize,
}

impl<'a> RowsHead<'a> {
    fn parse(event_type: u8, body: &'a [u8], table: &TableMap) -> Result<Self, DecodeError> {
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
        let data = r.rest();
        if !format.compressed && data.is_empty() {
            return Err(r.malformed_at(data_offset, "rows data", "the event carries no rows"));
        }
        Ok(Self {
            format,
            event,
            table_id,
            flags,
            present,
            present_after,
            data,
            data_offset,
        })
    }

    /// A decoder over the rows data, inflated first when compressed.
    fn decoder<'t>(&self, table: &'t TableMap) -> Result<RowDecoder<'t>, DecodeError>
    where
        'a: 't,
    {
        let data: Cow<'a, [u8]> = if self.format.compressed {
            let inflated = inflate_record(self.event, self.data_offset, self.data)?;
            if inflated.is_empty() {
                return Err(DecodeError::Malformed {
                    event: self.event,
                    field: "rows data".into(),
                    offset: self.data_offset,
                    reason: "the event carries no rows".into(),
                });
            }
            Cow::Owned(inflated)
        } else {
            Cow::Borrowed(self.data)
        };
        Ok(RowDecoder {
            event: self.event,
            table,
            data,
            pos: 0,
            data_offset: self.data_offset,
            compressed: self.format.compressed,
        })
    }
}

struct RowDecoder<'a> {
    event: &'static str,
    table: &'a TableMap,
    data: Cow<'a, [u8]>,
    pos: usize,
    /// Where the rows data starts in the body (for uncompressed events,
    /// error offsets are body offsets).
    data_offset: usize,
    compressed: bool,
}

impl RowDecoder<'_> {
    /// Where the NULL bitmap of the next image is in the rows data (one bit
    /// per present column); moves past it.
    fn nulls(
        &mut self,
        row: usize,
        image: Image,
        present: &[u8],
    ) -> Result<std::ops::Range<usize>, DecodeError> {
        let columns = &self.table.columns;
        let present_count = (0..columns.len())
            .filter(|i| bit_is_set(present, *i))
            .count();
        let null_len = present_count.div_ceil(8);
        let rest = self.data.get(self.pos..).unwrap_or_default();
        if rest.len() < null_len {
            return Err(DecodeError::Truncated {
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
            });
        }
        let range = self.pos..self.pos + null_len;
        self.pos += null_len;
        Ok(range)
    }

    fn value_error(&self, row: usize, image: Image, i: usize, reason: ValueError) -> DecodeError {
        DecodeError::Value {
            event: self.event,
            database: self.table.database.clone(),
            table: self.table.table.clone(),
            row,
            image,
            column: Box::new(self.table.columns[i].reference(i)),
            reason: Box::new(reason),
        }
    }

    fn image(
        &mut self,
        row: usize,
        image: Image,
        present: &[u8],
    ) -> Result<Vec<Option<Value>>, DecodeError> {
        let nulls = self.nulls(row, image, present)?;
        let table = self.table;
        let data: &[u8] = &self.data;
        let nulls = data.get(nulls).unwrap_or_default();
        let mut values = Vec::with_capacity(table.columns.len());
        let mut null_index = 0;
        for (i, column) in table.columns.iter().enumerate() {
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
            let rest = data.get(self.pos..).unwrap_or_default();
            let (value, used) =
                decode_value(column, rest).map_err(|e| self.value_error(row, image, i, e))?;
            self.pos += used;
            values.push(Some(value));
        }
        Ok(values)
    }

    /// Steps over the next image, checking each value's length only.
    fn skip_image(&mut self, row: usize, image: Image, present: &[u8]) -> Result<(), DecodeError> {
        let nulls = self.nulls(row, image, present)?;
        let table = self.table;
        let data: &[u8] = &self.data;
        let nulls = data.get(nulls).unwrap_or_default();
        let mut null_index = 0;
        for (i, column) in table.columns.iter().enumerate() {
            if !bit_is_set(present, i) {
                continue;
            }
            let is_null = bit_is_set(nulls, null_index);
            null_index += 1;
            if is_null {
                continue;
            }
            let rest = data.get(self.pos..).unwrap_or_default();
            let used = value_len(column, rest).map_err(|e| self.value_error(row, image, i, e))?;
            self.pos += used;
        }
        Ok(())
    }

    fn offset(&self) -> usize {
        if self.compressed {
            self.pos
        } else {
            self.data_offset + self.pos
        }
    }
}
