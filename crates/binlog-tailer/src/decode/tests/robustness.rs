//! Robustness: every column type in one row, truncated or corrupted bodies
//! of every event kind (errors, never panics), and the charset map.

use super::events::{gtid_body, gtid_list_body, query_body};
use super::rows::{people, person};
use super::values::time;
use super::*;

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
        varchar_compressed("vz", 600, UTF8MB4),
        blob_compressed("bz", 3, BINARY),
        varchar("cy", 20, 51),  // cp1251_general_ci
        varchar("u16", 40, 54), // utf16_general_ci
        char_col("sj", 20, 13), // sjis_japanese_ci
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
        Some(enc_str(
            &enc_compressed_field("squeeze ".repeat(30).as_bytes(), true),
            601,
        )),
        Some(enc_blob(&enc_compressed_field(&[7; 500], false), 3)),
        Some(enc_str(&[0xcf, 0xf0, 0xe8], 20)),
        Some(enc_str(&[0xd8, 0x3d, 0xde, 0x80], 40)),
        Some(enc_str(&[0x83, 0x65, 0x5c], 20)),
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
    assert_eq!(row[24], text(&"squeeze ".repeat(30)));
    assert_eq!(row[25], Value::Bytes(vec![7; 500]));
    assert_eq!(row[26], text("При"));
    assert_eq!(row[27], text("🚀"));
    assert_eq!(row[28], text("テ\\"));
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
    // The layout-only parse reads nothing past the NULL bitmap: a body
    // without optional metadata, so that every cut falls inside what it
    // reads.
    let all_optional: Vec<u8> = (1..=11).collect();
    out.push((
        "TABLE_MAP every type, layout only",
        table_map_body_without(&cols, &all_optional),
        Box::new(move |b| debug(parse_table_map_layout(b))),
        true,
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
        let t = table.clone();
        out.push((
            "rows counted, one row of every type",
            rows_body(event_type, 42, &vec![true; cols.len()], None, &one_row),
            Box::new(move |b| count_rows(event_type, b, &t).map(|e| format!("{e:?}"))),
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
        let t = people_table.clone();
        out.push((
            "rows counted, two images",
            rows_body(event_type, 42, &[true; 3], after, &two_rows),
            Box::new(move |b| count_rows(event_type, b, &t).map(|e| format!("{e:?}"))),
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
    assert_eq!(m.resolve(26), Charset::from_name("cp1250"));
    assert_eq!(m.resolve(26).name(), "cp1250");
    // Ids the rows lack fall back to the built-in table.
    assert_eq!(m.resolve(63), Charset::Binary);
    assert_eq!(m.resolve(2304), Charset::Utf8);
    assert_eq!(
        m.resolve(100_000),
        Charset::Other("collation 100000".into())
    );
    // The server's rows win.
    let m = CharsetMap::from_rows([(45, "cp1250".to_owned())]);
    assert_eq!(m.resolve(45), Charset::from_name("cp1250"));
    let b = CharsetMap::builtin();
    assert_eq!(b.resolve(63), Charset::Binary);
    for id in [5, 8, 15, 31, 47, 48, 49, 94] {
        assert_eq!(b.resolve(id), Charset::Latin1, "{id}");
    }
    for id in [11, 65] {
        assert_eq!(b.resolve(id), Charset::Ascii, "{id}");
    }
    for id in (192..=215).chain([33, 83, 223, 2048, 2247]) {
        assert_eq!(b.resolve(id), Charset::Utf8mb3, "{id}");
    }
    for id in (224..=247).chain([45, 46, 2304, 2503]) {
        assert_eq!(b.resolve(id), Charset::Utf8, "{id}");
    }
    assert_eq!(b.resolve(26), Charset::from_name("cp1250"));
    assert_eq!(
        b.resolve(100_000),
        Charset::Other("collation 100000".into())
    );
}
