//! Where a run, a replay or `checkpoint set` starts and stops: the stored
//! checkpoint or `start.from` for a run; an operator's target (`#N`, a GTID
//! state, `file:offset`, a time) for replays and rewinds.
//!
//! # Policy
//! - A stored checkpoint wins over `start.from`. It resumes by GTID unless
//!   `start.resume_by = "file"`; a file coordinate is only used on the server
//!   it was read from (the same `@@server_id`), since files and offsets mean
//!   nothing on another server. A checkpoint read from this very server
//!   must still be in its binlog (not so after `RESET MASTER`, whose new
//!   GTIDs repeat old ones): otherwise the run is refused.
//! - `start.from`: `latest` (the server's GTID state, or its binlog end
//!   without GTIDs), `earliest` (its oldest binlog), a GTID state, or a
//!   `file:offset` the server knows (`BINLOG_GTID_POS` is not NULL).
//! - Nothing is guessed: a position the server does not have is an error
//!   naming it and what to give instead.

use mysql_async::Conn;

use crate::checkpoint::{Checkpoint, Store, StoreError};
use crate::config::{Config, ResumeBy, StartFrom};
use crate::map::rfc3339_seconds;
use crate::position::{BinlogCoord, GtidState, Position, Start, StopAt, Target};
use crate::source::{self, ServerInfo, SourceError};

/// Why no start (or end) could be decided.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "the checkpoint {position} was read from server_id {checkpoint_server_id}, but this server is \
         server_id {server_id}: binlog files and offsets mean nothing on another server. Resume by GTID \
         (start.resume_by = \"gtid\") to move between servers of one replication topology"
    )]
    OtherServer {
        position: Position,
        checkpoint_server_id: u32,
        server_id: u32,
    },
    #[error(
        "the checkpoint {0} has no binlog file coordinate, so start.resume_by = \"file\" cannot \
         use it; resume by GTID"
    )]
    NoCoordinate(Position),
    #[error(
        "the checkpoint {position} was read from this server (server_id {server_id}), but its \
         binlog no longer holds it: {found}. The binlog was reset (RESET MASTER) or the server \
         was rebuilt under the same server_id, so its GTIDs may repeat ones already published and \
         resuming would skip new transactions. Nothing was read. To publish what the server has \
         now, give the tailer a new checkpoint store (another checkpoint.dir, start.from = \
         \"earliest\"; a new store never takes the old records in the topic for its own), or \
         move this one with `binlog-tailer checkpoint set <position>`"
    )]
    BinlogReset {
        position: Position,
        server_id: u32,
        found: String,
    },
    #[error("the server reports no binlog position (SHOW MASTER STATUS is empty): is log_bin on?")]
    NoMasterStatus,
    #[error("the server lists no binary logs (SHOW BINARY LOGS is empty): is log_bin on?")]
    NoBinaryLogs,
    #[error(
        "start.from = {0}: the server has no such binlog position (BINLOG_GTID_POS is NULL); \
         use a file from SHOW BINARY LOGS and an offset where a transaction begins or ends. \
         (BINLOG_GTID_POS is also NULL past an event larger than the server's \
         max_allowed_packet in that file: then raise max_allowed_packet, or start by GTID state)"
    )]
    NoSuchStart(BinlogCoord),
    #[error(
        "the server has no binlog position {0} (BINLOG_GTID_POS is NULL); use a file from \
         SHOW BINARY LOGS and an offset where a transaction begins or ends. (BINLOG_GTID_POS \
         is also NULL past an event larger than the server's max_allowed_packet in that file: \
         then raise max_allowed_packet, or give a GTID state)"
    )]
    NoSuchTarget(BinlogCoord),
    #[error("the history has no entry #{0}; see `binlog-tailer checkpoint list`")]
    NoEntry(u64),
    #[error(
        "no stored checkpoint committed at or before {}; see `binlog-tailer checkpoint list`",
        rfc3339_seconds(*.0)
    )]
    NothingBefore(i64),
    #[error("there is no checkpoint store yet")]
    NoStore,
    #[error(
        "start.from = \"snapshot\" is taken by `run` before it streams, and the store holds no \
         finished snapshot; this is a bug"
    )]
    SnapshotNotTaken,
    #[error("there is no live checkpoint to replay up to; give --to")]
    NoLiveCheckpoint,
    #[error("--to names no position")]
    NoEnd,
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A checkpoint read from this very server must still be in its binlog:
/// after `RESET MASTER` (or a server rebuilt under the same `server_id`)
/// sequence numbers start again, and resuming by GTID would silently skip
/// the new transactions that reuse the old numbers. The server refuses a
/// GTID it does not have, but not one it has written again.
///
/// The checkpoint's file coordinate tells: its file is newer than the
/// server's newest, or the server places another GTID state at that
/// coordinate. A checkpoint from another server (a failover) cannot be
/// checked this way and is not.
async fn check_binlog_not_reset(
    cp: &Checkpoint,
    info: &ServerInfo,
    conn: &mut Conn,
) -> Result<(), StartError> {
    let Some(coord) = &cp.position.coord else {
        return Ok(());
    };
    if cp.source_server_id != info.server_id {
        return Ok(());
    }
    let reset = |found: String| StartError::BinlogReset {
        position: cp.position.clone(),
        server_id: info.server_id,
        found,
    };
    let files = source::binlog_files(conn).await?;
    if files.contains(&coord.file) {
        // A checkpoint always lies where an event begins (or at the file's
        // end); in a reset binlog the offset falls inside an event or past
        // the end.
        if let Some(why) = source::no_event_at(conn, coord).await? {
            return Err(reset(format!(
                "no event begins at {coord} in the server's binlog now ({why})"
            )));
        }
        // NULL (no answer) proves nothing: MariaDB also answers NULL past an
        // event over max_allowed_packet.
        if let Some(there) = source::gtid_at(conn, coord).await? {
            let differs: Vec<String> = cp
                .position
                .gtid
                .iter()
                .filter_map(|ours| {
                    let theirs = there.get(ours.domain)?;
                    (theirs != ours).then(|| format!("{theirs} where the checkpoint has {ours}"))
                })
                .collect();
            if !differs.is_empty() {
                return Err(reset(format!(
                    "at {coord} the server's binlog now has {}",
                    differs.join(", ")
                )));
            }
        }
        return Ok(());
    }
    // Coordinates order by file index (of one base name), then offset.
    let newer_than_all = files
        .last()
        .is_some_and(|newest| *coord > BinlogCoord::new(newest.clone(), u64::MAX));
    if newer_than_all {
        return Err(reset(format!(
            "its file {} is newer than the server's newest binlog, {}",
            coord.file,
            files.last().map_or("", String::as_str)
        )));
    }
    Ok(())
}

/// Where `run` starts: after the stored checkpoint, else as `start.from` says.
///
/// # Errors
/// [`StartError`] when the checkpoint cannot be used on this server or the
/// server lacks the position asked for.
pub async fn resolve_start(
    config: &Config,
    stored: Option<&Checkpoint>,
    info: &ServerInfo,
    conn: &mut Conn,
) -> Result<Start, StartError> {
    if let Some(cp) = stored {
        check_binlog_not_reset(cp, info, conn).await?;
        return match (config.start.resume_by, &cp.position.coord) {
            (ResumeBy::Gtid, _) if !cp.position.gtid.is_empty() => {
                Ok(Start::Gtid(cp.position.gtid.clone()))
            }
            (_, Some(coord)) => {
                if cp.source_server_id != info.server_id {
                    return Err(StartError::OtherServer {
                        position: cp.position.clone(),
                        checkpoint_server_id: cp.source_server_id,
                        server_id: info.server_id,
                    });
                }
                Ok(Start::Coord {
                    coord: coord.clone(),
                    gtid: Some(cp.position.gtid.clone()),
                })
            }
            (_, None) => Err(StartError::NoCoordinate(cp.position.clone())),
        };
    }
    match &config.start.from {
        StartFrom::Gtid(state) => Ok(Start::Gtid(state.clone())),
        StartFrom::Latest => {
            let state = source::gtid_binlog_pos(conn).await?;
            if !state.is_empty() {
                return Ok(Start::Gtid(state));
            }
            let coord = source::master_coord(conn)
                .await?
                .ok_or(StartError::NoMasterStatus)?;
            Ok(Start::Coord {
                coord,
                gtid: Some(GtidState::new()),
            })
        }
        StartFrom::Earliest => {
            let files = source::binlog_files(conn).await?;
            let first = files.first().ok_or(StartError::NoBinaryLogs)?;
            let coord = BinlogCoord::new(first.clone(), 4);
            let gtid = source::gtid_at(conn, &coord).await?;
            Ok(Start::Coord { coord, gtid })
        }
        StartFrom::Snapshot => Err(StartError::SnapshotNotTaken),
        StartFrom::Coord(coord) => {
            let gtid = source::gtid_at(conn, coord).await?;
            if gtid.is_none() {
                return Err(StartError::NoSuchStart(coord.clone()));
            }
            Ok(Start::Coord {
                coord: coord.clone(),
                gtid,
            })
        }
    }
}

/// Resolves an operator's target to a position: history entries and times
/// through the store, file coordinates through the server.
///
/// # Errors
/// [`StartError`] when the store or the server has no such point.
pub async fn resolve_target(
    target: &Target,
    store: Option<&Store>,
    conn: &mut Conn,
) -> Result<Position, StartError> {
    match target {
        Target::Entry(n) => {
            let store = store.ok_or(StartError::NoStore)?;
            store
                .history_entry(*n)?
                .map(|(_, cp)| cp.position)
                .ok_or(StartError::NoEntry(*n))
        }
        Target::Time(t) => {
            let store = store.ok_or(StartError::NoStore)?;
            store
                .newest_at_or_before(*t)?
                .map(|(_, cp)| cp.position)
                .ok_or(StartError::NothingBefore(*t))
        }
        Target::Gtid(state) => Ok(Position {
            gtid: state.clone(),
            coord: None,
        }),
        Target::Coord(coord) => match source::gtid_at(conn, coord).await? {
            Some(gtid) => Ok(Position {
                gtid,
                coord: Some(coord.clone()),
            }),
            None => Err(StartError::NoSuchTarget(coord.clone())),
        },
    }
}

/// Where a replay ends: `to` when given, else the live checkpoint.
///
/// # Errors
/// [`StartError`] when `to` cannot be resolved, or neither it nor a live
/// checkpoint names a position.
pub async fn replay_end(
    to: Option<&Target>,
    store: Option<&Store>,
    conn: &mut Conn,
) -> Result<StopAt, StartError> {
    let end = match to {
        Some(to) => resolve_target(to, store, conn).await?,
        None => store
            .map(Store::current)
            .transpose()?
            .flatten()
            .map(|c| c.position)
            .ok_or(StartError::NoLiveCheckpoint)?,
    };
    if end.gtid.is_empty() {
        match end.coord {
            Some(coord) => Ok(StopAt::Coord(coord)),
            None => Err(StartError::NoEnd),
        }
    } else {
        Ok(StopAt::Gtid(end.gtid))
    }
}
