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
//!
//! # Layout
//! - `session.rs`: one connection and its read loop, one `match` over event
//!   types that dispatches and hands over.
//! - `txn.rs`: the transaction state machine (pure): boundaries, row
//!   indexes, records, commit marks, [`Progress`] across sessions.
//! - `tables.rs`: the TABLE_MAP cache and the layouts of tailed tables.
//! - `server.rs`: every query to the server outside the stream.
//! - `error.rs`: [`SourceError`] and which errors are transient.
//! - `wire/`: the binlog connection (log in, `COM_BINLOG_DUMP`, each event
//!   read in place into one buffer); queries outside the stream use
//!   `mysql_async`.

mod ends;
mod error;
mod server;
mod session;
mod statement;
mod tables;
mod txn;
mod wire;

use std::sync::Arc;
use std::time::Duration;

use mysql_async::prelude::Queryable as _;
use mysql_async::Opts;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

pub use error::{server_error, At, SourceError};
pub use server::{
    binlog_files, charset_map, connect, connection_opts, gtid_at, gtid_binlog_pos, master_coord,
    no_event_at, server_info, server_lag, ServerInfo,
};
pub use txn::Progress;

use crate::config::Config;
use crate::decode::CharsetMap;
use crate::handoff::Item;
use crate::metrics::Metrics;
use tables::Tables;

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

/// How a session ended without error.
enum SessionEnd {
    Stopped(Stopped),
    /// A committed transaction too large to hold was read to its end; the
    /// next session reads it again from its start.
    ReadAgain,
}

/// The reader: sessions against the server until shutdown or a definite
/// error.
pub struct Reader {
    config: Arc<Config>,
    opts: Opts,
    metrics: Arc<Metrics>,
    tables: Tables,
    /// The server's id of the last session's binlog connection.
    dump_connection: Option<u32>,
}

impl Reader {
    pub fn new(
        config: Arc<Config>,
        opts: Opts,
        charsets: CharsetMap,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            tables: Tables::new(Arc::clone(&config), charsets),
            config,
            opts,
            metrics,
            dump_connection: None,
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
            self.metrics.set_source_connected(false);
            match result {
                Ok(SessionEnd::ReadAgain) => {
                    self.end_dump().await;
                    continue;
                }
                Ok(SessionEnd::Stopped(stopped)) => {
                    self.end_dump().await;
                    return Ok(stopped);
                }
                Err(e) if e.is_transient() => {
                    if began.elapsed() > Duration::from_secs(30) {
                        backoff = self.config.source.reconnect_backoff_min;
                    }
                    self.metrics.reconnects.inc();
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

    /// Ends, on the server, the binlog dump of the session that just closed
    /// its connection. Best effort, within `DUMP_END_TIMEOUT`.
    ///
    /// A dump thread waiting for new events does not notice that its
    /// replica went away until a heartbeat fails to be sent, one to two
    /// heartbeat periods later. Until then the server keeps it, and the next
    /// `COM_BINLOG_DUMP` under the same `source.server_id` (a restart, or
    /// the next session) made the server evict it first: measured on
    /// MariaDB 10.11, the first event came ~100 ms later than with a
    /// server id the server had no dump thread for.
    ///
    /// Only this user's binlog dump with that very id is killed: without
    /// the PROCESS privilege a user sees only its own connections, and with
    /// it the user name is checked too. A user may always kill its own
    /// connections.
    async fn end_dump(&mut self) {
        let Some(id) = self.dump_connection.take() else {
            return;
        };
        let ended = tokio::time::timeout(DUMP_END_TIMEOUT, async {
            let mut conn = server::connect(&self.config, &self.opts)
                .await
                .map_err(|e| e.to_string())?;
            let killed = kill_own_dump(&mut conn, id).await;
            // Closed whatever the outcome: one dropped open is counted by
            // the server as aborted.
            let _ = conn.disconnect().await;
            killed.map_err(|e| e.to_string())
        })
        .await;
        match ended {
            Ok(Ok(killed)) => {
                tracing::debug!(
                    connection_id = id,
                    killed,
                    "ended the binlog dump on the server"
                );
            }
            Ok(Err(e)) => {
                tracing::debug!(connection_id = id, error = %e, "could not end the binlog dump on the server; it ends at its next heartbeat");
            }
            Err(_) => {
                tracing::debug!(connection_id = id, timeout = ?DUMP_END_TIMEOUT, "could not end the binlog dump on the server in time; it ends at its next heartbeat");
            }
        }
    }
}

/// Kills connection `id` if it is this user's binlog dump; returns whether
/// it was.
async fn kill_own_dump(conn: &mut mysql_async::Conn, id: u32) -> Result<bool, mysql_async::Error> {
    let dump: Option<u64> = conn
        .exec_first(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE ID = ? \
             AND COMMAND = 'Binlog Dump' AND USER = SUBSTRING_INDEX(USER(), '@', 1)",
            (id,),
        )
        .await?;
    if dump.is_some() {
        conn.query_drop(format!("KILL CONNECTION {id}")).await?;
    }
    Ok(dump.is_some())
}

/// How long [`Reader::end_dump`] may take.
const DUMP_END_TIMEOUT: Duration = Duration::from_secs(2);
