//! binlog-tailer: change-data-capture from MariaDB's row-based binlog to Kafka.
//!
//! The pipeline, one module per stage:
//!
//! ```text
//! source      read the binlog as a replica (source.rs), preflight (preflight.rs)
//!   → decode  event bodies → typed rows (decode/)
//!   → map     inserted rows → CloudEvents records (map.rs)
//!   → sink    records → Kafka, acknowledged in order (sink.rs)
//!   → checkpoint  the last fully acknowledged transaction end (checkpoint.rs)
//! ```
//!
//! `pipeline.rs` connects them; `config.rs` holds every setting and default;
//! `stats.rs` every metric; `position.rs` the position types.

pub mod checkpoint;
pub mod config;
pub mod decode;
pub mod frontier;
pub mod http;
pub mod map;
pub mod order;
pub mod payment;
pub mod pipeline;
pub mod position;
pub mod preflight;
pub mod process;
pub mod sink;
pub mod source;
pub mod stats;
