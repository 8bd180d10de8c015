//! Values: every column type decoded from its binary layout, and TABLE_MAP
//! metadata (signedness, charsets, ENUM/SET labels) matched to columns.

use super::*;

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

pub(super) fn time(
    negative: bool,
    hours: u32,
    minutes: u8,
    seconds: u8,
    micros: u32,
    fsp: u8,
) -> Value {
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
    // cp1250 is MariaDB's table: 0x8A is Š; 0x81 is undefined in it.
    assert_eq!(
        one(varchar("note", 40, CP1250), enc_str(&[b'x', 0x8a], 40)).unwrap(),
        text("xŠ")
    );
    let err = one(
        varchar("note", 40, CP1250),
        enc_str(&[b'x', 0x81, b'y'], 40),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("row 0")
            && err.contains("`note`")
            && err.contains("not valid cp1250: 81 79")
            && err.contains("after 1 valid bytes"),
        "{err}"
    );
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

#[test]
fn compressed_columns_are_published_as_their_base_type() {
    let long = "compressible ".repeat(40);
    // VARCHAR(600 bytes) COMPRESSED: 2 length bytes; raw deflate (MariaDB's
    // default), zlib-wrapped, and stored as is.
    for field in [
        enc_compressed_field(long.as_bytes(), true),
        enc_compressed_field(long.as_bytes(), false),
        enc_stored_field(long.as_bytes()),
    ] {
        assert_eq!(
            one(varchar_compressed("v", 600, UTF8MB4), enc_str(&field, 601)).unwrap(),
            text(&long)
        );
    }
    // VARCHAR(40 bytes) COMPRESSED: 1 length byte.
    assert_eq!(
        one(
            varchar_compressed("v", 40, UTF8MB4),
            enc_str(&enc_stored_field(b"short"), 41)
        )
        .unwrap(),
        text("short")
    );
    // The empty value is stored without a header byte.
    assert_eq!(
        one(varchar_compressed("v", 40, UTF8MB4), enc_str(b"", 41)).unwrap(),
        text("")
    );
    // TEXT, MEDIUMBLOB COMPRESSED.
    assert_eq!(
        one(
            blob_compressed("t", 2, UTF8MB4),
            enc_blob(&enc_compressed_field(long.as_bytes(), true), 2)
        )
        .unwrap(),
        text(&long)
    );
    let bytes: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
    assert_eq!(
        one(
            blob_compressed("b", 3, BINARY),
            enc_blob(&enc_compressed_field(&bytes, true), 3)
        )
        .unwrap(),
        Value::Bytes(bytes)
    );
    assert_eq!(
        one(blob_compressed("b", 1, BINARY), enc_blob(b"", 1)).unwrap(),
        Value::Bytes(Vec::new())
    );
}

#[test]
fn compressed_column_bombs_and_corruption_are_refused() {
    // A value declaring more than VARCHAR(40 bytes) holds is refused before
    // anything is inflated.
    let big = vec![b'a'; 1000];
    let err = one(
        varchar_compressed("v", 40, UTF8MB4),
        enc_str(&enc_compressed_field(&big, true)[..], 41),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("`v`") && err.contains("declares 1000 bytes, more than the column's 40"),
        "{err}"
    );
    // LONGBLOB: at most what a server accepts (1 GiB), whatever its 4 GiB.
    let err = one(
        blob_compressed("b", 4, BINARY),
        enc_blob(&[0x8c, 0x80, 0, 0, 0, 0x03, 0x00], 4),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("declares 2147483648 bytes, more than the column's 1073741824"),
        "{err}"
    );
    // A header that understates the length: inflation stops past it.
    let mut lying = enc_compressed_field(&vec![0u8; 100_000], true);
    lying[0] = 0x89;
    lying.splice(1..4, [10u8]);
    let err = one(blob_compressed("b", 3, BINARY), enc_blob(&lying, 3))
        .unwrap_err()
        .to_string();
    assert!(err.contains("more than the 10 bytes"), "{err}");
    // Corrupt data, an unknown method, a stored value above the maximum.
    let mut corrupt = enc_compressed_field("x".repeat(300).as_bytes(), true);
    let last = corrupt.len() - 1;
    corrupt.truncate(last - 2);
    assert!(one(blob_compressed("t", 2, UTF8MB4), enc_blob(&corrupt, 2)).is_err());
    let err = one(blob_compressed("t", 2, UTF8MB4), enc_blob(&[0x41, 0, 1], 2))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("method 4") && err.contains("41 00 01"),
        "{err}"
    );
    let err = one(
        varchar_compressed("v", 3, UTF8MB4),
        enc_str(&enc_stored_field(b"abcd"), 4),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("above the declared 4 bytes"), "{err}");
}

#[test]
fn a_layout_only_map_sizes_what_it_knows_and_marks_the_rest_unknown() {
    let cols = [
        int("id"),
        varchar_compressed("v", 40, UTF8MB4),
        col("future", 200, &[9, 9]),
        varchar("after", 40, UTF8MB4),
    ];
    let body = table_map_body(9, "db", "t", &cols, &[0]);
    // The full parse refuses the unknown type ...
    assert!(matches!(
        parse_table_map(&body, &CharsetMap::builtin()),
        Err(DecodeError::UnsupportedColumnType { type_code: 200, .. })
    ));
    // ... the layout-only one keeps what it can size.
    let map = parse_table_map_layout(&body).unwrap();
    assert_eq!(table_map_names(&body).unwrap(), ("db".into(), "t".into()));
    let types: Vec<ColumnType> = map.columns.iter().map(|c| c.column_type).collect();
    assert_eq!(
        types,
        [
            ColumnType::Int,
            ColumnType::VarCharCompressed { max_bytes: 41 },
            ColumnType::Unknown { type_code: 200 },
            ColumnType::Unknown {
                type_code: MYSQL_TYPE_VARCHAR
            },
        ]
    );
    assert!(map.columns.iter().all(|c| c.name.is_none()));
    // Rows whose unknown columns are NULL are counted; others are not.
    let row = |future: Option<Vec<u8>>| {
        image(&[
            Some(le(1, 4)),
            Some(enc_str(&enc_stored_field(b"x"), 41)),
            future,
            None,
        ])
    };
    let all = [true; 4];
    let body_ok = rows_body(WRITE_ROWS_EVENT_V1, 9, &all, None, &row(None));
    assert_eq!(
        count_rows(WRITE_ROWS_EVENT_V1, &body_ok, &map).unwrap(),
        (RowsKind::Insert, 1)
    );
    let body_bad = rows_body(WRITE_ROWS_EVENT_V1, 9, &all, None, &row(Some(vec![1])));
    let err = count_rows(WRITE_ROWS_EVENT_V1, &body_bad, &map)
        .unwrap_err()
        .to_string();
    assert!(err.contains("type code 200 is unknown"), "{err}");
}

#[test]
fn every_legacy_charset_decodes_samples_and_refuses_invalid_bytes() {
    let decode = |name: &str, bytes: &[u8]| Charset::from_name(name).decode(bytes);
    // One sample each (the live test compares every code with the server).
    let cases: &[(&str, &[u8], &str)] = &[
        ("cp1251", &[0xcf, 0xf0, 0xe8, 0xe2, 0xe5, 0xf2], "Привет"),
        ("latin2", &[0xb1, 0xe6], "ąć"),
        ("greek", &[0xe1, 0xe2], "αβ"),
        ("koi8r", &[0xd0, 0xd2], "пр"),
        (
            "sjis",
            &[0x83, 0x65, 0x83, 0x4c, 0x83, 0x58, 0x83, 0x67, 0x81, 0x5f],
            "テキスト\\",
        ),
        ("cp932", &[0x81, 0x5f, 0x87, 0x40], "＼①"),
        ("ujis", &[0xa4, 0xa2, 0x8e, 0xb1], "あｱ"),
        ("big5", &[0xa4, 0xa4, 0xa4, 0xe5], "中文"),
        ("gbk", &[0xd6, 0xd0, 0x81, 0x40], "中丂"),
        ("gb2312", &[0xd6, 0xd0], "中"),
        ("euckr", &[0xc7, 0xd1], "한"),
        ("ucs2", &[0x04, 0x1f], "П"),
        ("utf16", &[0xd8, 0x3d, 0xde, 0x80], "🚀"),
        ("utf16le", &[0x3d, 0xd8, 0x80, 0xde], "🚀"),
        ("utf32", &[0, 1, 0xf6, 0x80], "🚀"),
        ("armscii8", &[0xb2, 0xb3], "Աա"),
    ];
    for (name, bytes, want) in cases {
        assert_eq!(decode(name, bytes).as_deref(), Ok(*want), "{name}");
    }
    // Invalid: cp1251's undefined 0x98, sjis's NEC row (cp932 has it), a
    // cut 2-byte character, lone surrogates, a code point past U+10FFFF,
    // utf8mb3's 4-byte sequences, an odd ucs2 length.
    let bad: &[(&str, &[u8])] = &[
        ("cp1251", &[0x41, 0x98]),
        ("sjis", &[0x87, 0x40]),
        ("gbk", &[0xd6]),
        ("gb2312", &[0x81, 0x40]),
        ("ucs2", &[0xd8, 0x00]),
        ("ucs2", &[0x00]),
        ("utf16", &[0xdc, 0x00, 0x00, 0x41]),
        ("utf32", &[0, 0x11, 0, 0]),
        ("utf8mb3", "🚀".as_bytes()),
        ("tis620", &[0xdb]),
    ];
    for (name, bytes) in bad {
        let err = decode(name, bytes).unwrap_err();
        assert!(
            matches!(&err, ValueError::InvalidText { charset, .. } if charset == name),
            "{name}: {err}"
        );
    }
    // Every charset of SHOW CHARACTER SET on 10.11 and 11.8 has a decoder.
    for name in [
        "big5", "dec8", "cp850", "hp8", "koi8r", "latin1", "latin2", "swe7", "ascii", "ujis",
        "sjis", "hebrew", "tis620", "euckr", "koi8u", "gb2312", "greek", "cp1250", "gbk", "latin5",
        "armscii8", "utf8mb3", "ucs2", "cp866", "keybcs2", "macce", "macroman", "cp852", "latin7",
        "utf8mb4", "cp1251", "utf16", "utf16le", "cp1256", "cp1257", "utf32", "geostd8", "cp932",
        "eucjpms",
    ] {
        assert!(Charset::from_name(name).is_supported(), "{name}");
        assert_eq!(Charset::from_name(name).name(), name);
    }
}
