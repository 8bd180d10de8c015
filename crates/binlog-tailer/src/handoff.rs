//! What moves between the stages: the source hands the sink [`Item`]s
//! (records and transaction ends, in binlog order, through a bounded channel);
//! the sink hands the checkpoint writer the newest [`Acked`] transaction end.
//!
//! These types carry no behaviour. They live here, and not in either stage,
//! so that the source does not depend on the sink nor the sink on the source.

use crate::map::Record;
use crate::position::Position;

/// What the source hands to the sink.
#[derive(Debug)]
pub enum Item {
    Record(Record),
    /// The end of a transaction; the position to resume after it.
    Commit(Commit),
}

/// A transaction end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    pub position: Position,
    /// Where a new process must resume instead of `position`: the start of
    /// the oldest `XA PREPARE` group whose outcome is still unknown, so that
    /// its rows are read again before its `XA COMMIT` (the records in
    /// between are then found in the topic and skipped). `None` when no XA
    /// transaction is pending.
    pub hold: Option<Position>,
    /// `@@server_id` of the server read.
    pub server_id: u32,
    /// Commit time, Unix seconds.
    pub commit_time: u32,
}

impl Commit {
    /// Where the checkpoint may point after this transaction.
    pub fn checkpoint_position(&self) -> &Position {
        self.hold.as_ref().unwrap_or(&self.position)
    }
}

/// The newest fully acknowledged transaction end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acked {
    pub commit: Commit,
    /// Records acknowledged since the sink started.
    pub records: u64,
}
