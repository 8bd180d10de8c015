//! One session: a connection registered as a replica, `COM_BINLOG_DUMP`
//! from where the progress says, and the read loop, one `match` over the
//! event types that dispatches each event to the table cache
//! ([`super::tables`]) or the transaction state machine ([`super::txn`]) and
//! hands what they return to the sink.

use futures_util::FutureExt as _;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::ends::EventEnds;
use super::error::{is_access_denied, server_error, At, SourceError};
use super::server::{self, ServerInfo};
use super::statement;
use super::txn::{Ended, Progress, TxnState};
use super::wire::{self, BinlogConn, WireError};
use super::{Reader, SessionEnd, Stopped};
use crate::decode;
use crate::handoff::Item;
use crate::position::Start;

impl Reader {
    /// Reads from the server until shutdown, a bounded read's end, the sink
    /// going away, or an error (transient or definite: the caller sorts).
    pub(super) async fn session(
        &mut self,
        progress: &mut Progress,
        items: &mpsc::Sender<Item>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<SessionEnd, SourceError> {
        if *shutdown.borrow() {
            return Ok(SessionEnd::Stopped(Stopped::AtBoundary));
        }
        if progress.reached_stop() {
            return Ok(SessionEnd::Stopped(Stopped::Reached));
        }
        let mut conn = self.login().await?;
        self.dump_connection = Some(conn.connection_id());
        let (file, offset) = match (progress.reread_at(), &progress.start) {
            // An XA PREPARE group to read again, at its coordinate.
            (Some(at), _) => (at.file.clone(), at.offset),
            (None, Start::Gtid(_)) => (String::new(), 4),
            (None, Start::Coord { coord, .. }) => (coord.file.clone(), coord.offset),
        };
        let info = match tokio::time::timeout(
            self.config.source.read_timeout,
            self.request_binlog(&mut conn, progress, &file, offset),
        )
        .await
        {
            Ok(Ok(info)) => info,
            Ok(Err(e)) => return Err(self.stream_error(e, progress).await),
            Err(_) => {
                return Err(SourceError::Silence {
                    at: read_position(progress),
                    timeout: self.config.source.read_timeout,
                })
            }
        };
        tracing::info!(server_id = info.server_id, start = %progress.start, "streaming the binlog");
        self.metrics.set_source_connected(true);
        self.tables.clear();

        let mut state = TxnState::new(progress, info.server_id, &file);
        let mut ends = EventEnds::at(offset);
        let mut seen_fde = false;
        // Whether events carry a CRC32: the server's setting until the
        // first FORMAT_DESCRIPTION says it for its file.
        let mut crc = info.checksum_crc32;
        let mut stopping: Option<Instant> = None;
        let read_timeout = self.config.source.read_timeout;

        loop {
            if let Some(deadline) = stopping {
                if !state.in_transaction() {
                    return Ok(SessionEnd::Stopped(Stopped::AtBoundary));
                }
                if Instant::now() >= deadline {
                    tracing::warn!("shutdown: the transaction being read did not end in time; its records are not checkpointed and will be read again");
                    return Ok(SessionEnd::Stopped(Stopped::MidTransaction));
                }
            }
            // An event already received is taken without arming the read
            // timeout (a timer and a clock read per event otherwise); the
            // timeout and the shutdown signal are waited on only when the
            // stream has nothing ready. A shutdown is still seen between
            // any two events.
            let ready = if stopping.is_none() && shutdown.has_changed().unwrap_or(true) {
                None
            } else {
                conn.next_event().now_or_never().map(Ok)
            };
            let next = match ready {
                Some(next) => next,
                None => tokio::select! {
                    biased;
                    _ = shutdown.changed(), if stopping.is_none() => {
                        stopping = Some(Instant::now() + self.config.shutdown.drain_timeout);
                        continue;
                    }
                    next = tokio::time::timeout(read_timeout, conn.next_event()) => next,
                },
            };
            match next {
                Err(_) => {
                    let offset = state
                        .progress()
                        .position
                        .coord
                        .as_ref()
                        .map_or(0, |c| c.offset);
                    return Err(SourceError::Silence {
                        at: state.at(offset),
                        timeout: read_timeout,
                    });
                }
                Ok(Ok(true)) => {}
                Ok(Ok(false)) => return Err(SourceError::Ended { at: state.at(0) }),
                Ok(Err(e)) => {
                    let error = self.stream_error(e, state.progress()).await;
                    if matches!(error, SourceError::CutOff { .. }) {
                        state.read_on_by_gtid();
                    }
                    return Err(error);
                }
            }
            let event = conn.event(crc).map_err(|source| SourceError::BinlogRead {
                at: read_position(state.progress()),
                source,
            })?;
            let kind = event.event_type();
            // Never the header's `end_log_pos` itself: 0 inside a
            // transaction on MariaDB 11.x (see `ends`).
            let end = ends.end_of(kind, event.flags(), event.log_pos(), event.event_size());
            self.metrics.events_read(kind, event.event_size());

            // Events before the first FORMAT_DESCRIPTION (the server's
            // artificial ROTATE) are not checked, as a replica does not.
            if (seen_fde || kind == decode::FORMAT_DESCRIPTION_EVENT) && !event.checksum_matches() {
                return Err(SourceError::Checksum {
                    at: state.at(end),
                    event_type: kind,
                });
            }
            if let Some(announced) = event.announces_crc32() {
                crc = announced;
            }
            let body = event.body();
            let decode_err = |source, state: &TxnState<'_>| SourceError::Decode {
                at: state.at(end),
                source,
            };

            // The commit mark of a transaction that ends with this event.
            let mut ended: Option<Ended> = None;
            match kind {
                decode::FORMAT_DESCRIPTION_EVENT => {
                    // The decoder assumes MariaDB's post-header lengths; a
                    // server that writes others is refused, not misread.
                    decode::parse_format_description(body)
                        .and_then(|fde| fde.check_supported())
                        .map_err(|e| decode_err(e, &state))?;
                    seen_fde = true;
                }
                decode::ROTATE_EVENT => {
                    let (Some(offset), Some(name)) = (body.get(..8), body.get(8..)) else {
                        return Err(SourceError::Protocol {
                            at: state.at(end),
                            problem: "ROTATE event shorter than 8 bytes".into(),
                        });
                    };
                    let offset = offset.try_into().map_or(4, u64::from_le_bytes);
                    let name = String::from_utf8_lossy(name).into_owned();
                    ends.rotate(offset);
                    state.rotate(name, offset, event.timestamp() == 0);
                }
                decode::GTID_LIST_EVENT => {
                    if state.wants_gtid_list() {
                        let list =
                            decode::parse_gtid_list(body).map_err(|e| decode_err(e, &state))?;
                        state.gtid_list(list);
                    }
                }
                decode::GTID_EVENT => {
                    let gtid = decode::parse_gtid(body, event.server_id())
                        .map_err(|e| decode_err(e, &state))?;
                    let start = end.saturating_sub(u64::from(event.event_size()));
                    state.begin(&gtid, start, event.timestamp(), end)?;
                    self.tables.begin_group();
                }
                decode::TABLE_MAP_EVENT => {
                    self.tables
                        .table_map(body)
                        .map_err(|e| e.at(state.at(end)))?;
                }
                t if decode::is_rows_event(t) => {
                    state.expect_rows(end)?;
                    let table_id =
                        decode::rows_table_id(t, body).map_err(|e| decode_err(e, &state))?;
                    let Some(known) = self.tables.get(table_id) else {
                        return Err(SourceError::Protocol {
                            at: state.at(end),
                            problem: format!(
                                "rows event for table id {table_id}, which no TABLE_MAP announced"
                            ),
                        });
                    };
                    // Rows that are not published are only counted: no values
                    // are built, so a row of any size costs nothing beyond
                    // its event.
                    let published = known.layout.is_some()
                        && decode::rows_kind(t) == Some(decode::RowsKind::Insert);
                    if !published {
                        match decode::count_rows(t, body, &known.map) {
                            Ok((kind, rows)) => {
                                self.metrics.rows_seen(&known.name, kind, rows);
                                state.counted(rows, end)?;
                            }
                            Err(e) if known.layout.is_none() => {
                                let table = known.name.clone();
                                self.tables.warn_undecodable(&table, &e);
                                state.uncounted_rows(end)?;
                            }
                            Err(e) => return Err(decode_err(e, &state)),
                        }
                        continue;
                    }
                    let rows = match decode::parse_rows(t, body, &known.map) {
                        Ok(rows) => rows,
                        // A table that is not tailed is only counted: a value
                        // it cannot decode (an unsupported charset, say) must
                        // not stop the tailer. Its row indexes are not needed
                        // either: a transaction that also writes a tailed
                        // table is refused if its rows cannot be counted.
                        Err(e) if known.layout.is_none() => {
                            let table = known.name.clone();
                            self.tables.warn_undecodable(&table, &e);
                            state.uncounted_rows(end)?;
                            continue;
                        }
                        Err(e) => return Err(decode_err(e, &state)),
                    };
                    self.metrics
                        .rows_seen(&known.name, rows.kind, rows.rows.len());
                    let records = state.rows(&known.name, known.layout.as_ref(), rows, end)?;
                    for record in records {
                        let record = record.map_err(|source| SourceError::Map {
                            at: state.at(end),
                            source,
                        })?;
                        // Held until the group ends (see `TxnState::take`).
                        if let Some(record) = state.take(record) {
                            let (gtid, row_index) = (record.gtid, record.row_index);
                            if !hand_over(items, Item::Record(record), stopping).await {
                                return Ok(SessionEnd::Stopped(Stopped::SinkClosed));
                            }
                            state.handed_over(gtid, row_index);
                        }
                    }
                }
                decode::XID_EVENT => ended = state.xid(end),
                decode::XA_PREPARE_LOG_EVENT => {
                    let event =
                        decode::parse_xa_prepare(body).map_err(|e| decode_err(e, &state))?;
                    ended = Some(state.xa_prepare(event, end)?);
                }
                decode::QUERY_EVENT | decode::QUERY_COMPRESSED_EVENT => {
                    let query =
                        decode::parse_query(kind, body).map_err(|e| decode_err(e, &state))?;
                    let text = String::from_utf8_lossy(&query.query);
                    if state.in_transaction() {
                        if let Some((table, problem)) = self.logged_insert(&text, &query.schema) {
                            return Err(SourceError::Table {
                                at: state.at(end),
                                table,
                                problem,
                            });
                        }
                    }
                    ended = match state.xa_decision(text.trim(), end) {
                        Some(decided) => Some(decided?),
                        None => state.query(text.trim(), end),
                    };
                }
                decode::HEARTBEAT_LOG_EVENT => self.metrics.heartbeat(),
                decode::ANNOTATE_ROWS_EVENT
                | decode::BINLOG_CHECKPOINT_EVENT
                | decode::STOP_EVENT
                | decode::INTVAR_EVENT
                | decode::RAND_EVENT
                | decode::USER_VAR_EVENT => {}
                decode::START_ENCRYPTION_EVENT => {
                    return Err(SourceError::Encrypted { at: state.at(end) })
                }
                decode::INCIDENT_EVENT => return Err(SourceError::Incident { at: state.at(end) }),
                other if event.flags() & decode::LOG_EVENT_IGNORABLE_F != 0 => {
                    tracing::debug!(event_type = other, "skipping an ignorable event");
                }
                other => {
                    return Err(SourceError::Protocol {
                        at: state.at(end),
                        problem: format!(
                        "event type {other} is unknown to binlog-tailer; it cannot tell whether \
                             the event changes data, so it stops rather than skip it"
                    ),
                    })
                }
            }

            if let Some(Ended {
                records,
                commit,
                read_again,
                xa_reread,
            }) = ended
            {
                if let Some(plan) = read_again {
                    // Too large to hold, and committed: the next session
                    // reads it again from its start, publishing as it reads.
                    state.read_again(plan);
                    return Ok(SessionEnd::ReadAgain);
                }
                if let Some(plan) = xa_reread {
                    // An XA COMMIT whose prepared rows were too many to
                    // keep: the next session reads the prepare group again.
                    state.xa_reread(plan);
                    return Ok(SessionEnd::ReadAgain);
                }
                for record in records {
                    let (gtid, row_index) = (record.gtid, record.row_index);
                    if !hand_over(items, Item::Record(record), stopping).await {
                        return Ok(SessionEnd::Stopped(Stopped::SinkClosed));
                    }
                    state.handed_over(gtid, row_index);
                }
                let commit_time = commit.commit_time;
                if !hand_over(items, Item::Commit(commit.clone()), stopping).await {
                    return Ok(SessionEnd::Stopped(Stopped::SinkClosed));
                }
                self.metrics.transaction(commit_time);
                self.metrics
                    .xa_prepared
                    .set(i64::try_from(state.progress().prepared_xa()).unwrap_or(i64::MAX));
                self.metrics.set_read_position(&commit.position);
                // A session that read an XA PREPARE group again reads
                // nothing else: after its mark, go on after the group that
                // committed it.
                let reread_done = state.progress().reread_at().is_some();
                state.committed(commit);
                if reread_done {
                    return Ok(SessionEnd::ReadAgain);
                }
                if state.progress().reached_stop() {
                    return Ok(SessionEnd::Stopped(Stopped::Reached));
                }
            }
        }
    }

    /// A statement logged as text that inserts into a tailed table: its rows
    /// are not in the binlog, so they cannot be published; passing over it
    /// would lose the orders silently. Returns the tailed table and the
    /// problem.
    fn logged_insert(&self, sql: &str, schema: &str) -> Option<(String, String)> {
        let target = statement::inserted_table(sql)?;
        let database = target.database.as_deref().unwrap_or(schema);
        let table = self.config.tables.iter().find(|t| {
            t.split_name().is_some_and(|(db, tbl)| {
                db.eq_ignore_ascii_case(database) && tbl.eq_ignore_ascii_case(&target.table)
            })
        })?;
        let mut excerpt: String = sql.trim().chars().take(200).collect();
        if excerpt.len() < sql.trim().len() {
            excerpt.push_str(" …");
        }
        Some((
            table.table.clone(),
            format!(
                "the transaction inserts into it with a statement logged as text \
                 (binlog_format=STATEMENT or MIXED in the writing session, although the server's \
                 global format may be ROW): `{excerpt}`. Its rows are not in the binlog, so they \
                 cannot be published, and passing over them would lose orders; the checkpoint \
                 stays before this transaction. Fix: point \
                 source at a replica with binlog_format=ROW and log_slave_updates=ON, which logs \
                 the same transaction as rows (resuming by GTID loses nothing); and make every \
                 session that writes {table} log rows (no SET SESSION binlog_format in the \
                 application)",
                table = table.table
            ),
        ))
    }

    /// Opens the binlog connection and logs in, within
    /// `source.connect_timeout`.
    async fn login(&self) -> Result<BinlogConn, SourceError> {
        let source = &self.config.source;
        let addr = format!("{}:{}", source.host, source.port);
        let password = self.opts.pass().unwrap_or_default();
        match tokio::time::timeout(source.connect_timeout, wire::login(&self.config, password))
            .await
        {
            Err(_) => Err(SourceError::ConnectTimeout {
                addr,
                timeout: source.connect_timeout,
            }),
            Ok(Err(WireError::Server { code, message, .. })) if is_access_denied(code) => {
                Err(SourceError::AccessDenied { message })
            }
            Ok(Err(source)) => Err(SourceError::BinlogConnect { addr, source }),
            Ok(Ok(conn)) => Ok(conn),
        }
    }

    /// What the server is, the session's replica settings, registration,
    /// and `COM_BINLOG_DUMP` from `file`:`offset` (or, with an empty file,
    /// from the GTID state).
    async fn request_binlog(
        &self,
        conn: &mut BinlogConn,
        progress: &Progress,
        file: &str,
        offset: u64,
    ) -> Result<ServerInfo, WireError> {
        let rows = conn.query("SELECT @@server_id, @@binlog_checksum").await?;
        let row = rows.first().map(Vec::as_slice).unwrap_or_default();
        let (Some(Some(server_id)), Some(Some(checksum))) = (row.first(), row.get(1)) else {
            return Err(WireError::Protocol(
                "SELECT @@server_id, @@binlog_checksum returned no row".into(),
            ));
        };
        let info = ServerInfo {
            server_id: server_id.parse().map_err(|_| {
                WireError::Protocol(format!("@@server_id is {server_id:?}, not a number"))
            })?,
            checksum_crc32: checksum.eq_ignore_ascii_case("CRC32"),
        };
        let heartbeat_ns = self.config.source.heartbeat.as_nanos();
        // As a MariaDB replica does: GTID events as themselves, events with
        // the checksums of the server's binlog, a heartbeat when idle.
        let mut setup = vec![
            "SET @mariadb_slave_capability = 4".to_owned(),
            "SET @master_binlog_checksum = @@global.binlog_checksum".to_owned(),
            format!("SET @master_heartbeat_period = {heartbeat_ns}"),
        ];
        if let (None, Start::Gtid(state)) = (progress.reread_at(), &progress.start) {
            setup.push(format!("SET @slave_connect_state = '{state}'"));
            setup.push("SET @slave_gtid_strict_mode = 0".to_owned());
        }
        for statement in &setup {
            conn.execute(statement).await?;
        }
        let server_id = self.config.source.server_id;
        conn.register_replica(server_id).await?;
        conn.dump(server_id, file, offset).await?;
        Ok(info)
    }

    /// Turns an error of the binlog connection into a source error: a purged
    /// position (with what the server still has), refused credentials, a
    /// replica id already in use, an event over the limit, or an error at
    /// the read position.
    async fn stream_error(&self, error: WireError, progress: &Progress) -> SourceError {
        let at = read_position(progress);
        if let WireError::TooLarge { .. } = error {
            return SourceError::EventTooLarge {
                at,
                limit: self.config.source.max_event_bytes,
            };
        }
        if let WireError::Server { code, message, .. } = &error {
            // A binlog file that ends inside an event: what a server that
            // crashed while writing a transaction leaves (it starts a new
            // file on restart and does not read past the cut). Read on by
            // GTID state, which starts in the new file; without a GTID
            // state that is not possible.
            if *code == server_error::FATAL_READING_BINLOG
                && message.contains("truncated in the middle of event")
            {
                if progress.position.gtid.is_empty() {
                    return SourceError::Protocol {
                        at,
                        problem: format!(
                            "the binlog ends in the middle of an event ({}), as a server that \
                             crashed while writing a transaction leaves it, and the read \
                             position has no GTID state to read on from; start the tailer by \
                             GTID state (start.from) past it",
                            message.trim_end_matches('.')
                        ),
                    };
                }
                return SourceError::CutOff {
                    at,
                    message: message.trim_end_matches('.').to_owned(),
                };
            }
            if *code == server_error::FATAL_READING_BINLOG && message.contains("max_allowed_packet")
            {
                return SourceError::ServerEventTooLarge {
                    at,
                    message: message.trim_end_matches('.').to_owned(),
                };
            }
            if *code == server_error::FATAL_READING_BINLOG {
                // What the server still has: its oldest binlog and the GTID
                // state where it begins, so the gap is plain to see.
                let (server_gtids, server_files) =
                    server::still_available(&self.config, &self.opts).await;
                return SourceError::Unavailable {
                    requested: progress.start.to_string(),
                    message: message.trim_end_matches('.').to_owned(),
                    server_gtids,
                    server_files,
                };
            }
            if is_access_denied(*code) {
                return SourceError::AccessDenied {
                    message: message.to_owned(),
                };
            }
            if *code == server_error::SAME_SERVER_ID {
                return SourceError::SameServerId {
                    server_id: self.config.source.server_id,
                    message: message.to_owned(),
                };
            }
        }
        SourceError::BinlogRead { at, source: error }
    }
}

/// Where the source stands: the last coordinate handed over.
fn read_position(progress: &Progress) -> At {
    let coord = progress.position.coord.as_ref();
    At {
        file: coord.map(|c| c.file.clone()).unwrap_or_default(),
        offset: coord.map_or(0, |c| c.offset),
        gtid: None,
    }
}

/// Sends an item to the sink; while stopping, gives up at the deadline.
async fn hand_over(items: &mpsc::Sender<Item>, item: Item, stopping: Option<Instant>) -> bool {
    match stopping {
        None => items.send(item).await.is_ok(),
        Some(deadline) => matches!(
            tokio::time::timeout_at(deadline, items.send(item)).await,
            Ok(Ok(()))
        ),
    }
}
