//! Rows events: WRITE/UPDATE/DELETE v1, v2 and compressed, column and NULL
//! bitmaps, the check against the TABLE_MAP, and errors that name the row.

use super::*;

pub(super) fn people() -> Vec<Col> {
    vec![
        int("id").not_null(),
        varchar("name", 80, UTF8MB4),
        decimal("balance", 10, 2),
    ]
}

pub(super) fn person(id: u32, name: Option<&str>, balance: Option<&str>) -> Vec<Option<Vec<u8>>> {
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
            count_rows(event_type, &body, &table).unwrap(),
            (RowsKind::Update, 1),
            "both images stepped over, event type {event_type}"
        );
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
            count_rows(event_type, &body, &table).unwrap(),
            (RowsKind::Delete, 1)
        );
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
