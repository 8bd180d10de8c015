//! The checkpoint store: the tailer's own record of how far it got.
//!
//! One SQLite file, `<checkpoint.dir>/checkpoint.sqlite3`, in WAL mode with
//! `synchronous=FULL`: a checkpoint that `save` returned from survives a crash
//! of the process or the machine.
//!
//! # Contract
//! - A checkpoint names the end of a transaction every event of which the
//!   broker has acknowledged. The pipeline only ever saves such positions;
//!   this module stores what it is given.
//! - `live` holds the position the next `run` resumes from; `history` keeps
//!   every saved checkpoint (the newest `history_limit` of them) with its time,
//!   for people and for rewinds.
//! - A file that exists but is not a store of this program, is of a newer
//!   format, or fails SQLite's integrity check is an error. The store is never
//!   recreated over it: the operator decides.
//! - A missing file is a fresh store: created on `open`, reported as "no
//!   checkpoint" by [`Store::open_existing`].

//!
//! # Layout
//! - `store.rs`: [`Store`], the file format, [`StoreError`], retention.
//! - `writer.rs`: the task that saves the newest acknowledged position.
//! - `report.rs`: `checkpoint show` and `checkpoint list` as text or JSON.

mod report;
mod store;
mod writer;

pub use report::{render_history, render_show, ReportFormat};
pub use store::{now_ms, Checkpoint, Retention, Store, StoreError, FILE_NAME, LOCK_FILE_NAME};
pub use writer::{write_checkpoints, WriterError};
