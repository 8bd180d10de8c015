//! binlog-tailer: change-data-capture from MariaDB's row-based binlog to Kafka.
//!
//! The pipeline, one module per stage:
//!
//! ```text
//! source      read the binlog as a replica (source/), preflight (preflight.rs)
//!   → decode  event bodies → typed rows (decode/)
//!   → map     inserted rows → CloudEvents records (map.rs)
//!   → sink    records → Kafka, acknowledged in order (sink.rs)
//!   → checkpoint  the last fully acknowledged transaction end (checkpoint/)
//! ```
//!
//! Data moves one way: the source hands the sink records and commit marks,
//! the sink hands the checkpoint writer the newest acknowledged transaction
//! end (the types of both hand-overs are in `handoff.rs`).
//!
//! # Layout
//! - `position.rs`: GTIDs, GTID states, file coordinates, positions, where a
//!   read starts and stops; one text form each.
//! - `config.rs`: every setting, its default and its validation.
//! - `preflight.rs`: the checks of the server and the broker, one named check each.
//! - `source/`: the replica session, the transaction state machine, the table
//!   cache, the queries to the server, the source errors.
//! - `decode/`: event bodies → typed data (pure); the only home of event codes.
//! - `map.rs`: a row → a record (pure): the event, its key and headers.
//! - `frontier.rs`: what each partition already holds, read at start.
//! - `handoff.rs`: what source hands sink, and sink hands the checkpoint writer.
//! - `sink.rs`: the producer, in-order acknowledgements.
//! - `checkpoint/`: the store, the writer task, the `checkpoint` reports.
//! - `snapshot/`: the rows that exist, read in one consistent view, and the
//!   hand-over to streaming at the view's binlog position.
//! - `start.rs`: where a run, a replay or `checkpoint set` starts and stops.
//! - `metrics.rs`: every metric, named once; `http.rs`: `/metrics`, `/healthz`,
//!   `/readyz`; `monitor.rs`: derived gauges, lag, the progress line.
//! - `pipeline.rs`: the wiring of `run`, `replay`, `check` and `checkpoint set`.

pub mod checkpoint;
pub mod config;
pub mod decode;
pub mod frontier;
pub mod handoff;
pub mod http;
pub mod map;
pub mod metrics;
pub mod monitor;
pub mod pipeline;
pub mod position;
pub mod preflight;
pub mod sink;
pub mod snapshot;
pub mod source;
pub mod start;
