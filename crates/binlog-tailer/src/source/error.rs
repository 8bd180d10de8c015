//! Source errors, and how they are sorted: transient ones end the session
//! and the reader reconnects from the last transaction handed over; definite
//! ones stop the tailer with the binlog position, the table and the fix.

use std::time::Duration;

use super::wire::WireError;
use crate::decode::DecodeError;
use crate::map::MapError;
use crate::position::Gtid;

/// MariaDB server error codes the source reacts to.
pub mod server_error {
    /// `ER_MASTER_FATAL_ERROR_READING_BINLOG`: purged binlog, unknown GTID, …
    pub const FATAL_READING_BINLOG: u16 = 1236;
    pub const ACCESS_DENIED: u16 = 1045;
    pub const SPECIFIC_ACCESS_DENIED: u16 = 1227;
    pub const SERVER_SHUTDOWN: u16 = 1053;
    pub const CONNECTION_KILLED: u16 = 1927;
    /// `ER_SLAVE_SAME_ID`: another replica registered with our server id.
    pub const SAME_SERVER_ID: u16 = 4052;
    /// `ER_ERROR_WHEN_EXECUTING_COMMAND`: `SHOW BINLOG EVENTS` at an offset
    /// where no event begins, or past the file's end.
    pub const ERROR_WHEN_EXECUTING_COMMAND: u16 = 1220;

    /// Whether a server error says the server or the connection is going
    /// away (a new connection may succeed): shutdown, a killed connection,
    /// or a client-side code (2xxx).
    pub fn is_transient(code: u16) -> bool {
        matches!(code, SERVER_SHUTDOWN | CONNECTION_KILLED) || (2000..3000).contains(&code)
    }
}

/// Where a source error happened.
#[derive(Debug, Clone, Default)]
pub struct At {
    pub file: String,
    pub offset: u64,
    pub gtid: Option<Gtid>,
}

impl std::fmt::Display for At {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.offset)?;
        if let Some(gtid) = self.gtid {
            write!(f, " (transaction {gtid})")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("connecting to MariaDB at {addr}: {source}")]
    Connect {
        addr: String,
        source: mysql_async::Error,
    },
    #[error("connecting to MariaDB at {addr}: no answer within {timeout:?}")]
    ConnectTimeout { addr: String, timeout: Duration },
    #[error("connecting to MariaDB at {addr} for the binlog: {source}")]
    BinlogConnect { addr: String, source: WireError },
    #[error("reading the binlog at {at}: {source}")]
    BinlogRead { at: At, source: WireError },
    #[error(
        "reading the binlog after {at}: the next event is larger than source.max_event_bytes \
         ({limit} bytes), so it cannot be read. Nothing after {at} was published and the \
         checkpoint stays there. Fix: raise source.max_event_bytes (at most 1073741824, the \
         default, MariaDB's largest event)"
    )]
    EventTooLarge { at: At, limit: usize },
    #[error(
        "reading the binlog after {at}: the server cannot send the next event: {message}. \
         Nothing after {at} was published and the checkpoint stays there. Fix: on the source \
         server raise max_allowed_packet (SET GLOBAL max_allowed_packet = 1073741824, and in its \
         configuration), then restart the tailer"
    )]
    ServerEventTooLarge { at: At, message: String },
    #[error(
        "the binlog after {at} ends in the middle of an event ({message}): the server crashed \
         while writing a transaction there, which never committed; reading on by GTID state, \
         which starts in the binlog the server began after its restart"
    )]
    CutOff { at: At, message: String },
    #[error("reading the binlog at {at}: no event and no heartbeat for {timeout:?}; the connection is presumed dead")]
    Silence { at: At, timeout: Duration },
    #[error("reading the binlog at {at}: the server ended the stream")]
    Ended { at: At },
    #[error(
        "the server cannot serve the binlog from {requested}: {message}. \
         The server still has transactions {server_gtids} in binlogs {server_files:?}. \
         The events in between are gone from this server: read a server that still has them \
         (any server of the topology, by GTID), restore the binlogs, or, accepting the gap, \
         move the checkpoint past it with `binlog-tailer checkpoint set <GTID state>`. \
         Nothing was skipped."
    )]
    Unavailable {
        requested: String,
        message: String,
        server_gtids: String,
        server_files: Vec<String>,
    },
    #[error(
        "MariaDB refused the tailer: {message}. Check the password (source.password_env or \
         source.password_file), that the user exists for this host, whether the server requires \
         TLS (source.tls), and that the user has REPLICATION SLAVE, BINLOG MONITOR and SELECT on \
         the tailed tables"
    )]
    AccessDenied { message: String },
    #[error(
        "another replica connected to the server with this tailer's replica id {server_id}, and \
         the server disconnected this one ({message}). Every tailer and replica needs its own \
         source.server_id (replay uses source.replay_server_id)"
    )]
    SameServerId { server_id: u32, message: String },
    #[error("decoding the binlog at {at}: {source}")]
    Decode { at: At, source: DecodeError },
    #[error("mapping a row at {at}: {source}")]
    Map { at: At, source: MapError },
    #[error("checksum mismatch at {at} (event type {event_type}): the binlog is corrupt on the server or in transit")]
    Checksum { at: At, event_type: u8 },
    #[error("binlog at {at}: {problem}")]
    Protocol { at: At, problem: String },
    #[error("the binlog at {at} is encrypted (START_ENCRYPTION event); binlog-tailer cannot read encrypted binlogs: set encrypt_binlog=OFF on this server or read a server that does not encrypt")]
    Encrypted { at: At },
    #[error("the server recorded an incident at {at}: its binlog may be missing changes; stopping rather than publishing an incomplete history")]
    Incident { at: At },
    #[error("table {table} at {at}: {problem}")]
    Table {
        at: At,
        table: String,
        problem: String,
    },
    #[error("querying the server: {0}")]
    Query(mysql_async::Error),
    /// The server answered a query with something that does not parse.
    #[error("{query}: {problem}")]
    Answer { query: String, problem: String },
}

impl SourceError {
    /// Whether a new session from the last handed-off position may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            SourceError::ConnectTimeout { .. }
            | SourceError::Silence { .. }
            | SourceError::Ended { .. }
            | SourceError::CutOff { .. } => true,
            SourceError::BinlogConnect { source, .. } | SourceError::BinlogRead { source, .. } => {
                source.is_transient()
            }
            SourceError::Connect { source, .. } | SourceError::Query(source) => match source {
                mysql_async::Error::Server(e) => server_error::is_transient(e.code),
                mysql_async::Error::Url(_) => false,
                _ => true,
            },
            _ => false,
        }
    }
}

/// Whether a server error refuses the tailer's credentials or privileges.
pub fn is_access_denied(code: u16) -> bool {
    matches!(
        code,
        server_error::ACCESS_DENIED | server_error::SPECIFIC_ACCESS_DENIED
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_over_the_limit_is_definite_a_cut_off_binlog_is_not() {
        let error = SourceError::EventTooLarge {
            at: At {
                file: "mariadb-bin.000007".into(),
                offset: 1234,
                gtid: None,
            },
            limit: 33_554_432,
        };
        assert!(!error.is_transient());
        let cut_off = SourceError::CutOff {
            at: At::default(),
            message: "binlog truncated in the middle of event".into(),
        };
        assert!(cut_off.is_transient(), "read on by GTID state");
        let text = error.to_string();
        assert!(
            text.contains("mariadb-bin.000007:1234")
                && text.contains("source.max_event_bytes (33554432 bytes)"),
            "{text}"
        );
    }
}
