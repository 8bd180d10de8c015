//! Snapshot: every row the tailed tables hold, read in primary-key order,
//! in chunks, inside one consistent read view whose binlog position is
//! known exactly; published as events of the table's type, marked as
//! snapshot records; and the hand-over to streaming at that position.
//!
//! # The read view and its position
//! On one connection: `START TRANSACTION WITH CONSISTENT SNAPSHOT, READ
//! ONLY` (repeatable read), then the session status `binlog_snapshot_file`
//! and `binlog_snapshot_position`: MariaDB gives, with the InnoDB read view,
//! the binlog position of the last transaction the view sees (commits are
//! ordered in the binlog and in InnoDB alike). `BINLOG_GTID_POS` turns it
//! into the GTID state. No table is locked. On a replica
//! (`log_slave_updates=ON`) the position is in the replica's own binlog,
//! whose GTIDs are the primary's, so the hand-over by GTID works on either
//! server (checked on 10.11: the same position and state on both).
//!
//! # Records
//! A row is mapped as an inserted row of its table is (`map`), with the
//! view's position as its origin (`binlog.gtid`: the state's GTID of its
//! lowest domain, `binlog.row` 0, `binlog.file`/`binlog.pos` the view's
//! coordinate, `time` when the view was opened), the id
//! `snapshot:<view position>:<database>.<table>:<key>`, the CloudEvents
//! extension `binlogsnapshot` and the headers `binlog.snapshot` (the
//! snapshot's random id) and `binlog.snapshot.table`. Tables need a
//! one-column integer primary key (chunks are ranges of it).
//!
//! # Progress, and resuming
//! After each chunk a transaction end goes through the sink; once the
//! broker has acknowledged every record up to it, the chunk's last key is
//! saved in the store. A snapshot stopped (SIGTERM, or killed) resumes in a
//! new read view from the last acknowledged key: the records sent after it
//! are found in their partitions (`frontier::read_snapshot`) and passed
//! over, so each row is published once. The new view stands later in the
//! binlog; `Cover` tells the stream which inserts the later views' rows
//! already hold.
//!
//! # Memory
//! Rows are read from the server as they are sent on: at most the records
//! of the sink's channel and `kafka.max_in_flight` (and
//! `kafka.max_in_flight_bytes`) wait, whatever the size of the table.

mod state;
mod values;

use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, Row, Value as Sql};
use tokio::sync::{mpsc, oneshot, watch};

use crate::checkpoint::{Store, StoreError};
use crate::config::Config;
use crate::decode::Value;
use crate::frontier::{self, FrontierError};
use crate::handoff::{Acked, Commit, Item};
use crate::map::{self, ColumnLayout, RowOrigin, SnapshotMark, TableLayout, HEADER_SNAPSHOT};
use crate::metrics::Metrics;
use crate::position::{BinlogCoord, Gtid, Position};
use crate::sink::{self, SinkError};
use crate::source::{self, SourceError};

pub use state::{Bound, Cover, State, View};
use values::{Described, Kind};

/// Why a snapshot stopped. Each names what to do.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot of {table}: {problem}")]
    Table { table: String, problem: String },
    #[error(
        "snapshot: the server reports no binlog position for the read view \
         (binlog_snapshot_file is empty): is log_bin on?"
    )]
    NoPosition,
    #[error(
        "snapshot: the server has no GTID state at the read view's position {0} \
         (BINLOG_GTID_POS is NULL)"
    )]
    NoGtid(BinlogCoord),
    #[error("snapshot of {table}: the row with key {key}: {problem}")]
    Row {
        table: String,
        key: String,
        problem: String,
    },
    #[error("snapshot: {0}")]
    Query(mysql_async::Error),
    #[error(
        "the unfinished snapshot {name} in the store covers {stored}, with --where {stored_filter:?}, \
         but this run asks for {asked}, with --where {asked_filter:?}; run it again as it began \
         to finish it"
    )]
    Changed {
        name: String,
        stored: String,
        asked: String,
        stored_filter: Option<String>,
        asked_filter: Option<String>,
    },
    #[error(
        "the snapshot's position {position} is no longer in the server's binlog (its oldest file is \
         {oldest}): the rows committed since the snapshot cannot be streamed, so streaming does not \
         start. Keep binlogs longer than a snapshot takes (binlog_expire_logs_seconds), then take \
         the snapshot again with a new checkpoint store (another checkpoint.dir)"
    )]
    Purged { position: String, oldest: String },
    #[error("the snapshot progress saved in the store does not parse ({0}); this is a bug")]
    State(String),
    #[error(transparent)]
    Source(Box<SourceError>),
    #[error(transparent)]
    Sink(Box<SinkError>),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Frontier(#[from] FrontierError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<SourceError> for SnapshotError {
    fn from(e: SourceError) -> Self {
        SnapshotError::Source(Box::new(e))
    }
}

impl From<SinkError> for SnapshotError {
    fn from(e: SinkError) -> Self {
        SnapshotError::Sink(Box::new(e))
    }
}

/// What to snapshot, and how its records are marked.
pub struct Job {
    pub config: Arc<Config>,
    pub opts: Opts,
    /// The name its progress is saved under in `store`.
    pub name: String,
    /// `--topic`: every table's records go there.
    pub topic: Option<String>,
    /// `--where`: an SQL condition on each table's rows.
    pub filter: Option<String>,
    /// Headers every record carries besides the snapshot's id (the store and
    /// epoch for the snapshot `run` takes).
    pub headers: Vec<(&'static str, Vec<u8>)>,
    pub metrics: Arc<Metrics>,
    pub shutdown: watch::Receiver<bool>,
}

/// How a snapshot ended without an error.
#[derive(Debug)]
pub enum Ended {
    /// Every table read and acknowledged.
    Done(State),
    /// Stopped on request; the next start resumes after the last
    /// acknowledged chunk. `acknowledged`: every record sent was
    /// acknowledged before the drain deadline.
    Stopped { state: State, acknowledged: bool },
}

/// How the reading ended.
enum Finish {
    Done,
    Stopped,
    /// Stopped before the broker acknowledged every record sent.
    Unacknowledged,
}

/// The progress saved under `name`, if any.
///
/// # Errors
/// When the store cannot be read or the saved progress does not parse.
pub fn saved(store: &Store, name: &str) -> Result<Option<State>, SnapshotError> {
    store
        .snapshot_state(name)?
        .map(|text| serde_json::from_str(&text).map_err(|e| SnapshotError::State(e.to_string())))
        .transpose()
}

fn save(store: &mut Store, name: &str, state: &State) -> Result<(), SnapshotError> {
    let text = serde_json::to_string(state).map_err(|e| SnapshotError::State(e.to_string()))?;
    store.save_snapshot_state(name, &text)?;
    Ok(())
}

/// The snapshot's position, when it is done: where streaming begins.
///
/// # Errors
/// When the saved position does not parse.
pub fn handover_position(state: &State) -> Result<Position, SnapshotError> {
    let first = state
        .views
        .first()
        .ok_or_else(|| SnapshotError::State("a finished snapshot without a read view".into()))?;
    first
        .position
        .parse()
        .map_err(|e: crate::position::ParsePositionError| SnapshotError::State(e.to_string()))
}

/// Refuses a hand-over position whose binlog file the server no longer has.
///
/// # Errors
/// [`SnapshotError::Purged`], or the query's error.
pub async fn require_in_binlog(conn: &mut Conn, position: &Position) -> Result<(), SnapshotError> {
    let Some(coord) = &position.coord else {
        return Ok(());
    };
    let files = source::binlog_files(conn).await?;
    if files.contains(&coord.file) {
        return Ok(());
    }
    Err(SnapshotError::Purged {
        position: position.to_string(),
        oldest: files.first().cloned().unwrap_or_else(|| "none".into()),
    })
}

/// One table as the snapshot reads it.
struct Table {
    layout: Arc<TableLayout>,
    kinds: Vec<Kind>,
    /// Index of the primary-key column.
    key: usize,
    mark: SnapshotMark,
    /// `SELECT … FROM … ORDER BY key LIMIT n`, without and with `key > ?`.
    first: String,
    next: String,
    /// The server's estimate of its rows.
    estimate: u64,
}

/// A chunk sent and not yet known to be acknowledged.
struct Pending {
    /// Records sent up to and including this chunk.
    sent: u64,
    table: usize,
    after: Option<i128>,
    rows: u64,
}

/// Reads every tailed table (resuming the unfinished snapshot saved under
/// `job.name`, else beginning a new one), publishes the rows and saves the
/// progress in `store` after each acknowledged chunk.
///
/// # Errors
/// [`SnapshotError`]: a table it cannot read, the server, the broker, the
/// store. The progress saved stays valid: the next start resumes there.
pub async fn take(job: Job, store: &mut Store) -> Result<Ended, SnapshotError> {
    let config = Arc::clone(&job.config);
    let table_names: Vec<String> = config.tables.iter().map(|t| t.table.clone()).collect();
    let mut state = match saved(store, &job.name)? {
        Some(state) if !state.done => {
            if state.tables != table_names || state.filter != job.filter {
                return Err(SnapshotError::Changed {
                    name: job.name.clone(),
                    stored: state.tables.join(", "),
                    asked: table_names.join(", "),
                    stored_filter: state.filter.clone(),
                    asked_filter: job.filter.clone(),
                });
            }
            tracing::info!(snapshot = %state.id, table = state.table, after = ?state.after, rows = state.rows, "resuming the snapshot after its last acknowledged chunk");
            state
        }
        _ => State {
            id: random_id()?,
            tables: table_names,
            topic: job.topic.clone(),
            filter: job.filter.clone(),
            views: Vec::new(),
            table: 0,
            after: None,
            rows: 0,
            done: false,
        },
    };
    job.metrics.snapshot_running.set(1);
    let result = read_all(&job, store, &mut state).await;
    job.metrics.snapshot_running.set(0);
    job.metrics.snapshot_view_age.set(0);
    match result? {
        Finish::Done => {}
        Finish::Stopped => {
            return Ok(Ended::Stopped {
                state,
                acknowledged: true,
            })
        }
        Finish::Unacknowledged => {
            return Ok(Ended::Stopped {
                state,
                acknowledged: false,
            })
        }
    }
    state.done = true;
    save(store, &job.name, &state)?;
    Ok(Ended::Done(state))
}

/// Topics of the configured tables (or `--topic`), each once.
fn topics_of(config: &Config, topic: Option<&str>, only: Option<&str>) -> Vec<String> {
    let mut topics: Vec<String> = config
        .tables
        .iter()
        .filter(|t| only.is_none_or(|o| t.table == o))
        .map(|t| topic.map_or_else(|| t.topic.clone(), str::to_owned))
        .collect();
    topics.sort();
    topics.dedup();
    topics
}

/// The reading itself.
async fn read_all(
    job: &Job,
    store: &mut Store,
    state: &mut State,
) -> Result<Finish, SnapshotError> {
    let config = &job.config;
    let client = sink::consumer_config(&config.kafka);
    let timeout = config.kafka.request_timeout;
    let topic = job.topic.clone();

    // What earlier views already put in the topics beyond the last
    // acknowledged chunk: read before this view opens, to hold it briefly.
    let mut bounds = Vec::new();
    if !state.views.is_empty() && state.table < state.tables.len() {
        let table = state.tables[state.table].clone();
        let topics = topics_of(config, topic.as_deref(), Some(&table));
        let id = state.id.clone();
        let after = state.after.as_deref().and_then(|k| k.parse::<i128>().ok());
        let found = tokio::task::spawn_blocking(move || {
            frontier::read_snapshot(&client, &topics, &id, &table, after, timeout)
        })
        .await
        .map_err(|e| SnapshotError::Internal(format!("frontier task: {e}")))??;
        for ((topic, partition), key) in found {
            tracing::info!(%topic, partition, key, "the partition already holds the snapshot's rows up to this key");
            bounds.push(Bound {
                topic,
                partition,
                key: key.to_string(),
            });
        }
    }
    let all_topics = topics_of(config, topic.as_deref(), None);
    let client = sink::consumer_config(&config.kafka);
    let partitions = tokio::task::spawn_blocking(move || {
        frontier::partitions_only(&client, &all_topics, timeout)
    })
    .await
    .map_err(|e| SnapshotError::Internal(format!("frontier task: {e}")))??;

    let mut conn = source::connect(config, &job.opts).await?;
    let info = source::server_info(&mut conn).await?;
    let (position, opened) = open_view(&mut conn).await?;
    let opened_at = Instant::now();
    let view = View {
        position: position.to_string(),
        time: opened,
        server_id: info.server_id,
        from_table: state.table,
        after: state.after.clone(),
        bounds,
    };
    tracing::info!(snapshot = %state.id, position = %position, "read view opened");
    state.views.push(view.clone());
    save(store, &job.name, state)?;

    let tables = describe(
        &mut conn,
        config,
        topic.as_deref(),
        job.filter.as_deref(),
        &state.id,
        &view.position,
    )
    .await?;
    let estimate: u64 = tables.iter().skip(state.table).map(|t| t.estimate).sum();

    let mut headers = job.headers.clone();
    headers.push((HEADER_SNAPSHOT, state.id.clone().into_bytes()));
    let producer = sink::create_producer(&config.kafka, Arc::clone(&job.metrics))?;
    let (items_tx, items_rx) = mpsc::channel(1024);
    let (acked_tx, mut acked_rx) = watch::channel::<Option<Acked>>(None);
    let (done_tx, _done_rx) = oneshot::channel::<()>();
    let sink = sink::run(
        producer,
        items_rx,
        acked_tx,
        sink::InFlightLimits::of(&config.kafka),
        sink::Mode::Snapshot {
            frontier: partitions.clone(),
            headers,
        },
        Arc::clone(&job.metrics),
    );
    let mut sink_task = tokio::spawn(async move {
        let _done = done_tx;
        sink.await
    });

    let gtid = position.gtid.iter().next().unwrap_or(Gtid {
        domain: 0,
        server_id: 0,
        seq: 0,
    });
    let coord = position
        .coord
        .clone()
        .unwrap_or_else(|| BinlogCoord::new("", 0));
    let commit = Commit {
        position: position.clone(),
        hold: None,
        server_id: info.server_id,
        commit_time: opened,
    };
    let mut reading = Reading {
        pending: std::collections::VecDeque::new(),
        sent: 0,
        rows: state.rows,
        started_rows: state.rows,
        started: Instant::now(),
        last_log: Instant::now(),
        estimate,
    };
    let chunk_rows = config.snapshot.chunk_rows;
    let mut stopped = false;
    let mut table_index = state.table;
    let mut after = state.after.as_deref().and_then(|k| k.parse::<i128>().ok());
    let read_result: Result<(), SnapshotError> = async {
        while table_index < tables.len() {
            let table = &tables[table_index];
            let resumed_here = table_index == view.from_table && !view.bounds.is_empty();
            let mut rows_in_chunk = 0u64;
            let mut last = after;
            {
                let mut result = match after {
                    None => conn.exec_iter(table.first.as_str(), ()).await,
                    Some(k) => conn.exec_iter(table.next.as_str(), (key_param(k),)).await,
                }
                .map_err(SnapshotError::Query)?;
                while let Some(row) = result.next().await.map_err(SnapshotError::Query)? {
                    rows_in_chunk += 1;
                    let (record, key) = to_record(table, row, &gtid, &coord, &commit)?;
                    last = Some(key);
                    if resumed_here {
                        let p = partitions.partition_of(&record.topic, &record.key);
                        let bound = p.and_then(|p| view.bound(&record.topic, p));
                        if bound.is_some_and(|b| key <= b) {
                            continue;
                        }
                    }
                    reading.sent += 1;
                    if items_tx.send(Item::Record(record)).await.is_err() {
                        return Ok(());
                    }
                }
            }
            job.metrics
                .snapshot_view_age
                .set(i64::try_from(opened_at.elapsed().as_secs()).unwrap_or(i64::MAX));
            let finished = rows_in_chunk < u64::from(chunk_rows);
            let (next_table, next_after) = if finished {
                (table_index + 1, None)
            } else {
                (table_index, last)
            };
            reading.rows += rows_in_chunk;
            reading.pending.push_back(Pending {
                sent: reading.sent,
                table: next_table,
                after: next_after,
                rows: reading.rows,
            });
            if items_tx.send(Item::Commit(commit.clone())).await.is_err() {
                return Ok(());
            }
            reading.settle(
                &mut acked_rx,
                store,
                &job.name,
                state,
                &job.metrics,
                &tables,
            )?;
            reading.log(state);
            table_index = next_table;
            after = next_after;
            if *job.shutdown.borrow() {
                stopped = table_index < tables.len();
                break;
            }
        }
        Ok(())
    }
    .await;
    // The view is released as soon as the last row is read.
    let _ = conn.query_drop("COMMIT").await;
    job.metrics.snapshot_view_age.set(0);
    let _ = conn.disconnect().await;
    drop(items_tx);
    let sink_result = match tokio::time::timeout(
        config.shutdown.drain_timeout.max(Duration::from_secs(30)),
        &mut sink_task,
    )
    .await
    {
        Ok(joined) => Some(joined.map_err(|e| SnapshotError::Internal(format!("sink task: {e}")))?),
        Err(_) => {
            sink_task.abort();
            None
        }
    };
    reading.settle(
        &mut acked_rx,
        store,
        &job.name,
        state,
        &job.metrics,
        &tables,
    )?;
    read_result?;
    match sink_result {
        Some(result) => result?,
        None => {
            tracing::warn!("the broker did not acknowledge every snapshot record in time; the next start resumes after the last acknowledged chunk");
            return Ok(Finish::Unacknowledged);
        }
    }
    if !reading.pending.is_empty() {
        return Err(SnapshotError::Internal(
            "chunks left unacknowledged after the sink drained".into(),
        ));
    }
    tracing::info!(snapshot = %state.id, rows = state.rows, took = ?reading.started.elapsed(), "snapshot read and acknowledged");
    Ok(if stopped {
        Finish::Stopped
    } else {
        Finish::Done
    })
}

/// Chunks sent, and the progress line.
struct Reading {
    pending: std::collections::VecDeque<Pending>,
    sent: u64,
    rows: u64,
    started_rows: u64,
    started: Instant,
    last_log: Instant,
    estimate: u64,
}

impl Reading {
    /// Saves the progress of every chunk the broker has acknowledged.
    fn settle(
        &mut self,
        acked: &mut watch::Receiver<Option<Acked>>,
        store: &mut Store,
        name: &str,
        state: &mut State,
        metrics: &Metrics,
        tables: &[Table],
    ) -> Result<(), SnapshotError> {
        let records = acked.borrow_and_update().as_ref().map_or(0, |a| a.records);
        let mut moved = false;
        while self.pending.front().is_some_and(|p| p.sent <= records) {
            let Some(chunk) = self.pending.pop_front() else {
                break;
            };
            let name_of = tables
                .get(state.table)
                .map_or("", |t| &*t.mark.table)
                .to_owned();
            metrics
                .snapshot_rows
                .with_label_values(&[&name_of])
                .inc_by(chunk.rows.saturating_sub(state.rows));
            state.table = chunk.table;
            state.after = chunk.after.map(|k| k.to_string());
            state.rows = chunk.rows;
            moved = true;
        }
        if moved {
            save(store, name, state)?;
        }
        Ok(())
    }

    fn log(&mut self, state: &State) {
        if self.last_log.elapsed() < Duration::from_secs(5) {
            return;
        }
        self.last_log = Instant::now();
        let read = self.rows - self.started_rows;
        let rate = read as f64 / self.started.elapsed().as_secs_f64().max(0.001);
        let left = self.estimate.saturating_sub(read);
        let eta = if rate > 0.0 { left as f64 / rate } else { 0.0 };
        tracing::info!(
            rows = self.rows,
            rows_per_second = format!("{rate:.0}"),
            acknowledged = state.rows,
            estimated_rows_left = left,
            estimated_seconds_left = format!("{eta:.0}"),
            "snapshot progress"
        );
    }
}

/// Opens the read view; its position and the time (Unix seconds).
async fn open_view(conn: &mut Conn) -> Result<(Position, u32), SnapshotError> {
    conn.query_drop("SET SESSION character_set_results = NULL, SESSION time_zone = '+00:00'")
        .await
        .map_err(SnapshotError::Query)?;
    // Its own statement: 10.11 names the variable tx_isolation, 11.x
    // transaction_isolation.
    conn.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .await
        .map_err(SnapshotError::Query)?;
    conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        .await
        .map_err(SnapshotError::Query)?;
    let status: Vec<(String, String)> = conn
        .query("SHOW SESSION STATUS LIKE 'binlog_snapshot_%'")
        .await
        .map_err(SnapshotError::Query)?;
    let value = |name: &str| {
        status
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let file = value("binlog_snapshot_file").filter(|f| !f.is_empty());
    let offset = value("binlog_snapshot_position").and_then(|p| p.parse::<u64>().ok());
    let (Some(file), Some(offset)) = (file, offset) else {
        return Err(SnapshotError::NoPosition);
    };
    let coord = BinlogCoord::new(file, offset);
    let gtid = source::gtid_at(conn, &coord)
        .await?
        .ok_or_else(|| SnapshotError::NoGtid(coord.clone()))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Ok((
        Position {
            gtid,
            coord: Some(coord),
        },
        u32::try_from(now).unwrap_or(u32::MAX),
    ))
}

fn quote(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// Describes the tailed tables (inside the view, so a table altered since
/// it opened fails the reads rather than being read under another shape).
async fn describe(
    conn: &mut Conn,
    config: &Config,
    topic: Option<&str>,
    filter: Option<&str>,
    snapshot: &str,
    position: &str,
) -> Result<Vec<Table>, SnapshotError> {
    let mut tables = Vec::new();
    for table_config in &config.tables {
        let full = table_config.table.clone();
        let problem = |problem: String| SnapshotError::Table {
            table: full.clone(),
            problem,
        };
        let (database, name) = table_config
            .split_name()
            .ok_or_else(|| problem("not database.table".into()))?;
        type Row = (
            String,
            String,
            String,
            Option<u64>,
            Option<u64>,
            Option<String>,
            Option<u64>,
        );
        let columns: Vec<Row> = conn
            .exec(
                "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, NUMERIC_PRECISION, DATETIME_PRECISION, \
                 CHARACTER_SET_NAME, CHARACTER_OCTET_LENGTH FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
                (database, name),
            )
            .await
            .map_err(SnapshotError::Query)?;
        if columns.is_empty() {
            return Err(problem(
                "no such table, or the tailer's user may not read it (GRANT SELECT)".into(),
            ));
        }
        let primary: Vec<String> = conn
            .exec(
                "SELECT COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? \
                 AND TABLE_NAME = ? AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX",
                (database, name),
            )
            .await
            .map_err(SnapshotError::Query)?;
        let [key_name] = primary.as_slice() else {
            return Err(problem(format!(
                "the snapshot reads tables by ranges of a one-column integer primary key; this \
                 table's primary key is ({})",
                primary.join(", ")
            )));
        };
        let mut kinds = Vec::new();
        let mut layout_columns = Vec::new();
        let mut key = None;
        for (i, (column, data_type, column_type, precision, dt_precision, charset, octets)) in
            columns.iter().enumerate()
        {
            let kind = Kind::of(&Described {
                data_type: data_type.clone(),
                column_type: column_type.clone(),
                numeric_precision: *precision,
                datetime_precision: *dt_precision,
                character_set: charset.clone(),
                octet_length: *octets,
            })
            .map_err(|e| problem(format!("column {column}: {e}")))?;
            if column == key_name {
                if !matches!(kind, Kind::Int { .. }) {
                    return Err(problem(format!(
                        "the snapshot reads tables by ranges of a one-column integer primary \
                         key; {column} is {column_type}"
                    )));
                }
                key = Some(i);
            }
            kinds.push(kind);
            layout_columns.push(ColumnLayout {
                name: column.clone(),
                logical: table_config.logical(column),
            });
        }
        let key = key.ok_or_else(|| problem(format!("primary key column {key_name} not found")))?;
        let estimate: Option<u64> = conn
            .exec_first(
                "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                (database, name),
            )
            .await
            .map_err(SnapshotError::Query)?
            .flatten();
        let layout = Arc::new(TableLayout {
            database: database.to_owned(),
            table: name.to_owned(),
            topic: Arc::from(topic.unwrap_or(&table_config.topic)),
            event_type: table_config.event_type.clone(),
            dataschema: table_config.dataschema.clone(),
            source: format!("/mariadb/{}/{database}/{name}", config.source.cluster_name),
            columns: layout_columns,
            primary_key: vec![key],
            text: crate::map::LayoutText::default(),
        });
        let select = columns
            .iter()
            .map(|c| quote(&c.0))
            .collect::<Vec<_>>()
            .join(", ");
        let from = format!("{}.{}", quote(database), quote(name));
        let key_q = quote(key_name);
        let chunk = config.snapshot.chunk_rows;
        let condition = filter.map(|f| format!("({f})"));
        let first_where = condition
            .as_ref()
            .map(|c| format!(" WHERE {c}"))
            .unwrap_or_default();
        let next_where = match &condition {
            Some(c) => format!(" WHERE {key_q} > ? AND {c}"),
            None => format!(" WHERE {key_q} > ?"),
        };
        tables.push(Table {
            mark: SnapshotMark::new(snapshot, position, &layout),
            first: format!(
                "SELECT {select} FROM {from}{first_where} ORDER BY {key_q} LIMIT {chunk}"
            ),
            next: format!("SELECT {select} FROM {from}{next_where} ORDER BY {key_q} LIMIT {chunk}"),
            layout,
            kinds,
            key,
            estimate: estimate.unwrap_or(0),
        });
    }
    Ok(tables)
}

fn key_param(key: i128) -> Sql {
    match i64::try_from(key) {
        Ok(k) => Sql::Int(k),
        Err(_) => Sql::UInt(u64::try_from(key).unwrap_or(u64::MAX)),
    }
}

/// A row → its record and its key.
fn to_record(
    table: &Table,
    row: Row,
    gtid: &Gtid,
    coord: &BinlogCoord,
    commit: &Commit,
) -> Result<(map::Record, i128), SnapshotError> {
    let full = || format!("{}.{}", table.layout.database, table.layout.table);
    let sql = row.unwrap();
    let key_sql = sql.get(table.key).cloned().unwrap_or(Sql::NULL);
    let key: i128 = match &key_sql {
        Sql::Int(i) => i128::from(*i),
        Sql::UInt(u) => i128::from(*u),
        other => {
            return Err(SnapshotError::Row {
                table: full(),
                key: format!("{other:?}"),
                problem: "the primary key is not an integer".into(),
            })
        }
    };
    let mut values: Vec<Option<Value>> = Vec::with_capacity(sql.len());
    for ((value, kind), column) in sql.into_iter().zip(&table.kinds).zip(&table.layout.columns) {
        let value = values::convert(kind, value).map_err(|problem| SnapshotError::Row {
            table: full(),
            key: key.to_string(),
            problem: format!("column {}: {problem}", column.name),
        })?;
        values.push(Some(value));
    }
    let origin = RowOrigin {
        gtid: *gtid,
        row_index: 0,
        server_id: commit.server_id,
        file: &coord.file,
        pos: coord.offset,
        commit_time: commit.commit_time,
    };
    let record =
        map::map_snapshot_row(&table.layout, &values, &origin, &table.mark).map_err(|e| {
            SnapshotError::Row {
                table: full(),
                key: key.to_string(),
                problem: e.to_string(),
            }
        })?;
    Ok((record, key))
}

fn random_id() -> Result<String, SnapshotError> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes)
        .map_err(|e| SnapshotError::Internal(format!("no random snapshot id: {e}")))?;
    Ok(format!("{:016x}", u64::from_le_bytes(bytes)))
}
