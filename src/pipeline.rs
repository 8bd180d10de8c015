//! The pipeline: connects source → sink → checkpoint and holds no logic of
//! its own beyond start-up order and shutdown.
//!
//! # Start-up
//! 1. Open the checkpoint store (a corrupt store stops here, untouched).
//! 2. Preflight the server and the broker (every problem is reported).
//! 3. Decide where to start: the stored checkpoint, else `start.from`.
//! 4. Run the reader, the sink and the checkpointer.
//!
//! # Shutdown (SIGINT/SIGTERM)
//! The reader stops at the end of the transaction it is reading (or at the
//! drain deadline), the sink waits for every acknowledgement (up to
//! `shutdown.drain_timeout`), the checkpointer writes the last fully
//! acknowledged transaction end. Whatever was not acknowledged is read again
//! on the next start: nothing is lost.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus::core::Collector;
use tokio::sync::{mpsc, watch};

use crate::checkpoint::{self, Checkpoint, Store, StoreError};
use crate::config::{Config, ConfigError, ResumeBy, StartFrom};
use crate::frontier::{self, Frontier, FrontierError};
use crate::http;
use crate::position::{BinlogCoord, GtidState, Position, Target};
use crate::preflight::{self, Check, Problem};
use crate::sink::{self, Acked, SinkError};
use crate::source::{self, Progress, Reader, ServerInfo, SourceError, Start, StopAt, Stopped};
use crate::stats::Stats;

/// How a run ended without a definite error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Stopped on request; everything read was acknowledged and checkpointed.
    Clean,
    /// Stopped on request, but the drain deadline passed first: the events not
    /// acknowledged by then are published again on the next start.
    Unacknowledged,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("preflight found {} problem(s):\n{}", .0.len(), .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Preflight(Vec<Problem>),
    #[error(transparent)]
    Source(Box<SourceError>),
    #[error(transparent)]
    Sink(Box<SinkError>),
    #[error("{0}")]
    Start(String),
    #[error(transparent)]
    Frontier(FrontierError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<SourceError> for RunError {
    fn from(e: SourceError) -> Self {
        RunError::Source(Box::new(e))
    }
}

impl From<SinkError> for RunError {
    fn from(e: SinkError) -> Self {
        RunError::Sink(Box::new(e))
    }
}

/// Runs every preflight check against the configured server and broker.
///
/// # Errors
/// When the server cannot be reached at all.
pub async fn check(config: &Config) -> Result<Vec<Check>, RunError> {
    let password = config.source_password()?;
    let opts = source::connection_opts(config, &password);
    let mut conn = source::connect(config, &opts).await?;
    let mut checks = preflight::check_source(&mut conn, config)
        .await
        .map_err(SourceError::Query)?;
    checks.extend(preflight::check_kafka(&config.kafka, &config.tables).await);
    let _ = conn.disconnect().await;
    Ok(checks)
}

/// Runs the tailer until `shutdown` turns true or a definite error.
///
/// # Errors
/// [`RunError`]: configuration, store, preflight, or a definite source or
/// sink error. The checkpoint then holds the last fully acknowledged
/// transaction end.
pub async fn run(
    config: Arc<Config>,
    shutdown: watch::Receiver<bool>,
) -> Result<Outcome, RunError> {
    let password = config.source_password()?;
    let opts = source::connection_opts(&config, &password);
    let store = Store::open(&config.checkpoint.dir, config.checkpoint.retention())?;
    let stored = store.current()?;

    let checks = check(&config).await?;
    for check in &checks {
        tracing::info!("preflight: {check}");
    }
    let problems: Vec<Problem> = checks.into_iter().filter_map(|c| c.outcome.err()).collect();
    if !problems.is_empty() {
        return Err(RunError::Preflight(problems));
    }

    let mut conn = source::connect(&config, &opts).await?;
    let info = source::server_info(&mut conn).await?;
    let charsets = source::charset_map(&mut conn).await?;
    let start = resolve_start(&config, stored.as_ref(), &info, &mut conn).await?;
    let _ = conn.disconnect().await;
    match &stored {
        Some(cp) => {
            tracing::info!(checkpoint = %cp.position, start = %start, "resuming from the checkpoint")
        }
        None => tracing::info!(start = %start, "no checkpoint yet; starting as start.from says"),
    }

    let epoch = store.epoch()?;
    let frontier = read_frontier(&config, epoch).await?;
    for (topic, partition, last) in frontier.entries() {
        tracing::info!(topic, partition, gtid = %last.gtid, row = last.row, epoch, "the partition already holds events up to here");
    }
    let base_events = stored.as_ref().map_or(0, |c| c.events_published);
    let stats = new_stats(&config);
    if let Some(cp) = &stored {
        stats.checkpoint_position(cp);
    }
    let listener = http::bind(config.http.listen).await.map_err(|e| {
        RunError::Start(format!(
            "cannot listen on http.listen = {}: {e}; choose another address (port 0 picks a free one)",
            config.http.listen
        ))
    })?;
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "serving /metrics, /healthz and /readyz on http://{addr}");
    }
    let (http_stop, http_stop_rx) = watch::channel(false);
    let server = tokio::spawn(http::serve(
        listener,
        Arc::clone(&stats),
        config.http.ready_max_lag,
        http_stop_rx,
    ));
    let monitor = tokio::spawn(monitor(
        Arc::clone(&config),
        opts.clone(),
        Arc::clone(&stats),
    ));
    let outcome = stream(
        config,
        opts,
        charsets,
        start,
        None,
        sink::Mode::Live { epoch, frontier },
        Some((store, base_events)),
        stats,
        shutdown,
    )
    .await;
    monitor.abort();
    let _ = http_stop.send(true);
    let _ = server.await;
    outcome
}

fn new_stats(config: &Config) -> Arc<Stats> {
    Arc::new(Stats::new(
        config.tables.iter().map(|t| t.table.clone()).collect(),
    ))
}

/// Keeps the derived gauges fresh: lag and checkpoint age every second;
/// readiness; and, every 5 s, how far the server's binlog is ahead of what
/// was read (bytes and transactions), from a query connection of its own.
async fn monitor(config: Arc<Config>, opts: mysql_async::Opts, stats: Arc<Stats>) {
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    let mut conn: Option<mysql_async::Conn> = None;
    for tick in 0u64.. {
        ticker.tick().await;
        stats.refresh();
        let ready = http::not_ready_reasons(&stats, config.http.ready_max_lag).is_empty();
        stats.ready.set(i64::from(ready));
        if tick % 5 != 0 {
            continue;
        }
        if conn.is_none() {
            conn = source::connect(&config, &opts).await.ok();
        }
        let Some(c) = conn.as_mut() else { continue };
        match server_lag(c, &stats.read_position()).await {
            Ok((bytes, transactions)) => {
                stats.lag_bytes.set(bytes);
                stats.lag_transactions.set(transactions);
            }
            Err(e) => {
                tracing::debug!(error = %e, "could not measure the lag behind the server");
                conn = None;
            }
        }
    }
}

/// Bytes and transactions between `read` and the end of the server's binlog.
async fn server_lag(
    conn: &mut mysql_async::Conn,
    read: &Position,
) -> Result<(i64, i64), SourceError> {
    use mysql_async::prelude::Queryable;
    let files: Vec<(String, u64)> = conn
        .query_map("SHOW BINARY LOGS", |row: mysql_async::Row| {
            (
                row.get::<String, _>(0).unwrap_or_default(),
                row.get::<u64, _>(1).unwrap_or_default(),
            )
        })
        .await
        .map_err(SourceError::Query)?;
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
    let server = source::gtid_binlog_pos(conn).await?;
    let transactions: u64 = server
        .iter()
        .map(|g| {
            g.seq
                .saturating_sub(read.gtid.get(g.domain).map_or(0, |r| r.seq))
        })
        .sum();
    Ok((bytes, i64::try_from(transactions).unwrap_or(i64::MAX)))
}

/// The topics of the configured tables, each once.
fn topics(config: &Config) -> Vec<String> {
    let mut topics: Vec<String> = config.tables.iter().map(|t| t.topic.clone()).collect();
    topics.sort();
    topics.dedup();
    topics
}

/// Reads what the target topics already hold (see `frontier`).
async fn read_frontier(config: &Config, epoch: u64) -> Result<Frontier, RunError> {
    let client = sink::consumer_config(&config.kafka);
    let topics = topics(config);
    let timeout = config.kafka.request_timeout;
    tokio::task::spawn_blocking(move || frontier::read(&client, &topics, epoch, timeout))
        .await
        .map_err(|e| RunError::Internal(format!("frontier task: {e}")))?
        .map_err(RunError::Frontier)
}

/// Source → sink (→ checkpoint), until shutdown, `stop_at`, or a definite error.
#[allow(clippy::too_many_arguments)]
async fn stream(
    config: Arc<Config>,
    opts: mysql_async::Opts,
    charsets: crate::decode::CharsetMap,
    start: Start,
    stop_at: Option<StopAt>,
    mode: sink::Mode,
    checkpoint: Option<(Store, u64)>,
    stats: Arc<Stats>,
    shutdown: watch::Receiver<bool>,
) -> Result<Outcome, RunError> {
    let producer = sink::create_producer(&config.kafka, Arc::clone(&stats))?;
    let (items_tx, items_rx) = mpsc::channel(1024);
    let (acked_tx, acked_rx) = watch::channel(None);
    let mut sink_task = tokio::spawn(sink::run(
        producer.clone(),
        items_rx,
        acked_tx,
        config.kafka.max_in_flight,
        mode,
        Arc::clone(&stats),
    ));
    let checkpointer = match checkpoint {
        Some((store, base_events)) => tokio::spawn(checkpointer(
            store,
            acked_rx,
            config.checkpoint.interval,
            base_events,
            Arc::clone(&stats),
        )),
        None => tokio::spawn(watch_acks(acked_rx)),
    };
    let progress_log = tokio::spawn(progress_log(Arc::clone(&stats)));

    let mut reader = Reader::new(Arc::clone(&config), opts, charsets, Arc::clone(&stats));
    let mut progress = Progress::new(start);
    progress.stop_at = stop_at;
    // Until the first transaction is read, what has been read is where the
    // reader starts (the lag and checkpoint-age gauges depend on it).
    stats.set_read_position(&progress.position);
    let source_result = reader.run(&mut progress, items_tx, shutdown).await;
    progress_log.abort();

    // The reader is done and has dropped its sender: the sink drains.
    let sink_result =
        match tokio::time::timeout(config.shutdown.drain_timeout, &mut sink_task).await {
            Ok(joined) => Some(joined.map_err(|e| RunError::Internal(format!("sink task: {e}")))?),
            Err(_) => {
                sink_task.abort();
                None
            }
        };
    let saved = checkpointer
        .await
        .map_err(|e| RunError::Internal(format!("checkpoint task: {e}")))??;
    if let Some(cp) = &saved {
        tracing::info!(position = %cp.position, events_published = cp.events_published, "final checkpoint written");
    }

    let stopped = source_result?;
    match sink_result {
        Some(result) => result?,
        None => {
            tracing::warn!(
                timeout = ?config.shutdown.drain_timeout,
                "shutdown: the broker did not acknowledge every event in time; they will be published again on the next start"
            );
            return Ok(Outcome::Unacknowledged);
        }
    }
    Ok(match stopped {
        Stopped::AtBoundary | Stopped::SinkClosed | Stopped::Reached => Outcome::Clean,
        Stopped::MidTransaction => Outcome::Unacknowledged,
    })
}

/// Without a store (replays): follow the acknowledgements, report the last.
async fn watch_acks(
    mut acked: watch::Receiver<Option<Acked>>,
) -> Result<Option<Checkpoint>, RunError> {
    while acked.changed().await.is_ok() {}
    let last = acked.borrow().clone();
    if let Some(a) = last {
        tracing::info!(position = %a.commit.position, events = a.records, "replayed up to here");
    }
    Ok(None)
}

/// Where the reader starts: the stored checkpoint, else `start.from`.
async fn resolve_start(
    config: &Config,
    stored: Option<&Checkpoint>,
    info: &ServerInfo,
    conn: &mut mysql_async::Conn,
) -> Result<Start, RunError> {
    if let Some(cp) = stored {
        return match (config.start.resume_by, &cp.position.coord) {
            (ResumeBy::Gtid, _) if !cp.position.gtid.is_empty() => Ok(Start::Gtid(cp.position.gtid.clone())),
            (_, Some(coord)) => {
                if cp.source_server_id != info.server_id {
                    return Err(RunError::Start(format!(
                        "the checkpoint {} was read from server_id {}, but this server is server_id {}: \
                         binlog files and offsets mean nothing on another server. Resume by GTID \
                         (start.resume_by = \"gtid\") to move between servers of one replication topology",
                        cp.position, cp.source_server_id, info.server_id
                    )));
                }
                Ok(Start::Coord {
                    coord: coord.clone(),
                    gtid: Some(cp.position.gtid.clone()),
                })
            }
            (_, None) => Err(RunError::Start(format!(
                "the checkpoint {} has no binlog file coordinate, so start.resume_by = \"file\" cannot \
                 use it; resume by GTID",
                cp.position
            ))),
        };
    }
    match &config.start.from {
        StartFrom::Gtid(state) => Ok(Start::Gtid(state.clone())),
        StartFrom::Latest => {
            let state = source::gtid_binlog_pos(conn).await?;
            if !state.is_empty() {
                return Ok(Start::Gtid(state));
            }
            let coord = source::master_coord(conn).await?.ok_or_else(|| {
                RunError::Start("the server reports no binlog position (SHOW MASTER STATUS is empty): is log_bin on?".into())
            })?;
            Ok(Start::Coord {
                coord,
                gtid: Some(GtidState::new()),
            })
        }
        StartFrom::Earliest => {
            let files = source::binlog_files(conn).await?;
            let first = files.first().ok_or_else(|| {
                RunError::Start(
                    "the server lists no binary logs (SHOW BINARY LOGS is empty): is log_bin on?"
                        .into(),
                )
            })?;
            let coord = BinlogCoord::new(first.clone(), 4);
            let gtid = gtid_at(conn, &coord).await?;
            Ok(Start::Coord { coord, gtid })
        }
        StartFrom::Coord(coord) => {
            let gtid = gtid_at(conn, coord).await?;
            if gtid.is_none() {
                return Err(RunError::Start(format!(
                    "start.from = {coord}: the server has no such binlog position (BINLOG_GTID_POS is NULL); \
                     use a file from SHOW BINARY LOGS and an offset where a transaction begins or ends"
                )));
            }
            Ok(Start::Coord {
                coord: coord.clone(),
                gtid,
            })
        }
    }
}

/// The GTID state at a binlog coordinate, from the server.
async fn gtid_at(
    conn: &mut mysql_async::Conn,
    coord: &BinlogCoord,
) -> Result<Option<GtidState>, RunError> {
    use mysql_async::prelude::Queryable;
    let text: Option<Option<String>> = conn
        .exec_first(
            "SELECT BINLOG_GTID_POS(?, ?)",
            (coord.file.as_str(), coord.offset),
        )
        .await
        .map_err(SourceError::Query)?;
    match text.flatten() {
        None => Ok(None),
        Some(text) => text
            .parse()
            .map(Some)
            .map_err(|e| RunError::Start(format!("BINLOG_GTID_POS({coord}): {e}"))),
    }
}

/// Writes the newest acknowledged position every `interval` (when it moved),
/// and once more when the sink ends. Returns the last checkpoint written.
async fn checkpointer(
    store: Store,
    mut acked: watch::Receiver<Option<Acked>>,
    interval: Duration,
    base_events: u64,
    stats: Arc<Stats>,
) -> Result<Option<Checkpoint>, RunError> {
    let store = Arc::new(Mutex::new(store));
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last: Option<Checkpoint> = None;
    loop {
        let open = tokio::select! {
            _ = ticker.tick() => true,
            changed = acked.changed() => changed.is_ok(),
        };
        if open && !ticker_due(&last, interval) {
            continue;
        }
        let current = acked.borrow_and_update().clone();
        if let Some(acked) = current {
            let unchanged = last
                .as_ref()
                .is_some_and(|l| l.position == acked.commit.position);
            if !unchanged {
                let cp = Checkpoint {
                    position: acked.commit.position.clone(),
                    source_server_id: acked.commit.server_id,
                    commit_time: Some(i64::from(acked.commit.commit_time)),
                    written_at_ms: checkpoint::now_ms(),
                    events_published: base_events + acked.records,
                };
                let store = Arc::clone(&store);
                let to_save = cp.clone();
                tokio::task::spawn_blocking(move || {
                    store
                        .lock()
                        .map_err(|_| RunError::Internal("checkpoint store lock poisoned".into()))?
                        .save(&to_save)
                        .map_err(RunError::Store)
                })
                .await
                .map_err(|e| RunError::Internal(format!("checkpoint write: {e}")))??;
                stats.checkpoint_position(&cp);
                last = Some(cp);
            }
        }
        if !open {
            return Ok(last);
        }
    }
}

/// Whether the last write is at least `interval` old (or there was none).
fn ticker_due(last: &Option<Checkpoint>, interval: Duration) -> bool {
    last.as_ref().is_none_or(|l| {
        let age = checkpoint::now_ms() - l.written_at_ms;
        age >= i64::try_from(interval.as_millis()).unwrap_or(i64::MAX)
    })
}

/// A progress line every few seconds while events flow.
async fn progress_log(stats: Arc<Stats>) {
    const EVERY: Duration = Duration::from_secs(5);
    let published = || -> u64 {
        stats
            .published
            .collect()
            .iter()
            .flat_map(|family| family.get_metric())
            .map(|m| m.get_counter().get_value() as u64)
            .sum()
    };
    let mut last = published();
    let mut ticker = tokio::time::interval(EVERY);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let now = published();
        let rate = (now - last) as f64 / EVERY.as_secs_f64();
        if now != last || stats.lag_seconds() > 10 {
            tracing::info!(
                events_per_second = format!("{rate:.0}"),
                events_published = now,
                transactions = stats.transactions.get(),
                lag_seconds = stats.lag_seconds(),
                in_flight = stats.in_flight.get(),
                "progress"
            );
        }
        last = now;
    }
}

/// Resolves an operator's target to a position: history entries and times
/// through the store, file coordinates through the server.
async fn resolve_target(
    target: &Target,
    store: Option<&Store>,
    conn: &mut mysql_async::Conn,
) -> Result<Position, RunError> {
    let from_store =
        |found: Option<(u64, Checkpoint)>, what: String| -> Result<Position, RunError> {
            found.map(|(_, cp)| cp.position).ok_or_else(|| {
                RunError::Start(format!("{what}; see `binlog-tailer checkpoint list`"))
            })
        };
    match target {
        Target::Entry(n) => {
            let store = store.ok_or_else(|| RunError::Start("there is no checkpoint store yet".into()))?;
            from_store(store.history_entry(*n)?, format!("the history has no entry #{n}"))
        }
        Target::Time(t) => {
            let store = store.ok_or_else(|| RunError::Start("there is no checkpoint store yet".into()))?;
            from_store(
                store.newest_at_or_before(*t)?,
                format!(
                    "no stored checkpoint committed at or before {}",
                    crate::map::rfc3339_seconds(*t)
                ),
            )
        }
        Target::Gtid(state) => Ok(Position {
            gtid: state.clone(),
            coord: None,
        }),
        Target::Coord(coord) => match gtid_at(conn, coord).await? {
            Some(gtid) => Ok(Position {
                gtid,
                coord: Some(coord.clone()),
            }),
            None => Err(RunError::Start(format!(
                "the server has no binlog position {coord} (BINLOG_GTID_POS is NULL); use a file from \
                 SHOW BINARY LOGS and an offset where a transaction begins or ends"
            ))),
        },
    }
}

fn start_at(position: &Position) -> Start {
    match &position.coord {
        Some(coord) if position.gtid.is_empty() => Start::Coord {
            coord: coord.clone(),
            gtid: Some(GtidState::new()),
        },
        _ => Start::Gtid(position.gtid.clone()),
    }
}

/// `checkpoint set`: moves the live position to `target` and starts a new
/// epoch, so the next `run` publishes again from there. Refused while a
/// tailer runs on the same state directory.
///
/// # Errors
/// When the target cannot be resolved or the store not written.
pub async fn set_checkpoint(
    config: &Config,
    target: &Target,
) -> Result<(Checkpoint, u64), RunError> {
    let mut store = Store::open(&config.checkpoint.dir, config.checkpoint.retention())?;
    let password = config.source_password()?;
    let opts = source::connection_opts(config, &password);
    let mut conn = source::connect(config, &opts).await?;
    let info = source::server_info(&mut conn).await?;
    let position = resolve_target(target, Some(&store), &mut conn).await?;
    let _ = conn.disconnect().await;
    let checkpoint = Checkpoint {
        position,
        source_server_id: info.server_id,
        commit_time: None,
        written_at_ms: checkpoint::now_ms(),
        events_published: store.current()?.map_or(0, |c| c.events_published),
    };
    let epoch = store.set_live(&checkpoint)?;
    Ok((checkpoint, epoch))
}

/// `replay`: publishes the events after `from` up to and including `to`
/// (default: the live checkpoint), to `topic` if given, and returns. The live
/// checkpoint is not touched; records are marked `binlog.replay: 1`, carry
/// the same ids and payloads as the originals, and are never skipped.
///
/// # Errors
/// As [`run`], and when `from` or `to` cannot be resolved.
pub async fn replay(
    config: Arc<Config>,
    from: &Target,
    to: Option<&Target>,
    topic: Option<&str>,
    shutdown: watch::Receiver<bool>,
) -> Result<Outcome, RunError> {
    // A replay registers with its own replica id, so that it can run beside
    // the live tailer, and publishes to --topic if given.
    let config = {
        let mut changed = (*config).clone();
        changed.source.server_id = config
            .source
            .replay_server_id
            .unwrap_or_else(|| config.source.server_id.wrapping_add(1).max(1));
        if let Some(topic) = topic {
            for table in &mut changed.tables {
                table.topic = topic.to_owned();
            }
        }
        Arc::new(changed)
    };
    let password = config.source_password()?;
    let opts = source::connection_opts(&config, &password);
    let store = Store::open_existing(&config.checkpoint.dir)?;

    let checks = check(&config).await?;
    let problems: Vec<Problem> = checks.into_iter().filter_map(|c| c.outcome.err()).collect();
    if !problems.is_empty() {
        return Err(RunError::Preflight(problems));
    }
    let mut conn = source::connect(&config, &opts).await?;
    let charsets = source::charset_map(&mut conn).await?;
    let start = start_at(&resolve_target(from, store.as_ref(), &mut conn).await?);
    let end = match to {
        Some(to) => resolve_target(to, store.as_ref(), &mut conn).await?,
        None => store
            .as_ref()
            .map(Store::current)
            .transpose()?
            .flatten()
            .map(|c| c.position)
            .ok_or_else(|| {
                RunError::Start("there is no live checkpoint to replay up to; give --to".into())
            })?,
    };
    let _ = conn.disconnect().await;
    let stop = if end.gtid.is_empty() {
        match end.coord {
            Some(coord) => StopAt::Coord(coord),
            None => return Err(RunError::Start("--to names no position".into())),
        }
    } else {
        StopAt::Gtid(end.gtid)
    };
    tracing::info!(from = %start, to = %stop, "replaying");
    let frontier = read_frontier(&config, 0).await?;
    let stats = new_stats(&config);
    stream(
        config,
        opts,
        charsets,
        start,
        Some(stop),
        sink::Mode::Replay { frontier },
        None,
        stats,
        shutdown,
    )
    .await
}
