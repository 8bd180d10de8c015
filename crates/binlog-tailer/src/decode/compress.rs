//! MariaDB's compressed binlog records (`log_bin_compress=ON`), as written
//! by `binlog_buf_compress` in `sql/log_event.cc`:
//!
//! ```text
//! byte 0      1 a a a 0 n n n   bit 7 set; aaa algorithm (0 = zlib);
//!                               nnn = bytes of the original length (1..=4)
//! n bytes     original length, big-endian
//! rest        zlib stream (RFC 1950: header, deflate data, Adler-32)
//! ```
//!
//! The record runs to the end of the event body.

use std::borrow::Cow;

use flate2::{Decompress, FlushDecompress, Status};

use super::DecodeError;

/// Bit 7 of the record header: the record is compressed.
const COMPRESSED_FLAG: u8 = 0x80;
/// Bits 4..=6: the algorithm; 0 is zlib, the only one MariaDB writes.
const ALGORITHM_MASK: u8 = 0x70;
/// Bits 0..=2: how many bytes the original length takes.
const LENGTH_BYTES_MASK: u8 = 0x07;

/// Inflates the compressed record `record`, which starts at body offset
/// `offset` of an `event` event.
///
/// # Errors
/// [`DecodeError::Decompress`] when the header is not a zlib record, the
/// zlib stream is corrupt or ends early, or it inflates to another length
/// than the header declares.
pub(crate) fn inflate_record(
    event: &'static str,
    offset: usize,
    record: &[u8],
) -> Result<Vec<u8>, DecodeError> {
    let err = |reason: String| DecodeError::Decompress {
        event,
        offset,
        reason,
    };
    let Some((&header, rest)) = record.split_first() else {
        return Err(err("the record is empty (no header byte)".to_owned()));
    };
    if header & COMPRESSED_FLAG == 0 {
        return Err(err(format!(
            "header byte {header:#04x} lacks the compressed flag 0x80"
        )));
    }
    let algorithm = (header & ALGORITHM_MASK) >> 4;
    if algorithm != 0 {
        return Err(err(format!(
            "header byte {header:#04x} names algorithm {algorithm}; only 0 (zlib) exists"
        )));
    }
    let length_bytes = usize::from(header & LENGTH_BYTES_MASK);
    if !(1..=4).contains(&length_bytes) {
        return Err(err(format!(
            "header byte {header:#04x} gives {length_bytes} length bytes; 1 to 4 are valid"
        )));
    }
    let (length, stream) = match (rest.get(..length_bytes), rest.get(length_bytes..)) {
        (Some(length), Some(stream)) => (length, stream),
        _ => {
            return Err(err(format!(
                "the original length needs {length_bytes} bytes, only {} left",
                rest.len()
            )))
        }
    };
    let declared = length
        .iter()
        .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
    if stream.is_empty() {
        return Err(err("no zlib stream follows the header".to_owned()));
    }

    inflate(stream, declared, true).map_err(err)
}

/// Inflates `stream` (a zlib stream, or raw deflate data when
/// `zlib_header` is false), which must come to exactly `declared` bytes and
/// end where `stream` ends.
fn inflate(stream: &[u8], declared: usize, zlib_header: bool) -> Result<Vec<u8>, String> {
    // Inflate step by step so that the end of the zlib stream (its Adler-32
    // checked) is seen: a stream cut short must fail, not come out short
    // or, cut inside its checksum, whole. Memory grows with what actually
    // inflates, at most one byte past the declared length.
    const STEP: usize = 1 << 20;
    let mut inflater = Decompress::new(zlib_header);
    let mut out: Vec<u8> = Vec::new();
    loop {
        if out.len() > declared {
            return Err(format!(
                "inflates to more than the {declared} bytes the header declares"
            ));
        }
        if out.len() == out.capacity() {
            out.reserve((declared.saturating_add(1) - out.len()).clamp(1, STEP));
        }
        let consumed = usize::try_from(inflater.total_in()).unwrap_or(usize::MAX);
        let input = stream.get(consumed..).unwrap_or_default();
        let before = (inflater.total_in(), inflater.total_out());
        let status = inflater
            .decompress_vec(input, &mut out, FlushDecompress::None)
            .map_err(|e| format!("zlib stream is corrupt: {e}"))?;
        if status == Status::StreamEnd {
            break;
        }
        if (inflater.total_in(), inflater.total_out()) == before {
            return Err(format!(
                "zlib stream ends early: {} bytes inflated of {declared}, input exhausted",
                out.len()
            ));
        }
    }
    if out.len() != declared {
        return Err(format!(
            "inflated to {} bytes, the header declares {declared}",
            out.len()
        ));
    }
    let consumed = usize::try_from(inflater.total_in()).unwrap_or(usize::MAX);
    if consumed != stream.len() {
        return Err(format!(
            "{} bytes follow the end of the zlib stream",
            stream.len().saturating_sub(consumed)
        ));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Compressed columns (`VARCHAR … COMPRESSED`, `TEXT/BLOB … COMPRESSED`).
// ---------------------------------------------------------------------------

/// Bits 4..=7 of a compressed field's header byte: how it is stored.
const FIELD_METHOD_MASK: u8 = 0xF0;
/// Method 0: the bytes after the header byte are the value, uncompressed
/// (MariaDB stores a value so when it is shorter than
/// `column_compression_threshold` or does not shrink).
const FIELD_STORED: u8 = 0x00;
/// Method 8: zlib.
const FIELD_ZLIB: u8 = 0x80;
/// Bit 3: raw deflate data, no zlib header or Adler-32
/// (`column_compression_zlib_wrap=OFF`, the default).
const FIELD_RAW_DEFLATE: u8 = 0x08;

/// The value of a compressed column from its stored field (what follows the
/// length prefix in the row image), as MariaDB's `Field::uncompress` and
/// `uncompress_zlib` (`sql/field_comp.cc`) read it:
///
/// ```text
/// (empty)     the empty value
/// byte 0      m m m m w n n n   mmmm method: 0 stored, 8 zlib;
///                               w: 1 raw deflate, 0 zlib-wrapped;
///                               nnn: bytes of the original length (1..=4)
/// stored      the value follows byte 0 as is
/// zlib        original length (nnn bytes, big-endian), then the stream
/// ```
///
/// `max_len` is the column's declared maximum in bytes: a value declaring
/// more is refused before anything is inflated, and inflation stops past
/// the declared length, so a decompression bomb costs at most `max_len`
/// bytes.
///
/// # Errors
/// A description of what is wrong with the field.
pub(crate) fn inflate_field(field: &[u8], max_len: usize) -> Result<Cow<'_, [u8]>, String> {
    let Some((&header, rest)) = field.split_first() else {
        return Ok(Cow::Borrowed(field));
    };
    match header & FIELD_METHOD_MASK {
        FIELD_STORED => {
            if rest.len() > max_len {
                return Err(format!(
                    "stored value of {} bytes is longer than the column's {max_len}",
                    rest.len()
                ));
            }
            Ok(Cow::Borrowed(rest))
        }
        FIELD_ZLIB => {
            let length_bytes = usize::from(header & LENGTH_BYTES_MASK);
            if !(1..=4).contains(&length_bytes) {
                return Err(format!(
                    "header byte {header:#04x} gives {length_bytes} length bytes; 1 to 4 are valid"
                ));
            }
            let (Some(length), Some(stream)) = (rest.get(..length_bytes), rest.get(length_bytes..))
            else {
                return Err(format!(
                    "the original length needs {length_bytes} bytes, only {} left",
                    rest.len()
                ));
            };
            let declared = length
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            if declared > max_len {
                return Err(format!(
                    "declares {declared} bytes, more than the column's {max_len}"
                ));
            }
            inflate(stream, declared, header & FIELD_RAW_DEFLATE == 0).map(Cow::Owned)
        }
        _ => Err(format!(
            "header byte {header:#04x} names method {}; MariaDB writes 0 (stored) and 8 (zlib)",
            header >> 4
        )),
    }
}
