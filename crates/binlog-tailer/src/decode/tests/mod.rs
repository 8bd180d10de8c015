//! Unit tests on hand-built bodies. The builders below write the formats
//! from MariaDB's source (the encoder side: `decimal2bin`,
//! `my_time_packed_to_binary`, ...), independently of the decoders; a few
//! byte vectors are copied from MariaDB's source comments and from a live
//! 10.11.19 binlog.
//!
//! The tests are in one submodule per part: `values`, `rows` (rows
//! events), `events` (the other MariaDB events) and `robustness`
//! (truncated and corrupted bodies). The builders are `pub(crate)` so that
//! other unit tests in the crate can build bodies too.

use std::io::Write;

use flate2::write::ZlibEncoder;
use flate2::Compression;

use super::*;

mod events;
mod robustness;
mod rows;
mod values;

// ---------------------------------------------------------------------------
// Builders.
// ---------------------------------------------------------------------------

pub(crate) fn lenenc(n: u64) -> Vec<u8> {
    match n {
        0..=250 => vec![n as u8],
        251..=0xffff => {
            let mut v = vec![252];
            v.extend_from_slice(&(n as u16).to_le_bytes());
            v
        }
        0x1_0000..=0xff_ffff => {
            let mut v = vec![253];
            v.extend_from_slice(&(n as u32).to_le_bytes()[..3]);
            v
        }
        _ => {
            let mut v = vec![254];
            v.extend_from_slice(&n.to_le_bytes());
            v
        }
    }
}

pub(crate) fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// One column of a test table.
#[derive(Clone)]
pub(crate) struct Col {
    pub(crate) name: &'static str,
    pub(crate) type_code: u8,
    pub(crate) meta: Vec<u8>,
    pub(crate) nullable: bool,
    pub(crate) unsigned: bool,
    /// Collation id for character, ENUM and SET columns.
    pub(crate) collation: Option<u32>,
    pub(crate) labels: Vec<&'static str>,
}

pub(crate) fn col(name: &'static str, type_code: u8, meta: &[u8]) -> Col {
    Col {
        name,
        type_code,
        meta: meta.to_vec(),
        nullable: true,
        unsigned: false,
        collation: None,
        labels: Vec::new(),
    }
}

impl Col {
    pub(crate) fn unsigned(mut self) -> Self {
        self.unsigned = true;
        self
    }
    pub(crate) fn not_null(mut self) -> Self {
        self.nullable = false;
        self
    }
    pub(crate) fn collation(mut self, id: u32) -> Self {
        self.collation = Some(id);
        self
    }
    pub(crate) fn labels(mut self, labels: &[&'static str]) -> Self {
        self.labels = labels.to_vec();
        self
    }
    fn real_type(&self) -> u8 {
        if self.type_code == MYSQL_TYPE_STRING {
            self.meta[0] | 0x30
        } else {
            self.type_code
        }
    }
    fn is_numeric(&self) -> bool {
        [
            MYSQL_TYPE_TINY,
            MYSQL_TYPE_SHORT,
            MYSQL_TYPE_INT24,
            MYSQL_TYPE_LONG,
            MYSQL_TYPE_LONGLONG,
            MYSQL_TYPE_YEAR,
            MYSQL_TYPE_FLOAT,
            MYSQL_TYPE_DOUBLE,
            MYSQL_TYPE_NEWDECIMAL,
        ]
        .contains(&self.type_code)
    }
    fn is_enum_or_set(&self) -> bool {
        self.type_code == MYSQL_TYPE_STRING
            && [MYSQL_TYPE_ENUM, MYSQL_TYPE_SET].contains(&self.meta[0])
    }
    fn is_character(&self) -> bool {
        !self.is_enum_or_set()
            && [
                MYSQL_TYPE_STRING,
                MYSQL_TYPE_VARCHAR,
                MYSQL_TYPE_BLOB,
                MYSQL_TYPE_GEOMETRY,
                MYSQL_TYPE_BLOB_COMPRESSED,
                MYSQL_TYPE_VARCHAR_COMPRESSED,
            ]
            .contains(&self.type_code)
    }
}

// Column constructors with their TABLE_MAP metadata.
pub(crate) fn tiny(name: &'static str) -> Col {
    col(name, MYSQL_TYPE_TINY, &[])
}
pub(crate) fn small(name: &'static str) -> Col {
    col(name, MYSQL_TYPE_SHORT, &[])
}
pub(crate) fn medium(name: &'static str) -> Col {
    col(name, MYSQL_TYPE_INT24, &[])
}
pub(crate) fn int(name: &'static str) -> Col {
    col(name, MYSQL_TYPE_LONG, &[])
}
pub(crate) fn big(name: &'static str) -> Col {
    col(name, MYSQL_TYPE_LONGLONG, &[])
}
pub(crate) fn decimal(name: &'static str, precision: u8, scale: u8) -> Col {
    col(name, MYSQL_TYPE_NEWDECIMAL, &[precision, scale])
}
pub(crate) fn char_col(name: &'static str, max_bytes: u16, collation: u32) -> Col {
    // MariaDB's long-CHAR encoding: bits 8-9 of the length, inverted, in
    // bits 4-5 of the real type byte.
    let byte0 = MYSQL_TYPE_STRING ^ (((max_bytes & 0x300) >> 4) as u8);
    col(name, MYSQL_TYPE_STRING, &[byte0, max_bytes as u8]).collation(collation)
}
pub(crate) fn varchar(name: &'static str, max_bytes: u16, collation: u32) -> Col {
    col(name, MYSQL_TYPE_VARCHAR, &max_bytes.to_le_bytes()).collation(collation)
}
pub(crate) fn blob(name: &'static str, length_bytes: u8, collation: u32) -> Col {
    col(name, MYSQL_TYPE_BLOB, &[length_bytes]).collation(collation)
}
/// VARCHAR(n) COMPRESSED: `max_bytes` is the declared byte length (the
/// metadata adds the header byte, as MariaDB's does).
pub(crate) fn varchar_compressed(name: &'static str, max_bytes: u16, collation: u32) -> Col {
    col(
        name,
        MYSQL_TYPE_VARCHAR_COMPRESSED,
        &(max_bytes + 1).to_le_bytes(),
    )
    .collation(collation)
}
pub(crate) fn blob_compressed(name: &'static str, length_bytes: u8, collation: u32) -> Col {
    col(name, MYSQL_TYPE_BLOB_COMPRESSED, &[length_bytes]).collation(collation)
}
/// A compressed column's field as MariaDB's `compress_zlib` writes it:
/// header `0x80 | raw << 3 | n`, the length in `n` big-endian bytes, then
/// raw deflate data (`raw`, the default) or a zlib stream.
pub(crate) fn enc_compressed_field(value: &[u8], raw: bool) -> Vec<u8> {
    let len = value.len() as u32;
    let n = (4 - len.leading_zeros() / 8).max(1) as usize;
    let mut out = vec![0x80 | if raw { 0x08 } else { 0 } | n as u8];
    out.extend_from_slice(&len.to_be_bytes()[4 - n..]);
    if raw {
        let mut z = flate2::write::DeflateEncoder::new(Vec::new(), Compression::default());
        z.write_all(value).unwrap();
        out.extend(z.finish().unwrap());
    } else {
        let mut z = ZlibEncoder::new(Vec::new(), Compression::default());
        z.write_all(value).unwrap();
        out.extend(z.finish().unwrap());
    }
    out
}
/// A value MariaDB stored uncompressed in a compressed column.
pub(crate) fn enc_stored_field(value: &[u8]) -> Vec<u8> {
    let mut out = vec![0x00];
    out.extend_from_slice(value);
    out
}

pub(crate) fn enum_col(name: &'static str, labels: &[&'static str], collation: u32) -> Col {
    col(name, MYSQL_TYPE_STRING, &[MYSQL_TYPE_ENUM, 1])
        .labels(labels)
        .collation(collation)
}
pub(crate) fn set_col(name: &'static str, labels: &[&'static str], collation: u32) -> Col {
    let pack = labels.len().div_ceil(8).max(1) as u8;
    col(name, MYSQL_TYPE_STRING, &[MYSQL_TYPE_SET, pack])
        .labels(labels)
        .collation(collation)
}
pub(crate) fn fsp_col(name: &'static str, type_code: u8, fsp: u8) -> Col {
    col(name, type_code, &[fsp])
}

pub(crate) const UTF8MB4: u32 = 45; // utf8mb4_general_ci
pub(crate) const LATIN1: u32 = 8; // latin1_swedish_ci
pub(crate) const BINARY: u32 = 63;
pub(crate) const CP1250: u32 = 26; // cp1250_general_ci

/// A TABLE_MAP body with FULL optional metadata (COLUMN_CHARSET form).
pub(crate) fn table_map_body(
    table_id: u64,
    db: &str,
    table: &str,
    cols: &[Col],
    pk: &[u64],
) -> Vec<u8> {
    let (mut b, fields) = table_map_parts(table_id, db, table, cols, pk);
    for (kind, value) in fields {
        b.push(kind);
        b.extend(lenenc(value.len() as u64));
        b.extend(value);
    }
    b
}

/// A TABLE_MAP body without the optional metadata fields of `drop` kinds.
pub(crate) fn table_map_body_without(cols: &[Col], drop: &[u8]) -> Vec<u8> {
    let (mut b, fields) = table_map_parts(7, "db", "t", cols, &[]);
    for (kind, value) in fields.into_iter().filter(|(k, _)| !drop.contains(k)) {
        b.push(kind);
        b.extend(lenenc(value.len() as u64));
        b.extend(value);
    }
    b
}

/// The fixed part of a TABLE_MAP body and its optional metadata fields.
fn table_map_parts(
    table_id: u64,
    db: &str,
    table: &str,
    cols: &[Col],
    pk: &[u64],
) -> (Vec<u8>, Vec<(u8, Vec<u8>)>) {
    let mut fields: Vec<(u8, Vec<u8>)> = Vec::new();
    let mut tlv = |_: &mut Vec<u8>, kind: u8, value: &[u8]| fields.push((kind, value.to_vec()));
    let mut b = Vec::new();
    b.extend_from_slice(&table_id.to_le_bytes()[..6]);
    b.extend_from_slice(&1u16.to_le_bytes());
    b.push(db.len() as u8);
    b.extend_from_slice(db.as_bytes());
    b.push(0);
    b.push(table.len() as u8);
    b.extend_from_slice(table.as_bytes());
    b.push(0);
    b.extend(lenenc(cols.len() as u64));
    b.extend(cols.iter().map(|c| c.type_code));
    let meta: Vec<u8> = cols.iter().flat_map(|c| c.meta.clone()).collect();
    b.extend(lenenc(meta.len() as u64));
    b.extend(meta);
    let mut nulls = vec![0u8; cols.len().div_ceil(8)];
    for (i, c) in cols.iter().enumerate() {
        if c.nullable {
            nulls[i / 8] |= 1 << (i % 8);
        }
    }
    b.extend(nulls);

    let numeric: Vec<&Col> = cols.iter().filter(|c| c.is_numeric()).collect();
    if !numeric.is_empty() {
        let mut bits = vec![0u8; numeric.len().div_ceil(8)];
        for (k, c) in numeric.iter().enumerate() {
            if c.unsigned {
                bits[k / 8] |= 0x80 >> (k % 8);
            }
        }
        tlv(&mut b, META_SIGNEDNESS, &bits);
    }
    let chars: Vec<u8> = cols
        .iter()
        .filter(|c| c.is_character())
        .flat_map(|c| lenenc(u64::from(c.collation.unwrap())))
        .collect();
    if !chars.is_empty() {
        tlv(&mut b, META_COLUMN_CHARSET, &chars);
    }
    let mut names = Vec::new();
    for c in cols {
        names.extend(lenenc(c.name.len() as u64));
        names.extend_from_slice(c.name.as_bytes());
    }
    tlv(&mut b, META_COLUMN_NAME, &names);
    for (kind, real) in [
        (META_SET_STR_VALUE, MYSQL_TYPE_SET),
        (META_ENUM_STR_VALUE, MYSQL_TYPE_ENUM),
    ] {
        let mut v = Vec::new();
        for c in cols
            .iter()
            .filter(|c| c.is_enum_or_set() && c.real_type() == real)
        {
            v.extend(lenenc(c.labels.len() as u64));
            for l in &c.labels {
                let bytes = if c.collation == Some(LATIN1) {
                    encoding_rs::WINDOWS_1252.encode(l).0.into_owned()
                } else {
                    l.as_bytes().to_vec()
                };
                v.extend(lenenc(bytes.len() as u64));
                v.extend(bytes);
            }
        }
        if !v.is_empty() {
            tlv(&mut b, kind, &v);
        }
    }
    if !pk.is_empty() {
        let v: Vec<u8> = pk.iter().flat_map(|i| lenenc(*i)).collect();
        tlv(&mut b, META_SIMPLE_PRIMARY_KEY, &v);
    }
    let es: Vec<u8> = cols
        .iter()
        .filter(|c| c.is_enum_or_set())
        .flat_map(|c| lenenc(u64::from(c.collation.unwrap())))
        .collect();
    if !es.is_empty() {
        tlv(&mut b, META_ENUM_AND_SET_COLUMN_CHARSET, &es);
    }
    (b, fields)
}

/// One row image: an entry per *present* column, `None` for NULL.
pub(crate) fn image(values: &[Option<Vec<u8>>]) -> Vec<u8> {
    let mut nulls = vec![0u8; values.len().div_ceil(8)];
    let mut data = Vec::new();
    for (i, v) in values.iter().enumerate() {
        match v {
            None => nulls[i / 8] |= 1 << (i % 8),
            Some(bytes) => data.extend_from_slice(bytes),
        }
    }
    nulls.extend(data);
    nulls
}

pub(crate) fn bitmap(present: &[bool]) -> Vec<u8> {
    let mut b = vec![0u8; present.len().div_ceil(8)];
    for (i, p) in present.iter().enumerate() {
        if *p {
            b[i / 8] |= 1 << (i % 8);
        }
    }
    b
}

/// A rows event body; `rows` is the (uncompressed) rows data.
pub(crate) fn rows_body(
    event_type: u8,
    table_id: u64,
    present: &[bool],
    present_after: Option<&[bool]>,
    rows: &[u8],
) -> Vec<u8> {
    let v2 = matches!(event_type, 30..=32 | 169..=171);
    let compressed = event_type >= WRITE_ROWS_COMPRESSED_EVENT_V1;
    let mut b = Vec::new();
    b.extend_from_slice(&table_id.to_le_bytes()[..6]);
    b.extend_from_slice(&ROWS_FLAG_STMT_END.to_le_bytes());
    if v2 {
        // An extra header with one (unknown to us) 3-byte chunk.
        b.extend_from_slice(&5u16.to_le_bytes());
        b.extend_from_slice(&[0x00, 0x01, 0xAA]);
    }
    b.extend(lenenc(present.len() as u64));
    b.extend(bitmap(present));
    if let Some(after) = present_after {
        b.extend(bitmap(after));
    }
    if compressed {
        b.extend(compress_record(rows));
    } else {
        b.extend_from_slice(rows);
    }
    b
}

/// MariaDB's compressed record: header, big-endian length, zlib stream.
pub(crate) fn compress_record(data: &[u8]) -> Vec<u8> {
    let len = data.len() as u32;
    let len_bytes: Vec<u8> = if len & 0xFF00_0000 != 0 {
        len.to_be_bytes().to_vec()
    } else if len & 0x00FF_0000 != 0 {
        len.to_be_bytes()[1..].to_vec()
    } else if len & 0x0000_FF00 != 0 {
        len.to_be_bytes()[2..].to_vec()
    } else {
        len.to_be_bytes()[3..].to_vec()
    };
    let mut out = vec![0x80 | len_bytes.len() as u8];
    out.extend(len_bytes);
    let mut z = ZlibEncoder::new(Vec::new(), Compression::default());
    z.write_all(data).unwrap();
    out.extend(z.finish().unwrap());
    out
}

// Value encoders (the writer side of each format).

pub(crate) fn le(v: u64, n: usize) -> Vec<u8> {
    v.to_le_bytes()[..n].to_vec()
}
pub(crate) fn be(v: u64, n: usize) -> Vec<u8> {
    v.to_be_bytes()[8 - n..].to_vec()
}

const DIG2BYTES: [usize; 10] = [0, 1, 1, 2, 2, 3, 3, 4, 4, 4];

/// `decimal2bin` for a decimal literal.
pub(crate) fn enc_decimal(text: &str, precision: u8, scale: u8) -> Vec<u8> {
    let negative = text.starts_with('-');
    let t = text.trim_start_matches('-');
    let (ip, fp) = t.split_once('.').unwrap_or((t, ""));
    let ip = ip.trim_start_matches('0');
    let intg = usize::from(precision - scale);
    let frac = usize::from(scale);
    let ip = format!("{ip:0>intg$}");
    let fp = format!("{fp:0<frac$}");
    assert_eq!(
        (ip.len(), fp.len()),
        (intg, frac),
        "{text} fits DECIMAL({precision},{scale})"
    );
    let mut out = Vec::new();
    let mut push = |digits: &str| {
        let v: u64 = digits.parse().unwrap();
        out.extend(be(v, DIG2BYTES[digits.len()]));
    };
    let lead = intg % 9;
    if lead > 0 {
        push(&ip[..lead]);
    }
    for chunk in ip.as_bytes()[lead..].chunks(9) {
        push(std::str::from_utf8(chunk).unwrap());
    }
    for chunk in fp.as_bytes().chunks(9) {
        push(std::str::from_utf8(chunk).unwrap());
    }
    out[0] ^= 0x80;
    if negative {
        out.iter_mut().for_each(|b| *b ^= 0xFF);
    }
    out
}

/// `my_time_packed_to_binary`.
pub(crate) fn enc_time2(negative: bool, h: i64, m: i64, s: i64, us: i64, fsp: u8) -> Vec<u8> {
    let mut packed = (((h << 12) | (m << 6) | s) << 24) + us;
    if negative {
        packed = -packed;
    }
    let int = packed >> 24;
    let frac = packed % (1 << 24);
    let mut out = be((0x80_0000 + int) as u64, 3);
    match fsp {
        0 => {}
        1 | 2 => out.push((frac / 10000) as i8 as u8),
        3 | 4 => out.extend(((frac / 100) as i16 as u16).to_be_bytes()),
        _ => out = be((packed + 0x8000_0000_0000) as u64, 6),
    }
    out
}

/// `my_datetime_packed_to_binary`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn enc_datetime2(
    y: i64,
    mo: i64,
    d: i64,
    h: i64,
    mi: i64,
    s: i64,
    us: i64,
    fsp: u8,
) -> Vec<u8> {
    let ymd = ((y * 13 + mo) << 5) | d;
    let hms = (h << 12) | (mi << 6) | s;
    let packed = (((ymd << 17) | hms) << 24) + us;
    let mut out = be(((packed >> 24) + 0x80_0000_0000) as u64, 5);
    match fsp {
        0 => {}
        1 | 2 => out.push((us / 10000) as u8),
        3 | 4 => out.extend(((us / 100) as u16).to_be_bytes()),
        _ => out.extend(be(us as u64, 3)),
    }
    out
}

/// `my_timestamp_to_binary`.
pub(crate) fn enc_timestamp2(seconds: u32, us: u32, fsp: u8) -> Vec<u8> {
    let mut out = seconds.to_be_bytes().to_vec();
    match fsp {
        0 => {}
        1 | 2 => out.push((us / 10000) as u8),
        3 | 4 => out.extend(((us / 100) as u16).to_be_bytes()),
        _ => out.extend(be(u64::from(us), 3)),
    }
    out
}

/// CHAR/VARCHAR value: 1-byte length when the declared length < 256.
pub(crate) fn enc_str(bytes: &[u8], max_bytes: u16) -> Vec<u8> {
    let mut out = if max_bytes > 255 {
        (bytes.len() as u16).to_le_bytes().to_vec()
    } else {
        vec![bytes.len() as u8]
    };
    out.extend_from_slice(bytes);
    out
}

pub(crate) fn enc_blob(bytes: &[u8], length_bytes: usize) -> Vec<u8> {
    let mut out = le(bytes.len() as u64, length_bytes);
    out.extend_from_slice(bytes);
    out
}

pub(crate) fn map(cols: &[Col]) -> TableMap {
    let body = table_map_body(42, "shop", "t", cols, &[]);
    parse_table_map(&body, &CharsetMap::builtin()).unwrap()
}

/// Decodes one insert row of `values` (one per column, all present).
pub(crate) fn decode_row(
    cols: &[Col],
    values: &[Option<Vec<u8>>],
) -> Result<Vec<Option<Value>>, DecodeError> {
    let table = map(cols);
    let present = vec![true; cols.len()];
    let body = rows_body(WRITE_ROWS_EVENT_V1, 42, &present, None, &image(values));
    let ev = parse_rows(WRITE_ROWS_EVENT_V1, &body, &table)?;
    assert_eq!(ev.rows.len(), 1);
    // Counting steps over each value by its length alone: it must take the
    // same bytes the decoder took, or it would find another row count.
    assert_eq!(
        count_rows(WRITE_ROWS_EVENT_V1, &body, &table).map_err(|e| e.to_string()),
        Ok((RowsKind::Insert, 1)),
        "counting agrees with decoding"
    );
    Ok(ev.rows.into_iter().next().unwrap().after.unwrap())
}

/// Decodes one value of a one-column table.
pub(crate) fn one(c: Col, bytes: Vec<u8>) -> Result<Value, DecodeError> {
    let row = decode_row(&[c], &[Some(bytes)])?;
    Ok(row.into_iter().next().unwrap().unwrap())
}

pub(crate) fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}
