//! The transaction state machine: which events open and close a
//! transaction, each row's index in it, which rows become records, what the
//! commit mark says, and where the next session starts.
//!
//! Pure: no I/O, no clock, no channel. The session decodes an event, feeds
//! it here, hands over what comes back (records, then a commit mark) and
//! reports each successful hand-over back ([`TxnState::handed_over`],
//! [`TxnState::committed`]). That report is what lets a later session skip
//! exactly the rows already handed over.
//!
//! # Invariants
//! - A transaction opens at a GTID event and ends at its XID, at a `COMMIT`
//!   or `ROLLBACK` query, or, for a standalone GTID (DDL), at its one
//!   statement. A GTID sequence number never goes back within its domain.
//! - Records are held until their group ends, because MariaDB writes some
//!   rows that never commit: a group that created a temporary table or wrote
//!   a non-transactional one ends in `ROLLBACK` (nothing of it goes out), and
//!   rows written after a `SAVEPOINT` are withdrawn by a later `ROLLBACK TO`
//!   it. A GTID while a group is open means the group was cut off (a server
//!   that crashed while writing it): it never committed and is dropped.
//! - A group whose held records pass [`HOLD_LIMIT_BYTES`] is read twice,
//!   to keep memory bounded: the first time to its end, keeping nothing but
//!   the row ranges its savepoint rollbacks withdraw; if it commits, the
//!   next session starts right before it again and its records go out as
//!   they are read, less the withdrawn rows ([`ReadAgain`]). A rolled-back
//!   one is not read again.
//! - The rows of `XA PREPARE`d transactions wait for their `XA COMMIT` in
//!   memory while all of them together stay under [`HOLD_LIMIT_BYTES`]. A
//!   prepare group that would pass it keeps only where it starts; at its
//!   `XA COMMIT` the next session reads that group again, its records going
//!   out as they are read as records of the committing group, then that
//!   group's commit mark, and the session after starts after it
//!   ([`XaReread`]).
//! - Every row of every rows event of the transaction counts, whatever its
//!   table or operation: a row's index is its place in the transaction, so
//!   (GTID, index) names it on every server and in every session.
//! - The commit mark is produced only when the transaction ends, so it always
//!   follows the transaction's last record.
//! - [`Progress`] moves only on a hand-over the session reports: the
//!   interrupted-row count after each record, the position and the next
//!   start after each commit mark.

use std::sync::Arc;

use super::error::{At, SourceError};

use crate::decode::{GtidEvent, RowChange, RowsEvent, RowsKind, XaPrepare, GTID_FL_PREPARED_XA};
use crate::handoff::Commit;
use crate::map::{self, MapError, Record, RowOrigin, TableLayout};
use crate::position::{BinlogCoord, Gtid, Position, Start, StopAt};

/// How far the reader got, kept across sessions.
#[derive(Debug, Clone)]
pub struct Progress {
    /// The end of the last transaction handed to the sink (or the start).
    pub position: Position,
    /// How the next session starts.
    pub start: Start,
    /// A transaction interrupted by a session's end: its GTID and how many of
    /// its rows were already handed over (they are skipped when re-read).
    interrupted: Option<Interrupted>,
    /// Stop once a transaction at or after this point has been handed over
    /// (bounded replays).
    pub stop_at: Option<StopAt>,
    /// `XA PREPARE`d transactions whose `XA COMMIT` or `XA ROLLBACK` has not
    /// been read yet, oldest first.
    prepared: Vec<PreparedXa>,
    /// The next group, already read once, to be streamed this time.
    read_again: Option<ReadAgain>,
    /// A committed XA transaction whose prepared rows were not kept: the
    /// next session reads its prepare group again first.
    xa_reread: Option<XaReread>,
}

/// A transaction some of whose records went out before a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Interrupted {
    gtid: Gtid,
    /// Rows already handed over (they are skipped when it is read again).
    rows: u32,
    /// Its GTID event's timestamp, when the records went out while it was
    /// being read: a transaction read again under the same GTID but another
    /// timestamp is another transaction (see [`TxnState::begin`]).
    commit_time: Option<u32>,
}

/// An `XA PREPARE`d transaction: its inserted rows, kept unmapped because
/// they are published under the GTID of the `XA COMMIT` that commits them.
#[derive(Debug, Clone)]
struct PreparedXa {
    /// As XA statements write it: `X'…',X'…',<formatID>`.
    xid: String,
    /// The GTID of the prepare group (for messages).
    gtid: Gtid,
    rows: Vec<XaRow>,
    /// What `rows` takes in memory ([`xa_row_size`] of each).
    rows_bytes: usize,
    /// Its rows were not kept (all pending XA rows together would have
    /// passed [`HOLD_LIMIT_BYTES`]): where its prepare group starts, and the
    /// rows its savepoint rollbacks withdrew, to read it again at its
    /// `XA COMMIT`.
    dropped: Option<(BinlogCoord, Vec<std::ops::Range<u32>>)>,
    /// The position before the prepare group: where a new process must
    /// resume while this transaction is pending.
    before: Position,
}

/// A committed XA transaction too large to have been kept: its prepare
/// group is read again from its start, its rows going out as they are read,
/// as rows of the group that committed it; then its commit mark, and
/// reading goes on after that group.
#[derive(Debug, Clone)]
pub struct XaReread {
    /// The prepare group's GTID and where its GTID event starts.
    prepare: Gtid,
    at: BinlogCoord,
    /// Rows withdrawn by savepoint rollbacks in the prepare group.
    withdrawn: Vec<std::ops::Range<u32>>,
    /// The group that committed it: the GTID, file, position and commit
    /// time its records carry.
    commit: Origin,
    /// That group's commit mark, handed over after the rows.
    mark: Commit,
}

/// Where a group's records say they come from.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    gtid: Gtid,
    file: Arc<str>,
    pos: u64,
    commit_time: u32,
}

/// An inserted row of a tailed table in an XA transaction.
#[derive(Debug, Clone)]
struct XaRow {
    layout: Arc<TableLayout>,
    /// Its index in the prepare group.
    row_index: u32,
    after: Vec<Option<crate::decode::Value>>,
}

impl Progress {
    pub fn new(start: Start) -> Self {
        let position = match &start {
            Start::Gtid(state) => Position {
                gtid: state.clone(),
                coord: None,
            },
            Start::Coord { coord, gtid } => Position {
                gtid: gtid.clone().unwrap_or_default(),
                coord: Some(coord.clone()),
            },
        };
        Self {
            position,
            start,
            interrupted: None,
            stop_at: None,
            prepared: Vec::new(),
            read_again: None,
            xa_reread: None,
        }
    }

    /// Where the next session must start instead of [`Progress::start`]:
    /// the prepare group of a committed XA transaction to read again.
    pub fn reread_at(&self) -> Option<&BinlogCoord> {
        self.xa_reread.as_ref().map(|r| &r.at)
    }

    /// What the rows of pending XA transactions take in memory.
    fn xa_held_bytes(&self) -> usize {
        self.prepared.iter().map(|p| p.rows_bytes).sum()
    }

    /// How many `XA PREPARE`d transactions await their outcome.
    pub fn prepared_xa(&self) -> usize {
        self.prepared.len()
    }

    /// Whether a bounded read has reached its end point.
    pub fn reached_stop(&self) -> bool {
        self.stop_at
            .as_ref()
            .is_some_and(|s| s.reached(&self.position))
    }
}

/// A transaction the state machine cannot follow. Both are definite: the
/// same binlog gives the same error every time.
#[derive(Debug, thiserror::Error)]
pub enum TxnError {
    #[error("binlog at {at}: {problem}")]
    Protocol { at: At, problem: String },
    #[error("table {table} at {at}: {problem}")]
    Table {
        at: At,
        table: String,
        problem: String,
    },
    #[error("mapping a row at {at}: {source}")]
    Map { at: At, source: Box<MapError> },
}

impl From<TxnError> for SourceError {
    fn from(e: TxnError) -> Self {
        match e {
            TxnError::Protocol { at, problem } => SourceError::Protocol { at, problem },
            TxnError::Table { at, table, problem } => SourceError::Table { at, table, problem },
            TxnError::Map { at, source } => SourceError::Map {
                at,
                source: *source,
            },
        }
    }
}

/// The transaction being read.
#[derive(Debug, Clone)]
struct Txn {
    gtid: Gtid,
    standalone: bool,
    /// Offset of its GTID event (published as `binlog.pos`).
    start_offset: u64,
    /// Commit time, Unix seconds (the GTID event's timestamp).
    commit_time: u32,
    /// Rows read so far: the index of the next row.
    rows: u32,
    /// Rows of an undecodable, untailed table were passed over: row indexes
    /// after them are unknown.
    uncounted: bool,
    /// Records read but not handed over yet: the group may still end in
    /// `ROLLBACK` or roll back to a savepoint.
    held: Vec<Record>,
    /// What `held` takes in memory ([`held_size`] of each).
    held_bytes: usize,
    /// `SAVEPOINT`s in force: name, the length of `held` and the row index
    /// when it was set.
    savepoints: Vec<(String, usize, u32)>,
    /// How the group's records are handled.
    mode: Mode,
    /// An `XA PREPARE` group (its GTID says so): its inserted rows are kept
    /// unmapped in `xa_rows` until the `XA COMMIT`.
    xa: bool,
    xa_rows: Vec<XaRow>,
    /// What `xa_rows` takes in memory ([`xa_row_size`] of each).
    xa_bytes: usize,
    /// `xa_rows` were dropped (too large to keep); with the rows its
    /// savepoint rollbacks withdrew.
    xa_dropped: Option<Vec<std::ops::Range<u32>>>,
}

/// How an open group's records are handled.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Mode {
    /// Held until the group ends (it may still roll back).
    Hold,
    /// The held records passed [`HOLD_LIMIT_BYTES`]: they were dropped, and
    /// this first pass only learns how the group ends and which rows it
    /// rolled back to a savepoint; if it commits, it is read again.
    Learn {
        /// Row index ranges withdrawn by `ROLLBACK TO`.
        withdrawn: Vec<std::ops::Range<u32>>,
    },
    /// The second reading of a committed group: its records go out as they
    /// are read, except the withdrawn rows.
    Stream {
        withdrawn: Vec<std::ops::Range<u32>>,
    },
    /// The prepare group of a committed XA transaction, read again: its
    /// records go out as they are read, as records of the group that
    /// committed it, except the withdrawn rows.
    XaStream {
        commit: Origin,
        withdrawn: Vec<std::ops::Range<u32>>,
    },
}

/// A committed group too large to hold, to be read again from its start
/// with its records going out as they are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadAgain {
    gtid: Gtid,
    withdrawn: Vec<std::ops::Range<u32>>,
}

/// What the group that ended hands over: its held records, then its
/// commit mark. A group that ended in `ROLLBACK` has no records. With
/// `read_again`, the group committed but was too large to hold: nothing is
/// handed over, and the session ends so that the next one reads the group
/// again (see [`TxnState::read_again`]).
#[derive(Debug)]
pub struct Ended {
    pub records: Vec<Record>,
    pub commit: Commit,
    pub read_again: Option<ReadAgain>,
    /// An `XA COMMIT` of a transaction whose rows were not kept: nothing is
    /// handed over, and the session ends so that the next one reads its
    /// prepare group again (see [`TxnState::xa_reread`]).
    pub xa_reread: Option<XaReread>,
}

impl Ended {
    /// A group's end that hands over `records`, then `commit`.
    fn new(records: Vec<Record>, commit: Commit) -> Self {
        Self {
            records,
            commit,
            read_again: None,
            xa_reread: None,
        }
    }
}

/// One session's reading state: the binlog file being read, the transaction
/// open in it, and the [`Progress`] kept across sessions.
pub struct TxnState<'p> {
    progress: &'p mut Progress,
    server_id: u32,
    file: Arc<str>,
    open: Option<Txn>,
}

impl<'p> TxnState<'p> {
    /// A session reading `server_id`'s binlog, starting in `file` (empty
    /// when starting by GTID, until the first ROTATE names it).
    pub fn new(progress: &'p mut Progress, server_id: u32, file: &str) -> Self {
        Self {
            progress,
            server_id,
            file: Arc::from(file),
            open: None,
        }
    }

    pub fn progress(&self) -> &Progress {
        self.progress
    }

    /// Whether a transaction is open (the session is mid-transaction).
    pub fn in_transaction(&self) -> bool {
        self.open.is_some()
    }

    /// Where an event ending at `offset` is, for error messages.
    pub fn at(&self, offset: u64) -> At {
        At {
            file: self.file.to_string(),
            offset,
            gtid: self.open.as_ref().map(|t| t.gtid),
        }
    }

    fn protocol(&self, end: u64, problem: String) -> TxnError {
        TxnError::Protocol {
            at: self.at(end),
            problem,
        }
    }

    /// ROTATE: the server reads on in `file`. `fake` is the ROTATE a server
    /// sends first on every connection (timestamp 0), which names where the
    /// stream starts; `offset` is the offset it names. A real rotation
    /// between transactions moves the read position to the new file's start.
    pub fn rotate(&mut self, file: String, offset: u64, fake: bool) {
        self.file = Arc::from(file.as_str());
        if self.open.is_some() {
            return;
        }
        match &mut self.progress.position.coord {
            Some(coord) => {
                if !fake {
                    *coord = BinlogCoord::new(file, 4);
                }
            }
            // A session started by GTID state gets a fake rotate naming the
            // file with offset 4, not where that state lies in it: the
            // coordinate stays unknown until the first transaction ends.
            None if fake && matches!(self.progress.start, Start::Gtid(_)) => {}
            None => self.progress.position.coord = Some(BinlogCoord::new(file, offset)),
        }
    }

    /// GTID_LIST: the GTID state at the start of a file. Taken as the
    /// position's state only when nothing else gave one (a start by file).
    pub fn gtid_list(&mut self, list: Vec<Gtid>) {
        if self.progress.position.gtid.is_empty() && self.open.is_none() {
            self.progress.position.gtid = list.into_iter().collect();
        }
    }

    /// Whether a GTID_LIST event would be used (so the session can skip
    /// decoding it otherwise).
    pub fn wants_gtid_list(&self) -> bool {
        self.progress.position.gtid.is_empty() && self.open.is_none()
    }

    /// GTID: a transaction begins at `start_offset`.
    ///
    /// # Errors
    /// [`TxnError::Protocol`] when one is already open.
    pub fn begin(
        &mut self,
        event: &GtidEvent,
        start_offset: u64,
        commit_time: u32,
        end: u64,
    ) -> Result<(), TxnError> {
        if let Some(open) = &self.open {
            if matches!(open.mode, Mode::Stream { .. }) {
                return Err(self.protocol(
                    end,
                    format!(
                        "GTID {} begins before transaction {} ended, while the tailer was \
                         publishing that transaction as it read it a second time (it had read \
                         to its commit before): the binlog changed between the two readings. \
                         Check those orders (ids {}.*) against the database, then restart the \
                         tailer",
                        event.gtid, open.gtid, open.gtid
                    ),
                ));
            }
            // Nothing of it was handed over: drop it and read on.
            tracing::warn!(
                cut_off = %open.gtid,
                next = %event.gtid,
                at = %self.at(end),
                held_records = open.held.len(),
                "a transaction was cut off in the binlog (a GTID began before it ended): it \
                 never committed, so none of its rows are published"
            );
            self.open = None;
        }
        let reread = match &self.progress.xa_reread {
            Some(plan) if plan.prepare == event.gtid => Some(Mode::XaStream {
                commit: plan.commit.clone(),
                withdrawn: plan.withdrawn.clone(),
            }),
            Some(plan) => {
                let problem = format!(
                    "reading the XA PREPARE group {} again at {} (its rows were too many to \
                     keep until its XA COMMIT {}), the binlog holds GTID {} there: the binlog \
                     changed since it was first read. Restart the tailer: it reads from before \
                     the XA PREPARE again",
                    plan.prepare, plan.at, plan.commit.gtid, event.gtid
                );
                return Err(self.protocol(end, problem));
            }
            None => None,
        };
        if let (None, Some(last)) = (&reread, self.progress.position.gtid.get(event.gtid.domain)) {
            if event.gtid.seq <= last.seq {
                return Err(self.protocol(end, out_of_order(event.gtid, last)));
            }
        }
        if let Some(i) = self.progress.interrupted {
            if i.gtid == event.gtid && i.commit_time.is_some_and(|t| t != commit_time) {
                return Err(self.protocol(end, gtid_reused(i, commit_time)));
            }
        }
        self.open = Some(Txn {
            gtid: event.gtid,
            standalone: event.standalone,
            start_offset,
            commit_time,
            rows: 0,
            uncounted: false,
            held: Vec::new(),
            held_bytes: 0,
            savepoints: Vec::new(),
            mode: match (&self.progress.read_again, reread) {
                (_, Some(mode)) => mode,
                (Some(plan), None) if plan.gtid == event.gtid => Mode::Stream {
                    withdrawn: plan.withdrawn.clone(),
                },
                _ => Mode::Hold,
            },
            xa: event.flags & GTID_FL_PREPARED_XA != 0,
            xa_rows: Vec::new(),
            xa_bytes: 0,
            xa_dropped: None,
        });
        Ok(())
    }

    /// The open transaction, or the error for a rows event outside one.
    fn open_for_rows(&mut self, end: u64) -> Result<&mut Txn, TxnError> {
        let file = &self.file;
        self.open.as_mut().ok_or_else(|| TxnError::Protocol {
            at: At {
                file: file.to_string(),
                offset: end,
                gtid: None,
            },
            problem: "rows event outside a transaction".into(),
        })
    }

    /// Checks that a rows event ending at `end` is inside a transaction.
    ///
    /// # Errors
    /// [`TxnError::Protocol`] outside one.
    pub fn expect_rows(&mut self, end: u64) -> Result<(), TxnError> {
        self.open_for_rows(end).map(|_| ())
    }

    /// Rows of an untailed table that could not be decoded were passed over:
    /// the indexes of later rows in this transaction are unknown.
    ///
    /// # Errors
    /// [`TxnError::Protocol`] outside a transaction.
    pub fn uncounted_rows(&mut self, end: u64) -> Result<(), TxnError> {
        self.open_for_rows(end)?.uncounted = true;
        Ok(())
    }

    /// A decoded rows event of `table` (`layout` is `Some` for a tailed
    /// table): counts its rows and returns the records to hand over, in
    /// order: the inserted rows of a tailed table, less those a previous
    /// session already handed over.
    ///
    /// # Errors
    /// [`TxnError::Protocol`] outside a transaction or past `u32::MAX`
    /// rows; [`TxnError::Table`] when an inserted row of a tailed table
    /// follows rows that could not be counted (its index, part of its event
    /// id, is unknown).
    pub fn rows(
        &mut self,
        table: &str,
        layout: Option<&Arc<TableLayout>>,
        event: RowsEvent,
        end: u64,
    ) -> Result<Records, TxnError> {
        let file = Arc::clone(&self.file);
        let interrupted = self.progress.interrupted.map(|i| (i.gtid, i.rows));
        let server_id = self.server_id;
        let pending_xa_bytes = if self.open.as_ref().is_some_and(|o| o.xa) {
            self.progress.xa_held_bytes()
        } else {
            0
        };
        let open = self.open_for_rows(end)?;
        let at = || At {
            file: file.to_string(),
            offset: end,
            gtid: Some(open.gtid),
        };
        let publishes = layout.is_some() && event.kind == RowsKind::Insert;
        if open.uncounted && publishes {
            return Err(TxnError::Table {
                at: at(),
                table: table.to_owned(),
                problem: "an earlier statement of this transaction wrote rows of another table that \
                          cannot be decoded, so this row's index in the transaction (part of its event \
                          id) is unknown; see the warning above for that table"
                    .into(),
            });
        }
        let first = open.rows;
        open.rows = advance(first, event.rows.len()).ok_or_else(|| too_many_rows(at()))?;
        // A prepare group read again at its XA COMMIT goes out as read,
        // under the committing group; any other group under its own.
        let origin = match &open.mode {
            Mode::XaStream { commit, .. } => commit.clone(),
            _ => Origin {
                gtid: open.gtid,
                file: Arc::clone(&file),
                pos: open.start_offset,
                commit_time: open.commit_time,
            },
        };
        if open.xa && !matches!(open.mode, Mode::XaStream { .. }) {
            // Published only at the XA COMMIT, under its GTID; kept until
            // then while all pending XA rows stay under the limit.
            if let (true, Some(layout), None) = (publishes, layout, &open.xa_dropped) {
                for (row_index, change) in (first..).zip(event.rows) {
                    let row = XaRow {
                        layout: Arc::clone(layout),
                        row_index,
                        after: change.after.unwrap_or_default(),
                    };
                    open.xa_bytes = open.xa_bytes.saturating_add(xa_row_size(&row));
                    open.xa_rows.push(row);
                }
                if open.xa_bytes.saturating_add(pending_xa_bytes) > HOLD_LIMIT_BYTES {
                    tracing::info!(
                        gtid = %open.gtid,
                        rows = open.xa_rows.len(),
                        limit_bytes = HOLD_LIMIT_BYTES,
                        "an XA transaction's rows are more than the tailer keeps until its XA \
                         COMMIT: its prepare group will be read again then"
                    );
                    open.xa_rows = Vec::new();
                    open.xa_bytes = 0;
                    open.xa_dropped = Some(Vec::new());
                }
            }
            return Ok(Records::of(None, first, 0, server_id, origin));
        }
        let skip = match interrupted {
            Some((gtid, n)) if gtid == origin.gtid => n,
            _ => 0,
        };
        if skip > first && first == 0 {
            tracing::info!(
                gtid = %origin.gtid,
                rows = skip,
                "re-reading an interrupted transaction: skipping the rows already handed over"
            );
        }
        let rows = match (publishes, layout) {
            (true, Some(layout)) => Some((Arc::clone(layout), event.rows.into_iter())),
            _ => None,
        };
        Ok(Records::of(rows, first, skip, server_id, origin))
    }

    /// A rows event that is only counted (`rows` rows of a table that is
    /// not tailed, or changes that are not published): later rows' indexes
    /// move past them.
    ///
    /// # Errors
    /// [`TxnError::Protocol`] outside a transaction or past `u32::MAX` rows.
    pub fn counted(&mut self, rows: usize, end: u64) -> Result<(), TxnError> {
        let file = Arc::clone(&self.file);
        let open = self.open_for_rows(end)?;
        let at = At {
            file: file.to_string(),
            offset: end,
            gtid: Some(open.gtid),
        };
        open.rows = advance(open.rows, rows).ok_or_else(|| too_many_rows(at))?;
        Ok(())
    }

    /// A record of the open transaction, mapped. Held until the group ends
    /// (it may still roll back); dropped while a group too large to hold is
    /// read the first time; returned at once when it is read the second
    /// time (unless a savepoint rollback withdrew it). The caller hands over
    /// what comes back.
    pub fn take(&mut self, record: Record) -> Option<Record> {
        let Some(open) = self.open.as_mut() else {
            return Some(record);
        };
        match &open.mode {
            Mode::Stream { withdrawn } | Mode::XaStream { withdrawn, .. } => {
                return (!withdrawn.iter().any(|r| r.contains(&record.row_index))).then_some(record)
            }
            Mode::Learn { .. } => return None,
            Mode::Hold => {}
        }
        open.held_bytes = open.held_bytes.saturating_add(held_size(&record));
        open.held.push(record);
        if open.held_bytes > HOLD_LIMIT_BYTES {
            tracing::info!(
                gtid = %open.gtid,
                records = open.held.len(),
                limit_bytes = HOLD_LIMIT_BYTES,
                "a transaction is larger than the tailer holds: reading it to its end first, \
                 then again from its start if it commits"
            );
            open.mode = Mode::Learn {
                withdrawn: Vec::new(),
            };
            open.held = Vec::new();
            open.held_bytes = 0;
        }
        None
    }

    /// The record of row `row_index` of transaction `gtid` was handed to the
    /// sink: a later session re-reading this transaction skips that row and
    /// every row before it.
    pub fn handed_over(&mut self, gtid: Gtid, row_index: u32) {
        let commit_time = self
            .open
            .as_ref()
            .filter(|open| open.gtid == gtid)
            .map(|open| open.commit_time);
        self.progress.interrupted = Some(Interrupted {
            gtid,
            rows: row_index.saturating_add(1),
            commit_time,
        });
    }

    /// XID: the open transaction ends here (`end` is the offset after it;
    /// 0 when the server does not say). Returns its commit mark to hand
    /// over; `None` for an XID outside a transaction.
    pub fn xid(&mut self, end: u64) -> Option<Ended> {
        let done = self.open.take()?;
        Some(self.ended(done, end, false))
    }

    /// The end of `done`: committed, or rolled back.
    fn ended(&mut self, done: Txn, end: u64, rolled_back: bool) -> Ended {
        let commit = self.commit_mark(&done, end);
        let read_again = match done.mode {
            Mode::Learn { withdrawn } if !rolled_back => Some(ReadAgain {
                gtid: done.gtid,
                withdrawn,
            }),
            _ => None,
        };
        Ended {
            read_again,
            ..Ended::new(if rolled_back { Vec::new() } else { done.held }, commit)
        }
    }

    /// The group that just ended is read again by the next session, which
    /// starts where this one's last commit left off: right before it.
    pub fn read_again(&mut self, plan: ReadAgain) {
        tracing::info!(gtid = %plan.gtid, "reading a committed transaction again, publishing as it is read");
        self.progress.read_again = Some(plan);
    }

    /// The prepare group of a committed XA transaction is read again by the
    /// next session, which starts at that group; its rows go out as they
    /// are read, then the committing group's commit mark.
    pub fn xa_reread(&mut self, plan: XaReread) {
        tracing::info!(prepare = %plan.prepare, commit = %plan.commit.gtid, at = %plan.at,
            "reading an XA PREPARE group again, publishing its rows as they are read");
        self.progress.xa_reread = Some(plan);
    }

    /// QUERY: `BEGIN` and other statements inside a transaction change
    /// nothing; `COMMIT`/`ROLLBACK` end it, and so does the one statement of
    /// a standalone GTID. Returns the commit mark to hand over when the
    /// transaction ended.
    pub fn query(&mut self, statement: &str, end: u64) -> Option<Ended> {
        let open = self.open.as_mut()?;
        if !open.standalone {
            if let Some(name) = savepoint_name(statement, "SAVEPOINT") {
                // A later ROLLBACK TO it withdraws what follows.
                let name = name.to_owned();
                let mark = (open.held.len(), open.rows);
                open.savepoints.retain(|(n, _, _)| *n != name);
                open.savepoints.push((name, mark.0, mark.1));
                return None;
            }
            if let Some(name) = savepoint_name(statement, "ROLLBACK TO SAVEPOINT")
                .or_else(|| savepoint_name(statement, "ROLLBACK TO"))
            {
                if let Some(i) = open.savepoints.iter().position(|(n, _, _)| n == name) {
                    let (_, held_mark, row_mark) = open.savepoints[i];
                    let dropped = open.held.len().saturating_sub(held_mark);
                    open.held.truncate(held_mark);
                    open.held_bytes = open.held.iter().map(held_size).sum();
                    open.savepoints.truncate(i + 1);
                    if let Mode::Learn { withdrawn } = &mut open.mode {
                        withdrawn.push(row_mark..open.rows);
                    }
                    // An XA group's rows wait apart from `held`.
                    open.xa_rows.retain(|row| row.row_index < row_mark);
                    open.xa_bytes = open.xa_rows.iter().map(xa_row_size).sum();
                    if let Some(withdrawn) = &mut open.xa_dropped {
                        withdrawn.push(row_mark..open.rows);
                    }
                    if dropped > 0 {
                        tracing::debug!(gtid = %open.gtid, savepoint = name, records = dropped,
                            "rolled back to a savepoint: its records are withdrawn");
                    }
                }
                return None;
            }
        }
        let rolled_back = !open.standalone && statement.eq_ignore_ascii_case("ROLLBACK");
        let ends = open.standalone || rolled_back || statement.eq_ignore_ascii_case("COMMIT");
        if !ends {
            return None;
        }
        let done = self.open.take()?;
        Some(self.ended(done, end, rolled_back))
    }

    /// XA_PREPARE: the open group is prepared, not committed. Its rows wait
    /// for the `XA COMMIT` of the same XID; its commit mark moves the read
    /// position on but holds the checkpoint before it (see
    /// [`Commit::hold`]). With `one_phase` the group committed here.
    ///
    /// # Errors
    /// [`TxnError::Protocol`] outside a transaction, or for a group whose
    /// GTID did not announce an XA prepare; [`TxnError::Map`] for a row of
    /// a one-phase commit that cannot be published.
    pub fn xa_prepare(&mut self, event: XaPrepare, end: u64) -> Result<Ended, TxnError> {
        let Some(mut open) = self.open.take() else {
            return Err(self.protocol(end, "XA_PREPARE outside a transaction".into()));
        };
        if !open.xa {
            let problem = format!(
                "XA_PREPARE for XID {} ends a group whose GTID did not announce an XA prepare",
                event.xid
            );
            self.open = Some(open);
            return Err(self.protocol(end, problem));
        }
        if let Mode::XaStream { commit, .. } = &open.mode {
            // The prepare group read again is done: the committing group's
            // mark, then the next session starts after that group.
            let plan = self
                .progress
                .xa_reread
                .as_ref()
                .filter(|p| p.commit.gtid == commit.gtid);
            let Some(plan) = plan else {
                let problem = format!(
                    "XA_PREPARE of {} read again without a plan to publish it",
                    open.gtid
                );
                return Err(self.protocol(end, problem));
            };
            // The session ends after this mark (see `Progress::reread_at`).
            return Ok(Ended::new(Vec::new(), plan.mark.clone()));
        }
        if event.one_phase {
            if let Some(withdrawn) = open.xa_dropped.take() {
                // Committed here, too large to have been kept: read again.
                let at = BinlogCoord::new(&*self.file, open.start_offset);
                return Ok(self.reread_at_commit(open.gtid, at, withdrawn, &open, end));
            }
            let commit = self.commit_mark(&open, end);
            let mapped = self.map_xa_rows(&open.xa_rows, &open, end)?;
            let mut records = std::mem::take(&mut open.held);
            records.extend(mapped);
            return Ok(Ended::new(records, commit));
        }
        tracing::debug!(gtid = %open.gtid, xid = %event.xid, rows = open.xa_rows.len(),
            kept = open.xa_dropped.is_none(), "XA PREPARE: its rows wait for the XA COMMIT");
        let dropped = open
            .xa_dropped
            .take()
            .map(|withdrawn| (BinlogCoord::new(&*self.file, open.start_offset), withdrawn));
        self.progress.prepared.push(PreparedXa {
            xid: event.xid,
            gtid: open.gtid,
            rows: std::mem::take(&mut open.xa_rows),
            rows_bytes: open.xa_bytes,
            dropped,
            before: self.progress.position.clone(),
        });
        let commit = self.commit_mark(&open, end);
        Ok(Ended::new(Vec::new(), commit))
    }

    /// Where `group`'s records say they come from.
    fn origin(&self, group: &Txn) -> Origin {
        Origin {
            gtid: group.gtid,
            file: Arc::clone(&self.file),
            pos: group.start_offset,
            commit_time: group.commit_time,
        }
    }

    /// The end of `group`, which commits the XA transaction prepared in
    /// group `prepare` at `at` whose rows were not kept: nothing goes out
    /// now; the next session reads that prepare group again.
    fn reread_at_commit(
        &self,
        prepare: Gtid,
        at: BinlogCoord,
        withdrawn: Vec<std::ops::Range<u32>>,
        group: &Txn,
        end: u64,
    ) -> Ended {
        let commit = self.commit_mark(group, end);
        Ended {
            xa_reread: Some(XaReread {
                prepare,
                at,
                withdrawn,
                commit: self.origin(group),
                mark: commit.clone(),
            }),
            ..Ended::new(Vec::new(), commit)
        }
    }

    /// QUERY `XA COMMIT <xid>` or `XA ROLLBACK <xid>`: the group that decides
    /// a prepared XA transaction ends here. On commit its rows go out, under
    /// this group's GTID and position (the point where they commit, so the
    /// topic stays in commit order) with their indexes in the prepare group.
    /// `None` for any other statement.
    pub fn xa_decision(&mut self, statement: &str, end: u64) -> Option<Result<Ended, TxnError>> {
        let (commit, xid) = strip_keyword(statement, "XA COMMIT")
            .map(|x| (true, x))
            .or_else(|| strip_keyword(statement, "XA ROLLBACK").map(|x| (false, x)))?;
        let open = self.open.take()?;
        let xid = xid.trim();
        let prepared = self
            .progress
            .prepared
            .iter()
            .position(|p| p.xid.eq_ignore_ascii_case(xid))
            .map(|i| self.progress.prepared.remove(i));
        let records = match (commit, prepared) {
            (
                true,
                Some(PreparedXa {
                    dropped: Some((at, withdrawn)),
                    gtid: prepared,
                    ..
                }),
            ) => {
                tracing::info!(%prepared, committed = %open.gtid, xid,
                    "XA COMMIT of a transaction too large to have been kept: reading its \
                     XA PREPARE group again from {at}");
                return Some(Ok(
                    self.reread_at_commit(prepared, at, withdrawn, &open, end)
                ));
            }
            (true, Some(prepared)) => {
                tracing::debug!(prepared = %prepared.gtid, committed = %open.gtid, xid,
                    rows = prepared.rows.len(), "XA COMMIT: its rows go out");
                match self.map_xa_rows(&prepared.rows, &open, end) {
                    Ok(records) => records,
                    Err(e) => return Some(Err(e)),
                }
            }
            (true, None) => {
                tracing::warn!(
                    gtid = %open.gtid,
                    xid,
                    "XA COMMIT of a transaction prepared before this tailer's start position: \
                     its rows were never read, so they are not published (start the tailer \
                     before its XA PREPARE to publish them)"
                );
                Vec::new()
            }
            (false, _) => Vec::new(),
        };
        let commit = self.commit_mark(&open, end);
        Some(Ok(Ended::new(records, commit)))
    }

    /// Maps the rows of an XA transaction as rows of `group`, the group that
    /// commits them, skipping those a previous session already handed over.
    fn map_xa_rows(&self, rows: &[XaRow], group: &Txn, end: u64) -> Result<Vec<Record>, TxnError> {
        let skip = match self.progress.interrupted {
            Some(i) if i.gtid == group.gtid => i.rows,
            _ => 0,
        };
        rows.iter()
            .filter(|row| row.row_index >= skip)
            .map(|row| {
                let origin = RowOrigin {
                    gtid: group.gtid,
                    row_index: row.row_index,
                    server_id: self.server_id,
                    file: &self.file,
                    pos: group.start_offset,
                    commit_time: group.commit_time,
                };
                map::map_insert(&row.layout, &row.after, &origin).map_err(|source| TxnError::Map {
                    at: At {
                        file: self.file.to_string(),
                        offset: end,
                        gtid: Some(group.gtid),
                    },
                    source: Box::new(source),
                })
            })
            .collect()
    }

    fn commit_mark(&self, txn: &Txn, end: u64) -> Commit {
        let mut position = self.progress.position.clone();
        position.gtid.apply(txn.gtid);
        if end != 0 {
            position.coord = Some(BinlogCoord::new(&*self.file, end));
        }
        Commit {
            position,
            hold: self.progress.prepared.first().map(|p| p.before.clone()),
            server_id: self.server_id,
            commit_time: txn.commit_time,
        }
    }

    /// The next session starts by the GTID state of the last transaction
    /// handed over, whatever this one started by (a binlog file cut off by
    /// a crash cannot be read past by file).
    pub fn read_on_by_gtid(&mut self) {
        let progress = &mut *self.progress;
        progress.start = Start::Gtid(progress.position.gtid.clone());
    }

    /// A commit mark was handed to the sink: the transaction is read, and
    /// the next session starts after it (by file when this one started by
    /// file and the server gave an offset, else by GTID).
    pub fn committed(&mut self, commit: Commit) {
        let progress = &mut *self.progress;
        progress.position = commit.position;
        progress.interrupted = None;
        progress.read_again = None;
        progress.xa_reread = None;
        progress.start = match (&progress.start, &progress.position.coord) {
            (Start::Coord { .. }, Some(coord)) => Start::Coord {
                coord: coord.clone(),
                gtid: Some(progress.position.gtid.clone()),
            },
            _ => Start::Gtid(progress.position.gtid.clone()),
        };
    }
}

/// How many bytes of records (as [`held_size`] counts them) an open
/// transaction holds back before it lets them go out as they are read.
pub const HOLD_LIMIT_BYTES: usize = 8 << 20;

/// The rest of `statement` after `keyword` and a blank, ignoring case.
fn strip_keyword<'s>(statement: &'s str, keyword: &str) -> Option<&'s str> {
    let head = statement.get(..keyword.len())?;
    let rest = statement.get(keyword.len()..)?;
    (head.eq_ignore_ascii_case(keyword) && rest.starts_with(char::is_whitespace)).then_some(rest)
}

/// About what a held record takes in memory: its buffers and the
/// allocations around them.
fn held_size(record: &Record) -> usize {
    const PER_RECORD: usize = 160;
    const PER_HEADER: usize = 48;
    record.payload.len()
        + record.key.len()
        + record.id.len()
        + record.headers.len() * PER_HEADER
        + record.headers.size()
        + PER_RECORD
}

/// About what a kept XA row takes in memory: its values, their buffers and
/// the allocations around them.
fn xa_row_size(row: &XaRow) -> usize {
    const PER_ROW: usize = 64;
    use crate::decode::Value;
    let values: usize = row
        .after
        .iter()
        .map(|value| {
            std::mem::size_of::<Option<Value>>()
                + match value {
                    Some(Value::Text(t) | Value::Decimal(t) | Value::Enum(t)) => t.len(),
                    Some(Value::Bytes(b)) => b.len(),
                    Some(Value::Set(labels)) => labels.iter().map(|l| l.len() + 24).sum(),
                    _ => 0,
                }
        })
        .sum();
    PER_ROW + values
}

/// The savepoint a `SAVEPOINT` or `ROLLBACK TO` statement names (`keyword`
/// followed by the name, back-quoted as MariaDB writes it or bare).
fn savepoint_name<'s>(statement: &'s str, keyword: &str) -> Option<&'s str> {
    let head = statement.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = statement.get(keyword.len()..)?;
    if !rest.starts_with(char::is_whitespace) {
        return None;
    }
    let rest = rest.trim();
    let name = match rest.strip_prefix('`') {
        Some(quoted) => quoted.strip_suffix('`')?,
        None => rest,
    };
    (!name.is_empty()).then_some(name)
}

/// Why a GTID read again with another timestamp after some of its records
/// went out stops the tailer.
fn gtid_reused(interrupted: Interrupted, commit_time: u32) -> String {
    let Interrupted { gtid, rows, .. } = interrupted;
    format!(
        "transaction {gtid} was being read when the connection ended, after {rows} of its rows \
         were published (it was larger than the tailer holds back), and the server now sends \
         another transaction under the same GTID (its GTID event's time is {commit_time}, not \
         {old}): the server restarted after a crash while writing the first one, which never \
         committed, and gave its GTID to a new transaction. The records {gtid}.0 to \
         {gtid}.{last} in the topic belong to no committed order, and the new transaction's \
         rows would get the same ids. Fix: have consumers discard those records (or find their \
         orders missing in the database), then start the tailer after the new transaction \
         (`binlog-tailer checkpoint set <GTID state after it>`) and publish its orders by \
         other means, as their ids are taken",
        old = interrupted.commit_time.unwrap_or_default(),
        last = rows.saturating_sub(1),
    )
}

/// The row index after `rows` more rows from `first`; `None` past
/// `u32::MAX`.
fn advance(first: u32, rows: usize) -> Option<u32> {
    u32::try_from(rows).ok().and_then(|n| first.checked_add(n))
}

fn too_many_rows(at: At) -> TxnError {
    TxnError::Protocol {
        at,
        problem: "the transaction has more than 4294967295 rows; its row indexes (part of the \
                  event ids) cannot be counted"
            .into(),
    }
}

/// Why a GTID whose sequence number does not increase within its domain
/// stops the tailer, and what the operator can do.
fn out_of_order(next: Gtid, last: Gtid) -> String {
    format!(
        "GTID {next} follows {last} in domain {domain} with a sequence number that is not \
         higher; MariaDB writes that only with gtid_strict_mode=OFF (after SET gtid_seq_no, a \
         restored backup, or two primaries writing one domain). Event ids are made of the GTID, \
         so this transaction's orders cannot get ids distinct from those already published, and \
         a start by GTID state could pass over it: the tailer stopped before it, with the \
         checkpoint at {last}. Fix: set gtid_strict_mode=ON on every server of the topology so \
         it cannot happen again; look at the transactions from here on (mariadb-binlog \
         --start-position), publish their orders by other means if they are new, then move \
         the tailer past them with `binlog-tailer checkpoint set <file:offset after them>`",
        domain = next.domain,
    )
}

/// The records of one rows event, mapped as they are taken, so that a rows
/// event's records never all sit in memory at once.
pub struct Records {
    /// The tailed table's layout and the rows; `None` when nothing of this
    /// event is published.
    rows: Option<(Arc<TableLayout>, std::vec::IntoIter<RowChange>)>,
    next_index: u32,
    skip: u32,
    gtid: Gtid,
    server_id: u32,
    file: Arc<str>,
    pos: u64,
    commit_time: u32,
}

impl Records {
    fn of(
        rows: Option<(Arc<TableLayout>, std::vec::IntoIter<RowChange>)>,
        next_index: u32,
        skip: u32,
        server_id: u32,
        origin: Origin,
    ) -> Self {
        Records {
            rows,
            next_index,
            skip,
            gtid: origin.gtid,
            server_id,
            file: origin.file,
            pos: origin.pos,
            commit_time: origin.commit_time,
        }
    }
}

impl Iterator for Records {
    type Item = Result<Record, MapError>;

    fn next(&mut self) -> Option<Self::Item> {
        let (layout, rows) = self.rows.as_mut()?;
        loop {
            let change = rows.next()?;
            let row_index = self.next_index;
            self.next_index = self.next_index.saturating_add(1);
            if row_index < self.skip {
                continue;
            }
            let after = change.after.unwrap_or_default();
            let origin = RowOrigin {
                gtid: self.gtid,
                row_index,
                server_id: self.server_id,
                file: &self.file,
                pos: self.pos,
                commit_time: self.commit_time,
            };
            return Some(map::map_insert(layout, &after, &origin));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::Value;
    use crate::map::{ColumnLayout, Headers, Logical};
    use crate::position::GtidState;

    fn gtid(seq: u64) -> Gtid {
        Gtid {
            domain: 0,
            server_id: 1,
            seq,
        }
    }

    fn gtid_event(seq: u64, standalone: bool) -> GtidEvent {
        GtidEvent {
            gtid: gtid(seq),
            flags: u8::from(standalone),
            standalone,
            commit_id: None,
        }
    }

    fn gtid_event_in(domain: u32, seq: u64) -> GtidEvent {
        GtidEvent {
            gtid: Gtid {
                domain,
                server_id: 1,
                seq,
            },
            ..gtid_event(seq, false)
        }
    }

    fn orders() -> Arc<TableLayout> {
        Arc::new(TableLayout {
            database: "shop".into(),
            table: "orders".into(),
            topic: Arc::from("orders"),
            event_type: "OrderCreated".into(),
            dataschema: None,
            source: "/mariadb/test/shop/orders".into(),
            columns: vec![
                ColumnLayout {
                    name: "id".into(),
                    logical: Logical::Plain,
                },
                ColumnLayout {
                    name: "amount".into(),
                    logical: Logical::Plain,
                },
            ],
            primary_key: vec![0],
            text: crate::map::LayoutText::default(),
        })
    }

    fn row(id: i64) -> Vec<Option<Value>> {
        vec![Some(Value::Int(id)), Some(Value::Decimal("1.00".into()))]
    }

    fn rows(kind: RowsKind, ids: &[i64]) -> RowsEvent {
        RowsEvent {
            table_id: 1,
            kind,
            flags: 0,
            rows: ids
                .iter()
                .map(|&id| match kind {
                    RowsKind::Insert => RowChange {
                        before: None,
                        after: Some(row(id)),
                    },
                    RowsKind::Delete => RowChange {
                        before: Some(row(id)),
                        after: None,
                    },
                    RowsKind::Update => RowChange {
                        before: Some(row(id)),
                        after: Some(row(id)),
                    },
                })
                .collect(),
        }
    }

    fn by_file(file: &str, offset: u64) -> Progress {
        Progress::new(Start::Coord {
            coord: BinlogCoord::new(file, offset),
            gtid: Some(GtidState::new()),
        })
    }

    /// Every record of an event, handed over one by one as a session does.
    fn hand_over_all(state: &mut TxnState<'_>, records: Records) -> Vec<Record> {
        let mut out = Vec::new();
        for record in records {
            let record = record.expect("maps");
            state.handed_over(record.gtid, record.row_index);
            out.push(record);
        }
        out
    }

    fn ids(records: &[Record]) -> Vec<String> {
        records.iter().map(|r| r.id.clone()).collect()
    }

    #[test]
    fn row_indexes_count_every_row_of_every_table_and_operation() {
        let mut progress = by_file("bin.000001", 4);
        let mut state = TxnState::new(&mut progress, 7, "bin.000001");
        let layout = orders();
        state
            .begin(&gtid_event(5, false), 100, 1_700_000_000, 150)
            .unwrap();

        // Two rows of another table, an update and a delete of the tailed
        // one: counted, never published. The session only counts them
        // (`counted`); handed to `rows` they give no record either.
        state.counted(2, 200).unwrap();
        let update = state
            .rows(
                "shop.orders",
                Some(&layout),
                rows(RowsKind::Update, &[9]),
                250,
            )
            .unwrap();
        assert_eq!(hand_over_all(&mut state, update).len(), 0);
        let insert = state
            .rows(
                "shop.orders",
                Some(&layout),
                rows(RowsKind::Insert, &[10, 11]),
                300,
            )
            .unwrap();
        let published = hand_over_all(&mut state, insert);
        state.counted(1, 350).unwrap();
        let insert = state
            .rows(
                "shop.orders",
                Some(&layout),
                rows(RowsKind::Insert, &[12]),
                400,
            )
            .unwrap();
        let mut more = hand_over_all(&mut state, insert);

        let mut all = published;
        all.append(&mut more);
        assert_eq!(ids(&all), ["0-1-5.3", "0-1-5.4", "0-1-5.6"]);
        for r in &all {
            assert_eq!(r.gtid, gtid(5));
            assert_eq!(&*r.topic, "orders");
            let header = |name: &str| {
                r.headers
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            };
            assert_eq!(
                header("binlog.pos").as_deref(),
                Some("100"),
                "the GTID event's offset"
            );
            assert_eq!(header("binlog.server_id").as_deref(), Some("7"));
            assert_eq!(header("binlog.file").as_deref(), Some("bin.000001"));
        }
        assert_eq!(
            all.iter().map(|r| r.row_index).collect::<Vec<_>>(),
            [3, 4, 6]
        );
    }

    #[test]
    fn the_commit_mark_comes_at_the_end_and_progress_moves_only_when_it_is_handed_over() {
        let mut progress = by_file("bin.000001", 4);
        let mut state = TxnState::new(&mut progress, 7, "bin.000001");
        let layout = orders();
        state
            .begin(&gtid_event(5, false), 100, 1_700_000_000, 150)
            .unwrap();
        let records = state
            .rows(
                "shop.orders",
                Some(&layout),
                rows(RowsKind::Insert, &[1]),
                200,
            )
            .unwrap();
        hand_over_all(&mut state, records);
        assert!(state.query("BEGIN", 0).is_none(), "BEGIN ends nothing");
        assert!(state.in_transaction());

        let commit = state.xid(420).expect("the XID ends the transaction").commit;
        assert!(!state.in_transaction());
        assert_eq!(commit.position.to_string(), "0-1-5@bin.000001:420");
        assert_eq!(commit.server_id, 7);
        assert_eq!(commit.commit_time, 1_700_000_000);
        assert_eq!(
            state.progress().position.to_string(),
            "@bin.000001:4",
            "nothing moves before the commit mark is handed over"
        );

        state.committed(commit.clone());
        assert_eq!(state.progress().position, commit.position);
        assert_eq!(
            state.progress().start,
            Start::Coord {
                coord: BinlogCoord::new("bin.000001", 420),
                gtid: Some("0-1-5".parse().unwrap()),
            },
            "a session started by file goes on by file"
        );
        assert!(
            state.xid(500).is_none(),
            "an XID outside a transaction is no commit"
        );
    }

    #[test]
    fn a_zero_end_position_keeps_the_last_file_coordinate_and_gtid_starts_stay_by_gtid() {
        let mut progress = Progress::new(Start::Gtid("0-1-4".parse().unwrap()));
        let mut state = TxnState::new(&mut progress, 7, "");
        state.rotate("bin.000003".into(), 4, true);
        assert_eq!(
            state.progress().position.to_string(),
            "0-1-4",
            "the fake rotate of a start by GTID does not say where 0-1-4 lies in the file"
        );
        state.begin(&gtid_event(5, false), 250, 1, 292).unwrap();
        let commit = state.xid(300).unwrap().commit;
        assert_eq!(commit.position.to_string(), "0-1-5@bin.000003:300");
        state.committed(commit);
        state.begin(&gtid_event(6, false), 0, 1, 0).unwrap();
        let commit = state.xid(0).unwrap().commit;
        assert_eq!(commit.position.to_string(), "0-1-6@bin.000003:300");
        state.committed(commit);
        assert_eq!(
            state.progress().start,
            Start::Gtid("0-1-6".parse().unwrap())
        );
    }

    #[test]
    fn a_sequence_number_that_does_not_increase_in_its_domain_stops_before_the_transaction() {
        let mut progress = Progress::new(Start::Gtid("0-1-10,1-1-3".parse().unwrap()));
        let mut state = TxnState::new(&mut progress, 7, "bin.000001");
        // Another domain's numbers are its own: 1-1-4 follows 1-1-3 even
        // though 4 < 10.
        state.begin(&gtid_event_in(1, 4), 100, 1, 140).unwrap();
        let commit = state.xid(200).unwrap().commit;
        state.committed(commit);
        // The same sequence number again, and a lower one, in domain 0.
        for seq in [10, 9] {
            let err = state
                .begin(&gtid_event_in(0, seq), 200, 1, 240)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&format!("GTID 0-1-{seq} follows 0-1-10 in domain 0")),
                "{err}"
            );
            assert!(err.contains("gtid_strict_mode=ON"), "{err}");
            assert!(err.contains("bin.000001:240"), "{err}");
            assert!(!state.in_transaction());
        }
        assert_eq!(
            state.progress().position.gtid.to_string(),
            "0-1-10,1-1-4",
            "nothing moved past the refused GTID"
        );
        // The next number is fine.
        state.begin(&gtid_event_in(0, 11), 200, 1, 240).unwrap();
    }

    #[test]
    fn an_interrupted_transaction_skips_exactly_the_rows_already_handed_over() {
        let layout = orders();
        let mut progress = by_file("bin.000001", 4);
        {
            let mut state = TxnState::new(&mut progress, 7, "bin.000001");
            state.begin(&gtid_event(5, false), 100, 1, 150).unwrap();
            let records = state
                .rows(
                    "shop.orders",
                    Some(&layout),
                    rows(RowsKind::Insert, &[1, 2, 3]),
                    200,
                )
                .unwrap();
            // Two of three records handed over, then the session ends.
            for record in records.take(2) {
                let record = record.unwrap();
                state.handed_over(record.gtid, record.row_index);
            }
        }
        // The next session reads the same transaction again.
        let mut state = TxnState::new(&mut progress, 7, "bin.000001");
        state.begin(&gtid_event(5, false), 100, 1, 150).unwrap();
        let first = state
            .rows(
                "shop.orders",
                Some(&layout),
                rows(RowsKind::Insert, &[1, 2, 3]),
                200,
            )
            .unwrap();
        let second = state
            .rows(
                "shop.orders",
                Some(&layout),
                rows(RowsKind::Insert, &[4]),
                250,
            )
            .unwrap();
        let mut again = hand_over_all(&mut state, first);
        again.extend(hand_over_all(&mut state, second));
        assert_eq!(ids(&again), ["0-1-5.2", "0-1-5.3"]);
        let commit = state.xid(300).unwrap().commit;
        state.committed(commit);

        // Once committed, a later transaction with other rows skips nothing.
        state.begin(&gtid_event(6, false), 300, 1, 350).unwrap();
        let records = state
            .rows(
                "shop.orders",
                Some(&layout),
                rows(RowsKind::Insert, &[5, 6]),
                400,
            )
            .unwrap();
        assert_eq!(
            ids(&hand_over_all(&mut state, records)),
            ["0-1-6.0", "0-1-6.1"]
        );
    }

    #[test]
    fn another_transaction_is_not_skipped_for_an_interrupted_one() {
        let layout = orders();
        let mut progress = by_file("bin.000001", 4);
        {
            let mut state = TxnState::new(&mut progress, 7, "bin.000001");
            state.begin(&gtid_event(5, false), 100, 1, 150).unwrap();
            let records = state
                .rows(
                    "shop.orders",
                    Some(&layout),
                    rows(RowsKind::Insert, &[1, 2]),
                    200,
                )
                .unwrap();
            hand_over_all(&mut state, records);
        }
        let mut state = TxnState::new(&mut progress, 7, "bin.000001");
        state.begin(&gtid_event(9, false), 100, 1, 150).unwrap();
        let records = state
            .rows(
                "shop.orders",
                Some(&layout),
                rows(RowsKind::Insert, &[1, 2]),
                200,
            )
            .unwrap();
        assert_eq!(
            ids(&hand_over_all(&mut state, records)),
            ["0-1-9.0", "0-1-9.1"]
        );
    }

    #[test]
    fn queries_end_transactions_as_the_server_writes_them() {
        let mut progress = by_file("bin.000001", 4);
        let mut state = TxnState::new(&mut progress, 7, "bin.000001");
        assert!(
            state.query("COMMIT", 10).is_none(),
            "nothing open, nothing ends"
        );

        state.begin(&gtid_event(1, false), 4, 1, 50).unwrap();
        assert!(state.query("BEGIN", 60).is_none());
        assert!(state.query("INSERT INTO t VALUES (1)", 70).is_none());
        let commit = state
            .query("commit", 80)
            .expect("COMMIT ends a non-transactional group")
            .commit;
        state.committed(commit);

        state.begin(&gtid_event(2, false), 80, 1, 90).unwrap();
        let commit = state
            .query("ROLLBACK", 100)
            .expect("so does ROLLBACK")
            .commit;
        state.committed(commit);

        state.begin(&gtid_event(3, true), 100, 1, 110).unwrap();
        let commit = state
            .query("CREATE TABLE t (id INT PRIMARY KEY)", 150)
            .expect("a standalone GTID ends at its statement")
            .commit;
        assert_eq!(commit.position.to_string(), "0-1-3@bin.000001:150");
    }

    #[test]
    fn events_out_of_place_are_errors_that_say_where() {
        let layout = orders();
        let mut progress = by_file("bin.000001", 4);
        let mut state = TxnState::new(&mut progress, 7, "bin.000001");
        let outside = state
            .rows(
                "shop.orders",
                Some(&layout),
                rows(RowsKind::Insert, &[1]),
                200,
            )
            .err()
            .expect("rows outside a transaction");
        assert_eq!(
            outside.to_string(),
            "binlog at bin.000001:200: rows event outside a transaction"
        );
    }

    /// A record of transaction `seq` with a payload of `bytes` bytes.
    fn record(seq: u64, row_index: u32, bytes: usize) -> Record {
        Record {
            topic: Arc::from("orders"),
            key: b"k".to_vec(),
            payload: vec![b'x'; bytes],
            headers: Headers::default(),
            id: format!("0-1-{seq}.{row_index}"),
            gtid: gtid(seq),
            row_index,
            snapshot_table: None,
        }
    }

    /// Feeds records of the open transaction `seq` through `take`; returns
    /// what came back to hand over at once.
    /// (Each row is counted first, as `rows` does for the session.)
    fn take_all(state: &mut TxnState<'_>, seq: u64, rows: &[u32], bytes: usize) -> Vec<Record> {
        let mut out = Vec::new();
        for &row in rows {
            state.counted(1, 0).expect("inside a transaction");
            out.extend(state.take(record(seq, row, bytes)));
        }
        out
    }

    #[test]
    fn records_are_held_to_the_commit_and_dropped_with_a_rollback() {
        let mut progress = by_file("bin.000001", 4);
        let mut state = TxnState::new(&mut progress, 7, "bin.000001");
        state.begin(&gtid_event(5, false), 100, 1, 150).unwrap();
        assert!(take_all(&mut state, 5, &[0, 1], 100).is_empty(), "held");
        let ended = state.xid(300).expect("XID ends it");
        assert_eq!(ids(&ended.records), ["0-1-5.0", "0-1-5.1"]);
        state.committed(ended.commit);

        // A group MariaDB ends with ROLLBACK (it created a temporary table, or
        // wrote a non-transactional one): its rows never committed.
        state.begin(&gtid_event(6, false), 300, 1, 350).unwrap();
        assert!(take_all(&mut state, 6, &[0], 100).is_empty());
        let ended = state.query("ROLLBACK", 500).expect("ROLLBACK ends it");
        assert!(ended.records.is_empty(), "nothing of a rolled-back group");
        assert_eq!(ended.commit.position.to_string(), "0-1-6@bin.000001:500");
    }

    fn xa_gtid(seq: u64) -> GtidEvent {
        GtidEvent {
            flags: GTID_FL_PREPARED_XA,
            ..gtid_event(seq, false)
        }
    }

    fn prepare(xid: &str) -> XaPrepare {
        XaPrepare {
            one_phase: false,
            xid: xid.into(),
        }
    }

    #[test]
    fn xa_rows_go_out_at_the_xa_commit_under_its_gtid_and_never_at_a_rollback() {
        let layout = orders();
        let mut progress = by_file("bin.000001", 4);
        let mut state = TxnState::new(&mut progress, 7, "bin.000001");

        // XA 'a' prepares order 1; XA 'b' prepares order 2.
        for (seq, xid, id) in [(5, "X'61',X'',1", 1), (6, "X'62',X'',1", 2)] {
            state
                .begin(&xa_gtid(seq), seq * 100, 1, seq * 100 + 40)
                .unwrap();
            assert!(state.query("XA START X'61',X'',1", 0).is_none());
            let records = state
                .rows(
                    "shop.orders",
                    Some(&layout),
                    rows(RowsKind::Insert, &[id]),
                    0,
                )
                .unwrap();
            assert_eq!(hand_over_all(&mut state, records).len(), 0, "nothing yet");
            assert!(state.query("XA END X'61',X'',1", 0).is_none());
            let ended = state.xa_prepare(prepare(xid), seq * 100 + 90).unwrap();
            assert!(ended.records.is_empty());
            // The read position moves on; the checkpoint stays before the
            // oldest pending prepare (0-1-5's group, after 4 bytes of bin.000001).
            assert_eq!(
                ended.commit.checkpoint_position().to_string(),
                "@bin.000001:4"
            );
            state.committed(ended.commit);
        }
        assert_eq!(state.progress().prepared_xa(), 2);

        // An ordinary transaction in between.
        state.begin(&gtid_event(7, false), 700, 1, 740).unwrap();
        let ended = state.xid(790).unwrap();
        assert!(ended.commit.hold.is_some(), "still held before 0-1-5");
        state.committed(ended.commit);

        // XA ROLLBACK 'a': nothing of order 1, ever.
        state.begin(&gtid_event(8, false), 800, 1, 840).unwrap();
        let ended = state
            .xa_decision("XA ROLLBACK X'61',X'',1", 890)
            .expect("an XA decision")
            .unwrap();
        assert!(ended.records.is_empty());
        assert_eq!(
            ended.commit.checkpoint_position().to_string(),
            "0-1-5@bin.000001:590",
            "now held before 'b' (0-1-6's group, after 0-1-5's)"
        );
        state.committed(ended.commit);

        // XA COMMIT 'b' (written in lower or upper case): order 2 goes out as
        // a row of 0-1-9, the group that commits it.
        state.begin(&gtid_event(9, false), 900, 1, 940).unwrap();
        let ended = state
            .xa_decision("xa commit X'62',X'',1", 990)
            .expect("an XA decision")
            .unwrap();
        assert_eq!(ids(&ended.records), ["0-1-9.0"]);
        assert_eq!(ended.commit.hold, None, "nothing pending");
        assert_eq!(
            ended.commit.checkpoint_position().to_string(),
            "0-1-9@bin.000001:990"
        );
        state.committed(ended.commit);
        assert_eq!(state.progress().prepared_xa(), 0);

        // An XA COMMIT of a transaction prepared before the start: nothing
        // to publish (a warning), the group still ends.
        state.begin(&gtid_event(10, false), 1000, 1, 1040).unwrap();
        let ended = state
            .xa_decision("XA COMMIT X'7a',X'',1", 1090)
            .unwrap()
            .unwrap();
        assert!(ended.records.is_empty());
        assert!(
            state.xa_decision("COMMIT", 0).is_none(),
            "not an XA statement"
        );
    }

    /// Reads one XA prepare group of `ids` (in events of 1,000 rows, with a
    /// savepoint rolled back around the last event) from `start`.
    fn prepare_group(state: &mut TxnState<'_>, seq: u64, start: u64, ids: &[i64]) -> Ended {
        let layout = orders();
        state.begin(&xa_gtid(seq), start, 1, start + 40).unwrap();
        let (kept, withdrawn) = ids.split_at(ids.len() - 1000);
        for chunk in kept.chunks(1000) {
            let records = state
                .rows(
                    "shop.orders",
                    Some(&layout),
                    rows(RowsKind::Insert, chunk),
                    0,
                )
                .unwrap();
            assert!(
                hand_over_all(state, records).is_empty(),
                "nothing before the commit"
            );
        }
        assert!(state.query("SAVEPOINT `s1`", 0).is_none());
        let records = state
            .rows(
                "shop.orders",
                Some(&layout),
                rows(RowsKind::Insert, withdrawn),
                0,
            )
            .unwrap();
        assert!(hand_over_all(state, records).is_empty());
        assert!(state.query("ROLLBACK TO `s1`", 0).is_none());
        state
            .xa_prepare(prepare("X'61',X'',1"), start + 5000)
            .unwrap()
    }

    #[test]
    fn an_xa_transaction_too_large_to_keep_is_read_again_at_its_commit() {
        let ids: Vec<i64> = (1..=100_000).collect();
        let mut progress = by_file("bin.000001", 4);
        let mut state = TxnState::new(&mut progress, 7, "bin.000001");
        let ended = prepare_group(&mut state, 5, 100, &ids);
        assert!(ended.records.is_empty());
        state.committed(ended.commit);
        assert_eq!(state.progress().prepared_xa(), 1);
        assert_eq!(
            state.progress().xa_held_bytes(),
            0,
            "its rows were not kept"
        );

        // XA COMMIT in 0-1-6, in the next file: nothing goes out yet; the
        // next session reads 0-1-5's group again at bin.000001:100.
        let mut state = TxnState::new(&mut progress, 7, "bin.000002");
        state.begin(&gtid_event(6, false), 200, 9, 240).unwrap();
        let ended = state
            .xa_decision("XA COMMIT X'61',X'',1", 290)
            .unwrap()
            .unwrap();
        assert!(ended.records.is_empty());
        let plan = ended.xa_reread.expect("read its prepare group again");
        assert_eq!(plan.at.to_string(), "bin.000001:100");
        state.xa_reread(plan);
        assert_eq!(
            progress.reread_at().map(ToString::to_string).as_deref(),
            Some("bin.000001:100")
        );

        // That session: the prepare group's rows go out as they are read,
        // as rows of 0-1-6 (its file, position and time), less the rows
        // the savepoint rollback withdrew; a session that ends after
        // 1,500 rows skips them the next time.
        let layout = orders();
        let mut out = Vec::new();
        for attempt in 0..2 {
            let mut state = TxnState::new(&mut progress, 7, "bin.000001");
            state.begin(&xa_gtid(5), 100, 1, 140).unwrap();
            let mut handed = 0;
            'events: for chunk in ids.chunks(1000) {
                let records = state
                    .rows(
                        "shop.orders",
                        Some(&layout),
                        rows(RowsKind::Insert, chunk),
                        0,
                    )
                    .unwrap();
                for record in records {
                    if let Some(record) = state.take(record.unwrap()) {
                        state.handed_over(record.gtid, record.row_index);
                        out.push(record);
                        handed += 1;
                        if attempt == 0 && handed == 1500 {
                            break 'events;
                        }
                    }
                }
            }
            if attempt == 0 {
                continue;
            }
            let ended = state.xa_prepare(prepare("X'61',X'',1"), 5100).unwrap();
            assert!(
                state.progress().reread_at().is_some(),
                "the mark ends the re-read: then on after 0-1-6"
            );
            assert_eq!(ended.commit.position.to_string(), "0-1-6@bin.000002:290");
            state.committed(ended.commit);
        }
        assert_eq!(out.len(), 99_000, "every kept row once");
        assert_eq!(out[0].id, "0-1-6.0");
        assert_eq!(out[98_999].id, "0-1-6.98999");
        let header = |r: &Record, name: &str| {
            r.headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        };
        assert!(out.iter().all(|r| r.gtid == gtid(6)
            && header(r, map::HEADER_FILE).as_deref() == Some("bin.000002")
            && header(r, map::HEADER_POS).as_deref() == Some("200")));
        assert_eq!(progress.reread_at(), None);
        assert_eq!(progress.prepared_xa(), 0);
        assert_eq!(progress.start.to_string(), "bin.000002:290");

        // A small XA transaction is still kept and goes out at its commit.
        let mut state = TxnState::new(&mut progress, 7, "bin.000002");
        let ended = prepare_group(&mut state, 7, 300, &(1..=1010).collect::<Vec<_>>());
        state.committed(ended.commit);
        assert!(state.progress().xa_held_bytes() > 0);
        state.begin(&gtid_event(8, false), 6000, 1, 6040).unwrap();
        let ended = state
            .xa_decision("XA COMMIT X'61',X'',1", 6090)
            .unwrap()
            .unwrap();
        assert!(ended.xa_reread.is_none());
        assert_eq!(
            ended.records.len(),
            10,
            "the savepoint rollback withdrew the rest"
        );
    }

    #[test]
    fn reading_an_xa_prepare_group_again_refuses_another_group_there() {
        let ids: Vec<i64> = (1..=100_000).collect();
        let mut progress = by_file("bin.000001", 4);
        let mut state = TxnState::new(&mut progress, 7, "bin.000001");
        let ended = prepare_group(&mut state, 5, 100, &ids);
        state.committed(ended.commit);
        state.begin(&gtid_event(6, false), 5200, 1, 5240).unwrap();
        let plan = state
            .xa_decision("XA COMMIT X'61',X'',1", 5290)
            .unwrap()
            .unwrap()
            .xa_reread
            .expect("a plan");
        state.xa_reread(plan);
        let mut state = TxnState::new(&mut progress, 7, "bin.000001");
        let err = state.begin(&gtid_event(9, false), 100, 1, 140).unwrap_err();
        assert!(err.to_string().contains("the binlog changed"), "{err}");
    }

    #[test]
    fn a_one_phase_xa_prepare_commits_and_a_plain_group_cannot_prepare() {
        let layout = orders();
        let mut progress = by_file("bin.000001", 4);
        let mut state = TxnState::new(&mut progress, 7, "bin.000001");
        state.begin(&xa_gtid(5), 100, 1, 140).unwrap();
        let records = state
            .rows(
                "shop.orders",
                Some(&layout),
                rows(RowsKind::Insert, &[1, 2]),
                0,
            )
            .unwrap();
        hand_over_all(&mut state, records);
        let ended = state
            .xa_prepare(
                XaPrepare {
                    one_phase: true,
                    xid: "X'61',X'',1".into(),
                },
                200,
            )
            .unwrap();
        assert_eq!(ids(&ended.records), ["0-1-5.0", "0-1-5.1"]);
        assert_eq!(ended.commit.hold, None);
        state.committed(ended.commit);

        state.begin(&gtid_event(6, false), 200, 1, 240).unwrap();
        let err = state.xa_prepare(prepare("X'62',X'',1"), 300).unwrap_err();
        assert!(
            err.to_string().contains("did not announce an XA prepare"),
            "{err}"
        );
        assert!(state.in_transaction(), "the group stays open");
    }

    #[test]
    fn a_gtid_given_to_another_transaction_after_a_crash_is_refused_not_skipped() {
        let mut progress = by_file("bin.000001", 4);
        {
            // A committed transaction too large to hold, read the second
            // time: two rows went out, then the connection ended.
            let mut state = TxnState::new(&mut progress, 7, "bin.000001");
            state.read_again(ReadAgain {
                gtid: gtid(5),
                withdrawn: Vec::new(),
            });
            state.begin(&gtid_event(5, false), 100, 1_000, 150).unwrap();
            for record in take_all(&mut state, 5, &[0, 1], 100) {
                state.handed_over(record.gtid, record.row_index);
            }
        }
        {
            // The same transaction read again (same GTID, same time): its
            // first two rows are skipped as before.
            let mut state = TxnState::new(&mut progress, 7, "bin.000001");
            state.begin(&gtid_event(5, false), 100, 1_000, 150).unwrap();
        }
        let mut state = TxnState::new(&mut progress, 7, "bin.000002");
        // Another transaction under GTID 0-1-5 (written at another time).
        let err = state
            .begin(&gtid_event(5, false), 300, 2_000, 350)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("transaction 0-1-5 was being read")
                && err.contains("after 2 of its rows were published")
                && err.contains("0-1-5.0 to 0-1-5.1"),
            "{err}"
        );
    }

    #[test]
    fn rollback_to_a_savepoint_withdraws_what_followed_it() {
        let mut progress = by_file("bin.000001", 4);
        let mut state = TxnState::new(&mut progress, 7, "bin.000001");
        state.begin(&gtid_event(5, false), 100, 1, 150).unwrap();
        assert!(state.query("START TRANSACTION", 160).is_none());
        take_all(&mut state, 5, &[0], 100);
        assert!(state.query("SAVEPOINT `a`", 200).is_none());
        take_all(&mut state, 5, &[1], 100);
        assert!(state.query("SAVEPOINT `b`", 220).is_none());
        take_all(&mut state, 5, &[2], 100);
        assert!(state.query("ROLLBACK TO `b`", 240).is_none());
        take_all(&mut state, 5, &[3], 100);
        // Back to `a`: rows 1 and 3 go, and `b` with them.
        assert!(state.query("ROLLBACK TO `a`", 260).is_none());
        assert!(state.query("ROLLBACK TO `b`", 270).is_none(), "b is gone");
        take_all(&mut state, 5, &[4], 100);
        assert!(state.query("ROLLBACK TO SAVEPOINT `a`", 280).is_none());
        take_all(&mut state, 5, &[5], 100);
        let ended = state.xid(400).expect("XID ends it");
        assert_eq!(ids(&ended.records), ["0-1-5.0", "0-1-5.5"]);
    }

    #[test]
    fn a_transaction_too_large_to_hold_is_read_to_its_end_then_again_from_its_start() {
        let mut progress = by_file("bin.000001", 4);
        let chunk = HOLD_LIMIT_BYTES / 4;
        let plan = {
            let mut state = TxnState::new(&mut progress, 7, "bin.000001");
            state.begin(&gtid_event(5, false), 100, 1, 150).unwrap();
            // First reading: past the limit nothing is kept or handed over.
            assert!(take_all(&mut state, 5, &[0, 1, 2, 3, 4], chunk).is_empty());
            assert!(state.query("SAVEPOINT `s`", 0).is_none());
            assert!(take_all(&mut state, 5, &[5, 6], chunk).is_empty());
            assert!(state.query("ROLLBACK TO `s`", 0).is_none());
            assert!(take_all(&mut state, 5, &[7], chunk).is_empty());
            let ended = state.xid(400).expect("XID ends it");
            assert!(ended.records.is_empty());
            let plan = ended.read_again.expect("committed: read it again");
            assert_eq!(plan.withdrawn, vec![5..7]);
            state.read_again(plan.clone());
            plan
        };
        assert_eq!(
            progress.position.to_string(),
            "@bin.000001:4",
            "nothing committed: the next session starts before the group"
        );
        // Second reading: every row but the withdrawn ones goes out at once.
        let mut state = TxnState::new(&mut progress, 7, "bin.000001");
        state.begin(&gtid_event(5, false), 100, 1, 150).unwrap();
        let out = take_all(&mut state, 5, &[0, 1, 2, 3, 4, 5, 6, 7], chunk);
        assert_eq!(
            ids(&out),
            ["0-1-5.0", "0-1-5.1", "0-1-5.2", "0-1-5.3", "0-1-5.4", "0-1-5.7"]
        );
        assert!(state.query("ROLLBACK TO `s`", 0).is_none());
        let ended = state.xid(400).expect("XID ends it");
        assert!(ended.records.is_empty() && ended.read_again.is_none());
        state.committed(ended.commit);
        assert!(state.progress().read_again.is_none(), "{plan:?} done");

        // A group too large to hold that ends in ROLLBACK is not read again.
        state.begin(&gtid_event(6, false), 400, 1, 450).unwrap();
        take_all(&mut state, 6, &[0, 1, 2, 3, 4], chunk);
        let ended = state.query("ROLLBACK", 600).expect("ROLLBACK ends it");
        assert!(ended.records.is_empty() && ended.read_again.is_none());
    }

    #[test]
    fn a_transaction_cut_off_in_the_binlog_is_dropped_unless_it_already_went_out() {
        let mut progress = by_file("bin.000001", 4);
        let mut state = TxnState::new(&mut progress, 7, "bin.000001");
        state.begin(&gtid_event(5, false), 100, 1, 150).unwrap();
        take_all(&mut state, 5, &[0, 1], 100);
        // A crash while 0-1-5 was written: the next GTID arrives first.
        state.begin(&gtid_event(6, false), 300, 1, 350).unwrap();
        take_all(&mut state, 6, &[0], 100);
        let ended = state.xid(400).expect("XID ends 0-1-6");
        assert_eq!(ids(&ended.records), ["0-1-6.0"], "nothing of 0-1-5");
        state.committed(ended.commit);
        assert_eq!(
            state.progress().position.to_string(),
            "0-1-6@bin.000001:400"
        );

        // Read the second time, a group was seen committed: a GTID before
        // its end means the binlog changed between the readings, after rows
        // went out. A definite error that says so.
        state.read_again(ReadAgain {
            gtid: gtid(7),
            withdrawn: Vec::new(),
        });
        state.begin(&gtid_event(7, false), 400, 1, 450).unwrap();
        let out = take_all(&mut state, 7, &[0, 1], 100);
        assert_eq!(out.len(), 2);
        let err = state
            .begin(&gtid_event(8, false), 600, 1, 650)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("binlog at bin.000001:650 (transaction 0-1-7): GTID 0-1-8 begins before transaction 0-1-7 ended")
                && err.contains("the binlog changed between the two readings"),
            "{err}"
        );
    }

    #[test]
    fn uncounted_rows_refuse_a_later_tailed_insert_and_nothing_else() {
        let layout = orders();
        let mut progress = by_file("bin.000001", 4);
        let mut state = TxnState::new(&mut progress, 7, "bin.000001");
        assert!(state.uncounted_rows(10).is_err(), "outside a transaction");
        state.begin(&gtid_event(5, false), 100, 1, 150).unwrap();
        state.uncounted_rows(200).unwrap();
        assert!(state
            .rows("shop.other", None, rows(RowsKind::Insert, &[1]), 250)
            .is_ok());
        assert!(state
            .rows(
                "shop.orders",
                Some(&layout),
                rows(RowsKind::Update, &[1]),
                260
            )
            .is_ok());
        let refused = state
            .rows(
                "shop.orders",
                Some(&layout),
                rows(RowsKind::Insert, &[1]),
                300,
            )
            .err()
            .expect("an insert whose index is unknown");
        assert!(matches!(refused, TxnError::Table { ref table, .. } if table == "shop.orders"));

        // The next transaction counts again.
        let commit = state.xid(400).unwrap().commit;
        state.committed(commit);
        state.begin(&gtid_event(6, false), 400, 1, 450).unwrap();
        let records = state
            .rows(
                "shop.orders",
                Some(&layout),
                rows(RowsKind::Insert, &[2]),
                500,
            )
            .unwrap();
        assert_eq!(ids(&hand_over_all(&mut state, records)), ["0-1-6.0"]);
    }

    #[test]
    fn rotations_move_the_position_only_between_transactions() {
        let mut progress = by_file("bin.000001", 400);
        let mut state = TxnState::new(&mut progress, 7, "bin.000001");
        state.rotate("bin.000001".into(), 400, true);
        assert_eq!(
            state.progress().position.to_string(),
            "@bin.000001:400",
            "the first, fake ROTATE"
        );

        state.begin(&gtid_event(1, false), 400, 1, 450).unwrap();
        state.rotate("bin.000002".into(), 4, false);
        assert_eq!(
            state.progress().position.to_string(),
            "@bin.000001:400",
            "not inside a transaction"
        );
        assert_eq!(state.at(0).file, "bin.000002");
        let commit = state.xid(500).unwrap().commit;
        state.committed(commit);

        state.rotate("bin.000003".into(), 4, false);
        assert_eq!(state.progress().position.to_string(), "0-1-1@bin.000003:4");
    }

    #[test]
    fn a_start_by_file_learns_its_gtid_state_from_the_gtid_list() {
        let mut progress = Progress::new(Start::Coord {
            coord: BinlogCoord::new("bin.000002", 4),
            gtid: None,
        });
        let mut state = TxnState::new(&mut progress, 7, "bin.000002");
        assert!(state.wants_gtid_list());
        state.gtid_list(vec![gtid(41)]);
        assert!(!state.wants_gtid_list());
        state.gtid_list(vec![gtid(1)]);
        assert_eq!(state.progress().position.to_string(), "0-1-41@bin.000002:4");
    }

    #[test]
    fn a_bounded_read_stops_once_its_end_is_read() {
        let mut progress = by_file("bin.000001", 4);
        progress.stop_at = Some(StopAt::Gtid("0-1-2".parse().unwrap()));
        let mut state = TxnState::new(&mut progress, 7, "bin.000001");
        for seq in 1..=2 {
            assert!(!state.progress().reached_stop());
            state.begin(&gtid_event(seq, false), 4, 1, 10).unwrap();
            let commit = state.xid(seq * 100).unwrap().commit;
            state.committed(commit);
        }
        assert!(state.progress().reached_stop());
    }
}
