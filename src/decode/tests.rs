//! Unit tests on hand-built bodies. The builders below write the formats
//! from MariaDB's source (the encoder side: `decimal2bin`,
//! `my_time_packed_to_binary`, ...), independently of the decoders; a few
//! byte vectors are copied from MariaDB's source comments and from a live
//! 10.11.19 binlog.

use std::io::Write;

use flate2::write::ZlibEncoder;
use flate2::Compression;

use super::*;

// ---------------------------------------------------------------------------
// Builders.
// ---------------------------------------------------------------------------

fn lenenc(n: u64) -> Vec<u8> {
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

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// One column of a test table.
#[derive(Clone)]
struct Col {
    name: &'static str,
    type_code: u8,
    meta: Vec<u8>,
    nullable: bool,
    unsigned: bool,
    /// Collation id for character, ENUM and SET columns.
    collation: Option<u32>,
    labels: Vec<&'static str>,
}

fn col(name: &'static str, type_code: u8, meta: &[u8]) -> Col {
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
    fn unsigned(mut self) -> Self {
        self.unsigned = true;
        self
    }
    fn not_null(mut self) -> Self {
        self.nullable = false;
        self
    }
    fn collation(mut self, id: u32) -> Self {
        self.collation = Some(id);
        self
    }
    fn labels(mut self, labels: &[&'static str]) -> Self {
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
            ]
            .contains(&self.type_code)
    }
}

// Column constructors with their TABLE_MAP metadata.
fn tiny(name: &'static str) -> Col {
    col(name, MYSQL_TYPE_TINY, &[])
}
fn small(name: &'static str) -> Col {
    col(name, MYSQL_TYPE_SHORT, &[])
}
fn medium(name: &'static str) -> Col {
    col(name, MYSQL_TYPE_INT24, &[])
}
fn int(name: &'static str) -> Col {
    col(name, MYSQL_TYPE_LONG, &[])
}
fn big(name: &'static str) -> Col {
    col(name, MYSQL_TYPE_LONGLONG, &[])
}
fn decimal(name: &'static str, precision: u8, scale: u8) -> Col {
    col(name, MYSQL_TYPE_NEWDECIMAL, &[precision, scale])
}
fn char_col(name: &'static str, max_bytes: u16, collation: u32) -> Col {
    // MariaDB's long-CHAR encoding: bits 8-9 of the length, inverted, in
    // bits 4-5 of the real type byte.
    let byte0 = MYSQL_TYPE_STRING ^ (((max_bytes & 0x300) >> 4) as u8);
    col(name, MYSQL_TYPE_STRING, &[byte0, max_bytes as u8]).collation(collation)
}
fn varchar(name: &'static str, max_bytes: u16, collation: u32) -> Col {
    col(name, MYSQL_TYPE_VARCHAR, &max_bytes.to_le_bytes()).collation(collation)
}
fn blob(name: &'static str, length_bytes: u8, collation: u32) -> Col {
    col(name, MYSQL_TYPE_BLOB, &[length_bytes]).collation(collation)
}
fn enum_col(name: &'static str, labels: &[&'static str], collation: u32) -> Col {
    col(name, MYSQL_TYPE_STRING, &[MYSQL_TYPE_ENUM, 1])
        .labels(labels)
        .collation(collation)
}
fn set_col(name: &'static str, labels: &[&'static str], collation: u32) -> Col {
    let pack = labels.len().div_ceil(8).max(1) as u8;
    col(name, MYSQL_TYPE_STRING, &[MYSQL_TYPE_SET, pack])
        .labels(labels)
        .collation(collation)
}
fn fsp_col(name: &'static str, type_code: u8, fsp: u8) -> Col {
    col(name, type_code, &[fsp])
}

const UTF8MB4: u32 = 45; // utf8mb4_general_ci
const LATIN1: u32 = 8; // latin1_swedish_ci
const BINARY: u32 = 63;
const CP1250: u32 = 26; // cp1250_general_ci

/// A TABLE_MAP body with FULL optional metadata (COLUMN_CHARSET form).
fn table_map_body(table_id: u64, db: &str, table: &str, cols: &[Col], pk: &[u64]) -> Vec<u8> {
    let (mut b, fields) = table_map_parts(table_id, db, table, cols, pk);
    for (kind, value) in fields {
        b.push(kind);
        b.extend(lenenc(value.len() as u64));
        b.extend(value);
    }
    b
}

/// A TABLE_MAP body without the optional metadata fields of `drop` kinds.
fn table_map_body_without(cols: &[Col], drop: &[u8]) -> Vec<u8> {
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
fn image(values: &[Option<Vec<u8>>]) -> Vec<u8> {
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

fn bitmap(present: &[bool]) -> Vec<u8> {
    let mut b = vec![0u8; present.len().div_ceil(8)];
    for (i, p) in present.iter().enumerate() {
        if *p {
            b[i / 8] |= 1 << (i % 8);
        }
    }
    b
}

/// A rows event body; `rows` is the (uncompressed) rows data.
fn rows_body(
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
fn compress_record(data: &[u8]) -> Vec<u8> {
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

fn le(v: u64, n: usize) -> Vec<u8> {
    v.to_le_bytes()[..n].to_vec()
}
fn be(v: u64, n: usize) -> Vec<u8> {
    v.to_be_bytes()[8 - n..].to_vec()
}

const DIG2BYTES: [usize; 10] = [0, 1, 1, 2, 2, 3, 3, 4, 4, 4];

/// `decimal2bin` for a decimal literal.
fn enc_decimal(text: &str, precision: u8, scale: u8) -> Vec<u8> {
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
fn enc_time2(negative: bool, h: i64, m: i64, s: i64, us: i64, fsp: u8) -> Vec<u8> {
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
fn enc_datetime2(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64, us: i64, fsp: u8) -> Vec<u8> {
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
fn enc_timestamp2(seconds: u32, us: u32, fsp: u8) -> Vec<u8> {
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
fn enc_str(bytes: &[u8], max_bytes: u16) -> Vec<u8> {
    let mut out = if max_bytes > 255 {
        (bytes.len() as u16).to_le_bytes().to_vec()
    } else {
        vec![bytes.len() as u8]
    };
    out.extend_from_slice(bytes);
    out
}

fn enc_blob(bytes: &[u8], length_bytes: usize) -> Vec<u8> {
    let mut out = le(bytes.len() as u64, length_bytes);
    out.extend_from_slice(bytes);
    out
}

fn map(cols: &[Col]) -> TableMap {
    let body = table_map_body(42, "shop", "t", cols, &[]);
    parse_table_map(&body, &CharsetMap::builtin()).unwrap()
}

/// Decodes one insert row of `values` (one per column, all present).
fn decode_row(cols: &[Col], values: &[Option<Vec<u8>>]) -> Result<Vec<Option<Value>>, DecodeError> {
    let table = map(cols);
    let present = vec![true; cols.len()];
    let body = rows_body(WRITE_ROWS_EVENT_V1, 42, &present, None, &image(values));
    let ev = parse_rows(WRITE_ROWS_EVENT_V1, &body, &table)?;
    assert_eq!(ev.rows.len(), 1);
    Ok(ev.rows.into_iter().next().unwrap().after.unwrap())
}

/// Decodes one value of a one-column table.
fn one(c: Col, bytes: Vec<u8>) -> Result<Value, DecodeError> {
    let row = decode_row(&[c], &[Some(bytes)])?;
    Ok(row.into_iter().next().unwrap().unwrap())
}

fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

// ---------------------------------------------------------------------------
// Values.
// ---------------------------------------------------------------------------

#[test]
fn integers_signed_and_unsigned_at_their_limits() {
    let cols = [
        tiny("ts"),
        tiny("tu").unsigned(),
        small("ss"),
        small("su").unsigned(),
        medium("ms"),
        medium("mu").unsigned(),
        int("is"),
        int("iu").unsigned(),
        big("bs"),
        big("bu").unsigned(),
    ];
    let row = |v: [(u64, usize); 10]| -> Vec<Option<Vec<u8>>> {
        v.iter().map(|(x, n)| Some(le(*x, *n))).collect()
    };
    let sizes = [1, 1, 2, 2, 3, 3, 4, 4, 8, 8];
    let with = |vals: [u64; 10]| row(std::array::from_fn(|i| (vals[i], sizes[i])));

    // Minimum: signed → most negative (two's complement), unsigned → 0.
    let min = decode_row(
        &cols,
        &with([0x80, 0, 0x8000, 0, 0x80_0000, 0, 0x8000_0000, 0, 1 << 63, 0]),
    )
    .unwrap();
    let expected_min = [
        Value::Int(-128),
        Value::UInt(0),
        Value::Int(-32768),
        Value::UInt(0),
        Value::Int(-8388608),
        Value::UInt(0),
        Value::Int(-2147483648),
        Value::UInt(0),
        Value::Int(i64::MIN),
        Value::UInt(0),
    ];
    assert_eq!(min, expected_min.map(Some).to_vec());

    let max = decode_row(
        &cols,
        &with([
            0x7f,
            0xff,
            0x7fff,
            0xffff,
            0x7f_ffff,
            0xff_ffff,
            0x7fff_ffff,
            0xffff_ffff,
            i64::MAX as u64,
            u64::MAX,
        ]),
    )
    .unwrap();
    let expected_max = [
        Value::Int(127),
        Value::UInt(255),
        Value::Int(32767),
        Value::UInt(65535),
        Value::Int(8388607),
        Value::UInt(16777215),
        Value::Int(2147483647),
        Value::UInt(4294967295),
        Value::Int(i64::MAX),
        Value::UInt(u64::MAX),
    ];
    assert_eq!(max, expected_max.map(Some).to_vec());

    // -1 everywhere: all bits set; MEDIUMINT sign-extends from 24 bits.
    let minus_one = decode_row(&cols, &with([u64::MAX; 10])).unwrap();
    assert_eq!(minus_one[4], Some(Value::Int(-1)));
    assert_eq!(minus_one[5], Some(Value::UInt(16777215)));
    assert_eq!(minus_one[0], Some(Value::Int(-1)));
    assert_eq!(minus_one[8], Some(Value::Int(-1)));
    assert_eq!(minus_one[9], Some(Value::UInt(u64::MAX)));
}

#[test]
fn integers_without_signedness_metadata_are_signed() {
    let all = [META_SIGNEDNESS, META_COLUMN_NAME, META_COLUMN_CHARSET];
    let body = table_map_body_without(&[medium("m").unsigned()], &all);
    let table = parse_table_map(&body, &CharsetMap::builtin()).unwrap();
    assert_eq!(table.columns[0].unsigned, None);
    assert_eq!(table.columns[0].name, None);
    let rows = rows_body(
        WRITE_ROWS_EVENT_V1,
        7,
        &[true],
        None,
        &image(&[Some(le(0xff_fffb, 3))]),
    );
    let ev = parse_rows(WRITE_ROWS_EVENT_V1, &rows, &table).unwrap();
    assert_eq!(ev.rows[0].after.as_ref().unwrap()[0], Some(Value::Int(-5)));
}

#[test]
fn decimal_vectors_from_mariadb_source() {
    // strings/decimal.c: 1234567890.1234 as DECIMAL(14,4).
    assert_eq!(enc_decimal("1234567890.1234", 14, 4), hex("810DFB38D204D2"));
    assert_eq!(
        one(decimal("d", 14, 4), hex("810DFB38D204D2")).unwrap(),
        Value::Decimal("1234567890.1234".into())
    );
    assert_eq!(
        one(decimal("d", 14, 4), hex("7EF204C72DFB2D")).unwrap(),
        Value::Decimal("-1234567890.1234".into())
    );
}

#[test]
fn decimals_round_trip_exactly() {
    let cases: &[(&str, u8, u8)] = &[
        ("0.00", 10, 2),
        ("-12.30", 10, 2),
        ("12.30", 10, 2),
        ("-0.01", 10, 2),
        ("0.01", 10, 2),
        ("99999999.99", 10, 2),
        ("-99999999.99", 10, 2),
        ("0", 5, 0),
        ("-12345", 5, 0),
        ("99999", 5, 0),
        ("1", 1, 0),
        ("-9", 1, 0),
        ("0.5", 1, 1),
        ("-0.123456789", 9, 9),
        ("0.1234567891", 10, 10),
        ("123456789", 9, 0),
        ("-1234567890", 10, 0),
        ("99999999999999999999.99", 22, 2),
        ("-99999999999999999999.99", 22, 2),
        (
            "12345678901234567890123456789012345.123456789012345678901234567890",
            65,
            30,
        ),
        (
            "-99999999999999999999999999999999999.999999999999999999999999999999",
            65,
            30,
        ),
        ("0.000000000000000000000000000001", 65, 30),
        ("-0.000000000000000000000000000001", 65, 30),
        ("0.00000000000000000000000000000000000001", 38, 38),
        ("-1.5", 65, 1),
    ];
    for &(text, p, s) in cases {
        let bytes = enc_decimal(text, p, s);
        assert_eq!(
            bytes.len(),
            super::value::decimal_size(p, s),
            "size of DECIMAL({p},{s})"
        );
        assert_eq!(
            one(decimal("d", p, s), bytes).unwrap(),
            Value::Decimal(text.to_owned()),
            "DECIMAL({p},{s}) {text}"
        );
    }
    // A 9-digit group above 999999999 is corrupt, not a number.
    let mut bad = enc_decimal("0", 18, 0);
    bad[4..8].copy_from_slice(&1_000_000_000u32.to_be_bytes());
    let err = one(decimal("price", 18, 0), bad).unwrap_err().to_string();
    assert!(
        err.contains("`price` (decimal)") && err.contains("digits"),
        "{err}"
    );
}

#[test]
fn floats_are_little_endian_ieee() {
    let f = |v: f32| one(col("f", MYSQL_TYPE_FLOAT, &[4]), v.to_le_bytes().to_vec()).unwrap();
    let d = |v: f64| one(col("d", MYSQL_TYPE_DOUBLE, &[8]), v.to_le_bytes().to_vec()).unwrap();
    assert_eq!(f(1.5), Value::Float(1.5));
    assert_eq!(f(-3.25e10), Value::Float(-3.25e10));
    assert_eq!(f(f32::MIN_POSITIVE), Value::Float(f32::MIN_POSITIVE));
    assert_eq!(d(0.1), Value::Double(0.1));
    assert_eq!(d(-1.7976931348623157e308), Value::Double(f64::MIN));
    match d(-0.0) {
        Value::Double(x) => assert!(x == 0.0 && x.is_sign_negative()),
        other => panic!("{other:?}"),
    }
    // FLOAT metadata other than its pack length is refused.
    let body = table_map_body(1, "d", "t", &[col("f", MYSQL_TYPE_FLOAT, &[8])], &[]);
    assert!(parse_table_map(&body, &CharsetMap::builtin()).is_err());
}

#[test]
fn bits_are_big_endian() {
    // BIT(1): metadata (bits % 8, bytes) = (1, 0).
    assert_eq!(
        one(col("b", MYSQL_TYPE_BIT, &[1, 0]), vec![1]).unwrap(),
        Value::Bit { bits: 1, value: 1 }
    );
    assert_eq!(
        one(col("b", MYSQL_TYPE_BIT, &[0, 8]), vec![0xff; 8]).unwrap(),
        Value::Bit {
            bits: 64,
            value: u64::MAX
        }
    );
    assert_eq!(
        one(col("b", MYSQL_TYPE_BIT, &[0, 8]), hex("8000000000000001")).unwrap(),
        Value::Bit {
            bits: 64,
            value: 0x8000_0000_0000_0001
        }
    );
    assert_eq!(
        one(col("b", MYSQL_TYPE_BIT, &[2, 1]), hex("0301")).unwrap(),
        Value::Bit {
            bits: 10,
            value: 0x301
        }
    );
    assert!(one(col("b", MYSQL_TYPE_BIT, &[2, 1]), hex("0401")).is_err());
}

#[test]
fn years_and_dates() {
    let y = |v: u8| one(col("y", MYSQL_TYPE_YEAR, &[]), vec![v]).unwrap();
    assert_eq!(y(0), Value::Year(0));
    assert_eq!(y(1), Value::Year(1901));
    assert_eq!(y(255), Value::Year(2155));

    let date = |y: u64, m: u64, d: u64| le((y << 9) | (m << 5) | d, 3);
    let d = |bytes: Vec<u8>| one(col("d", MYSQL_TYPE_DATE, &[]), bytes);
    assert_eq!(
        d(date(2024, 2, 29)).unwrap(),
        Value::Date {
            year: 2024,
            month: 2,
            day: 29
        }
    );
    assert_eq!(
        d(date(0, 0, 0)).unwrap(),
        Value::Date {
            year: 0,
            month: 0,
            day: 0
        }
    );
    assert_eq!(
        d(date(9999, 12, 31)).unwrap(),
        Value::Date {
            year: 9999,
            month: 12,
            day: 31
        }
    );
    assert!(d(date(2024, 13, 1)).is_err());
    // NEWDATE (14) has the same layout.
    assert_eq!(
        one(col("d", MYSQL_TYPE_NEWDATE, &[]), date(1999, 12, 31)).unwrap(),
        Value::Date {
            year: 1999,
            month: 12,
            day: 31
        }
    );
}

fn time(negative: bool, hours: u32, minutes: u8, seconds: u8, micros: u32, fsp: u8) -> Value {
    Value::Time {
        negative,
        hours,
        minutes,
        seconds,
        micros,
        fsp,
    }
}

#[test]
fn time2_vectors_from_compat56() {
    // sql/compat56.cc's table for TIME(2): disk value → time.
    let t = |bytes: &str| one(fsp_col("t", MYSQL_TYPE_TIME2, 2), hex(bytes)).unwrap();
    assert_eq!(t("80000000"), time(false, 0, 0, 0, 0, 2));
    assert_eq!(t("7FFFFFFF"), time(true, 0, 0, 0, 10_000, 2));
    assert_eq!(t("7FFFFF9D"), time(true, 0, 0, 0, 990_000, 2));
    assert_eq!(t("7FFFFF00"), time(true, 0, 0, 1, 0, 2));
    assert_eq!(t("7FFFFEFF"), time(true, 0, 0, 1, 10_000, 2));
    assert_eq!(t("7FFFFEF6"), time(true, 0, 0, 1, 100_000, 2));
    // Seen in a live 10.11.19 binlog: TIME(3) '-00:00:00.001'.
    assert_eq!(
        one(fsp_col("t", MYSQL_TYPE_TIME2, 3), hex("7ffffffff6")).unwrap(),
        time(true, 0, 0, 0, 1000, 3)
    );
}

#[test]
fn time2_every_precision_round_trips() {
    // (negative, h, m, s, micros) at each fsp; micros fit the precision.
    let cases: &[(bool, i64, i64, i64, i64)] = &[
        (false, 0, 0, 0, 0),
        (false, 838, 59, 59, 999_999),
        (true, 838, 59, 59, 999_999),
        (true, 0, 0, 0, 1),
        (true, 0, 0, 0, 100_000),
        (true, 12, 34, 56, 500_000),
        (false, 1, 2, 3, 120_000),
        (true, 1, 0, 0, 10_000),
    ];
    for fsp in 0..=6u8 {
        let unit = 10i64.pow(6 - u32::from(fsp));
        for &(neg, h, m, s, us) in cases {
            let us = us / unit * unit; // truncated to the precision
            let bytes = enc_time2(neg, h, m, s, us, fsp);
            assert_eq!(bytes.len(), 3 + usize::from(fsp).div_ceil(2));
            let got = one(fsp_col("t", MYSQL_TYPE_TIME2, fsp), bytes).unwrap();
            let negative = neg && (h, m, s, us) != (0, 0, 0, 0);
            assert_eq!(
                got,
                time(negative, h as u32, m as u8, s as u8, us as u32, fsp),
                "TIME({fsp}) {}{h}:{m}:{s}.{us}",
                if neg { "-" } else { "" }
            );
        }
    }
    assert_eq!(
        one(
            fsp_col("t", MYSQL_TYPE_TIME2, 0),
            enc_time2(true, 838, 59, 59, 0, 0)
        )
        .unwrap(),
        time(true, 838, 59, 59, 0, 0)
    );
    assert!(one(
        fsp_col("t", MYSQL_TYPE_TIME2, 0),
        enc_time2(false, 839, 0, 0, 0, 0)
    )
    .is_err());
    assert!(one(
        fsp_col("t", MYSQL_TYPE_TIME2, 0),
        enc_time2(false, 1, 60, 0, 0, 0)
    )
    .is_err());
}

#[allow(clippy::too_many_arguments)]
fn datetime(y: u16, mo: u8, d: u8, h: u8, mi: u8, s: u8, micros: u32, fsp: u8) -> Value {
    Value::DateTime {
        year: y,
        month: mo,
        day: d,
        hour: h,
        minute: mi,
        second: s,
        micros,
        fsp,
    }
}

#[test]
fn datetime2_every_precision_round_trips() {
    let cases: &[(i64, i64, i64, i64, i64, i64, i64)] = &[
        (0, 0, 0, 0, 0, 0, 0),
        (2024, 2, 29, 23, 59, 58, 123_456),
        (1000, 1, 1, 0, 0, 0, 0),
        (9999, 12, 31, 23, 59, 59, 999_999),
        (2024, 0, 0, 12, 0, 0, 500_000),
    ];
    for fsp in 0..=6u8 {
        let unit = 10i64.pow(6 - u32::from(fsp));
        for &(y, mo, d, h, mi, s, us) in cases {
            let us = us / unit * unit;
            let bytes = enc_datetime2(y, mo, d, h, mi, s, us, fsp);
            assert_eq!(bytes.len(), 5 + usize::from(fsp).div_ceil(2));
            assert_eq!(
                one(fsp_col("dt", MYSQL_TYPE_DATETIME2, fsp), bytes).unwrap(),
                datetime(y as u16, mo as u8, d as u8, h as u8, mi as u8, s as u8, us as u32, fsp),
                "DATETIME({fsp})"
            );
        }
    }
    // The zero datetime is the offset alone.
    assert_eq!(
        one(fsp_col("dt", MYSQL_TYPE_DATETIME2, 0), hex("8000000000")).unwrap(),
        datetime(0, 0, 0, 0, 0, 0, 0, 0)
    );
    // Below the offset (negative) is corrupt.
    assert!(one(fsp_col("dt", MYSQL_TYPE_DATETIME2, 0), hex("7FFFFFFFFF")).is_err());
    assert!(one(
        fsp_col("dt", MYSQL_TYPE_DATETIME2, 0),
        enc_datetime2(2024, 1, 1, 24, 0, 0, 0, 0)
    )
    .is_err());
}

#[test]
fn timestamp2_every_precision() {
    for fsp in 0..=6u8 {
        let unit = 10u32.pow(6 - u32::from(fsp));
        for (seconds, us) in [
            (0u32, 0u32),
            (1_700_000_000, 999_999),
            (u32::MAX, 123_456),
            (1, 10),
        ] {
            let us = us / unit * unit;
            let bytes = enc_timestamp2(seconds, us, fsp);
            assert_eq!(bytes.len(), 4 + usize::from(fsp).div_ceil(2));
            assert_eq!(
                one(fsp_col("ts", MYSQL_TYPE_TIMESTAMP2, fsp), bytes).unwrap(),
                Value::Timestamp {
                    seconds,
                    micros: us,
                    fsp
                }
            );
        }
    }
    // A fraction of a million microseconds or more is corrupt.
    assert!(one(
        fsp_col("ts", MYSQL_TYPE_TIMESTAMP2, 6),
        hex("00000001 0F4240")
    )
    .is_err());
    // fsp above 6 is refused in the TABLE_MAP.
    let body = table_map_body(1, "d", "t", &[fsp_col("ts", MYSQL_TYPE_TIMESTAMP2, 7)], &[]);
    assert!(parse_table_map(&body, &CharsetMap::builtin()).is_err());
}

#[test]
fn old_temporal_types() {
    let t = |v: i64| one(col("t", MYSQL_TYPE_TIME, &[]), le(v as u64, 3)).unwrap();
    assert_eq!(t(-8385959), time(true, 838, 59, 59, 0, 0));
    assert_eq!(t(123456), time(false, 12, 34, 56, 0, 0));
    assert_eq!(t(0), time(false, 0, 0, 0, 0, 0));
    assert_eq!(
        one(col("dt", MYSQL_TYPE_DATETIME, &[]), le(20240229235958, 8)).unwrap(),
        datetime(2024, 2, 29, 23, 59, 58, 0, 0)
    );
    assert_eq!(
        one(col("dt", MYSQL_TYPE_DATETIME, &[]), le(0, 8)).unwrap(),
        datetime(0, 0, 0, 0, 0, 0, 0, 0)
    );
    assert_eq!(
        one(col("ts", MYSQL_TYPE_TIMESTAMP, &[]), le(1_700_000_000, 4)).unwrap(),
        Value::Timestamp {
            seconds: 1_700_000_000,
            micros: 0,
            fsp: 0
        }
    );
}

#[test]
fn text_in_its_charset() {
    let emoji = "über 🚀 ✓";
    // CHAR(10) utf8mb4: 40 bytes declared.
    assert_eq!(
        one(char_col("c", 40, UTF8MB4), enc_str(emoji.as_bytes(), 40)).unwrap(),
        text(emoji)
    );
    assert_eq!(
        one(varchar("v", 400, UTF8MB4), enc_str(emoji.as_bytes(), 400)).unwrap(),
        text(emoji)
    );
    assert_eq!(
        one(blob("x", 2, UTF8MB4), enc_blob(emoji.as_bytes(), 2)).unwrap(),
        text(emoji)
    );
    assert_eq!(one(blob("x", 4, 224), enc_blob(b"", 4)).unwrap(), text(""));
    // UCA-14.0 collation ids (10.10+) resolve too.
    assert_eq!(
        one(varchar("v", 40, 2304), enc_str(b"ok", 40)).unwrap(),
        text("ok")
    );

    // latin1 is cp1252: every byte 0x80..=0xff maps to one character.
    let high: Vec<u8> = (0x80..=0xffu8).collect();
    let decoded = match one(varchar("l", 255, LATIN1), enc_str(&high, 255)).unwrap() {
        Value::Text(s) => s,
        other => panic!("{other:?}"),
    };
    let chars: Vec<char> = decoded.chars().collect();
    assert_eq!(chars.len(), 128);
    assert_eq!(chars[0], '€'); // 0x80
    assert_eq!(chars[1], '\u{81}'); // undefined in cp1252: C1 control, as in MariaDB
    assert_eq!(chars[0x9f - 0x80], 'Ÿ');
    assert_eq!(chars[0xe9 - 0x80], 'é');
    assert_eq!(chars[0xff - 0x80], 'ÿ');

    assert_eq!(
        one(varchar("a", 10, 11), enc_str(b"plain", 10)).unwrap(),
        text("plain")
    );
    assert!(one(varchar("a", 10, 11), enc_str(&[0x80], 10)).is_err());

    // Invalid UTF-8 and unsupported charsets name the column and charset.
    let err = one(varchar("note", 40, UTF8MB4), enc_str(&[b'a', 0xff], 40))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`note` (varchar)") && err.contains("utf8") && err.contains("1 valid bytes"),
        "{err}"
    );
    let err = one(varchar("note", 40, CP1250), enc_str(b"x", 40))
        .unwrap_err()
        .to_string();
    assert!(err.contains("`note`") && err.contains("cp1250"), "{err}");
    let err = one(varchar("note", 40, 9999), enc_str(b"x", 40))
        .unwrap_err()
        .to_string();
    assert!(err.contains("collation 9999"), "{err}");
}

#[test]
fn long_char_uses_the_split_length_encoding_and_two_length_bytes() {
    // CHAR(255) utf8mb4 = 1020 bytes: byte0 = 0xfe ^ 0x30 = 0xce, byte1 = 0xfc.
    let c = char_col("c", 1020, UTF8MB4);
    assert_eq!(c.meta, vec![0xce, 0xfc]);
    let table = map(std::slice::from_ref(&c));
    assert_eq!(
        table.columns[0].column_type,
        ColumnType::Char { max_bytes: 1020 }
    );
    assert_eq!(table.columns[0].type_name(), "char");
    let long = "é".repeat(300);
    assert_eq!(one(c, enc_str(long.as_bytes(), 1020)).unwrap(), text(&long));
    // CHAR(100) utf8mb4 = 400 bytes: 0xee 0x90, as seen in a live binlog.
    let c = char_col("c", 400, UTF8MB4);
    assert_eq!(c.meta, vec![0xee, 0x90]);
    assert_eq!(one(c, hex("010078")).unwrap(), text("x"));
}

#[test]
fn binary_is_padded_to_its_declared_length() {
    let b = |bytes: &[u8]| one(char_col("b", 4, BINARY), enc_str(bytes, 4)).unwrap();
    assert_eq!(b(b"a"), Value::Bytes(b"a\0\0\0".to_vec()));
    assert_eq!(b(b""), Value::Bytes(vec![0; 4]));
    assert_eq!(b(b"abcd"), Value::Bytes(b"abcd".to_vec()));
    // UUID / INET6 arrive as BINARY(16).
    let inet6_loopback = {
        let mut v = vec![0u8; 15];
        v.push(1);
        v
    };
    assert_eq!(
        one(char_col("ip", 16, BINARY), enc_str(&inet6_loopback, 16)).unwrap(),
        Value::Bytes(inet6_loopback.clone())
    );
    let zero_tail = hex("e7a1c7d4123411eebe560242ac120000");
    assert_eq!(
        one(char_col("u", 16, BINARY), enc_str(&zero_tail[..14], 16)).unwrap(),
        Value::Bytes(zero_tail)
    );
    // VARBINARY and BLOB are not padded.
    assert_eq!(
        one(varchar("vb", 10, BINARY), enc_str(&[0, 1, 0], 10)).unwrap(),
        Value::Bytes(vec![0, 1, 0])
    );
    assert_eq!(
        one(blob("bl", 3, BINARY), enc_blob(&[0xff, 0], 3)).unwrap(),
        Value::Bytes(vec![0xff, 0])
    );
    // A length above the declared one is corrupt.
    assert!(one(char_col("b", 4, BINARY), enc_str(b"abcde", 4)).is_err());
    // GEOMETRY: raw bytes (SRID + WKB).
    let wkb = hex("00000000 0101000000 000000000000F03F 0000000000000040");
    assert_eq!(
        one(
            col("g", MYSQL_TYPE_GEOMETRY, &[4]).collation(BINARY),
            enc_blob(&wkb, 4)
        )
        .unwrap(),
        Value::Bytes(wkb)
    );
}

#[test]
fn text_without_charset_metadata_must_be_utf8() {
    let body = table_map_body_without(&[varchar("v", 20, LATIN1)], &[META_COLUMN_CHARSET]);
    let table = parse_table_map(&body, &CharsetMap::builtin()).unwrap();
    assert_eq!(table.columns[0].charset, None);
    let row = |v: &[u8]| {
        rows_body(
            WRITE_ROWS_EVENT_V1,
            7,
            &[true],
            None,
            &image(&[Some(enc_str(v, 20))]),
        )
    };
    let ev = parse_rows(WRITE_ROWS_EVENT_V1, &row("ok ✓".as_bytes()), &table).unwrap();
    assert_eq!(ev.rows[0].after.as_ref().unwrap()[0], Some(text("ok ✓")));
    let err = parse_rows(WRITE_ROWS_EVENT_V1, &row(&[0xe9]), &table).unwrap_err();
    assert!(err.to_string().contains("no charset metadata"), "{err}");
}

#[test]
fn enums_and_sets_by_label() {
    let e = || enum_col("e", &["small", "médium", "large"], LATIN1);
    assert_eq!(one(e(), vec![1]).unwrap(), Value::Enum("small".into()));
    assert_eq!(one(e(), vec![2]).unwrap(), Value::Enum("médium".into()));
    assert_eq!(one(e(), vec![0]).unwrap(), Value::Enum(String::new()));
    let err = one(e(), vec![4]).unwrap_err().to_string();
    assert!(
        err.contains("ENUM index 4") && err.contains("`e` (enum)"),
        "{err}"
    );

    let s = || set_col("s", &["a", "b", "c", "d", "e", "f", "g", "h", "i"], UTF8MB4);
    assert_eq!(s().meta, vec![MYSQL_TYPE_SET, 2]);
    assert_eq!(
        one(s(), le(0b1_0000_0101, 2)).unwrap(),
        Value::Set(vec!["a".into(), "c".into(), "i".into()])
    );
    assert_eq!(one(s(), le(0, 2)).unwrap(), Value::Set(vec![]));
    let err = one(s(), le(1 << 9, 2)).unwrap_err().to_string();
    assert!(err.contains("SET bit 9"), "{err}");
}

#[test]
fn table_map_metadata_is_matched_to_columns() {
    let cols = [
        int("id").not_null().unsigned(),
        varchar("name", 400, UTF8MB4),
        tiny("n"),
        enum_col("e", &["x", "y"], LATIN1),
        col("y", MYSQL_TYPE_YEAR, &[]).unsigned(),
        col("b", MYSQL_TYPE_BIT, &[3, 0]),
        decimal("d", 10, 2).unsigned(),
        char_col("bin", 16, BINARY),
        set_col("s", &["p", "q"], UTF8MB4),
    ];
    let body = table_map_body(0x0000_0102_0304, "shop", "orders", &cols, &[0]);
    let t = parse_table_map(&body, &CharsetMap::builtin()).unwrap();
    assert_eq!(t.table_id, 0x0102_0304);
    assert_eq!((t.database.as_str(), t.table.as_str()), ("shop", "orders"));
    assert_eq!(t.primary_key, vec![0]);
    assert_eq!(t.column_index("name"), Some(1));
    let c = &t.columns;
    assert_eq!(c[0].name.as_deref(), Some("id"));
    assert!(!c[0].nullable && c[1].nullable);
    assert_eq!(
        c.iter().map(|c| c.unsigned).collect::<Vec<_>>(),
        [
            Some(true),
            None,
            Some(false),
            None,
            Some(true),
            None,
            Some(true),
            None,
            None
        ]
    );
    assert_eq!(c[1].charset, Some(Charset::Utf8));
    assert_eq!(c[1].collation_id, Some(UTF8MB4));
    assert_eq!(c[3].charset, Some(Charset::Latin1));
    assert_eq!(c[3].enum_values, ["x", "y"]);
    assert_eq!(c[8].set_values, ["p", "q"]);
    assert_eq!(c[7].charset, Some(Charset::Binary));
    assert_eq!(c[5].charset, None);
    assert_eq!(
        c.iter().map(Column::type_name).collect::<Vec<_>>(),
        ["int", "varchar", "tinyint", "enum", "year", "bit", "decimal", "binary", "set"]
    );
    assert_eq!(c[3].column_type, ColumnType::Enum { pack_len: 1 });
    assert_eq!(
        c[6].column_type,
        ColumnType::Decimal {
            precision: 10,
            scale: 2
        }
    );
}

#[test]
fn table_map_errors_name_the_table() {
    // An unknown column type (MySQL's JSON, 245) cannot be sized.
    let body = table_map_body(5, "shop", "orders", &[int("id"), col("j", 245, &[4])], &[]);
    let err = parse_table_map(&body, &CharsetMap::builtin()).unwrap_err();
    assert!(
        matches!(&err, DecodeError::UnsupportedColumnType { database, table, column: 1, type_code: 245 }
            if database == "shop" && table == "orders"),
        "{err:?}"
    );
    // Metadata that does not match the columns.
    let mut body = table_map_body(5, "shop", "orders", &[varchar("a", 10, UTF8MB4)], &[]);
    let at = body.iter().rposition(|b| *b == META_COLUMN_NAME).unwrap();
    body[at + 2] = 5; // the name's length now runs past the field
    let err = parse_table_map(&body, &CharsetMap::builtin()).unwrap_err();
    assert!(matches!(err, DecodeError::TableMap { .. }), "{err:?}");
    assert!(
        err.to_string().starts_with("TABLE_MAP of `shop`.`orders`"),
        "{err}"
    );
}

#[test]
fn default_charset_form_and_a_real_mariadb_table_map() {
    // TABLE_MAP and WRITE_ROWS_V1 bodies from MariaDB 10.11.19 (binlog_row_metadata=FULL):
    // CREATE TABLE t (id INT PRIMARY KEY, ti TINYINT, tu TINYINT UNSIGNED, yr YEAR,
    //   b1 BIT(1), b64 BIT(64), d DECIMAL(10,2), f FLOAT, dbl DOUBLE, g GEOMETRY,
    //   u UUID, i6 INET6, c CHAR(3) CHARACTER SET latin1, cu CHAR(100) CHARACTER SET utf8mb4,
    //   e ENUM('a','b') CHARACTER SET latin1, s SET('x','y'), bin BINARY(4), vb VARBINARY(10),
    //   tx TEXT, t2 TIME(3), dt DATETIME(6), ts TIMESTAMP(2) NULL, dd DATE, tt TIME,
    //   dtt DATETIME, tss TIMESTAMP NULL);
    // INSERT ... (1, -1, 255, 2024, 1, 'e7a1c7d4-1234-11ee-be56-0242ac120002', '::1',
    //   'ab', 'x', 'b', 'x,y', 'a', '-00:00:00.001'), the rest NULL.
    let tm = hex(concat!(
        "120000000000010016745f736372617463685f6465636f64655f323336323600",
        "0174001a0301010d1010f60405fffefefefefefefe0ffc1312110a1312112001",
        "0000080a02040804fe10fe10fe03ee90f701f801fe040a0002030602000000fe",
        "ffff0301013002073f0308042d07e0070100044c026964027469027475027972",
        "02623103623634016401660364626c0167017502693601630263750165017303",
        "62696e0276620274780274320264740274730264640274740364747403747373",
        "0b0208e00505020178017906050201610162080100",
    ));
    let rows = hex(concat!(
        "12000000000001001affffff03e003f6ff01000000ffff7c0110e7a1c7d41234",
        "11eebe560242ac12000210000000000000000000000000000000010261620100",
        "78020301617ffffffff6",
    ));
    let t = parse_table_map(&tm, &CharsetMap::builtin()).unwrap();
    assert_eq!(t.table, "t");
    assert_eq!(t.columns.len(), 26);
    assert_eq!(t.primary_key, vec![0]);
    let by = |n: &str| &t.columns[t.column_index(n).unwrap()];
    // SIGNEDNESS counts YEAR (unsigned) and not BIT.
    assert_eq!(by("tu").unsigned, Some(true));
    assert_eq!(by("yr").unsigned, Some(true));
    assert_eq!(by("d").unsigned, Some(false));
    assert_eq!(by("b1").unsigned, None);
    // DEFAULT_CHARSET: default binary, overrides by character-column index
    // (GEOMETRY counts as a character column).
    assert_eq!(by("g").charset, Some(Charset::Binary));
    assert_eq!(by("u").charset, Some(Charset::Binary));
    assert_eq!(by("c").charset, Some(Charset::Latin1));
    assert_eq!(by("cu").charset, Some(Charset::Utf8));
    assert_eq!(by("tx").collation_id, Some(224));
    assert_eq!(by("e").charset, Some(Charset::Latin1));
    assert_eq!(by("s").collation_id, Some(224));
    assert_eq!(by("cu").column_type, ColumnType::Char { max_bytes: 400 });
    assert_eq!(by("u").column_type, ColumnType::Char { max_bytes: 16 });
    assert_eq!(by("g").geometry_type, Some(0));
    assert_eq!(by("t2").column_type, ColumnType::Time2 { fsp: 3 });
    assert_eq!(by("tt").column_type, ColumnType::Time2 { fsp: 0 });

    let ev = parse_rows(WRITE_ROWS_EVENT_V1, &rows, &t).unwrap();
    assert_eq!(ev.kind, RowsKind::Insert);
    assert_eq!(ev.flags, ROWS_FLAG_STMT_END);
    let row = ev.rows[0].after.as_ref().unwrap();
    let v = |n: &str| row[t.column_index(n).unwrap()].clone().unwrap();
    assert_eq!(v("id"), Value::Int(1));
    assert_eq!(v("ti"), Value::Int(-1));
    assert_eq!(v("tu"), Value::UInt(255));
    assert_eq!(v("yr"), Value::Year(2024));
    assert_eq!(v("b1"), Value::Bit { bits: 1, value: 1 });
    assert_eq!(v("b64"), Value::Null);
    assert_eq!(
        v("u"),
        Value::Bytes(hex("e7a1c7d4123411eebe560242ac120002"))
    );
    assert_eq!(
        v("i6"),
        Value::Bytes(hex("00000000000000000000000000000001"))
    );
    assert_eq!(v("c"), text("ab"));
    assert_eq!(v("cu"), text("x"));
    assert_eq!(v("e"), Value::Enum("b".into()));
    assert_eq!(v("s"), Value::Set(vec!["x".into(), "y".into()]));
    assert_eq!(v("bin"), Value::Bytes(b"a\0\0\0".to_vec()));
    assert_eq!(v("t2"), time(true, 0, 0, 0, 1000, 3));
    assert_eq!(v("tss"), Value::Null);
}

// ---------------------------------------------------------------------------
// Rows events.
// ---------------------------------------------------------------------------

fn people() -> Vec<Col> {
    vec![
        int("id").not_null(),
        varchar("name", 80, UTF8MB4),
        decimal("balance", 10, 2),
    ]
}

fn person(id: u32, name: Option<&str>, balance: Option<&str>) -> Vec<Option<Vec<u8>>> {
    vec![
        Some(le(u64::from(id), 4)),
        name.map(|n| enc_str(n.as_bytes(), 80)),
        balance.map(|b| enc_decimal(b, 10, 2)),
    ]
}

fn expect_person(id: i64, name: Option<&str>, balance: Option<&str>) -> Vec<Option<Value>> {
    vec![
        Some(Value::Int(id)),
        Some(name.map_or(Value::Null, text)),
        Some(balance.map_or(Value::Null, |b| Value::Decimal(b.into()))),
    ]
}

#[test]
fn multi_row_inserts_v1_v2_and_compressed() {
    let table = map(&people());
    let mut data = image(&person(1, Some("Ada 🚀"), Some("-12.30")));
    data.extend(image(&person(2, None, Some("0.00"))));
    data.extend(image(&person(3, Some(""), None)));
    let expected = vec![
        expect_person(1, Some("Ada 🚀"), Some("-12.30")),
        expect_person(2, None, Some("0.00")),
        expect_person(3, Some(""), None),
    ];
    for event_type in [
        WRITE_ROWS_EVENT_V1,
        WRITE_ROWS_EVENT_V2,
        WRITE_ROWS_COMPRESSED_EVENT_V1,
        WRITE_ROWS_COMPRESSED_EVENT_V2,
    ] {
        let body = rows_body(event_type, 42, &[true; 3], None, &data);
        assert_eq!(rows_table_id(event_type, &body).unwrap(), 42);
        let ev = parse_rows(event_type, &body, &table).unwrap();
        assert_eq!(ev.kind, RowsKind::Insert, "{event_type}");
        assert_eq!(ev.table_id, 42);
        let afters: Vec<_> = ev.rows.iter().map(|r| r.after.clone().unwrap()).collect();
        assert_eq!(afters, expected, "event type {event_type}");
        assert!(ev.rows.iter().all(|r| r.before.is_none()));
    }
}

#[test]
fn updates_carry_before_and_after_and_deletes_before() {
    let table = map(&people());
    let mut data = image(&person(1, Some("Ada"), Some("1.00")));
    data.extend(image(&person(1, Some("Ada L."), Some("2.50"))));
    for event_type in [
        UPDATE_ROWS_EVENT_V1,
        UPDATE_ROWS_EVENT_V2,
        UPDATE_ROWS_COMPRESSED_EVENT_V1,
        UPDATE_ROWS_COMPRESSED_EVENT_V2,
    ] {
        let body = rows_body(event_type, 42, &[true; 3], Some(&[true; 3]), &data);
        let ev = parse_rows(event_type, &body, &table).unwrap();
        assert_eq!(ev.kind, RowsKind::Update);
        assert_eq!(
            ev.rows,
            vec![RowChange {
                before: Some(expect_person(1, Some("Ada"), Some("1.00"))),
                after: Some(expect_person(1, Some("Ada L."), Some("2.50"))),
            }],
            "event type {event_type}"
        );
    }
    for event_type in [
        DELETE_ROWS_EVENT_V1,
        DELETE_ROWS_EVENT_V2,
        DELETE_ROWS_COMPRESSED_EVENT_V1,
    ] {
        let body = rows_body(
            event_type,
            42,
            &[true; 3],
            None,
            &image(&person(9, None, None)),
        );
        let ev = parse_rows(event_type, &body, &table).unwrap();
        assert_eq!(ev.kind, RowsKind::Delete);
        assert_eq!(
            ev.rows,
            vec![RowChange {
                before: Some(expect_person(9, None, None)),
                after: None,
            }]
        );
    }
}

#[test]
fn absent_columns_are_none_and_null_bits_count_present_columns_only() {
    let table = map(&people());
    // MINIMAL image: before = the key only; after = name, balance.
    let before = image(&[Some(le(7, 4))]);
    let after = image(&[None, Some(enc_decimal("5.00", 10, 2))]);
    let mut data = before;
    data.extend(after);
    let body = rows_body(
        UPDATE_ROWS_EVENT_V1,
        42,
        &[true, false, false],
        Some(&[false, true, true]),
        &data,
    );
    let ev = parse_rows(UPDATE_ROWS_EVENT_V1, &body, &table).unwrap();
    assert_eq!(
        ev.rows[0],
        RowChange {
            before: Some(vec![Some(Value::Int(7)), None, None]),
            after: Some(vec![
                None,
                Some(Value::Null),
                Some(Value::Decimal("5.00".into()))
            ]),
        }
    );
}

#[test]
fn null_bitmaps_span_bytes() {
    // 10 columns: the NULL bitmap takes 2 bytes.
    let cols: Vec<Col> = (0..10).map(|_| tiny("t")).collect();
    let values: Vec<Option<Vec<u8>>> = (0..10u8)
        .map(|i| if i % 3 == 0 { None } else { Some(vec![i]) })
        .collect();
    let row = decode_row(&cols, &values).unwrap();
    let expected: Vec<Option<Value>> = (0..10i64)
        .map(|i| {
            Some(if i % 3 == 0 {
                Value::Null
            } else {
                Value::Int(i)
            })
        })
        .collect();
    assert_eq!(row, expected);
}

#[test]
fn rows_events_check_their_table_map() {
    let table = map(&people());
    let body = rows_body(
        WRITE_ROWS_EVENT_V1,
        43,
        &[true; 3],
        None,
        &image(&person(1, None, None)),
    );
    assert!(matches!(
        parse_rows(WRITE_ROWS_EVENT_V1, &body, &table),
        Err(DecodeError::TableIdMismatch {
            rows_table_id: 43,
            map_table_id: 42,
            ..
        })
    ));
    let body = rows_body(
        WRITE_ROWS_EVENT_V1,
        42,
        &[true; 2],
        None,
        &image(&[None, None]),
    );
    assert!(matches!(
        parse_rows(WRITE_ROWS_EVENT_V1, &body, &table),
        Err(DecodeError::ColumnCountMismatch {
            width: 2,
            columns: 3,
            ..
        })
    ));
    assert!(matches!(
        parse_rows(QUERY_EVENT, &body, &table),
        Err(DecodeError::WrongEventType { event_type: 2, .. })
    ));
    assert!(rows_table_id(XID_EVENT, &body).is_err());
    // Trailing garbage after the last row is a truncated next row.
    let mut body = rows_body(
        WRITE_ROWS_EVENT_V1,
        42,
        &[true; 3],
        None,
        &image(&person(1, None, None)),
    );
    body.push(0);
    let err = parse_rows(WRITE_ROWS_EVENT_V1, &body, &table).unwrap_err();
    assert!(matches!(err, DecodeError::Value { row: 1, .. }), "{err:?}");
}

#[test]
fn value_errors_say_table_row_image_and_column() {
    let table = map(&people());
    let mut data = image(&person(1, Some("ok"), None));
    let mut second = image(&person(2, Some("x"), Some("1.00")));
    second.truncate(second.len() - 2); // cut the DECIMAL short
    data.extend(second);
    let body = rows_body(WRITE_ROWS_EVENT_V1, 42, &[true; 3], None, &data);
    let err = parse_rows(WRITE_ROWS_EVENT_V1, &body, &table).unwrap_err();
    let msg = err.to_string();
    assert_eq!(
        msg,
        "WRITE_ROWS_V1 event for `shop`.`t`, row 1, after image, column #2 `balance` (decimal): \
         needs 5 bytes, only 3 left in the row data"
    );
}

#[test]
fn compressed_records_are_checked() {
    let table = map(&people());
    let data = image(&person(1, Some("Ada"), Some("1.00")));
    let body = rows_body(WRITE_ROWS_COMPRESSED_EVENT_V1, 42, &[true; 3], None, &data);
    let header_at = body.len() - (compress_record(&data).len());
    // Wrong declared length.
    let mut bad = body.clone();
    bad[header_at + 1] += 1;
    let err = parse_rows(WRITE_ROWS_COMPRESSED_EVENT_V1, &bad, &table).unwrap_err();
    assert!(matches!(err, DecodeError::Decompress { .. }), "{err:?}");
    // Not a compressed record / unknown algorithm / bad length size.
    for header in [0x01, 0x91, 0x85, 0x80] {
        let mut bad = body.clone();
        bad[header_at] = header;
        assert!(
            matches!(
                parse_rows(WRITE_ROWS_COMPRESSED_EVENT_V1, &bad, &table),
                Err(DecodeError::Decompress { .. })
            ),
            "header {header:#x}"
        );
    }
    // Corrupt zlib data.
    let mut bad = body.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    assert!(parse_rows(WRITE_ROWS_COMPRESSED_EVENT_V1, &bad, &table).is_err());
    // A 4-byte original length is accepted.
    let big = vec![b'x'; 0x0100_0000];
    let rec = compress_record(&big);
    assert_eq!(rec[0], 0x84);
    assert_eq!(
        super::compress::inflate_record("test", 0, &rec)
            .unwrap()
            .len(),
        big.len()
    );
}

// ---------------------------------------------------------------------------
// MariaDB events.
// ---------------------------------------------------------------------------

fn gtid_body(seq: u64, domain: u32, flags: u8, commit_id: Option<u64>) -> Vec<u8> {
    let mut b = seq.to_le_bytes().to_vec();
    b.extend(domain.to_le_bytes());
    b.push(flags);
    match commit_id {
        Some(id) => b.extend(id.to_le_bytes()),
        None => b.extend([0u8; 6]),
    }
    b
}

#[test]
fn gtid_with_and_without_commit_id() {
    let ev = parse_gtid(&gtid_body(42, 3, GTID_FL_TRANSACTIONAL, None), 7).unwrap();
    assert_eq!(
        ev,
        GtidEvent {
            gtid: Gtid {
                domain: 3,
                server_id: 7,
                seq: 42
            },
            flags: GTID_FL_TRANSACTIONAL,
            standalone: false,
            commit_id: None,
        }
    );
    assert_eq!(ev.gtid.to_string(), "3-7-42");
    let ev = parse_gtid(
        &gtid_body(
            u64::MAX,
            0,
            GTID_FL_GROUP_COMMIT_ID | GTID_FL_STANDALONE,
            Some(99),
        ),
        1,
    )
    .unwrap();
    assert_eq!(ev.commit_id, Some(99));
    assert!(ev.standalone);
    assert_eq!(ev.gtid.seq, u64::MAX);
    // XA: the XID must be there.
    let mut xa = gtid_body(5, 0, GTID_FL_PREPARED_XA, None);
    xa.truncate(13);
    xa.extend(1u32.to_le_bytes());
    xa.extend([2, 1, b'a', b'b', b'c']);
    assert!(parse_gtid(&xa, 1).is_ok());
    xa.pop();
    assert!(parse_gtid(&xa, 1).is_err());
}

fn gtid_list_body(gtids: &[(u32, u32, u64)]) -> Vec<u8> {
    let mut b = (gtids.len() as u32).to_le_bytes().to_vec();
    for (d, s, q) in gtids {
        b.extend(d.to_le_bytes());
        b.extend(s.to_le_bytes());
        b.extend(q.to_le_bytes());
    }
    b
}

#[test]
fn gtid_list_reads_its_count_and_ignores_its_flags() {
    let mut body = gtid_list_body(&[(0, 1, 100), (5, 2, 7)]);
    body[3] |= 0x10; // a flag in the high 4 bits
    assert_eq!(
        parse_gtid_list(&body).unwrap(),
        vec![
            Gtid {
                domain: 0,
                server_id: 1,
                seq: 100
            },
            Gtid {
                domain: 5,
                server_id: 2,
                seq: 7
            }
        ]
    );
    assert_eq!(parse_gtid_list(&gtid_list_body(&[])).unwrap(), vec![]);
    // A huge count fails fast instead of allocating.
    assert!(parse_gtid_list(&hex("ffffff0f")).is_err());
}

fn query_body(schema: &str, query: &[u8], compressed: bool) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend(9u32.to_le_bytes()); // thread id
    b.extend(0u32.to_le_bytes()); // exec time
    b.push(schema.len() as u8);
    b.extend(0u16.to_le_bytes()); // error code
    let status = [0x00, 0, 0, 0, 0]; // Q_FLAGS2_CODE
    b.extend((status.len() as u16).to_le_bytes());
    b.extend(status);
    b.extend(schema.as_bytes());
    b.push(0);
    if compressed {
        b.extend(compress_record(query));
    } else {
        b.extend(query);
    }
    b
}

#[test]
fn query_and_query_compressed() {
    let q = parse_query(QUERY_EVENT, &query_body("shop", b"BEGIN", false)).unwrap();
    assert_eq!(
        q,
        QueryEvent {
            schema: "shop".into(),
            query: b"BEGIN".to_vec(),
            error_code: 0
        }
    );
    let ddl = "CREATE TABLE t (id INT PRIMARY KEY, note VARCHAR(64)) -- padding padding padding";
    let q = parse_query(
        QUERY_COMPRESSED_EVENT,
        &query_body("", ddl.as_bytes(), true),
    )
    .unwrap();
    assert_eq!(q.query, ddl.as_bytes());
    assert_eq!(q.schema, "");
    assert!(parse_query(XID_EVENT, &[]).is_err());
}

#[test]
fn annotate_checkpoint_and_format_description() {
    assert_eq!(
        parse_annotate_rows(b"INSERT INTO t VALUES (1)"),
        "INSERT INTO t VALUES (1)"
    );
    assert_eq!(parse_annotate_rows(&[b'a', 0xff]), "a\u{fffd}");
    let mut cp = 18u32.to_le_bytes().to_vec();
    cp.extend(b"mariadb-bin.000002");
    assert_eq!(parse_binlog_checkpoint(&cp).unwrap(), "mariadb-bin.000002");

    let mut fde = 4u16.to_le_bytes().to_vec();
    let mut version = b"10.11.19-MariaDB-log".to_vec();
    version.resize(50, 0);
    fde.extend(version);
    fde.extend(0u32.to_le_bytes());
    fde.push(19);
    let mut lengths = vec![0u8; 171];
    for (t, l) in [
        (2, 13),
        (19, 8),
        (23, 8),
        (24, 8),
        (25, 8),
        (30, 10),
        (31, 10),
        (32, 10),
        (161, 4),
        (162, 19),
        (163, 4),
        (165, 13),
        (166, 8),
        (167, 8),
        (168, 8),
        (169, 10),
        (170, 10),
        (171, 10),
    ] {
        lengths[t - 1] = l;
    }
    fde.extend(&lengths);
    let fd = parse_format_description(&fde).unwrap();
    assert_eq!(fd.server_version, "10.11.19-MariaDB-log");
    assert_eq!(fd.post_header_length(GTID_EVENT), Some(19));
    fd.check_supported().unwrap();
    let mut short = fd.clone();
    short.post_header_lengths.truncate(164);
    let err = short.check_supported().unwrap_err().to_string();
    assert!(err.contains("QUERY_COMPRESSED"), "{err}");
    let mut old = fd;
    old.post_header_lengths[18] = 6;
    assert!(old.check_supported().is_err());
}

// ---------------------------------------------------------------------------
// Robustness.
// ---------------------------------------------------------------------------

/// A table with every column type, and a row of edge values.
fn every_type() -> (Vec<Col>, Vec<Option<Vec<u8>>>) {
    let cols = vec![
        int("id").not_null(),
        tiny("t"),
        small("s").unsigned(),
        medium("m"),
        big("b").unsigned(),
        col("f", MYSQL_TYPE_FLOAT, &[4]),
        col("d", MYSQL_TYPE_DOUBLE, &[8]),
        decimal("dec", 65, 30),
        col("bit", MYSQL_TYPE_BIT, &[0, 8]),
        col("y", MYSQL_TYPE_YEAR, &[]),
        col("date", MYSQL_TYPE_DATE, &[]),
        fsp_col("t2", MYSQL_TYPE_TIME2, 6),
        fsp_col("dt2", MYSQL_TYPE_DATETIME2, 3),
        fsp_col("ts2", MYSQL_TYPE_TIMESTAMP2, 1),
        col("ot", MYSQL_TYPE_TIME, &[]),
        col("odt", MYSQL_TYPE_DATETIME, &[]),
        col("ots", MYSQL_TYPE_TIMESTAMP, &[]),
        char_col("c", 1020, UTF8MB4),
        varchar("v", 30, LATIN1),
        blob("tx", 2, UTF8MB4),
        char_col("bin", 16, BINARY),
        enum_col("e", &["a", "b"], UTF8MB4),
        set_col("st", &["x", "y"], UTF8MB4),
        col("g", MYSQL_TYPE_GEOMETRY, &[4]).collation(BINARY),
    ];
    let values = vec![
        Some(le(1, 4)),
        None,
        Some(le(65535, 2)),
        Some(le(0x80_0000, 3)),
        Some(le(u64::MAX, 8)),
        Some(1.5f32.to_le_bytes().to_vec()),
        Some((-2.5f64).to_le_bytes().to_vec()),
        Some(enc_decimal("-1.000000000000000000000000000001", 65, 30)),
        Some(vec![0x80, 0, 0, 0, 0, 0, 0, 1]),
        Some(vec![255]),
        Some(le((2024 << 9) | (2 << 5) | 29, 3)),
        Some(enc_time2(true, 838, 59, 59, 999_999, 6)),
        Some(enc_datetime2(2024, 2, 29, 23, 59, 58, 123_000, 3)),
        Some(enc_timestamp2(1_700_000_000, 900_000, 1)),
        Some(le(-8385959i64 as u64, 3)),
        Some(le(20240229235958, 8)),
        Some(le(1, 4)),
        Some(enc_str("é🚀".as_bytes(), 1020)),
        Some(enc_str(&[0x80, 0xe9], 30)),
        Some(enc_blob("text".as_bytes(), 2)),
        Some(enc_str(&[1, 2, 3], 16)),
        Some(vec![2]),
        Some(vec![3]),
        Some(enc_blob(&[0, 0, 0, 0, 1, 1, 0, 0, 0], 4)),
    ];
    (cols, values)
}

#[test]
fn every_type_in_one_row() {
    let (cols, values) = every_type();
    let row = decode_row(&cols, &values).unwrap();
    let row: Vec<Value> = row.into_iter().map(Option::unwrap).collect();
    assert_eq!(row[0], Value::Int(1));
    assert_eq!(row[1], Value::Null);
    assert_eq!(row[3], Value::Int(-8388608));
    assert_eq!(
        row[7],
        Value::Decimal("-1.000000000000000000000000000001".into())
    );
    assert_eq!(row[11], time(true, 838, 59, 59, 999_999, 6));
    assert_eq!(row[18], text("€é"));
    assert_eq!(row[20], Value::Bytes([&[1u8, 2, 3][..], &[0; 13]].concat()));
}

/// Every body these tests build: (what, body, decode).
type Decoder = Box<dyn Fn(&[u8]) -> Result<String, DecodeError>>;

fn sample_bodies() -> Vec<(&'static str, Vec<u8>, Decoder, bool)> {
    let (cols, values) = every_type();
    let table_body = table_map_body(42, "shop", "t", &cols, &[0]);
    let table = parse_table_map(&table_body, &CharsetMap::builtin()).unwrap();
    let people_table = map(&people());
    let one_row = image(&values);
    let mut two_rows = image(&person(1, Some("Ada"), Some("-0.01")));
    two_rows.extend(image(&person(2, None, Some("99999999.99"))));

    let mut out: Vec<(&'static str, Vec<u8>, Decoder, bool)> = Vec::new();
    let debug = |r: Result<TableMap, DecodeError>| r.map(|t| format!("{t:?}"));
    out.push((
        "TABLE_MAP every type",
        table_body,
        Box::new(move |b| debug(parse_table_map(b, &CharsetMap::builtin()))),
        // Optional metadata is a sequence of fields: a cut at a field
        // boundary is a valid, shorter TABLE_MAP.
        false,
    ));
    for event_type in [
        WRITE_ROWS_EVENT_V1,
        WRITE_ROWS_EVENT_V2,
        WRITE_ROWS_COMPRESSED_EVENT_V1,
        WRITE_ROWS_COMPRESSED_EVENT_V2,
        DELETE_ROWS_EVENT_V1,
    ] {
        let t = table.clone();
        out.push((
            "rows, one row of every type",
            rows_body(event_type, 42, &vec![true; cols.len()], None, &one_row),
            Box::new(move |b| parse_rows(event_type, b, &t).map(|e| format!("{e:?}"))),
            true,
        ));
    }
    for (event_type, after) in [
        (UPDATE_ROWS_EVENT_V1, Some(&[true; 3][..])),
        (UPDATE_ROWS_COMPRESSED_EVENT_V1, Some(&[true; 3][..])),
        (WRITE_ROWS_EVENT_V1, None),
    ] {
        let t = people_table.clone();
        // Two rows (or one update): a cut between rows leaves a valid,
        // shorter event unless the rows data is compressed.
        let exact = event_type >= WRITE_ROWS_COMPRESSED_EVENT_V1;
        out.push((
            "rows, two images",
            rows_body(event_type, 42, &[true; 3], after, &two_rows),
            Box::new(move |b| parse_rows(event_type, b, &t).map(|e| format!("{e:?}"))),
            exact,
        ));
    }
    out.push((
        "GTID",
        gtid_body(1, 2, 0, None),
        Box::new(|b| parse_gtid(b, 1).map(|e| format!("{e:?}"))),
        true,
    ));
    out.push((
        "GTID commit id",
        gtid_body(1, 2, GTID_FL_GROUP_COMMIT_ID, Some(5)),
        Box::new(|b| parse_gtid(b, 1).map(|e| format!("{e:?}"))),
        true,
    ));
    out.push((
        "GTID_LIST",
        gtid_list_body(&[(0, 1, 2), (1, 2, 3)]),
        Box::new(|b| parse_gtid_list(b).map(|e| format!("{e:?}"))),
        true,
    ));
    let mut cp = 4u32.to_le_bytes().to_vec();
    cp.extend(b"f.01");
    out.push((
        "BINLOG_CHECKPOINT",
        cp,
        Box::new(parse_binlog_checkpoint),
        true,
    ));
    out.push((
        "QUERY_COMPRESSED",
        query_body("shop", b"INSERT INTO t VALUES (1)", true),
        Box::new(|b| parse_query(QUERY_COMPRESSED_EVENT, b).map(|e| format!("{e:?}"))),
        true,
    ));
    out.push((
        "QUERY",
        query_body("shop", b"", false),
        Box::new(|b| parse_query(QUERY_EVENT, b).map(|e| format!("{e:?}"))),
        true,
    ));
    out
}

#[test]
fn every_truncation_fails_and_nothing_panics() {
    for (what, body, decode, exact) in sample_bodies() {
        let full = decode(&body).unwrap_or_else(|e| panic!("{what}: {e}"));
        let mut valid_prefixes = 0;
        for len in 0..body.len() {
            match decode(&body[..len]) {
                Err(_) => {}
                Ok(shorter) => {
                    assert!(
                        !exact,
                        "{what}: prefix of {len}/{} bytes decoded: {shorter}",
                        body.len()
                    );
                    assert_ne!(
                        shorter, full,
                        "{what}: prefix of {len} bytes decodes like the whole"
                    );
                    valid_prefixes += 1;
                }
            }
        }
        if !exact {
            // Only the few field or row boundaries may decode.
            assert!(
                valid_prefixes <= 12,
                "{what}: {valid_prefixes} valid prefixes"
            );
        }
    }
}

#[test]
fn corrupted_bodies_never_panic() {
    // Deterministic pseudo-random byte flips, insertions and deletions.
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for (_, body, decode, _) in sample_bodies() {
        for _ in 0..400 {
            let mut b = body.clone();
            for _ in 0..(next() % 4 + 1) {
                let i = (next() as usize) % b.len().max(1);
                match next() % 3 {
                    0 if !b.is_empty() => b[i] = next() as u8,
                    1 => b.insert(i.min(b.len()), next() as u8),
                    _ if !b.is_empty() => {
                        b.remove(i);
                    }
                    _ => {}
                }
            }
            let _ = decode(&b);
        }
    }
    // And a few bodies of pure noise for every entry point.
    let charsets = CharsetMap::builtin();
    let (cols, _) = every_type();
    let table = parse_table_map(&table_map_body(42, "s", "t", &cols, &[]), &charsets).unwrap();
    for _ in 0..2000 {
        let len = (next() % 64) as usize;
        let mut b: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if b.len() >= 6 && next() % 2 == 0 {
            b[..6].copy_from_slice(&42u64.to_le_bytes()[..6]);
        }
        let event_type =
            [23u8, 24, 25, 30, 31, 32, 166, 167, 168, 169, 170, 171][(next() % 12) as usize];
        let _ = parse_rows(event_type, &b, &table);
        let _ = parse_table_map(&b, &charsets);
        let _ = parse_gtid(&b, 1);
        let _ = parse_gtid_list(&b);
        let _ = parse_query(QUERY_EVENT, &b);
        let _ = parse_query(QUERY_COMPRESSED_EVENT, &b);
        let _ = parse_binlog_checkpoint(&b);
        let _ = parse_format_description(&b).map(|f| f.check_supported());
        let _ = rows_table_id(event_type, &b);
    }
}

#[test]
fn charset_map_from_rows_and_builtin() {
    let m = CharsetMap::from_rows([
        (45, "utf8mb4".to_owned()),
        (8, "latin1".to_owned()),
        (26, "cp1250".into()),
    ]);
    assert_eq!(m.resolve(45), Charset::Utf8);
    assert_eq!(m.resolve(8), Charset::Latin1);
    assert_eq!(m.resolve(26), Charset::Other("cp1250".into()));
    // Ids the rows lack fall back to the built-in table.
    assert_eq!(m.resolve(63), Charset::Binary);
    assert_eq!(m.resolve(2304), Charset::Utf8);
    assert_eq!(
        m.resolve(100_000),
        Charset::Other("collation 100000".into())
    );
    // The server's rows win.
    let m = CharsetMap::from_rows([(45, "cp1250".to_owned())]);
    assert_eq!(m.resolve(45), Charset::Other("cp1250".into()));
    let b = CharsetMap::builtin();
    assert_eq!(b.resolve(63), Charset::Binary);
    for id in [5, 8, 15, 31, 47, 48, 49, 94] {
        assert_eq!(b.resolve(id), Charset::Latin1, "{id}");
    }
    for id in [11, 65] {
        assert_eq!(b.resolve(id), Charset::Ascii, "{id}");
    }
    for id in (192..=215).chain([33, 83, 223, 2048, 2247]) {
        assert_eq!(b.resolve(id), Charset::Utf8, "{id}");
    }
    for id in (224..=247).chain([45, 46, 2304, 2503]) {
        assert_eq!(b.resolve(id), Charset::Utf8, "{id}");
    }
    assert_eq!(b.resolve(26), Charset::Other("cp1250".into()));
    assert_eq!(
        b.resolve(100_000),
        Charset::Other("collation 100000".into())
    );
}
