//! One session: a connection registered as a replica, `COM_BINLOG_DUMP`
//! from where the progress says, and the read loop, one `match` over the
//! event types that dispatches each event to the table cache
//! ([`super::tables`]) or the transaction state machine ([`super::txn`]) and
//! hands what they return to the sink.

use futures_util::{FutureExt as _, StreamExt};
use mysql_async::binlog::events::Event;
use mysql_async::binlog::BinlogChecksumAlg;
use mysql_async::prelude::Queryable;
use mysql_async::BinlogStreamRequest;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::ends::EventEnds;
use super::error::{is_access_denied, is_packet_too_large, server_error, At, SourceError};
use super::server;
use super::statement;
use super::tables;
use super::txn::{Ended, Progress, TxnState};
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
        let mut conn = server::connect(&self.config, &self.opts).await?;
        let info = server::server_info(&mut conn).await?;

        let heartbeat_ns = self.config.source.heartbeat.as_nanos();
        let mut setup = vec![
            "SET @mariadb_slave_capability = 4".to_owned(),
            "SET @master_binlog_checksum = @@global.binlog_checksum".to_owned(),
            format!("SET @master_heartbeat_period = {heartbeat_ns}"),
        ];
        let (file, offset) = match (progress.reread_at(), &progress.start) {
            // An XA PREPARE group to read again, at its coordinate.
            (Some(at), _) => (at.file.clone(), at.offset),
            (None, Start::Gtid(state)) => {
                setup.push(format!("SET @slave_connect_state = '{state}'"));
                setup.push("SET @slave_gtid_strict_mode = 0".to_owned());
                (String::new(), 4)
            }
            (None, Start::Coord { coord, .. }) => (coord.file.clone(), coord.offset),
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
        self.metrics.set_source_connected(true);
        self.tables.clear();

        let mut state = TxnState::new(progress, info.server_id, &file);
        let mut ends = EventEnds::at(offset);
        let mut seen_fde = false;
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
                stream.next().now_or_never().map(Ok)
            };
            let next = match ready {
                Some(next) => next,
                None => tokio::select! {
                    biased;
                    _ = shutdown.changed(), if stopping.is_none() => {
                        stopping = Some(Instant::now() + self.config.shutdown.drain_timeout);
                        continue;
                    }
                    next = tokio::time::timeout(read_timeout, stream.next()) => next,
                },
            };
            let event = match next {
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
                Ok(None) => return Err(SourceError::Ended { at: state.at(0) }),
                Ok(Some(Err(e))) => {
                    let error = self.stream_error(e, state.progress()).await;
                    if matches!(error, SourceError::CutOff { .. }) {
                        state.read_on_by_gtid();
                    }
                    return Err(error);
                }
                Ok(Some(Ok(event))) => event,
            };
            let header = event.header();
            let kind = header.event_type_raw();
            // Never the header's `end_log_pos` itself: 0 inside a
            // transaction on MariaDB 11.x (see `ends`).
            let end = ends.end_of(
                kind,
                header.flags_raw(),
                header.log_pos(),
                header.event_size(),
            );
            self.metrics.events_read(kind, header.event_size());

            if seen_fde && info.checksum_crc32 && !checksum_matches(&event) {
                return Err(SourceError::Checksum {
                    at: state.at(end),
                    event_type: kind,
                });
            }
            let body = event.data();
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
                    // Before the format description the body still carries its
                    // CRC32 (the reader does not know the checksum yet).
                    let body = if !seen_fde && info.checksum_crc32 && body.len() >= 12 {
                        &body[..body.len() - 4]
                    } else {
                        body
                    };
                    let (Some(offset), Some(name)) = (body.get(..8), body.get(8..)) else {
                        return Err(SourceError::Protocol {
                            at: state.at(end),
                            problem: "ROTATE event shorter than 8 bytes".into(),
                        });
                    };
                    let offset = offset.try_into().map_or(4, u64::from_le_bytes);
                    let name = String::from_utf8_lossy(name).into_owned();
                    ends.rotate(offset);
                    state.rotate(name, offset, header.timestamp() == 0);
                }
                decode::GTID_LIST_EVENT => {
                    if state.wants_gtid_list() {
                        let list =
                            decode::parse_gtid_list(body).map_err(|e| decode_err(e, &state))?;
                        state.gtid_list(list);
                    }
                }
                decode::GTID_EVENT => {
                    let gtid = decode::parse_gtid(body, header.server_id())
                        .map_err(|e| decode_err(e, &state))?;
                    let start = end.saturating_sub(u64::from(header.event_size()));
                    state.begin(&gtid, start, header.timestamp(), end)?;
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
                other if header.flags_raw() & decode::LOG_EVENT_IGNORABLE_F != 0 => {
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
                if self.tables.renew_due() {
                    tracing::debug!(
                        "{} new table maps read in this session; starting a new one after {}",
                        tables::RENEW_AFTER_NEW_MAPS,
                        state.progress().start
                    );
                    return Ok(SessionEnd::Renew);
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

    /// Turns an error of the binlog stream into a source error: a purged
    /// position (with what the server still has), refused credentials, a
    /// replica id already in use, or a stream error at the read position.
    async fn stream_error(&self, error: mysql_async::Error, progress: &Progress) -> SourceError {
        let coord = progress.position.coord.as_ref();
        let at = At {
            file: coord.map(|c| c.file.clone()).unwrap_or_default(),
            offset: coord.map_or(0, |c| c.offset),
            gtid: None,
        };
        if is_packet_too_large(&error) {
            return SourceError::EventTooLarge {
                at,
                limit: self.config.source.max_event_bytes,
            };
        }
        if let mysql_async::Error::Server(e) = &error {
            // A binlog file that ends inside an event: what a server that
            // crashed while writing a transaction leaves (it starts a new
            // file on restart and does not read past the cut). Read on by
            // GTID state, which starts in the new file; without a GTID
            // state that is not possible.
            if e.code == server_error::FATAL_READING_BINLOG
                && e.message.contains("truncated in the middle of event")
            {
                if progress.position.gtid.is_empty() {
                    return SourceError::Protocol {
                        at,
                        problem: format!(
                            "the binlog ends in the middle of an event ({}), as a server that \
                             crashed while writing a transaction leaves it, and the read \
                             position has no GTID state to read on from; start the tailer by \
                             GTID state (start.from) past it",
                            e.message.trim_end_matches('.')
                        ),
                    };
                }
                return SourceError::CutOff {
                    at,
                    message: e.message.trim_end_matches('.').to_owned(),
                };
            }
            if e.code == server_error::FATAL_READING_BINLOG
                && e.message.contains("max_allowed_packet")
            {
                return SourceError::ServerEventTooLarge {
                    at,
                    message: e.message.trim_end_matches('.').to_owned(),
                };
            }
            if e.code == server_error::FATAL_READING_BINLOG {
                // What the server still has: its oldest binlog and the GTID
                // state where it begins, so the gap is plain to see.
                let (server_gtids, server_files) =
                    server::still_available(&self.config, &self.opts).await;
                return SourceError::Unavailable {
                    requested: progress.start.to_string(),
                    message: e.message.trim_end_matches('.').to_owned(),
                    server_gtids,
                    server_files,
                };
            }
            if is_access_denied(e.code) {
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
        SourceError::Stream { at, source: error }
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

/// Whether an event's stored CRC32 matches the one computed over its header
/// and body (an event without a checksum matches).
fn checksum_matches(event: &Event) -> bool {
    event.checksum().is_none_or(|stored| {
        u32::from_le_bytes(stored)
            == event.calc_checksum(BinlogChecksumAlg::BINLOG_CHECKSUM_ALG_CRC32)
    })
}
