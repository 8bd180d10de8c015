//! Column values in a rows event image, one layout per column type (see
//! MariaDB's `sql/log_event_client.cc` `log_event_print_value`,
//! `sql/compat56.cc` for TIME2/DATETIME2/TIMESTAMP2 and `strings/decimal.c`
//! for DECIMAL).

use super::charset::{decode_text, Charset};
use super::compress::inflate_field;
use super::reader::{be_uint, le_uint};
use super::table_map::{Column, ColumnType};
use super::ValueError;

/// A decoded column value. Exact: nothing goes through a lossy conversion.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL (the column is in the image, its NULL bit is set).
    Null,
    /// Signed TINYINT/SMALLINT/MEDIUMINT (sign-extended from 24 bits)/INT/
    /// BIGINT, and integers of columns without SIGNEDNESS metadata.
    Int(i64),
    /// UNSIGNED integer types.
    UInt(u64),
    Float(f32),
    Double(f64),
    /// Exact text with the column's scale: `"-12.30"`, `"0.00"`,
    /// `"99999999999999999999.99"`.
    Decimal(String),
    /// BIT(bits); the value in the low `bits` bits.
    Bit {
        bits: u16,
        value: u64,
    },
    /// 0 for the zero year, else 1901..=2155.
    Year(u16),
    /// Zero dates (`0000-00-00`) and zero parts are allowed.
    Date {
        year: u16,
        month: u8,
        day: u8,
    },
    /// TIME2 and old TIME: -838:59:59.999999 ..= 838:59:59.999999.
    Time {
        negative: bool,
        hours: u32,
        minutes: u8,
        seconds: u8,
        micros: u32,
        fsp: u8,
    },
    /// DATETIME2 and old DATETIME: wall clock, no zone; zero allowed.
    DateTime {
        year: u16,
        month: u8,
        day: u8,
        hour: u8,
        minute: u8,
        second: u8,
        micros: u32,
        fsp: u8,
    },
    /// TIMESTAMP2 and old TIMESTAMP: UTC epoch seconds (0 is the zero
    /// timestamp).
    Timestamp {
        seconds: u32,
        micros: u32,
        fsp: u8,
    },
    /// Character columns decoded from their charset to UTF-8.
    Text(String),
    /// Binary charset: BINARY (padded with 0x00 to its declared length, as
    /// the binlog strips trailing zeros), VARBINARY, BLOB family, UUID,
    /// INET6; GEOMETRY as its raw bytes (4-byte SRID, then WKB).
    Bytes(Vec<u8>),
    /// The ENUM label; index 0 (the invalid value `''`) gives `""`.
    Enum(String),
    /// Labels of the set bits, in declaration order.
    Set(Vec<String>),
}

/// Bytes of the 1..=9 leftover decimal digits of a DECIMAL group.
const DIG2BYTES: [usize; 10] = [0, 1, 1, 2, 2, 3, 3, 4, 4, 4];
/// Decimal digits per full 4-byte DECIMAL group.
const DIGITS_PER_GROUP: usize = 9;
/// The largest value MariaDB accepts (`max_allowed_packet` is at most
/// 1 GiB): a compressed value declaring more is refused before inflating.
const MAX_VALUE_BYTES: u64 = 1 << 30;
/// Largest TIME hour.
const TIME_MAX_HOUR: u32 = 838;
/// Offset added to TIME2's 3-byte integer part on disk.
const TIMEF_INT_OFS: i64 = 0x80_0000;
/// Offset added to TIME2's 6-byte value (fsp 5, 6) on disk.
const TIMEF_OFS: i64 = 0x8000_0000_0000;
/// Offset added to DATETIME2's 5-byte integer part on disk.
const DATETIMEF_INT_OFS: i64 = 0x80_0000_0000;

/// The next `n` bytes of a value.
fn take(data: &[u8], n: usize) -> Result<&[u8], ValueError> {
    data.get(..n).ok_or(ValueError::Truncated {
        needed: n,
        available: data.len(),
    })
}

fn invalid(reason: impl Into<String>) -> ValueError {
    ValueError::Invalid {
        reason: reason.into(),
    }
}

/// Sign-extends the low `bits` bits of `v`.
fn sign_extend(v: u64, bits: u32) -> i64 {
    let shift = 64 - bits;
    ((v << shift) as i64) >> shift
}

/// Decodes the non-NULL value of `column` at the start of `data`; returns
/// it and the bytes it took.
pub(crate) fn decode_value(column: &Column, data: &[u8]) -> Result<(Value, usize), ValueError> {
    let unsigned = column.unsigned == Some(true);
    let int = |n: usize| -> Result<(Value, usize), ValueError> {
        let raw = le_uint(take(data, n)?);
        let bits = u32::try_from(n * 8).unwrap_or(64);
        let value = if unsigned {
            Value::UInt(raw)
        } else {
            Value::Int(sign_extend(raw, bits))
        };
        Ok((value, n))
    };
    match column.column_type {
        ColumnType::TinyInt => int(1),
        ColumnType::SmallInt => int(2),
        ColumnType::MediumInt => int(3),
        ColumnType::Int => int(4),
        ColumnType::BigInt => int(8),
        ColumnType::Float => {
            let b = take(data, 4)?;
            let raw = u32::try_from(le_uint(b)).unwrap_or(0);
            Ok((Value::Float(f32::from_bits(raw)), 4))
        }
        ColumnType::Double => {
            let b = take(data, 8)?;
            Ok((Value::Double(f64::from_bits(le_uint(b))), 8))
        }
        ColumnType::Decimal { precision, scale } => decode_decimal(data, precision, scale),
        ColumnType::Bit { bits } => {
            let n = usize::from(bits).div_ceil(8);
            let value = be_uint(take(data, n)?);
            if bits < 64 && value >> bits != 0 {
                return Err(invalid(format!("{value:#x} has bits beyond BIT({bits})")));
            }
            Ok((Value::Bit { bits, value }, n))
        }
        ColumnType::Year => {
            let v = take(data, 1)?.first().copied().unwrap_or(0);
            let year = if v == 0 { 0 } else { 1900 + u16::from(v) };
            Ok((Value::Year(year), 1))
        }
        ColumnType::Date => {
            let v = le_uint(take(data, 3)?);
            Ok((date_from_packed(v)?, 3))
        }
        ColumnType::Time => {
            let v = sign_extend(le_uint(take(data, 3)?), 24);
            let abs = v.unsigned_abs();
            let value = time_value(v < 0, abs / 10000, abs / 100 % 100, abs % 100, 0, 0)?;
            Ok((value, 3))
        }
        ColumnType::Time2 { fsp } => decode_time2(data, fsp),
        ColumnType::DateTime => {
            let v = le_uint(take(data, 8)?);
            let (d, t) = (v / 1_000_000, v % 1_000_000);
            let value = datetime_value(
                d / 10000,
                d % 10000 / 100,
                d % 100,
                t / 10000,
                t % 10000 / 100,
                t % 100,
                0,
                0,
            )?;
            Ok((value, 8))
        }
        ColumnType::DateTime2 { fsp } => decode_datetime2(data, fsp),
        ColumnType::Timestamp => {
            let seconds = u32::try_from(le_uint(take(data, 4)?)).unwrap_or(u32::MAX);
            Ok((
                Value::Timestamp {
                    seconds,
                    micros: 0,
                    fsp: 0,
                },
                4,
            ))
        }
        ColumnType::Timestamp2 { fsp } => decode_timestamp2(data, fsp),
        ColumnType::Char { max_bytes } | ColumnType::VarChar { max_bytes } => {
            // 1 length byte when the declared byte length fits in one,
            // else 2 (Field_string::pack, Field_varstring::length_bytes).
            let prefix = if max_bytes > 255 { 2 } else { 1 };
            let len = usize::try_from(le_uint(take(data, prefix)?)).unwrap_or(usize::MAX);
            if len > usize::from(max_bytes) {
                return Err(invalid(format!(
                    "length {len} is above the declared {max_bytes} bytes"
                )));
            }
            let bytes = take(data.get(prefix..).unwrap_or_default(), len)?;
            let pad_to = match column.column_type {
                // BINARY(n): the binlog strips trailing 0x00 bytes.
                ColumnType::Char { max_bytes } => usize::from(max_bytes),
                _ => 0,
            };
            Ok((string_value(column, bytes, pad_to)?, prefix + len))
        }
        ColumnType::Blob { length_bytes } => {
            let prefix = usize::from(length_bytes);
            let len = usize::try_from(le_uint(take(data, prefix)?)).unwrap_or(usize::MAX);
            let bytes = take(data.get(prefix..).unwrap_or_default(), len)?;
            Ok((string_value(column, bytes, 0)?, prefix + len))
        }
        ColumnType::Geometry { length_bytes } => {
            let prefix = usize::from(length_bytes);
            let len = usize::try_from(le_uint(take(data, prefix)?)).unwrap_or(usize::MAX);
            let bytes = take(data.get(prefix..).unwrap_or_default(), len)?;
            Ok((Value::Bytes(bytes.to_vec()), prefix + len))
        }
        ColumnType::VarCharCompressed { .. } | ColumnType::BlobCompressed { .. } => {
            let used = value_len(column, data)?;
            let (prefix, max_len) = compressed_bounds(column.column_type);
            let field = data.get(prefix..used).unwrap_or_default();
            let bytes = inflate_field(field, max_len).map_err(|reason| ValueError::Decompress {
                reason,
                field: field.iter().take(16).copied().collect(),
            })?;
            Ok((string_value(column, &bytes, 0)?, used))
        }
        ColumnType::Unknown { type_code } => Err(ValueError::UnknownType { type_code }),
        ColumnType::Enum { pack_len } => {
            let n = usize::from(pack_len);
            let index = le_uint(take(data, n)?);
            let index = u16::try_from(index).unwrap_or(u16::MAX);
            let value = match index {
                0 => String::new(),
                i => column.enum_values.get(usize::from(i) - 1).cloned().ok_or(
                    ValueError::EnumIndex {
                        index: i,
                        labels: column.enum_values.len(),
                    },
                )?,
            };
            Ok((Value::Enum(value), n))
        }
        ColumnType::Set { pack_len } => {
            let n = usize::from(pack_len);
            let bits = le_uint(take(data, n)?);
            let mut labels = Vec::new();
            for bit in 0..64u32 {
                if bits & (1u64 << bit) == 0 {
                    continue;
                }
                let label = usize::try_from(bit)
                    .ok()
                    .and_then(|b| column.set_values.get(b))
                    .ok_or(ValueError::SetBit {
                        bit,
                        labels: column.set_values.len(),
                    })?;
                labels.push(label.clone());
            }
            Ok((Value::Set(labels), n))
        }
        ColumnType::Null => Ok((Value::Null, 0)),
    }
}

/// The bytes the non-NULL value of `column` at the start of `data` takes,
/// without building it: strings and blobs are measured (their length
/// prefix and declared maximum checked), not copied or converted from
/// their character set; other types, all a few bytes, are decoded and
/// dropped. For rows that are only counted.
pub(crate) fn value_len(column: &Column, data: &[u8]) -> Result<usize, ValueError> {
    match column.column_type {
        // A compressed VARCHAR's stored field (header byte and compressed
        // data) is at most `max_bytes` long, its prefix sized as VARCHAR's.
        ColumnType::Char { max_bytes }
        | ColumnType::VarChar { max_bytes }
        | ColumnType::VarCharCompressed { max_bytes } => {
            let prefix = if max_bytes > 255 { 2 } else { 1 };
            let len = usize::try_from(le_uint(take(data, prefix)?)).unwrap_or(usize::MAX);
            if len > usize::from(max_bytes) {
                return Err(invalid(format!(
                    "length {len} is above the declared {max_bytes} bytes"
                )));
            }
            take(data.get(prefix..).unwrap_or_default(), len)?;
            Ok(prefix + len)
        }
        ColumnType::Blob { length_bytes }
        | ColumnType::Geometry { length_bytes }
        | ColumnType::BlobCompressed { length_bytes } => {
            let prefix = usize::from(length_bytes);
            let len = usize::try_from(le_uint(take(data, prefix)?)).unwrap_or(usize::MAX);
            take(data.get(prefix..).unwrap_or_default(), len)?;
            Ok(prefix + len)
        }
        // Sized by their pack length alone: a table that is not tailed has
        // no labels to check them against.
        ColumnType::Enum { pack_len } | ColumnType::Set { pack_len } => {
            let n = usize::from(pack_len);
            take(data, n)?;
            Ok(n)
        }
        _ => decode_value(column, data).map(|(_, used)| used),
    }
}

/// The length prefix of a compressed column's field, and the largest value
/// (in bytes) the column can hold once inflated.
fn compressed_bounds(column_type: ColumnType) -> (usize, usize) {
    match column_type {
        ColumnType::VarCharCompressed { max_bytes } => (
            if max_bytes > 255 { 2 } else { 1 },
            // `max_bytes` counts the header byte.
            usize::from(max_bytes).saturating_sub(1),
        ),
        ColumnType::BlobCompressed { length_bytes } => {
            let prefix = usize::from(length_bytes);
            let max = u64::MAX >> (64 - 8 * u32::from(length_bytes.clamp(1, 4)));
            // LONGBLOB's 4 GiB is further bounded by what a server accepts
            // at all: no value is larger than max_allowed_packet's ceiling.
            let max = max.min(MAX_VALUE_BYTES);
            (prefix, usize::try_from(max).unwrap_or(usize::MAX))
        }
        _ => (0, 0),
    }
}

/// Text or bytes, by the column's charset; binary values padded with 0x00
/// to `pad_to` bytes.
fn string_value(column: &Column, bytes: &[u8], pad_to: usize) -> Result<Value, ValueError> {
    match &column.charset {
        Some(Charset::Binary) => {
            let mut v = bytes.to_vec();
            if v.len() < pad_to {
                v.resize(pad_to, 0);
            }
            Ok(Value::Bytes(v))
        }
        charset => decode_text(bytes, charset.as_ref()).map(Value::Text),
    }
}

/// DATE (3 bytes): day in bits 0-4, month in 5-8, year above.
fn date_from_packed(v: u64) -> Result<Value, ValueError> {
    let (day, month, year) = (v & 31, (v >> 5) & 15, v >> 9);
    if month > 12 || year > 9999 {
        return Err(invalid(format!(
            "date {year:04}-{month:02}-{day:02} is out of range"
        )));
    }
    Ok(Value::Date {
        year: u16::try_from(year).unwrap_or(0),
        month: u8::try_from(month).unwrap_or(0),
        day: u8::try_from(day).unwrap_or(0),
    })
}

fn time_value(
    negative: bool,
    hours: u64,
    minutes: u64,
    seconds: u64,
    micros: u64,
    fsp: u8,
) -> Result<Value, ValueError> {
    if hours > u64::from(TIME_MAX_HOUR) || minutes > 59 || seconds > 59 || micros > 999_999 {
        return Err(invalid(format!(
            "time {}{hours}:{minutes:02}:{seconds:02}.{micros:06} is out of range",
            if negative { "-" } else { "" }
        )));
    }
    Ok(Value::Time {
        negative,
        hours: u32::try_from(hours).unwrap_or(0),
        minutes: u8::try_from(minutes).unwrap_or(0),
        seconds: u8::try_from(seconds).unwrap_or(0),
        micros: u32::try_from(micros).unwrap_or(0),
        fsp,
    })
}

#[allow(clippy::too_many_arguments)]
fn datetime_value(
    year: u64,
    month: u64,
    day: u64,
    hour: u64,
    minute: u64,
    second: u64,
    micros: u64,
    fsp: u8,
) -> Result<Value, ValueError> {
    if year > 9999
        || month > 12
        || day > 31
        || hour > 23
        || minute > 59
        || second > 59
        || micros > 999_999
    {
        return Err(invalid(format!(
            "datetime {year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}.{micros:06} is out of range"
        )));
    }
    Ok(Value::DateTime {
        year: u16::try_from(year).unwrap_or(0),
        month: u8::try_from(month).unwrap_or(0),
        day: u8::try_from(day).unwrap_or(0),
        hour: u8::try_from(hour).unwrap_or(0),
        minute: u8::try_from(minute).unwrap_or(0),
        second: u8::try_from(second).unwrap_or(0),
        micros: u32::try_from(micros).unwrap_or(0),
        fsp,
    })
}

/// Bytes of the fractional part of TIME2/DATETIME2/TIMESTAMP2.
fn frac_bytes(fsp: u8) -> usize {
    usize::from(fsp).div_ceil(2)
}

/// TIME2 (`my_time_packed_from_binary`): 3-byte big-endian integer part
/// plus `TIMEF_INT_OFS`, then the fraction; negative times store the
/// fraction reversed (`0x100 - f`) and borrow from the integer part.
fn decode_time2(data: &[u8], fsp: u8) -> Result<(Value, usize), ValueError> {
    let size = 3 + frac_bytes(fsp);
    let b = take(data, size)?;
    let int_part = |b: &[u8]| -> i64 {
        i64::try_from(be_uint(b.get(..3).unwrap_or_default())).unwrap_or(0) - TIMEF_INT_OFS
    };
    let frac_raw = |b: &[u8], n: usize| -> i64 {
        i64::try_from(be_uint(b.get(3..3 + n).unwrap_or_default())).unwrap_or(0)
    };
    let packed: i64 = match fsp {
        0 => int_part(b) << 24,
        1..=4 => {
            let (n, modulus, scale) = if fsp <= 2 {
                (1, 0x100, 10_000)
            } else {
                (2, 0x1_0000, 100)
            };
            let mut int = int_part(b);
            let mut frac = frac_raw(b, n);
            if int < 0 && frac != 0 {
                int += 1;
                frac -= modulus;
            }
            (int << 24) + frac * scale
        }
        _ => i64::try_from(be_uint(b)).unwrap_or(0) - TIMEF_OFS,
    };
    let negative = packed < 0;
    let abs = packed.unsigned_abs();
    let hms = abs >> 24;
    let micros = abs & 0xFF_FFFF;
    if hms >> 22 != 0 {
        return Err(invalid(format!("TIME2 value {packed:#x} is out of range")));
    }
    let value = time_value(
        negative,
        (hms >> 12) & 0x3FF,
        (hms >> 6) & 0x3F,
        hms & 0x3F,
        micros,
        fsp,
    )?;
    Ok((value, size))
}

/// DATETIME2 (`my_datetime_packed_from_binary`): 5-byte big-endian
/// integer part plus `DATETIMEF_INT_OFS` (sign, year*13+month 17 bits, day
/// 5, hour 5, minute 6, second 6), then a signed fraction.
fn decode_datetime2(data: &[u8], fsp: u8) -> Result<(Value, usize), ValueError> {
    let size = 5 + frac_bytes(fsp);
    let b = take(data, size)?;
    let int =
        i64::try_from(be_uint(b.get(..5).unwrap_or_default())).unwrap_or(0) - DATETIMEF_INT_OFS;
    let frac_field = b.get(5..).unwrap_or_default();
    let frac: i64 = match fsp {
        0 => 0,
        1 | 2 => sign_extend(be_uint(frac_field), 8) * 10_000,
        3 | 4 => sign_extend(be_uint(frac_field), 16) * 100,
        _ => sign_extend(be_uint(frac_field), 24),
    };
    let packed = (int << 24)
        .checked_add(frac)
        .ok_or_else(|| invalid("DATETIME2 value is out of range"))?;
    if packed < 0 {
        return Err(invalid(format!("DATETIME2 value {packed} is negative")));
    }
    let packed = packed.unsigned_abs();
    let micros = packed & 0xFF_FFFF;
    let ymdhms = packed >> 24;
    let ymd = ymdhms >> 17;
    let ym = ymd >> 5;
    let hms = ymdhms & 0x1_FFFF;
    let value = datetime_value(
        ym / 13,
        ym % 13,
        ymd & 31,
        hms >> 12,
        (hms >> 6) & 63,
        hms & 63,
        micros,
        fsp,
    )?;
    Ok((value, size))
}

/// TIMESTAMP2 (`my_timestamp_from_binary`): 4-byte big-endian seconds, then
/// the fraction.
fn decode_timestamp2(data: &[u8], fsp: u8) -> Result<(Value, usize), ValueError> {
    let size = 4 + frac_bytes(fsp);
    let b = take(data, size)?;
    let seconds = u32::try_from(be_uint(b.get(..4).unwrap_or_default())).unwrap_or(u32::MAX);
    let frac_field = b.get(4..).unwrap_or_default();
    let micros: i64 = match fsp {
        0 => 0,
        1 | 2 => i64::try_from(be_uint(frac_field)).unwrap_or(0) * 10_000,
        3 | 4 => sign_extend(be_uint(frac_field), 16) * 100,
        _ => sign_extend(be_uint(frac_field), 24),
    };
    let micros = u32::try_from(micros)
        .ok()
        .filter(|m| *m <= 999_999)
        .ok_or_else(|| invalid(format!("TIMESTAMP2 fraction {micros} is out of range")))?;
    Ok((
        Value::Timestamp {
            seconds,
            micros,
            fsp,
        },
        size,
    ))
}

/// Bytes a DECIMAL(precision, scale) takes (`decimal_bin_size`).
pub(crate) fn decimal_size(precision: u8, scale: u8) -> usize {
    let intg = usize::from(precision.saturating_sub(scale));
    let frac = usize::from(scale);
    (intg / DIGITS_PER_GROUP) * 4
        + DIG2BYTES[intg % DIGITS_PER_GROUP]
        + (frac / DIGITS_PER_GROUP) * 4
        + DIG2BYTES[frac % DIGITS_PER_GROUP]
}

/// DECIMAL (`bin2decimal`): big-endian groups of 9 digits in 4 bytes, the
/// integer part's leftover digits first and the fraction's last, in
/// `DIG2BYTES` bytes; the first bit is flipped (set for positive numbers)
/// and negative numbers have every byte inverted.
/// Appends `v` in decimal, zero-padded on the left to `width` digits (what
/// `format!("{v:0width$}")` gives, without the formatting machinery: this
/// runs for every DECIMAL group).
fn push_zero_padded(out: &mut String, v: u64, width: usize) {
    let mut digits = itoa::Buffer::new();
    let text = digits.format(v);
    out.extend(std::iter::repeat_n('0', width.saturating_sub(text.len())));
    out.push_str(text);
}

fn decode_decimal(data: &[u8], precision: u8, scale: u8) -> Result<(Value, usize), ValueError> {
    let size = decimal_size(precision, scale);
    let mut bytes = take(data, size)?.to_vec();
    let Some(first) = bytes.first_mut() else {
        return Err(invalid("DECIMAL with no digits"));
    };
    let negative = *first & 0x80 == 0;
    *first ^= 0x80;
    if negative {
        bytes.iter_mut().for_each(|b| *b ^= 0xFF);
    }

    let intg = usize::from(precision - scale.min(precision));
    let frac = usize::from(scale);
    // (digits, bytes) of each group in order.
    let mut groups: Vec<usize> = Vec::new();
    if intg % DIGITS_PER_GROUP > 0 {
        groups.push(intg % DIGITS_PER_GROUP);
    }
    groups.extend(std::iter::repeat_n(
        DIGITS_PER_GROUP,
        intg / DIGITS_PER_GROUP,
    ));
    let int_groups = groups.len();
    groups.extend(std::iter::repeat_n(
        DIGITS_PER_GROUP,
        frac / DIGITS_PER_GROUP,
    ));
    if frac % DIGITS_PER_GROUP > 0 {
        groups.push(frac % DIGITS_PER_GROUP);
    }

    let mut int_digits = String::with_capacity(intg);
    let mut frac_digits = String::with_capacity(frac);
    let mut pos = 0;
    for (g, digits) in groups.iter().copied().enumerate() {
        let n = DIG2BYTES[digits];
        let group = bytes
            .get(pos..pos + n)
            .ok_or_else(|| invalid("DECIMAL group beyond its size"))?;
        pos += n;
        let v = be_uint(group);
        let limit = 10u64.pow(u32::try_from(digits).unwrap_or(9));
        if v >= limit {
            return Err(invalid(format!(
                "DECIMAL({precision},{scale}) group {v} has more than {digits} digits"
            )));
        }
        let out = if g < int_groups {
            &mut int_digits
        } else {
            &mut frac_digits
        };
        push_zero_padded(out, v, digits);
    }
    let int_digits = int_digits.trim_start_matches('0');
    let is_zero = int_digits.is_empty() && frac_digits.bytes().all(|d| d == b'0');
    let mut text = String::with_capacity(intg + frac + 3);
    if negative && !is_zero {
        text.push('-');
    }
    text.push_str(if int_digits.is_empty() {
        "0"
    } else {
        int_digits
    });
    if frac > 0 {
        text.push('.');
        text.push_str(&frac_digits);
    }
    Ok((Value::Decimal(text), size))
}

#[cfg(test)]
mod tests {
    use super::push_zero_padded;

    #[test]
    fn zero_padding_matches_the_formatter() {
        let cases = [
            (0u64, 0usize),
            (0, 1),
            (0, 9),
            (7, 1),
            (7, 9),
            (123_456_789, 9),
            (42, 2),
            (42, 5),
            (999_999_999, 3),
        ];
        for (v, width) in cases {
            let mut out = String::new();
            push_zero_padded(&mut out, v, width);
            assert_eq!(out, format!("{v:0width$}"), "{v} to {width} digits");
        }
    }
}
