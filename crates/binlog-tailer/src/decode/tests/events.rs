//! MariaDB events: GTID, GTID_LIST, QUERY (and QUERY_COMPRESSED), ANNOTATE_ROWS,
//! BINLOG_CHECKPOINT and FORMAT_DESCRIPTION.

use super::*;

pub(super) fn gtid_body(seq: u64, domain: u32, flags: u8, commit_id: Option<u64>) -> Vec<u8> {
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

pub(super) fn gtid_list_body(gtids: &[(u32, u32, u64)]) -> Vec<u8> {
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

pub(super) fn query_body(schema: &str, query: &[u8], compressed: bool) -> Vec<u8> {
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

/// An XA_PREPARE body as MariaDB writes it (sql/log_event_server.cc:
/// one_phase, then the XID's formatID, lengths and data).
fn xa_prepare_body(one_phase: bool, format_id: i32, gtrid: &[u8], bqual: &[u8]) -> Vec<u8> {
    let mut b = vec![u8::from(one_phase)];
    b.extend(format_id.to_le_bytes());
    b.extend(u32::try_from(gtrid.len()).unwrap().to_le_bytes());
    b.extend(u32::try_from(bqual.len()).unwrap().to_le_bytes());
    b.extend(gtrid);
    b.extend(bqual);
    b
}

#[test]
fn xa_prepare_names_the_xid_as_xa_statements_write_it() {
    // `XA START 'x2'` is written `XA COMMIT X'7832',X'',1` in the binlog.
    let ev = parse_xa_prepare(&xa_prepare_body(false, 1, b"x2", b"")).unwrap();
    assert_eq!(
        ev,
        XaPrepare {
            one_phase: false,
            xid: "X'7832',X'',1".into()
        }
    );
    let ev = parse_xa_prepare(&xa_prepare_body(true, -1, b"\x00\xff", b"b")).unwrap();
    assert_eq!(ev.xid, "X'00ff',X'62',-1");
    assert!(ev.one_phase);
    let mut too_long = xa_prepare_body(false, 1, &[b'g'; 64], b"");
    too_long[5] = 65;
    assert!(matches!(
        parse_xa_prepare(&too_long),
        Err(DecodeError::Malformed { .. })
    ));
    let body = xa_prepare_body(false, 1, b"x2", b"q");
    for cut in 0..body.len() {
        assert!(
            matches!(
                parse_xa_prepare(&body[..cut]),
                Err(DecodeError::Truncated { .. })
            ),
            "cut at {cut}"
        );
    }
}
