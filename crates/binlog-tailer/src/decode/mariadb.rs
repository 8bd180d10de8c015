//! MariaDB's own events (GTID, GTID_LIST, ANNOTATE_ROWS, BINLOG_CHECKPOINT,
//! XA_PREPARE),
//! QUERY and QUERY_COMPRESSED, and FORMAT_DESCRIPTION's post-header
//! lengths, which fix where every other body's fields are.

use super::compress::inflate_record;
use super::reader::Reader;
use super::*;

/// A GTID event: the start of a transaction group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GtidEvent {
    pub gtid: Gtid,
    /// `GTID_FL_*` bits.
    pub flags: u8,
    /// `GTID_FL_STANDALONE`: one statement (DDL) follows, no XID.
    pub standalone: bool,
    /// The group commit id, when `GTID_FL_GROUP_COMMIT_ID` is set.
    pub commit_id: Option<u64>,
}

/// GTID post-header length: seq (8), domain (4), flags (1), 6 bytes that
/// are zero or extra flags.
const GTID_HEADER_LEN: usize = 19;
/// GTID_LIST: the count's low 28 bits; the high 4 are flags.
const GTID_LIST_COUNT_MASK: u32 = (1 << 28) - 1;
/// GTID_LIST entry: domain (4), server id (4), seq (8).
const GTID_LIST_ELEMENT_LEN: usize = 16;
/// QUERY post-header: thread id (4), exec time (4), schema length (1),
/// error code (2), status variables length (2).
const QUERY_HEADER_LEN: usize = 13;

/// GTID (162) body → [`GtidEvent`]; the server id comes from the event
/// header.
///
/// ```text
/// seq u64, domain u32, flags u8, [commit id u64 if GTID_FL_GROUP_COMMIT_ID],
/// [XID if GTID_FL_PREPARED_XA | GTID_FL_COMPLETED_XA: format id u32,
///  gtrid length u8, bqual length u8, data], [extra flags ...]
/// ```
///
/// # Errors
/// [`DecodeError::Truncated`] when the body is shorter than the 19-byte
/// post-header, or than the commit id or XID its flags announce.
pub fn parse_gtid(body: &[u8], header_server_id: u32) -> Result<GtidEvent, DecodeError> {
    let mut r = Reader::new("GTID", body);
    if body.len() < GTID_HEADER_LEN {
        return Err(r.truncated("GTID post-header", GTID_HEADER_LEN));
    }
    let seq = r.u64_le("sequence number")?;
    let domain = r.u32_le("domain id")?;
    let flags = r.u8("flags")?;
    let commit_id = if flags & GTID_FL_GROUP_COMMIT_ID != 0 {
        Some(r.u64_le("commit id")?)
    } else {
        None
    };
    if flags & (GTID_FL_PREPARED_XA | GTID_FL_COMPLETED_XA) != 0 {
        r.skip(4, "XID format id")?;
        let gtrid = usize::from(r.u8("XID gtrid length")?);
        let bqual = usize::from(r.u8("XID bqual length")?);
        r.skip(gtrid + bqual, "XID data")?;
    }
    Ok(GtidEvent {
        gtid: Gtid {
            domain,
            server_id: header_server_id,
            seq,
        },
        flags,
        standalone: flags & GTID_FL_STANDALONE != 0,
        commit_id,
    })
}

/// GTID_LIST (163) body → GTIDs: a count (low 28 bits of a u32), then that
/// many (domain u32, server id u32, seq u64).
///
/// # Errors
/// [`DecodeError::Truncated`] when fewer entries follow than counted.
pub fn parse_gtid_list(body: &[u8]) -> Result<Vec<Gtid>, DecodeError> {
    let mut r = Reader::new("GTID_LIST", body);
    let count = r.u32_le("count")? & GTID_LIST_COUNT_MASK;
    let count = usize::try_from(count).unwrap_or(usize::MAX);
    let needed = count.saturating_mul(GTID_LIST_ELEMENT_LEN);
    if r.remaining() < needed {
        return Err(r.truncated(&format!("{count} GTIDs"), needed));
    }
    let mut gtids = Vec::with_capacity(count);
    for _ in 0..count {
        let domain = r.u32_le("domain id")?;
        let server_id = r.u32_le("server id")?;
        let seq = r.u64_le("sequence number")?;
        gtids.push(Gtid {
            domain,
            server_id,
            seq,
        });
    }
    Ok(gtids)
}

/// ANNOTATE_ROWS (160): the statement text, lossily UTF-8 (it is for
/// people; the statement's charset is not in the event).
pub fn parse_annotate_rows(body: &[u8]) -> String {
    String::from_utf8_lossy(body).into_owned()
}

/// BINLOG_CHECKPOINT (161): the binlog file name (length u32, name).
///
/// # Errors
/// [`DecodeError::Truncated`], or [`DecodeError::Malformed`] for a name
/// that is not UTF-8.
pub fn parse_binlog_checkpoint(body: &[u8]) -> Result<String, DecodeError> {
    let mut r = Reader::new("BINLOG_CHECKPOINT", body);
    let len = usize::try_from(r.u32_le("file name length")?).unwrap_or(usize::MAX);
    let start = r.pos();
    let name = r.take(len, "file name")?;
    std::str::from_utf8(name)
        .map(str::to_owned)
        .map_err(|e| r.malformed_at(start, "file name", format!("not UTF-8: {e}")))
}

/// A QUERY event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryEvent {
    /// The default schema of the statement (may be empty).
    pub schema: String,
    /// The statement, as bytes (its charset is in the status variables).
    pub query: Vec<u8>,
    pub error_code: u16,
}

/// QUERY (2) and QUERY_COMPRESSED (165) → [`QueryEvent`].
///
/// ```text
/// thread id u32, exec time u32, schema length u8, error code u16,
/// status variables length u16, status variables, schema, 0x00, query
/// ```
///
/// In QUERY_COMPRESSED the query is a compressed record (see
/// `compress.rs`).
///
/// # Errors
/// [`DecodeError::WrongEventType`], [`DecodeError::Truncated`],
/// [`DecodeError::Malformed`], [`DecodeError::Decompress`].
pub fn parse_query(event_type: u8, body: &[u8]) -> Result<QueryEvent, DecodeError> {
    if event_type != QUERY_EVENT && event_type != QUERY_COMPRESSED_EVENT {
        return Err(DecodeError::WrongEventType {
            event_type,
            name: event_type_name(event_type),
            expected: "QUERY (2) or QUERY_COMPRESSED (165)",
        });
    }
    let event = event_type_name(event_type);
    let mut r = Reader::new(event, body);
    if body.len() < QUERY_HEADER_LEN {
        return Err(r.truncated("QUERY post-header", QUERY_HEADER_LEN));
    }
    r.skip(4, "thread id")?;
    r.skip(4, "execution time")?;
    let schema_len = usize::from(r.u8("schema length")?);
    let error_code = r.u16_le("error code")?;
    let status_len = usize::from(r.u16_le("status variables length")?);
    r.skip(status_len, "status variables")?;
    let start = r.pos();
    let schema = r.take(schema_len, "schema")?;
    let schema = std::str::from_utf8(schema)
        .map_err(|e| r.malformed_at(start, "schema", format!("not UTF-8: {e}")))?
        .to_owned();
    let nul = r.u8("schema terminator")?;
    if nul != 0 {
        return Err(r.malformed("schema terminator", format!("{nul:#04x}, not NUL")));
    }
    let query_offset = r.pos();
    let query = if event_type == QUERY_COMPRESSED_EVENT {
        inflate_record(event, query_offset, r.rest())?
    } else {
        r.rest().to_vec()
    };
    Ok(QueryEvent {
        schema,
        query,
        error_code,
    })
}

/// A FORMAT_DESCRIPTION event (15), its body as the binlog connection gives
/// it (checksum algorithm byte and CRC32 removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatDescription {
    pub binlog_version: u16,
    /// `"10.11.19-MariaDB-0+deb12u1-log"`.
    pub server_version: String,
    pub create_timestamp: u32,
    /// Common header length (19).
    pub header_length: u8,
    /// Post-header length of event type `t` at index `t - 1`.
    pub post_header_lengths: Vec<u8>,
}

/// Server version field width in FORMAT_DESCRIPTION.
const SERVER_VERSION_LEN: usize = 50;
/// The common header length this module's callers strip.
pub const COMMON_HEADER_LEN: u8 = 19;

/// The post-header lengths this module assumes, per event type.
const EXPECTED_POST_HEADER_LENGTHS: &[(u8, u8)] = &[
    (QUERY_EVENT, QUERY_HEADER_LEN as u8),
    (TABLE_MAP_EVENT, 8),
    (WRITE_ROWS_EVENT_V1, 8),
    (UPDATE_ROWS_EVENT_V1, 8),
    (DELETE_ROWS_EVENT_V1, 8),
    (WRITE_ROWS_EVENT_V2, 10),
    (UPDATE_ROWS_EVENT_V2, 10),
    (DELETE_ROWS_EVENT_V2, 10),
    (ANNOTATE_ROWS_EVENT, 0),
    (BINLOG_CHECKPOINT_EVENT, 4),
    (GTID_EVENT, GTID_HEADER_LEN as u8),
    (GTID_LIST_EVENT, 4),
    (QUERY_COMPRESSED_EVENT, QUERY_HEADER_LEN as u8),
    (WRITE_ROWS_COMPRESSED_EVENT_V1, 8),
    (UPDATE_ROWS_COMPRESSED_EVENT_V1, 8),
    (DELETE_ROWS_COMPRESSED_EVENT_V1, 8),
    (WRITE_ROWS_COMPRESSED_EVENT_V2, 10),
    (UPDATE_ROWS_COMPRESSED_EVENT_V2, 10),
    (DELETE_ROWS_COMPRESSED_EVENT_V2, 10),
];

/// FORMAT_DESCRIPTION (15) body → [`FormatDescription`].
///
/// # Errors
/// [`DecodeError::Truncated`] for a body shorter than its fixed part.
pub fn parse_format_description(body: &[u8]) -> Result<FormatDescription, DecodeError> {
    let mut r = Reader::new("FORMAT_DESCRIPTION", body);
    let binlog_version = r.u16_le("binlog version")?;
    let version = r.take(SERVER_VERSION_LEN, "server version")?;
    let version = version.split(|b| *b == 0).next().unwrap_or_default();
    let server_version = String::from_utf8_lossy(version).into_owned();
    let create_timestamp = r.u32_le("create timestamp")?;
    let header_length = r.u8("header length")?;
    let post_header_lengths = r.rest().to_vec();
    Ok(FormatDescription {
        binlog_version,
        server_version,
        create_timestamp,
        header_length,
        post_header_lengths,
    })
}

impl FormatDescription {
    /// The post-header length of `event_type`, if the server lists it.
    pub fn post_header_length(&self, event_type: u8) -> Option<u8> {
        usize::from(event_type)
            .checked_sub(1)
            .and_then(|i| self.post_header_lengths.get(i))
            .copied()
    }

    /// Verifies that the server lays events out as this module assumes:
    /// binlog version 4, a 19-byte common header, and the post-header
    /// length of every event type decoded here.
    ///
    /// # Errors
    /// [`DecodeError::Malformed`] naming the first event type that differs.
    pub fn check_supported(&self) -> Result<(), DecodeError> {
        let bad = |field: String, reason: String| DecodeError::Malformed {
            event: "FORMAT_DESCRIPTION",
            field,
            offset: 0,
            reason,
        };
        if self.binlog_version != 4 {
            return Err(bad(
                "binlog version".to_owned(),
                format!("{}, only 4 is supported", self.binlog_version),
            ));
        }
        if self.header_length != COMMON_HEADER_LEN {
            return Err(bad(
                "header length".to_owned(),
                format!("{}, expected {COMMON_HEADER_LEN}", self.header_length),
            ));
        }
        for &(event_type, expected) in EXPECTED_POST_HEADER_LENGTHS {
            let found = self.post_header_length(event_type);
            if found != Some(expected) {
                return Err(bad(
                    format!(
                        "post-header length of {} ({event_type})",
                        event_type_name(event_type)
                    ),
                    match found {
                        Some(found) => format!("{found}, expected {expected}"),
                        None => format!(
                            "not listed (the server lists {} event types)",
                            self.post_header_lengths.len()
                        ),
                    },
                ));
            }
        }
        Ok(())
    }
}

/// An `XA_PREPARE_LOG_EVENT`: the XID of the transaction its group
/// prepared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XaPrepare {
    /// Written for `XA COMMIT … ONE PHASE`: the group committed here.
    pub one_phase: bool,
    /// The XID as MariaDB writes it in `XA COMMIT`/`XA ROLLBACK`
    /// statements: `X'<gtrid hex>',X'<bqual hex>',<formatID>`.
    pub xid: String,
}

/// XA_PREPARE_LOG_EVENT (38) → [`XaPrepare`].
///
/// ```text
/// one_phase u8, formatID u32, gtrid_length u32, bqual_length u32,
/// gtrid (gtrid_length bytes), bqual (bqual_length bytes)
/// ```
///
/// # Errors
/// [`DecodeError::Truncated`] for a short body, [`DecodeError::Malformed`]
/// for XID parts longer than XA allows (64 bytes each).
pub fn parse_xa_prepare(body: &[u8]) -> Result<XaPrepare, DecodeError> {
    let mut r = Reader::new("XA_PREPARE", body);
    let one_phase = r.u8("one_phase")? != 0;
    let format_id = r.u32_le("formatID")?;
    let gtrid_len = r.u32_le("gtrid_length")?;
    let bqual_len = r.u32_le("bqual_length")?;
    for (len, field) in [(gtrid_len, "gtrid_length"), (bqual_len, "bqual_length")] {
        if len > 64 {
            return Err(r.malformed(field, format!("{len}, at most 64")));
        }
    }
    let gtrid = r.take(usize::try_from(gtrid_len).unwrap_or(64), "gtrid")?;
    let bqual = r.take(usize::try_from(bqual_len).unwrap_or(64), "bqual")?;
    let hex = |bytes: &[u8]| -> String { bytes.iter().map(|b| format!("{b:02x}")).collect() };
    Ok(XaPrepare {
        one_phase,
        // MariaDB's formatID is a signed long; -1 means a null XID.
        xid: format!(
            "X'{}',X'{}',{}",
            hex(gtrid),
            hex(bqual),
            i32::from_le_bytes(format_id.to_le_bytes())
        ),
    })
}
