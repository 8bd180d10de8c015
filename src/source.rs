//! Source: read a MariaDB server's binlog as a replica and hand committed
//! transactions to the sink as records and commit marks.
//!
//! # Protocol
//! One connection per session: `SET @mariadb_slave_capability=4` (so GTID
//! events arrive as themselves), `SET @master_binlog_checksum` (we verify
//! CRC32 on every event), `SET @master_heartbeat_period` (the server sends a
//! heartbeat when idle; silence longer than `source.read_timeout` means the
//! connection is dead), then `COM_BINLOG_DUMP`. Resuming by GTID sets
//! `@slave_connect_state` to the checkpoint's GTID state and asks for an empty
//! file name; resuming by file asks for the file and offset.
//! See <https://mariadb.com/kb/en/com_binlog_dump/> and
//! <https://mariadb.com/kb/en/gtid/>.
//!
//! # Transactions
//! A transaction starts at a GTID event and ends at its XID, at a `COMMIT` or
//! `ROLLBACK` query (non-transactional engines), or after the one statement of
//! a standalone GTID (DDL). Rows are counted across the whole transaction
//! (every table, every operation): a row's index is its place in the
//! transaction, which with the GTID names it everywhere. Inserted rows of
//! tailed tables become records as they are read, so a transaction of any size
//! streams through bounded memory; its commit mark follows its last record.
//!
//! # Error handling
//! [`SourceError::is_transient`] sorts errors. Transient ones (network,
//! server restart, silence) end the session; the next session resumes after the
//! last transaction handed to the sink, and skips the rows of an interrupted
//! transaction that were already handed over, so a reconnect neither loses nor
//! repeats a record. Definite ones (purged binlog, a row that cannot be
//! decoded or mapped, an unknown event, a checksum mismatch, an encrypted
//! binlog) stop the tailer with the binlog position, the table and the fix.
//!
//! # Restart
//! The source keeps no state of its own: it starts wherever the pipeline says
//! (the stored checkpoint), so a crash repeats at most the transactions after
//! the last checkpoint, with the same event ids.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use mysql_async::binlog::events::Event;
use mysql_async::binlog::BinlogChecksumAlg;
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStreamRequest, Conn, Opts, OptsBuilder, SslOpts};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::config::{Config, TableConfig, TlsMode};
use crate::decode::{self, CharsetMap, DecodeError, RowsKind, TableMap};
use crate::map::{self, ColumnLayout, Logical, MapError, RowOrigin, TableLayout};
use crate::position::{BinlogCoord, Gtid, GtidState, Position};
use crate::sink::{Commit, Item};
use crate::stats::Stats;

/// MariaDB binlog event type codes (`Log_event_type` in `sql/log_event.h`).
pub mod event_type {
    pub const QUERY: u8 = 2;
    pub const STOP: u8 = 3;
    pub const ROTATE: u8 = 4;
    pub const INTVAR: u8 = 5;
    pub const RAND: u8 = 13;
    pub const USER_VAR: u8 = 14;
    pub const FORMAT_DESCRIPTION: u8 = 15;
    pub const XID: u8 = 16;
    pub const TABLE_MAP: u8 = 19;
    pub const WRITE_ROWS_V1: u8 = 23;
    pub const UPDATE_ROWS_V1: u8 = 24;
    pub const DELETE_ROWS_V1: u8 = 25;
    pub const INCIDENT: u8 = 26;
    pub const HEARTBEAT: u8 = 27;
    pub const WRITE_ROWS_V2: u8 = 30;
    pub const UPDATE_ROWS_V2: u8 = 31;
    pub const DELETE_ROWS_V2: u8 = 32;
    pub const ANNOTATE_ROWS: u8 = 160;
    pub const BINLOG_CHECKPOINT: u8 = 161;
    pub const GTID: u8 = 162;
    pub const GTID_LIST: u8 = 163;
    pub const START_ENCRYPTION: u8 = 164;
    pub const QUERY_COMPRESSED: u8 = 165;
    pub const WRITE_ROWS_COMPRESSED_V1: u8 = 166;
    pub const UPDATE_ROWS_COMPRESSED_V1: u8 = 167;
    pub const DELETE_ROWS_COMPRESSED_V1: u8 = 168;
    pub const WRITE_ROWS_COMPRESSED_V2: u8 = 169;
    pub const UPDATE_ROWS_COMPRESSED_V2: u8 = 170;
    pub const DELETE_ROWS_COMPRESSED_V2: u8 = 171;

    /// Whether `t` is a rows event (any version, compressed or not).
    pub fn is_rows(t: u8) -> bool {
        matches!(t, 23..=25 | 30..=32 | 166..=171)
    }
}

/// `LOG_EVENT_IGNORABLE_F`: an event a reader that does not know it may skip.
const LOG_EVENT_IGNORABLE_F: u16 = 0x80;

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
    #[error("reading the binlog at {at}: {source}")]
    Stream { at: At, source: mysql_async::Error },
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
}

impl SourceError {
    /// Whether a new session from the last handed-off position may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            SourceError::ConnectTimeout { .. }
            | SourceError::Silence { .. }
            | SourceError::Ended { .. } => true,
            SourceError::Connect { source, .. }
            | SourceError::Stream { source, .. }
            | SourceError::Query(source) => match source {
                mysql_async::Error::Server(e) => {
                    matches!(
                        e.code,
                        server_error::SERVER_SHUTDOWN | server_error::CONNECTION_KILLED
                    ) || (2000..3000).contains(&e.code)
                }
                mysql_async::Error::Url(_) => false,
                _ => true,
            },
            _ => false,
        }
    }
}

/// Builds the connection options for the source.
pub fn connection_opts(config: &Config, password: &str) -> Opts {
    let source = &config.source;
    let mut builder = OptsBuilder::default()
        .ip_or_hostname(source.host.clone())
        .tcp_port(source.port)
        .user(Some(source.user.clone()))
        .pass(Some(password.to_owned()))
        .prefer_socket(false)
        .tcp_keepalive(Some(Duration::from_secs(30)))
        .stmt_cache_size(16);
    match source.tls.mode {
        TlsMode::Disabled => {}
        TlsMode::Required => {
            let mut ssl = SslOpts::default();
            if let Some(ca) = &source.tls.ca_file {
                ssl = ssl.with_root_certs(vec![ca.clone().into()]);
            }
            builder = builder.ssl_opts(Some(ssl));
        }
        TlsMode::RequiredNoVerify => {
            builder = builder.ssl_opts(Some(
                SslOpts::default()
                    .with_danger_accept_invalid_certs(true)
                    .with_danger_skip_domain_validation(true),
            ));
        }
    }
    builder.into()
}

/// Opens a query connection to the source.
///
/// # Errors
/// [`SourceError::Connect`], [`SourceError::ConnectTimeout`] or
/// [`SourceError::AccessDenied`].
pub async fn connect(config: &Config, opts: &Opts) -> Result<Conn, SourceError> {
    let addr = format!("{}:{}", config.source.host, config.source.port);
    match tokio::time::timeout(config.source.connect_timeout, Conn::new(opts.clone())).await {
        Err(_) => Err(SourceError::ConnectTimeout {
            addr,
            timeout: config.source.connect_timeout,
        }),
        Ok(Err(mysql_async::Error::Server(e)))
            if matches!(
                e.code,
                server_error::ACCESS_DENIED | server_error::SPECIFIC_ACCESS_DENIED
            ) =>
        {
            Err(SourceError::AccessDenied { message: e.message })
        }
        Ok(Err(source)) => Err(SourceError::Connect { addr, source }),
        Ok(Ok(conn)) => Ok(conn),
    }
}

/// Where a session starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// After the transactions of this GTID state.
    Gtid(GtidState),
    /// At this file offset (a transaction boundary). `gtid` is the state at
    /// that point when known; `None` to learn it from the file's GTID list
    /// (only at offset 4).
    Coord {
        coord: BinlogCoord,
        gtid: Option<GtidState>,
    },
}

impl std::fmt::Display for Start {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Start::Gtid(state) => write!(f, "GTID state {state}"),
            Start::Coord { coord, .. } => write!(f, "{coord}"),
        }
    }
}

/// Facts about the server learned at connection time.
#[derive(Debug, Clone)]
pub struct ServerInfo {
    pub server_id: u32,
    pub checksum_crc32: bool,
}

/// Reads `@@server_id` and whether the binlog is checksummed.
///
/// # Errors
/// [`SourceError::Query`].
pub async fn server_info(conn: &mut Conn) -> Result<ServerInfo, SourceError> {
    let row: Option<(u32, String)> = conn
        .query_first("SELECT @@server_id, @@binlog_checksum")
        .await
        .map_err(SourceError::Query)?;
    let (server_id, checksum) = row.unwrap_or((0, "NONE".into()));
    Ok(ServerInfo {
        server_id,
        checksum_crc32: checksum.eq_ignore_ascii_case("CRC32"),
    })
}

/// Collation id → character set, as the server defines them.
///
/// # Errors
/// [`SourceError::Query`].
pub async fn charset_map(conn: &mut Conn) -> Result<CharsetMap, SourceError> {
    let rows: Vec<(u32, String)> = conn
        .query(
            "SELECT ID, CHARACTER_SET_NAME FROM information_schema.COLLATIONS WHERE ID IS NOT NULL",
        )
        .await
        .map_err(SourceError::Query)?;
    Ok(CharsetMap::from_rows(rows))
}

/// The server's oldest binlog and its current GTID state, for `earliest`,
/// `latest` and for error messages.
pub async fn binlog_files(conn: &mut Conn) -> Result<Vec<String>, SourceError> {
    conn.query_map("SHOW BINARY LOGS", |row: mysql_async::Row| {
        row.get::<String, _>(0).unwrap_or_default()
    })
    .await
    .map_err(SourceError::Query)
}

pub async fn gtid_binlog_pos(conn: &mut Conn) -> Result<GtidState, SourceError> {
    let text: Option<String> = conn
        .query_first("SELECT @@gtid_binlog_pos")
        .await
        .map_err(SourceError::Query)?;
    text.unwrap_or_default()
        .parse()
        .map_err(
            |e: crate::position::ParsePositionError| SourceError::Protocol {
                at: At::default(),
                problem: format!("@@gtid_binlog_pos: {e}"),
            },
        )
}

pub async fn master_coord(conn: &mut Conn) -> Result<Option<BinlogCoord>, SourceError> {
    let row: Option<mysql_async::Row> = conn
        .query_first("SHOW MASTER STATUS")
        .await
        .map_err(SourceError::Query)?;
    Ok(row.and_then(|row| {
        let file = row.get::<String, _>(0)?;
        let pos = row.get::<u64, _>(1)?;
        Some(BinlogCoord::new(file, pos))
    }))
}

/// A parsed TABLE_MAP and, for tailed tables, how its rows are published.
struct KnownTable {
    map: Arc<TableMap>,
    /// The TABLE_MAP body it was parsed from, to skip re-parsing identical maps.
    raw: Vec<u8>,
    layout: Option<Arc<TableLayout>>,
}

/// The transaction being read.
#[derive(Debug, Clone)]
struct Txn {
    gtid: Gtid,
    standalone: bool,
    start_offset: u64,
    commit_time: u32,
    rows: u32,
    /// Set once the standalone transaction's statement was read.
    statement_seen: bool,
    /// Rows of an undecodable, untailed table were passed over: row indexes
    /// after them are unknown.
    uncounted: bool,
}

/// How far the reader got, kept across sessions.
#[derive(Debug, Clone)]
pub struct Progress {
    /// The end of the last transaction handed to the sink (or the start).
    pub position: Position,
    /// How the next session starts.
    pub start: Start,
    /// A transaction interrupted by a session's end: its GTID and how many of
    /// its rows were already handed over (they are skipped when re-read).
    interrupted: Option<(Gtid, u32)>,
    /// Stop once a transaction at or after this point has been handed over
    /// (bounded replays).
    pub stop_at: Option<StopAt>,
}

impl Progress {
    /// Whether a bounded read has reached its end point.
    fn reached_stop(&self) -> bool {
        self.stop_at
            .as_ref()
            .is_some_and(|s| s.reached(&self.position))
    }
}

/// Where a bounded read stops: after the transaction that reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopAt {
    Gtid(GtidState),
    Coord(BinlogCoord),
}

impl StopAt {
    /// Whether `position` is at or past this point.
    pub fn reached(&self, position: &Position) -> bool {
        match self {
            StopAt::Gtid(target) => target.iter().all(|g| position.gtid.contains(g)),
            StopAt::Coord(target) => position.coord.as_ref().is_some_and(|c| {
                c.partial_cmp(target)
                    .is_some_and(|o| o != std::cmp::Ordering::Less)
            }),
        }
    }
}

impl std::fmt::Display for StopAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopAt::Gtid(g) => write!(f, "GTID state {g}"),
            StopAt::Coord(c) => write!(f, "{c}"),
        }
    }
}

impl Progress {
    pub fn new(start: Start) -> Self {
        let position = match &start {
            Start::Gtid(state) => Position {
                gtid: state.clone(),
                coord: None,
            },
            Start::Coord { coord, gtid } => Position {
                gtid: gtid.clone().unwrap_or_default(),
                coord: Some(coord.clone()),
            },
        };
        Self {
            position,
            start,
            interrupted: None,
            stop_at: None,
        }
    }
}

/// Why a session ended without error.
#[derive(Debug, PartialEq, Eq)]
pub enum Stopped {
    /// Shutdown was asked for and the reader stopped at a transaction end.
    AtBoundary,
    /// Shutdown was asked for, and the transaction being read did not end
    /// within the drain deadline.
    MidTransaction,
    /// The sink went away.
    SinkClosed,
    /// A bounded read reached its end point.
    Reached,
}

/// The reader: sessions against the server until shutdown or a definite
/// error.
pub struct Reader {
    config: Arc<Config>,
    opts: Opts,
    charsets: CharsetMap,
    stats: Arc<Stats>,
    tables: HashMap<u64, KnownTable>,
    /// Untailed tables whose rows could not be decoded (warned once each).
    undecodable: std::collections::HashSet<String>,
}

impl Reader {
    pub fn new(config: Arc<Config>, opts: Opts, charsets: CharsetMap, stats: Arc<Stats>) -> Self {
        Self {
            config,
            opts,
            charsets,
            stats,
            tables: HashMap::new(),
            undecodable: std::collections::HashSet::new(),
        }
    }

    /// Runs sessions, reconnecting with backoff after transient errors, until
    /// shutdown or a definite error.
    ///
    /// # Errors
    /// The definite [`SourceError`] that stopped it.
    pub async fn run(
        &mut self,
        progress: &mut Progress,
        items: mpsc::Sender<Item>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<Stopped, SourceError> {
        let mut backoff = self.config.source.reconnect_backoff_min;
        loop {
            let began = Instant::now();
            let result = self.session(progress, &items, &mut shutdown).await;
            self.stats.set_source_connected(false);
            match result {
                Ok(stopped) => return Ok(stopped),
                Err(e) if e.is_transient() => {
                    if began.elapsed() > Duration::from_secs(30) {
                        backoff = self.config.source.reconnect_backoff_min;
                    }
                    self.stats.reconnects.inc();
                    tracing::warn!(error = %e, retry_in = ?backoff, resume = %progress.start, "source connection lost; reconnecting");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.changed() => return Ok(Stopped::AtBoundary),
                    }
                    backoff = (backoff * 2).min(self.config.source.reconnect_backoff_max);
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn session(
        &mut self,
        progress: &mut Progress,
        items: &mpsc::Sender<Item>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Stopped, SourceError> {
        if *shutdown.borrow() {
            return Ok(Stopped::AtBoundary);
        }
        if progress.reached_stop() {
            return Ok(Stopped::Reached);
        }
        let mut conn = connect(&self.config, &self.opts).await?;
        let info = server_info(&mut conn).await?;

        let heartbeat_ns = self.config.source.heartbeat.as_nanos();
        let mut setup = vec![
            "SET @mariadb_slave_capability = 4".to_owned(),
            "SET @master_binlog_checksum = @@global.binlog_checksum".to_owned(),
            format!("SET @master_heartbeat_period = {heartbeat_ns}"),
        ];
        let (file, offset) = match &progress.start {
            Start::Gtid(state) => {
                setup.push(format!("SET @slave_connect_state = '{state}'"));
                setup.push("SET @slave_gtid_strict_mode = 0".to_owned());
                (String::new(), 4)
            }
            Start::Coord { coord, .. } => (coord.file.clone(), coord.offset),
        };
        for statement in &setup {
            conn.query_drop(statement)
                .await
                .map_err(SourceError::Query)?;
        }
        tracing::info!(server_id = info.server_id, start = %progress.start, "streaming the binlog");
        let request = BinlogStreamRequest::new(self.config.source.server_id)
            .with_filename(file.as_bytes())
            .with_pos(offset);
        let mut stream = match conn.get_binlog_stream(request).await {
            Ok(stream) => stream,
            Err(e) => return Err(self.stream_error(e, progress).await),
        };
        self.stats.set_source_connected(true);
        self.tables.clear();

        let mut file = file;
        let mut seen_fde = false;
        let mut txn: Option<Txn> = None;
        let mut stopping: Option<Instant> = None;
        let read_timeout = self.config.source.read_timeout;

        loop {
            let at = |txn: &Option<Txn>, offset: u64, file: &str| At {
                file: file.to_owned(),
                offset,
                gtid: txn.as_ref().map(|t| t.gtid),
            };
            if let Some(deadline) = stopping {
                if txn.is_none() {
                    return Ok(Stopped::AtBoundary);
                }
                if Instant::now() >= deadline {
                    tracing::warn!("shutdown: the transaction being read did not end in time; its records are not checkpointed and will be read again");
                    return Ok(Stopped::MidTransaction);
                }
            }
            let next = tokio::select! {
                biased;
                _ = shutdown.changed(), if stopping.is_none() => {
                    stopping = Some(Instant::now() + self.config.shutdown.drain_timeout);
                    continue;
                }
                next = tokio::time::timeout(read_timeout, stream.next()) => next,
            };
            let event = match next {
                Err(_) => {
                    return Err(SourceError::Silence {
                        at: at(
                            &txn,
                            progress.position.coord.as_ref().map_or(0, |c| c.offset),
                            &file,
                        ),
                        timeout: read_timeout,
                    })
                }
                Ok(None) => {
                    return Err(SourceError::Ended {
                        at: at(&txn, 0, &file),
                    })
                }
                Ok(Some(Err(e))) => return Err(self.stream_error(e, progress).await),
                Ok(Some(Ok(event))) => event,
            };
            let header = event.header();
            let kind = header.event_type_raw();
            let end = u64::from(header.log_pos());
            self.stats.events_read(kind, header.event_size());

            if seen_fde && info.checksum_crc32 {
                verify_checksum(&event).map_err(|()| SourceError::Checksum {
                    at: at(&txn, end, &file),
                    event_type: kind,
                })?;
            }
            let body = event.data();
            let decode_err = |source, txn: &Option<Txn>, file: &str| SourceError::Decode {
                at: at(txn, end, file),
                source,
            };

            match kind {
                event_type::FORMAT_DESCRIPTION => {
                    // The decoder assumes MariaDB's post-header lengths; a
                    // server that writes others is refused, not misread.
                    decode::parse_format_description(body)
                        .and_then(|fde| fde.check_supported())
                        .map_err(|e| decode_err(e, &txn, &file))?;
                    seen_fde = true;
                }
                event_type::ROTATE => {
                    // Before the format description the body still carries its
                    // CRC32 (the reader does not know the checksum yet).
                    let body = if !seen_fde && info.checksum_crc32 && body.len() >= 12 {
                        &body[..body.len() - 4]
                    } else {
                        body
                    };
                    let name = body.get(8..).ok_or_else(|| SourceError::Protocol {
                        at: at(&txn, end, &file),
                        problem: "ROTATE event shorter than 8 bytes".into(),
                    })?;
                    file = String::from_utf8_lossy(name).into_owned();
                    if let Some(coord) = &mut progress.position.coord {
                        if txn.is_none() && header.timestamp() != 0 {
                            // A real rotation: the next file begins.
                            *coord = BinlogCoord::new(file.clone(), 4);
                        }
                    } else if txn.is_none() {
                        let offset = body
                            .get(..8)
                            .and_then(|b| b.try_into().ok())
                            .map_or(4, u64::from_le_bytes);
                        progress.position.coord = Some(BinlogCoord::new(file.clone(), offset));
                    }
                }
                event_type::GTID_LIST => {
                    if progress.position.gtid.is_empty() && txn.is_none() {
                        let list = decode::parse_gtid_list(body)
                            .map_err(|e| decode_err(e, &txn, &file))?;
                        progress.position.gtid = list.into_iter().collect();
                    }
                }
                event_type::GTID => {
                    let gtid = decode::parse_gtid(body, header.server_id())
                        .map_err(|e| decode_err(e, &txn, &file))?;
                    if let Some(open) = &txn {
                        return Err(SourceError::Protocol {
                            at: at(&txn, end, &file),
                            problem: format!(
                                "GTID {} begins before transaction {} ended",
                                gtid.gtid, open.gtid
                            ),
                        });
                    }
                    txn = Some(Txn {
                        gtid: gtid.gtid,
                        standalone: gtid.standalone,
                        start_offset: end.saturating_sub(u64::from(header.event_size())),
                        commit_time: header.timestamp(),
                        rows: 0,
                        statement_seen: false,
                        uncounted: false,
                    });
                }
                event_type::TABLE_MAP => {
                    self.table_map(body)
                        .map_err(|e| e.at(at(&txn, end, &file)))?;
                }
                t if event_type::is_rows(t) => {
                    let Some(open) = txn.as_mut() else {
                        return Err(SourceError::Protocol {
                            at: at(&txn, end, &file),
                            problem: "rows event outside a transaction".into(),
                        });
                    };
                    let table_id = decode::rows_table_id(t, body)
                        .map_err(|e| decode_err(e, &Some(open.clone()), &file))?;
                    let known =
                        self.tables
                            .get(&table_id)
                            .ok_or_else(|| SourceError::Protocol {
                                at: at(&Some(open.clone()), end, &file),
                                problem: format!(
                                "rows event for table id {table_id}, which no TABLE_MAP announced"
                            ),
                            })?;
                    let table_name = format!("{}.{}", known.map.database, known.map.table);
                    let rows = match decode::parse_rows(t, body, &known.map) {
                        Ok(rows) => rows,
                        // A table that is not tailed is only counted: a value
                        // it cannot decode (an unsupported charset, say) must
                        // not stop the tailer. Its row indexes are not needed
                        // either: a transaction that also writes a tailed
                        // table is refused below if its rows cannot be counted.
                        Err(e) if known.layout.is_none() => {
                            if self.undecodable.insert(table_name.clone()) {
                                tracing::warn!(table = %table_name, error = %e, "cannot decode rows of a table that is not tailed; they are not counted");
                            }
                            open.uncounted = true;
                            continue;
                        }
                        Err(e) => {
                            return Err(SourceError::Decode {
                                at: at(&Some(open.clone()), end, &file),
                                source: e,
                            })
                        }
                    };
                    if open.uncounted && known.layout.is_some() && rows.kind == RowsKind::Insert {
                        return Err(SourceError::Table {
                            at: at(&Some(open.clone()), end, &file),
                            table: table_name,
                            problem: "an earlier statement of this transaction wrote rows of another table that \
                                      cannot be decoded, so this row's index in the transaction (part of its event \
                                      id) is unknown; see the warning above for that table"
                                .into(),
                        });
                    }
                    self.stats
                        .rows_seen(&table_name, rows.kind, rows.rows.len());
                    let skip = match progress.interrupted {
                        Some((gtid, n)) if gtid == open.gtid => n,
                        _ => 0,
                    };
                    if skip > open.rows && open.rows == 0 {
                        tracing::info!(
                            gtid = %open.gtid,
                            rows = skip,
                            "re-reading an interrupted transaction: skipping the rows already handed over"
                        );
                    }
                    let layout = known.layout.clone();
                    for change in rows.rows {
                        let row_index = open.rows;
                        open.rows += 1;
                        let (Some(layout), RowsKind::Insert) = (&layout, rows.kind) else {
                            continue;
                        };
                        if row_index < skip {
                            continue;
                        }
                        let after = change.after.unwrap_or_default();
                        let origin = RowOrigin {
                            gtid: open.gtid,
                            row_index,
                            server_id: info.server_id,
                            file: &file,
                            pos: open.start_offset,
                            commit_time: open.commit_time,
                        };
                        let record = map::map_insert(layout, &after, &origin).map_err(|e| {
                            SourceError::Map {
                                at: at(&Some(open.clone()), end, &file),
                                source: e,
                            }
                        })?;
                        if !self.hand_over(items, Item::Record(record), stopping).await {
                            return Ok(Stopped::SinkClosed);
                        }
                        progress.interrupted = Some((open.gtid, row_index + 1));
                    }
                }
                event_type::XID => {
                    if let Some(done) = txn.take() {
                        if !self
                            .commit(progress, items, &done, &file, end, info.server_id, stopping)
                            .await
                        {
                            return Ok(Stopped::SinkClosed);
                        }
                        if progress.reached_stop() {
                            return Ok(Stopped::Reached);
                        }
                    }
                }
                event_type::QUERY | event_type::QUERY_COMPRESSED => {
                    let query =
                        decode::parse_query(kind, body).map_err(|e| decode_err(e, &txn, &file))?;
                    let text = String::from_utf8_lossy(&query.query);
                    let statement = text.trim();
                    let ends = match &mut txn {
                        None => false,
                        Some(open) if open.standalone => {
                            open.statement_seen = true;
                            true
                        }
                        Some(_) => {
                            statement.eq_ignore_ascii_case("COMMIT")
                                || statement.eq_ignore_ascii_case("ROLLBACK")
                        }
                    };
                    if ends {
                        if let Some(done) = txn.take() {
                            if !self
                                .commit(
                                    progress,
                                    items,
                                    &done,
                                    &file,
                                    end,
                                    info.server_id,
                                    stopping,
                                )
                                .await
                            {
                                return Ok(Stopped::SinkClosed);
                            }
                            if progress.reached_stop() {
                                return Ok(Stopped::Reached);
                            }
                        }
                    }
                }
                event_type::HEARTBEAT => self.stats.heartbeat(),
                event_type::ANNOTATE_ROWS
                | event_type::BINLOG_CHECKPOINT
                | event_type::STOP
                | event_type::INTVAR
                | event_type::RAND
                | event_type::USER_VAR => {}
                event_type::START_ENCRYPTION => {
                    return Err(SourceError::Encrypted {
                        at: at(&txn, end, &file),
                    })
                }
                event_type::INCIDENT => {
                    return Err(SourceError::Incident {
                        at: at(&txn, end, &file),
                    })
                }
                other if header.flags_raw() & LOG_EVENT_IGNORABLE_F != 0 => {
                    tracing::debug!(event_type = other, "skipping an ignorable event");
                }
                other => {
                    return Err(SourceError::Protocol {
                        at: at(&txn, end, &file),
                        problem: format!(
                        "event type {other} is unknown to binlog-tailer; it cannot tell whether \
                             the event changes data, so it stops rather than skip it"
                    ),
                    })
                }
            }
        }
    }

    /// Sends an item to the sink; while stopping, gives up at the deadline.
    async fn hand_over(
        &self,
        items: &mpsc::Sender<Item>,
        item: Item,
        stopping: Option<Instant>,
    ) -> bool {
        match stopping {
            None => items.send(item).await.is_ok(),
            Some(deadline) => matches!(
                tokio::time::timeout_at(deadline, items.send(item)).await,
                Ok(Ok(()))
            ),
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn commit(
        &self,
        progress: &mut Progress,
        items: &mpsc::Sender<Item>,
        txn: &Txn,
        file: &str,
        end: u64,
        server_id: u32,
        stopping: Option<Instant>,
    ) -> bool {
        let mut position = progress.position.clone();
        position.gtid.apply(txn.gtid);
        if end != 0 {
            position.coord = Some(BinlogCoord::new(file, end));
        }
        let commit = Commit {
            position: position.clone(),
            server_id,
            commit_time: txn.commit_time,
        };
        if !self.hand_over(items, Item::Commit(commit), stopping).await {
            return false;
        }
        self.stats.transaction(txn.commit_time);
        self.stats.set_read_position(&position);
        progress.position = position;
        progress.interrupted = None;
        progress.start = match (&progress.start, &progress.position.coord) {
            (Start::Coord { .. }, Some(coord)) => Start::Coord {
                coord: coord.clone(),
                gtid: Some(progress.position.gtid.clone()),
            },
            _ => Start::Gtid(progress.position.gtid.clone()),
        };
        true
    }

    async fn stream_error(&self, error: mysql_async::Error, progress: &Progress) -> SourceError {
        if let mysql_async::Error::Server(e) = &error {
            if e.code == server_error::FATAL_READING_BINLOG {
                // What the server still has: its oldest binlog and the GTID
                // state where it begins, so the gap is plain to see.
                let (server_gtids, server_files) = match connect(&self.config, &self.opts).await {
                    Ok(mut conn) => {
                        let files = binlog_files(&mut conn).await.unwrap_or_default();
                        let oldest = match files.first() {
                            Some(first) => conn
                                .exec_first::<Option<String>, _, _>(
                                    "SELECT BINLOG_GTID_POS(?, 4)",
                                    (first.as_str(),),
                                )
                                .await
                                .ok()
                                .flatten()
                                .flatten()
                                .unwrap_or_default(),
                            None => String::new(),
                        };
                        let newest = gtid_binlog_pos(&mut conn)
                            .await
                            .map(|g| g.to_string())
                            .unwrap_or_default();
                        (
                            format!("from {oldest:?} (start of its oldest binlog) to {newest:?}"),
                            files,
                        )
                    }
                    Err(_) => ("unknown (could not ask)".to_owned(), Vec::new()),
                };
                return SourceError::Unavailable {
                    requested: progress.start.to_string(),
                    message: e.message.trim_end_matches('.').to_owned(),
                    server_gtids,
                    server_files,
                };
            }
            if matches!(
                e.code,
                server_error::ACCESS_DENIED | server_error::SPECIFIC_ACCESS_DENIED
            ) {
                return SourceError::AccessDenied {
                    message: e.message.clone(),
                };
            }
            if e.code == server_error::SAME_SERVER_ID {
                return SourceError::SameServerId {
                    server_id: self.config.source.server_id,
                    message: e.message.clone(),
                };
            }
        }
        SourceError::Stream {
            at: At {
                file: progress
                    .position
                    .coord
                    .as_ref()
                    .map(|c| c.file.clone())
                    .unwrap_or_default(),
                offset: progress.position.coord.as_ref().map_or(0, |c| c.offset),
                gtid: None,
            },
            source: error,
        }
    }

    /// Parses a TABLE_MAP (unless identical to the one known for its id) and,
    /// for a tailed table, resolves how its rows are published.
    fn table_map(&mut self, body: &[u8]) -> Result<(), TableError> {
        if let Some(known) = table_map_id(body).and_then(|id| self.tables.get(&id)) {
            if known.raw == body {
                return Ok(());
            }
        }
        let map = decode::parse_table_map(body, &self.charsets).map_err(TableError::Decode)?;
        let config = Arc::clone(&self.config);
        let layout = match config.table(&map.database, &map.table) {
            Some(table_config) => Some(Arc::new(self.layout(&map, table_config)?)),
            None => None,
        };
        self.tables.insert(
            map.table_id,
            KnownTable {
                map: Arc::new(map),
                raw: body.to_vec(),
                layout,
            },
        );
        Ok(())
    }

    fn layout(
        &self,
        map: &TableMap,
        table_config: &TableConfig,
    ) -> Result<TableLayout, TableError> {
        let full = format!("{}.{}", map.database, map.table);
        let names = map
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                c.name.clone().ok_or_else(|| TableError::Table {
                    table: full.clone(),
                    problem: format!(
                        "the TABLE_MAP carries no name for column {i}: the server's binlog_row_metadata \
                         is not FULL. Set binlog_row_metadata=FULL (SET GLOBAL and in the server's config)"
                    ),
                })
            })
            .collect::<Result<Vec<String>, _>>()?;
        if map.primary_key.is_empty() {
            return Err(TableError::Table {
                table: full,
                problem:
                    "the table has no primary key, so its events have no key; add a primary key"
                        .into(),
            });
        }
        // The binlog does not say which text or binary columns hold JSON,
        // UUIDs or INET6 addresses; the configuration does. Taking it from
        // the configuration (never from the server's current schema) keeps
        // a replay byte-identical to the original, whatever DDL came since.
        let logical: Vec<Logical> = names.iter().map(|n| table_config.logical(n)).collect();
        Ok(TableLayout {
            database: map.database.clone(),
            table: map.table.clone(),
            topic: Arc::from(table_config.topic.as_str()),
            event_type: table_config.event_type.clone(),
            dataschema: table_config.dataschema.clone(),
            source: format!(
                "/mariadb/{}/{}/{}",
                self.config.source.cluster_name, map.database, map.table
            ),
            columns: names
                .into_iter()
                .zip(logical)
                .map(|(name, logical)| ColumnLayout { name, logical })
                .collect(),
            primary_key: map.primary_key.clone(),
        })
    }
}

/// Errors while resolving a table, before the position is known.
#[derive(Debug)]
enum TableError {
    Decode(DecodeError),
    Table { table: String, problem: String },
}

impl TableError {
    fn at(self, at: At) -> SourceError {
        match self {
            TableError::Decode(source) => SourceError::Decode { at, source },
            TableError::Table { table, problem } => SourceError::Table { at, table, problem },
        }
    }
}

/// The table id of a TABLE_MAP body (6 bytes, little-endian), to look up a
/// known map before parsing.
fn table_map_id(body: &[u8]) -> Option<u64> {
    let bytes = body.get(..6)?;
    let mut id = [0u8; 8];
    id[..6].copy_from_slice(bytes);
    Some(u64::from_le_bytes(id))
}

/// Compares an event's CRC32 with the one computed over its header and body.
fn verify_checksum(event: &Event) -> Result<(), ()> {
    match event.checksum() {
        Some(stored) => {
            let computed = event.calc_checksum(BinlogChecksumAlg::BINLOG_CHECKSUM_ALG_CRC32);
            if u32::from_le_bytes(stored) == computed {
                Ok(())
            } else {
                Err(())
            }
        }
        None => Ok(()),
    }
}
