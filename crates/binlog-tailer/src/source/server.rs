//! Every query the source sends outside the binlog stream: connecting,
//! what the server is (`@@server_id`, checksums, charsets), what binlogs it
//! still has and where they begin, and how far its binlog is ahead of what
//! was read. One function per question, so each query is written once.

use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, SslOpts};

use super::error::{is_access_denied, SourceError};
use crate::config::{Config, TlsMode};
use crate::decode::CharsetMap;
use crate::position::{BinlogCoord, GtidState, Position};

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
        .stmt_cache_size(16)
        // Without it the client takes the server's max_allowed_packet as its
        // limit, but the server's dump thread sends events up to 1 GiB.
        .max_allowed_packet(Some(source.max_event_bytes));
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
        Ok(Err(mysql_async::Error::Server(e))) if is_access_denied(e.code) => {
            Err(SourceError::AccessDenied { message: e.message })
        }
        Ok(Err(source)) => Err(SourceError::Connect { addr, source }),
        Ok(Ok(conn)) => Ok(conn),
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

/// The server's binlog files, oldest first, with their sizes in bytes
/// (`SHOW BINARY LOGS`).
///
/// # Errors
/// [`SourceError::Query`].
pub async fn binlog_files_with_sizes(conn: &mut Conn) -> Result<Vec<(String, u64)>, SourceError> {
    conn.query_map("SHOW BINARY LOGS", |row: mysql_async::Row| {
        (
            row.get::<String, _>(0).unwrap_or_default(),
            row.get::<u64, _>(1).unwrap_or_default(),
        )
    })
    .await
    .map_err(SourceError::Query)
}

/// The server's binlog file names, oldest first.
///
/// # Errors
/// [`SourceError::Query`].
pub async fn binlog_files(conn: &mut Conn) -> Result<Vec<String>, SourceError> {
    Ok(binlog_files_with_sizes(conn)
        .await?
        .into_iter()
        .map(|(name, _)| name)
        .collect())
}

/// The GTID state at the end of the server's binlog (`@@gtid_binlog_pos`).
///
/// # Errors
/// [`SourceError::Query`], or [`SourceError::Answer`] when it does not parse.
pub async fn gtid_binlog_pos(conn: &mut Conn) -> Result<GtidState, SourceError> {
    let text: Option<String> = conn
        .query_first("SELECT @@gtid_binlog_pos")
        .await
        .map_err(SourceError::Query)?;
    text.unwrap_or_default()
        .parse()
        .map_err(
            |e: crate::position::ParsePositionError| SourceError::Answer {
                query: "@@gtid_binlog_pos".into(),
                problem: e.to_string(),
            },
        )
}

/// The server's current binlog file and offset (`SHOW MASTER STATUS`);
/// `None` when it writes no binlog.
///
/// # Errors
/// [`SourceError::Query`].
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

/// The GTID state at a binlog coordinate (`BINLOG_GTID_POS`); `None` when
/// the server has no such position.
///
/// # Errors
/// [`SourceError::Query`], or [`SourceError::Answer`] when it does not parse.
pub async fn gtid_at(
    conn: &mut Conn,
    coord: &BinlogCoord,
) -> Result<Option<GtidState>, SourceError> {
    match gtid_text_at(conn, coord).await? {
        None => Ok(None),
        Some(text) => text
            .parse()
            .map(Some)
            .map_err(
                |e: crate::position::ParsePositionError| SourceError::Answer {
                    query: format!("BINLOG_GTID_POS({coord})"),
                    problem: e.to_string(),
                },
            ),
    }
}

/// Whether an event begins at `coord` in the server's binlog: `None` when
/// one does (or the server cannot say), else the server's own words for why
/// not (an offset inside an event, or past the file's end).
///
/// # Errors
/// [`SourceError::Query`] when the query fails for another reason than the
/// offset.
pub async fn no_event_at(
    conn: &mut Conn,
    coord: &BinlogCoord,
) -> Result<Option<String>, SourceError> {
    let query = format!(
        "SHOW BINLOG EVENTS IN '{}' FROM {} LIMIT 1",
        coord.file.replace('\\', "\\\\").replace('\'', "''"),
        coord.offset
    );
    match conn.query_drop(query).await {
        Ok(()) => Ok(None),
        Err(mysql_async::Error::Server(e))
            if e.code == super::error::server_error::ERROR_WHEN_EXECUTING_COMMAND
                && (e.message.contains("Wrong offset") || e.message.contains("greater than")) =>
        {
            Ok(Some(e.message))
        }
        // Anything else (an event over max_allowed_packet there, say)
        // proves nothing about the offset.
        Err(mysql_async::Error::Server(e)) => {
            tracing::debug!(%coord, error = %e, "SHOW BINLOG EVENTS at the checkpoint");
            Ok(None)
        }
        Err(e) => Err(SourceError::Query(e)),
    }
}

/// `BINLOG_GTID_POS` as the server writes it.
async fn gtid_text_at(conn: &mut Conn, coord: &BinlogCoord) -> Result<Option<String>, SourceError> {
    let text: Option<Option<String>> = conn
        .exec_first(
            "SELECT BINLOG_GTID_POS(?, ?)",
            (coord.file.as_str(), coord.offset),
        )
        .await
        .map_err(SourceError::Query)?;
    Ok(text.flatten())
}

/// What the server still has, for the message of a purged-binlog error: the
/// GTID range its binlogs hold (as text) and its binlog files. Best effort:
/// whatever cannot be asked is reported as unknown.
pub async fn still_available(config: &Config, opts: &Opts) -> (String, Vec<String>) {
    let mut conn = match connect(config, opts).await {
        Ok(conn) => conn,
        Err(_) => return ("unknown (could not ask)".to_owned(), Vec::new()),
    };
    let files = binlog_files(&mut conn).await.unwrap_or_default();
    let oldest = match files.first() {
        Some(first) => gtid_text_at(&mut conn, &BinlogCoord::new(first.clone(), 4))
            .await
            .ok()
            .flatten()
            .unwrap_or_default(),
        None => String::new(),
    };
    let newest = gtid_binlog_pos(&mut conn)
        .await
        .map(|g| g.to_string())
        .unwrap_or_default();
    let _ = conn.disconnect().await;
    (
        format!("from {oldest:?} (start of its oldest binlog) to {newest:?}"),
        files,
    )
}

/// Bytes and transactions between `read` and the end of the server's binlog.
///
/// # Errors
/// [`SourceError::Query`] or [`SourceError::Answer`].
pub async fn server_lag(conn: &mut Conn, read: &Position) -> Result<(i64, i64), SourceError> {
    let files = binlog_files_with_sizes(conn).await?;
    let bytes = match &read.coord {
        Some(coord) => {
            let mut behind: u64 = 0;
            let mut seen = false;
            for (file, size) in &files {
                if *file == coord.file {
                    seen = true;
                    behind += size.saturating_sub(coord.offset);
                } else if seen {
                    behind += size;
                }
            }
            i64::try_from(behind).unwrap_or(i64::MAX)
        }
        None => 0,
    };
    let server = gtid_binlog_pos(conn).await?;
    let transactions: u64 = server
        .iter()
        .map(|g| {
            g.seq
                .saturating_sub(read.gtid.get(g.domain).map_or(0, |r| r.seq))
        })
        .sum();
    Ok((bytes, i64::try_from(transactions).unwrap_or(i64::MAX)))
}
