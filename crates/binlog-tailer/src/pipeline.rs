//! The pipeline: wires source → sink → checkpoint writer for `run` and
//! `replay`, and holds no logic of its own beyond start-up order and
//! shutdown. Where to start is [`crate::start`]'s to decide, what to save the
//! [`crate::checkpoint`] writer's, what to report [`crate::monitor`]'s.
//!
//! # Start-up
//! 1. Open the checkpoint store (a corrupt store stops here, untouched).
//!    Create the producer, which connects in the background meanwhile.
//! 2. Preflight the server and the broker (every problem is reported).
//! 3. Decide where to start (the stored checkpoint, else `start.from`) and,
//!    at the same time, read back what the topics hold since it.
//! 4. Run the reader, the sink and the checkpoint writer.
//!
//! # Shutdown (SIGINT/SIGTERM)
//! The reader stops at the end of the transaction it is reading (or at the
//! drain deadline) and ends its binlog dump on the server, the sink waits
//! for every acknowledgement (up to `shutdown.drain_timeout`), the writer
//! saves the last fully acknowledged transaction end. Whatever was not
//! acknowledged is read again on the next start: nothing is lost.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch};

use crate::checkpoint::{self, Checkpoint, Store, StoreError, WriterError};
use crate::config::{Config, ConfigError, StartFrom};
use crate::decode::CharsetMap;
use crate::frontier::{self, Frontier, FrontierError, Identity};
use crate::handoff::Acked;
use crate::http;
use crate::map::{HEADER_EPOCH, HEADER_STORE};
use crate::metrics::Metrics;
use crate::monitor;
use crate::position::{GtidState, Start, StopAt, Target};
use crate::preflight::{self, Check, Problem};
use crate::sink::{self, SinkError};
use crate::snapshot::{self, Cover, Ended, SnapshotError};
use crate::source::{self, Progress, Reader, SourceError, Stopped};
use crate::start::{self, StartError};

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
    #[error(transparent)]
    Start(Box<StartError>),
    #[error(transparent)]
    Checkpoint(#[from] WriterError),
    #[error(
        "cannot listen on http.listen = {addr}: {source}; choose another address (port 0 picks a free one)"
    )]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Frontier(FrontierError),
    #[error(transparent)]
    Snapshot(Box<SnapshotError>),
    #[error("internal error: {0}")]
    Internal(String),
}

impl RunError {
    fn snapshot(e: SnapshotError) -> Self {
        RunError::Snapshot(Box::new(e))
    }
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

impl From<StartError> for RunError {
    fn from(e: StartError) -> Self {
        RunError::Start(Box::new(e))
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
    // The server's checks and the broker's, at the same time.
    let (source_checks, kafka_checks) = tokio::join!(
        preflight::check_source(&mut conn, config),
        preflight::check_kafka(&config.kafka, &config.tables)
    );
    let mut checks = source_checks.map_err(SourceError::Query)?;
    checks.extend(kafka_checks);
    let _ = conn.disconnect().await;
    Ok(checks)
}

/// Runs the checks and refuses to go on if one failed.
async fn require_preflight(config: &Config, log: bool) -> Result<(), RunError> {
    let checks = check(config).await?;
    if log {
        for check in &checks {
            if check.warning.is_some() {
                tracing::warn!("preflight: {check}");
            } else {
                tracing::info!("preflight: {check}");
            }
        }
    }
    let problems: Vec<Problem> = checks.into_iter().filter_map(|c| c.outcome.err()).collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(RunError::Preflight(problems))
    }
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
    let mut store = Store::open(&config.checkpoint.dir, config.checkpoint.retention())?;
    let mut stored = store.current()?;
    let metrics = new_metrics(&config);
    // The producer connects while the preflight and the read-back run (see
    // `sink::warm_up`). A configuration librdkafka refuses is reported after
    // the preflight, which names such problems better.
    let producer = sink::create_producer(&config.kafka, Arc::clone(&metrics));
    if let Ok(producer) = &producer {
        sink::warm_up(producer, topics(&config), config.kafka.request_timeout);
    }

    if let Err(e) = require_preflight(&config, true).await {
        // Dropped on a thread of its own: librdkafka's teardown must not
        // hold up the report of what the preflight found.
        if let Ok(producer) = producer {
            frontier::close_in_background(producer);
        }
        return Err(e);
    }
    let producer = producer?;

    let identity = store.identity()?;
    let listener = http::bind(config.http.listen)
        .await
        .map_err(|source| RunError::Listen {
            addr: config.http.listen,
            source,
        })?;
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "serving /metrics, /healthz and /readyz on http://{addr}");
    }
    let (http_stop, http_stop_rx) = watch::channel(false);
    let server = tokio::spawn(http::serve(
        listener,
        Arc::clone(&metrics),
        config.http.ready_max_lag,
        http_stop_rx,
    ));
    let stop_http = || {
        let _ = http_stop.send(true);
    };

    // start.from = "snapshot": the rows that exist first, then the stream
    // from exactly the snapshot's position.
    let mut cover = None;
    if config.start.from == StartFrom::Snapshot {
        match handover(
            &config,
            &opts,
            &mut store,
            stored.is_none(),
            identity,
            &metrics,
            &shutdown,
        )
        .await
        {
            Ok(Ok(found)) => cover = found.map(Arc::new),
            Ok(Err(outcome)) => {
                stop_http();
                let _ = server.await;
                return Ok(outcome);
            }
            Err(e) => {
                stop_http();
                let _ = server.await;
                return Err(e);
            }
        }
        stored = store.current()?;
    }

    // The server's side (where to start, its character sets) and Kafka's
    // (what the topics already hold) do not depend on each other: asked at
    // the same time, start-up waits for the slower only.
    let server_side = async {
        let mut conn = source::connect(&config, &opts).await?;
        let info = source::server_info(&mut conn).await?;
        let charsets = source::charset_map(&mut conn).await?;
        let start = start::resolve_start(&config, stored.as_ref(), &info, &mut conn).await?;
        let _ = conn.disconnect().await;
        match &stored {
            Some(cp) => {
                tracing::info!(checkpoint = %cp.position, start = %start, "resuming from the checkpoint")
            }
            None => {
                tracing::info!(start = %start, "no checkpoint yet; starting as start.from says")
            }
        }
        Ok::<_, RunError>((charsets, start))
    };
    let kafka_side = read_frontier(
        &config,
        identity,
        stored.as_ref().map(|c| c.position.gtid.clone()),
    );
    let prepared = tokio::try_join!(server_side, kafka_side)
        .map(|((charsets, start), frontier)| (charsets, start, frontier));
    let (charsets, start, frontier) = match prepared {
        Ok(prepared) => prepared,
        Err(e) => {
            stop_http();
            let _ = server.await;
            return Err(e);
        }
    };
    let base_events = stored.as_ref().map_or(0, |c| c.events_published);
    if let Some(cp) = &stored {
        metrics.checkpoint_position(cp.written_at_ms, &cp.position);
    }
    let (monitor_stop, monitor_stop_rx) = watch::channel(false);
    let mut monitor = tokio::spawn(monitor::monitor(
        Arc::clone(&config),
        opts.clone(),
        Arc::clone(&metrics),
        monitor_stop_rx,
    ));
    let outcome = stream(StreamPlan {
        config,
        producer,
        opts,
        charsets,
        start,
        stop_at: None,
        mode: sink::Mode::Live {
            identity,
            frontier,
            cover,
        },
        checkpoint: Some((store, base_events)),
        metrics,
        shutdown,
    })
    .await;
    // The monitor closes its connection; a lag query in flight is given a
    // moment to finish.
    let _ = monitor_stop.send(true);
    if tokio::time::timeout(Duration::from_secs(2), &mut monitor)
        .await
        .is_err()
    {
        monitor.abort();
    }
    stop_http();
    let _ = server.await;
    outcome
}

/// `--topic` of `replay` and `snapshot`: every table's records go there.
fn publish_to(config: &mut Config, topic: Option<&str>) {
    if let Some(topic) = topic {
        for table in &mut config.tables {
            table.topic = topic.to_owned();
        }
    }
}

/// The name under which the store keeps the snapshot `run` takes.
const LIVE_SNAPSHOT: &str = "live";

/// `start.from = "snapshot"`: takes (or resumes) the snapshot when the store
/// has no checkpoint yet, then makes its position the live checkpoint.
/// The outcome when the snapshot stopped on request before its end; else
/// the cover of a snapshot read in several views.
async fn handover(
    config: &Arc<Config>,
    opts: &mysql_async::Opts,
    store: &mut Store,
    first_start: bool,
    identity: Identity,
    metrics: &Arc<Metrics>,
    shutdown: &watch::Receiver<bool>,
) -> Result<Result<Option<Cover>, Outcome>, RunError> {
    let saved = snapshot::saved(store, LIVE_SNAPSHOT).map_err(RunError::snapshot)?;
    if !first_start {
        // Streaming began (or the store has a checkpoint from before):
        // only the cover of the finished snapshot matters now.
        return Ok(Ok(saved
            .filter(|s| s.done)
            .and_then(|s| Cover::of(&s, config))));
    }
    let state = match saved {
        Some(state) if state.done => state,
        _ => {
            let job = snapshot::Job {
                config: Arc::clone(config),
                opts: opts.clone(),
                name: LIVE_SNAPSHOT.to_owned(),
                topic: None,
                filter: None,
                headers: vec![
                    (HEADER_EPOCH, identity.epoch.to_string().into_bytes()),
                    (HEADER_STORE, identity.store_header().into_bytes()),
                ],
                metrics: Arc::clone(metrics),
                shutdown: shutdown.clone(),
            };
            match snapshot::take(job, store)
                .await
                .map_err(RunError::snapshot)?
            {
                Ended::Done(state) => state,
                Ended::Stopped {
                    state,
                    acknowledged,
                } => {
                    tracing::info!(
                        rows = state.rows,
                        "snapshot stopped on request; the next run resumes it"
                    );
                    return Ok(Err(if acknowledged {
                        Outcome::Clean
                    } else {
                        Outcome::Unacknowledged
                    }));
                }
            }
        }
    };
    let position = snapshot::handover_position(&state).map_err(RunError::snapshot)?;
    let mut conn = source::connect(config, opts).await?;
    let in_binlog = snapshot::require_in_binlog(&mut conn, &position).await;
    let _ = conn.disconnect().await;
    in_binlog.map_err(RunError::snapshot)?;
    let first = state.views.first();
    let checkpoint = Checkpoint {
        position: position.clone(),
        source_server_id: first.map_or(0, |v| v.server_id),
        commit_time: first.map(|v| i64::from(v.time)),
        written_at_ms: checkpoint::now_ms(),
        events_published: state.rows,
    };
    store.save(&checkpoint)?;
    tracing::info!(position = %position, rows = state.rows, views = state.views.len(), "snapshot done; streaming starts at its position");
    Ok(Ok(Cover::of(&state, config)))
}

/// `snapshot`: publishes every row of the tailed tables (to `topic` if
/// given), resuming an unfinished one of the same topic, without touching
/// the live checkpoint. Its progress is kept in a store of its own under
/// `<checkpoint.dir>/snapshots/`, so it can run beside `run`.
///
/// # Errors
/// As [`run`], and [`snapshot::SnapshotError`].
pub async fn snapshot(
    config: Arc<Config>,
    topic: Option<&str>,
    filter: Option<&str>,
    shutdown: watch::Receiver<bool>,
) -> Result<Outcome, RunError> {
    let mut changed = (*config).clone();
    publish_to(&mut changed, topic);
    let config = Arc::new(changed);
    let password = config.source_password()?;
    let opts = source::connection_opts(&config, &password);
    let name = topic.unwrap_or("tables-topics");
    let dir = config.checkpoint.dir.join("snapshots").join(name);
    let mut store = Store::open(&dir, config.checkpoint.retention())?;
    require_preflight(&config, false).await?;
    let identity = store.identity()?;
    let metrics = new_metrics(&config);
    let job = snapshot::Job {
        config: Arc::clone(&config),
        opts,
        name: name.to_owned(),
        topic: topic.map(str::to_owned),
        filter: filter.map(str::to_owned),
        headers: vec![(HEADER_STORE, identity.store_header().into_bytes())],
        metrics,
        shutdown,
    };
    match snapshot::take(job, &mut store)
        .await
        .map_err(RunError::snapshot)?
    {
        Ended::Done(state) => {
            tracing::info!(snapshot = %state.id, rows = state.rows, position = ?state.views.first().map(|v| &v.position), "snapshot published");
            Ok(Outcome::Clean)
        }
        Ended::Stopped {
            state,
            acknowledged,
        } => {
            tracing::info!(snapshot = %state.id, rows = state.rows, "snapshot stopped on request; run the same command again to resume it");
            Ok(if acknowledged {
                Outcome::Clean
            } else {
                Outcome::Unacknowledged
            })
        }
    }
}

fn new_metrics(config: &Config) -> Arc<Metrics> {
    Arc::new(Metrics::new(
        config.tables.iter().map(|t| t.table.clone()).collect(),
    ))
}

/// The topics of the configured tables, each once.
fn topics(config: &Config) -> Vec<String> {
    let mut topics: Vec<String> = config.tables.iter().map(|t| t.topic.clone()).collect();
    topics.sort();
    topics.dedup();
    topics
}

/// Reads what the target topics already hold of this store's live records,
/// back to the checkpoint (see `frontier`).
async fn read_frontier(
    config: &Config,
    identity: Identity,
    checkpoint: Option<GtidState>,
) -> Result<Frontier, RunError> {
    let client = sink::consumer_config(&config.kafka);
    let topics = topics(config);
    let timeout = config.kafka.request_timeout;
    let started = Instant::now();
    let frontier = tokio::task::spawn_blocking(move || {
        frontier::read(&client, &topics, identity, checkpoint.as_ref(), timeout)
    })
    .await
    .map_err(|e| RunError::Internal(format!("frontier task: {e}")))?
    .map_err(RunError::Frontier)?;
    for (topic, partition, last) in frontier.entries() {
        tracing::info!(topic, partition, gtid = %last.gtid, row = last.row, epoch = identity.epoch, "the partition already holds events up to here");
    }
    tracing::info!(
        records_read = frontier.records_read(),
        took = ?started.elapsed(),
        store = %identity.store_header(),
        epoch = identity.epoch,
        "read back what the topics hold since the checkpoint"
    );
    Ok(frontier)
}

/// The partition counts of the target topics (a replay skips nothing).
async fn read_partitions(config: &Config) -> Result<Frontier, RunError> {
    let client = sink::consumer_config(&config.kafka);
    let topics = topics(config);
    let timeout = config.kafka.request_timeout;
    tokio::task::spawn_blocking(move || frontier::partitions_only(&client, &topics, timeout))
        .await
        .map_err(|e| RunError::Internal(format!("frontier task: {e}")))?
        .map_err(RunError::Frontier)
}

/// Everything one stream needs: where it reads, where it starts and stops,
/// how the sink publishes, and whether a store is checkpointed.
struct StreamPlan {
    config: Arc<Config>,
    /// Created by the caller, so that it can connect ahead of the stream.
    producer: sink::TailerProducer,
    opts: mysql_async::Opts,
    charsets: CharsetMap,
    start: Start,
    stop_at: Option<StopAt>,
    mode: sink::Mode,
    /// The store and its event count at the start; `None` for replays.
    checkpoint: Option<(Store, u64)>,
    metrics: Arc<Metrics>,
    shutdown: watch::Receiver<bool>,
}

/// Source → sink (→ checkpoint), until shutdown, `stop_at`, or a definite error.
async fn stream(plan: StreamPlan) -> Result<Outcome, RunError> {
    let StreamPlan {
        config,
        producer,
        opts,
        charsets,
        start,
        stop_at,
        mode,
        checkpoint,
        metrics,
        shutdown,
    } = plan;
    let (items_tx, items_rx) = mpsc::channel(1024);
    let (acked_tx, acked_rx) = watch::channel(None);
    // Dropped when the sink task ends or is dropped: the checkpoint writer
    // then saves the last acknowledgement without waiting out its interval.
    let (sink_done_tx, sink_done_rx) = oneshot::channel::<()>();
    let sink = sink::run(
        producer.clone(),
        items_rx,
        acked_tx,
        sink::InFlightLimits::of(&config.kafka),
        mode,
        Arc::clone(&metrics),
    );
    let mut sink_task = tokio::spawn(async move {
        let _done = sink_done_tx;
        sink.await
    });
    let writer = match checkpoint {
        Some((store, base_events)) => tokio::spawn(checkpoint::write_checkpoints(
            store,
            acked_rx,
            sink_done_rx,
            config.checkpoint.interval,
            base_events,
            Arc::clone(&metrics),
        )),
        None => tokio::spawn(watch_acks(acked_rx)),
    };
    let progress_log = tokio::spawn(monitor::progress_log(Arc::clone(&metrics)));

    let mut reader = Reader::new(Arc::clone(&config), opts, charsets, Arc::clone(&metrics));
    let mut progress = Progress::new(start);
    progress.stop_at = stop_at;
    // Until the first transaction is read, what has been read is where the
    // reader starts (the lag and checkpoint-age gauges depend on it).
    metrics.set_read_position(&progress.position);
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
    let saved = writer
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
) -> Result<Option<Checkpoint>, WriterError> {
    while acked.changed().await.is_ok() {}
    let last = acked.borrow().clone();
    if let Some(a) = last {
        tracing::info!(position = %a.commit.position, events = a.records, "replayed up to here");
    }
    Ok(None)
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
    let position = start::resolve_target(target, Some(&store), &mut conn).await?;
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
        publish_to(&mut changed, topic);
        Arc::new(changed)
    };
    let password = config.source_password()?;
    let opts = source::connection_opts(&config, &password);
    let store = Store::open_existing(&config.checkpoint.dir)?;

    require_preflight(&config, false).await?;
    let mut conn = source::connect(&config, &opts).await?;
    let charsets = source::charset_map(&mut conn).await?;
    let start = Start::after(&start::resolve_target(from, store.as_ref(), &mut conn).await?);
    let stop = start::replay_end(to, store.as_ref(), &mut conn).await?;
    let _ = conn.disconnect().await;
    tracing::info!(from = %start, to = %stop, "replaying");
    let frontier = read_partitions(&config).await?;
    let metrics = new_metrics(&config);
    let producer = sink::create_producer(&config.kafka, Arc::clone(&metrics))?;
    stream(StreamPlan {
        config,
        producer,
        opts,
        charsets,
        start,
        stop_at: Some(stop),
        mode: sink::Mode::Replay { frontier },
        checkpoint: None,
        metrics,
        shutdown,
    })
    .await
}
