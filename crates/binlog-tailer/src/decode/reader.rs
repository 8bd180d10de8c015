//! A bounds-checked cursor over an event body. Every read either returns the
//! bytes asked for or a [`DecodeError::Truncated`] naming the field.

use super::DecodeError;

pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Offset of `buf` in the event body, so errors give body offsets.
    base: usize,
    event: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(event: &'static str, buf: &'a [u8]) -> Self {
        Reader {
            buf,
            pos: 0,
            base: 0,
            event,
        }
    }

    /// Makes error offsets count from `base`: for a reader over a field that
    /// starts at body offset `base`.
    pub(crate) fn set_base(&mut self, base: usize) {
        self.base = base;
    }

    /// A reader over the next `n` bytes (a length-delimited field), which
    /// this reader skips.
    pub(crate) fn sub(&mut self, n: usize, field: &str) -> Result<Reader<'a>, DecodeError> {
        let base = self.pos();
        let buf = self.take(n, field)?;
        Ok(Reader {
            buf,
            pos: 0,
            base,
            event: self.event,
        })
    }

    /// The offset in the event body.
    pub(crate) fn pos(&self) -> usize {
        self.base.saturating_add(self.pos)
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// Everything left; the cursor moves to the end.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        self.pos = self.buf.len();
        rest
    }

    pub(crate) fn truncated(&self, field: &str, needed: usize) -> DecodeError {
        DecodeError::Truncated {
            event: self.event,
            field: field.to_owned(),
            offset: self.pos(),
            needed,
            available: self.remaining(),
        }
    }

    /// A malformed-field error at the current offset.
    pub(crate) fn malformed(&self, field: &str, reason: impl Into<String>) -> DecodeError {
        self.malformed_at(self.pos(), field, reason)
    }

    pub(crate) fn malformed_at(
        &self,
        offset: usize,
        field: &str,
        reason: impl Into<String>,
    ) -> DecodeError {
        DecodeError::Malformed {
            event: self.event,
            field: field.to_owned(),
            offset,
            reason: reason.into(),
        }
    }

    pub(crate) fn take(&mut self, n: usize, field: &str) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.buf.len())
            .ok_or_else(|| self.truncated(field, n))?;
        let bytes = self
            .buf
            .get(self.pos..end)
            .ok_or_else(|| self.truncated(field, n))?;
        self.pos = end;
        Ok(bytes)
    }

    pub(crate) fn skip(&mut self, n: usize, field: &str) -> Result<(), DecodeError> {
        self.take(n, field).map(|_| ())
    }

    fn array<const N: usize>(&mut self, field: &str) -> Result<[u8; N], DecodeError> {
        let bytes = self.take(N, field)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, field: &str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(field)?[0])
    }

    pub(crate) fn u16_le(&mut self, field: &str) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array(field)?))
    }

    pub(crate) fn u32_le(&mut self, field: &str) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array(field)?))
    }

    /// A 6-byte little-endian integer (table ids).
    pub(crate) fn u48_le(&mut self, field: &str) -> Result<u64, DecodeError> {
        let b: [u8; 6] = self.array(field)?;
        Ok(le_uint(&b))
    }

    pub(crate) fn u64_le(&mut self, field: &str) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array(field)?))
    }

    /// A length-encoded integer (`net_field_length`): one byte below 251,
    /// else 252 + 2 bytes, 253 + 3 bytes, 254 + 8 bytes. 251 (SQL NULL) and
    /// 255 are invalid here.
    pub(crate) fn packed(&mut self, field: &str) -> Result<u64, DecodeError> {
        let start = self.pos();
        let first = self.u8(field)?;
        match first {
            0..=250 => Ok(u64::from(first)),
            252 => Ok(u64::from(self.u16_le(field)?)),
            253 => {
                let b: [u8; 3] = self.array(field)?;
                Ok(le_uint(&b))
            }
            254 => self.u64_le(field),
            other => Err(self.malformed_at(
                start,
                field,
                format!("length-encoded integer starts with byte {other:#04x}"),
            )),
        }
    }

    /// A length-encoded integer that must fit a `usize` (counts, lengths).
    pub(crate) fn packed_usize(&mut self, field: &str) -> Result<usize, DecodeError> {
        let start = self.pos();
        let v = self.packed(field)?;
        usize::try_from(v)
            .map_err(|_| self.malformed_at(start, field, format!("{v} does not fit in memory")))
    }
}

/// Little-endian unsigned integer of up to 8 bytes.
pub(crate) fn le_uint(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .rev()
        .fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
}

/// Big-endian unsigned integer of up to 8 bytes.
pub(crate) fn be_uint(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
}

/// Whether bit `i` is set in a little-endian-ordered bitmap (bit 0 is the
/// least significant bit of byte 0), as MariaDB writes column bitmaps.
pub(crate) fn bit_is_set(bitmap: &[u8], i: usize) -> bool {
    bitmap
        .get(i / 8)
        .is_some_and(|byte| byte & (1u8 << (i % 8)) != 0)
}
