//! binlog-tailer: change-data-capture from MariaDB's row-based binlog to Kafka.
//!
//! The pipeline (source → decode → map → sink → checkpoint) is described in
//! `README.md`; each stage lives in a module of its own.

pub mod position;
pub mod decode;
