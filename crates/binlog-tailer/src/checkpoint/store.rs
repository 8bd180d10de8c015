//! The store itself: one SQLite file, its format, and every read and write.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use crate::frontier::Identity;
use crate::position::Position;

/// File name of the store inside the state directory.
pub const FILE_NAME: &str = "checkpoint.sqlite3";
/// `PRAGMA application_id` of our files: "BTLR".
const APPLICATION_ID: i64 = 0x4254_4C52;
/// `PRAGMA user_version`: the format written by this build.
const FORMAT_VERSION: i64 = 1;

/// One saved position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub position: Position,
    /// `@@server_id` of the server the position was read from: binlog file
    /// coordinates mean something on that server only.
    pub source_server_id: u32,
    /// Commit time (binlog timestamp, Unix seconds) of the last transaction
    /// the position includes; `None` when no transaction was read yet.
    pub commit_time: Option<i64>,
    /// When it was written, Unix milliseconds.
    pub written_at_ms: i64,
    /// Events published (and acknowledged) since the store was created.
    pub events_published: u64,
}

/// What went wrong with the store. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the state directory {dir}: {source}")]
    CreateDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("checkpoint store {path}: {source}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "checkpoint store {path} is not usable: {problem}. It was left untouched; \
         restore it from a backup, or move it away to start afresh (see `start.from`)"
    )]
    Unusable { path: PathBuf, problem: String },
    #[error(
        "another binlog-tailer is using the state directory {dir} (it holds {lock}); two tailers \
         sharing one checkpoint would overwrite each other's position. Stop the other one, or give \
         this one its own checkpoint.dir"
    )]
    Locked { dir: PathBuf, lock: PathBuf },
    #[error("cannot create the checkpoint store {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Name of the lock file inside the state directory.
pub const LOCK_FILE_NAME: &str = "checkpoint.lock";

/// How much history the store keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// At most this many entries.
    pub max_entries: u32,
    /// Entries older than this are dropped (the newest is always kept).
    pub max_age: std::time::Duration,
    /// A history entry is added at most this often (every save still moves
    /// the live position); deliberate moves are always recorded.
    pub every: std::time::Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            max_entries: 100_000,
            max_age: std::time::Duration::from_secs(7 * 24 * 3600),
            every: std::time::Duration::from_secs(10),
        }
    }
}

fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// An open store.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    retention: Retention,
    /// When this process last added a history entry, by the monotonic clock
    /// (`Retention::every` is an interval: a wall clock stepped back must not
    /// stop the history until it catches up).
    last_history: Option<std::time::Instant>,
    /// Held while a writable store is open: one writer per state directory.
    _lock: Option<std::fs::File>,
}

impl Store {
    /// Opens the store in `dir`, creating the directory and a fresh store if
    /// there is none.
    ///
    /// # Errors
    /// [`StoreError`] when the directory cannot be created, or the file exists
    /// and is not a sound store of this program.
    pub fn open(dir: &Path, retention: Retention) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            dir: dir.to_owned(),
            source,
        })?;
        let lock = lock_dir(dir)?;
        let path = dir.join(FILE_NAME);
        if !path.exists() {
            create_file(dir, &path)?;
        }
        let conn = Connection::open(&path).map_err(|source| StoreError::Sqlite {
            path: path.clone(),
            source,
        })?;
        let store = Store {
            conn,
            path,
            retention: Retention {
                max_entries: retention.max_entries.max(1),
                ..retention
            },
            last_history: None,
            _lock: Some(lock),
        };
        store.verify()?;
        store.pragmas()?;
        store.ensure_id()?;
        Ok(store)
    }

    /// Opens an existing store read-only, for inspection; `None` when `dir`
    /// holds none.
    ///
    /// # Errors
    /// As [`Store::open`].
    pub fn open_existing(dir: &Path) -> Result<Option<Store>, StoreError> {
        let path = dir.join(FILE_NAME);
        if !path.exists() {
            return Ok(None);
        }
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|source| StoreError::Sqlite {
            path: path.clone(),
            source,
        })?;
        let store = Store {
            conn,
            path,
            retention: Retention::default(),
            last_history: None,
            _lock: None,
        };
        store.verify()?;
        Ok(Some(store))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn sqlite(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        |source| StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    fn unusable(&self, problem: impl Into<String>) -> StoreError {
        StoreError::Unusable {
            path: self.path.clone(),
            problem: problem.into(),
        }
    }

    fn create_schema(conn: &Connection) -> rusqlite::Result<()> {
        conn.execute_batch(&format!(
            "PRAGMA application_id = {APPLICATION_ID};
                 BEGIN;
                 CREATE TABLE live (
                     id INTEGER PRIMARY KEY CHECK (id = 1),
                     position TEXT NOT NULL,
                     source_server_id INTEGER NOT NULL,
                     commit_time INTEGER,
                     written_at_ms INTEGER NOT NULL,
                     events_published INTEGER NOT NULL
                 );
                 CREATE TABLE history (
                     seq INTEGER PRIMARY KEY AUTOINCREMENT,
                     position TEXT NOT NULL,
                     source_server_id INTEGER NOT NULL,
                     commit_time INTEGER,
                     written_at_ms INTEGER NOT NULL,
                     events_published INTEGER NOT NULL
                 );
                 CREATE INDEX history_by_commit_time ON history (commit_time);
                 PRAGMA user_version = {FORMAT_VERSION};
                 COMMIT;"
        ))
    }

    fn verify(&self) -> Result<(), StoreError> {
        let app_id: i64 = self
            .conn
            .query_row("PRAGMA application_id", [], |r| r.get(0))
            .map_err(|e| self.unusable(format!("not a readable SQLite database ({e})")))?;
        if app_id != APPLICATION_ID {
            return Err(self.unusable(format!(
                "not a binlog-tailer checkpoint store (application_id {app_id:#x})"
            )));
        }
        let version: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(self.sqlite())?;
        if version != FORMAT_VERSION {
            return Err(self.unusable(format!(
                "format version {version}; this build reads version {FORMAT_VERSION}"
            )));
        }
        let check: String = self
            .conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(|e| self.unusable(format!("integrity check failed ({e})")))?;
        if check != "ok" {
            return Err(self.unusable(format!("integrity check: {check}")));
        }
        // The stored position must parse: a store we cannot read is not a
        // store we may write over.
        self.current()?;
        Ok(())
    }

    fn pragmas(&self) -> Result<(), StoreError> {
        self.conn
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
                 CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
                 CREATE TABLE IF NOT EXISTS snapshot (name TEXT PRIMARY KEY, state TEXT NOT NULL);",
            )
            .map_err(self.sqlite())
    }

    /// The epoch: how many times the live position was moved on purpose
    /// (`checkpoint set`). Records carry it, so that the records of an
    /// earlier epoch do not stop a rewind from publishing again.
    ///
    /// # Errors
    /// When the store cannot be read.
    pub fn epoch(&self) -> Result<u64, StoreError> {
        Ok(self
            .meta("epoch")?
            .and_then(|e| u64::try_from(e).ok())
            .unwrap_or(0))
    }

    /// Gives a writable store its random id if it has none. A store that
    /// already holds a checkpoint then was made before ids existed: its
    /// records carry no `binlog.store` header, so it is marked legacy (see
    /// `frontier`).
    fn ensure_id(&self) -> Result<(), StoreError> {
        if self.meta("store_id")?.is_some() {
            return Ok(());
        }
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes)
            .map_err(|e| self.unusable(format!("no random store id from the system: {e}")))?;
        // Positive, so that it reads back the same from SQLite's INTEGER.
        let id = i64::from_le_bytes(bytes) & i64::MAX;
        let legacy = self.current()?.is_some();
        self.conn
            .execute(
                "INSERT INTO meta (key, value) VALUES ('store_id', ?1), ('legacy', ?2)",
                params![id, i64::from(legacy)],
            )
            .map_err(self.sqlite())?;
        Ok(())
    }

    fn meta(&self, key: &str) -> Result<Option<i64>, StoreError> {
        let has_meta: bool = self
            .conn
            .query_row(
                "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'meta'",
                [],
                |r| r.get(0),
            )
            .map_err(self.sqlite())?;
        if !has_meta {
            return Ok(None);
        }
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(self.sqlite())
    }

    /// The progress of the snapshot `name` (see `snapshot`), as saved.
    ///
    /// # Errors
    /// When the store cannot be read.
    pub fn snapshot_state(&self, name: &str) -> Result<Option<String>, StoreError> {
        let has_table: bool = self
            .conn
            .query_row(
                "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'snapshot'",
                [],
                |r| r.get(0),
            )
            .map_err(self.sqlite())?;
        if !has_table {
            return Ok(None);
        }
        self.conn
            .query_row("SELECT state FROM snapshot WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()
            .map_err(self.sqlite())
    }

    /// Saves the progress of the snapshot `name`, durably.
    ///
    /// # Errors
    /// When the write fails; the previous progress then stays in force.
    pub fn save_snapshot_state(&mut self, name: &str, state: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO snapshot (name, state) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET state = ?2",
                params![name, state],
            )
            .map_err(self.sqlite())?;
        Ok(())
    }

    /// Which store, in which epoch, publishes the live records (their
    /// `binlog.store` and `binlog.epoch` headers).
    ///
    /// # Errors
    /// When the store cannot be read, or has no id (a store opened
    /// read-only that no build with ids has written yet).
    pub fn identity(&self) -> Result<Identity, StoreError> {
        let store = self
            .meta("store_id")?
            .and_then(|id| u64::try_from(id).ok())
            .ok_or_else(|| self.unusable("it has no store id; open it for writing first"))?;
        Ok(Identity {
            store,
            epoch: self.epoch()?,
            legacy: self.meta("legacy")?.unwrap_or(0) != 0,
        })
    }

    /// The live checkpoint, if any.
    ///
    /// # Errors
    /// When it cannot be read or does not parse.
    pub fn current(&self) -> Result<Option<Checkpoint>, StoreError> {
        let row = self
            .conn
            .query_row(
                "SELECT position, source_server_id, commit_time, written_at_ms, events_published
                 FROM live WHERE id = 1",
                [],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, u32>(1)?,
                        r.get::<_, Option<i64>>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, i64>(4)?,
                    ))
                },
            )
            .optional()
            .map_err(self.sqlite())?;
        row.map(|row| self.checkpoint_from(row)).transpose()
    }

    fn checkpoint_from(
        &self,
        (position, source_server_id, commit_time, written_at_ms, events): (
            String,
            u32,
            Option<i64>,
            i64,
            i64,
        ),
    ) -> Result<Checkpoint, StoreError> {
        let position = position
            .parse()
            .map_err(|e| self.unusable(format!("stored position: {e}")))?;
        Ok(Checkpoint {
            position,
            source_server_id,
            commit_time,
            written_at_ms,
            events_published: u64::try_from(events).unwrap_or(0),
        })
    }

    /// The newest `limit` history entries, newest first, with their numbers.
    ///
    /// # Errors
    /// When the store cannot be read.
    pub fn history(&self, limit: u32) -> Result<Vec<(u64, Checkpoint)>, StoreError> {
        self.history_where("1 = 1 ORDER BY seq DESC LIMIT ?1", limit as i64)
    }

    /// History entry number `seq`.
    ///
    /// # Errors
    /// When the store cannot be read.
    pub fn history_entry(&self, seq: u64) -> Result<Option<(u64, Checkpoint)>, StoreError> {
        Ok(self
            .history_where("seq = ?1", i64::try_from(seq).unwrap_or(i64::MAX))?
            .into_iter()
            .next())
    }

    /// The newest history entry whose transaction committed at or before
    /// `unix_seconds`.
    ///
    /// # Errors
    /// When the store cannot be read.
    pub fn newest_at_or_before(
        &self,
        unix_seconds: i64,
    ) -> Result<Option<(u64, Checkpoint)>, StoreError> {
        Ok(self
            .history_where(
                "commit_time IS NOT NULL AND commit_time <= ?1 ORDER BY commit_time DESC, seq DESC LIMIT 1",
                unix_seconds,
            )?
            .into_iter()
            .next())
    }

    fn history_where(
        &self,
        condition: &str,
        arg: i64,
    ) -> Result<Vec<(u64, Checkpoint)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT seq, position, source_server_id, commit_time, written_at_ms, events_published
                 FROM history WHERE {condition}"
            ))
            .map_err(self.sqlite())?;
        let rows = stmt
            .query_map([arg], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    (
                        r.get::<_, String>(1)?,
                        r.get::<_, u32>(2)?,
                        r.get::<_, Option<i64>>(3)?,
                        r.get::<_, i64>(4)?,
                        r.get::<_, i64>(5)?,
                    ),
                ))
            })
            .map_err(self.sqlite())?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.sqlite())?;
        rows.into_iter()
            .map(|(seq, r)| Ok((u64::try_from(seq).unwrap_or(0), self.checkpoint_from(r)?)))
            .collect()
    }

    /// Moves the live position on purpose (a rewind or a jump), records it in
    /// the history, and starts a new epoch: records published before do not
    /// count as already published from now on. Returns the new epoch.
    ///
    /// # Errors
    /// When the write fails; nothing changes then.
    pub fn set_live(&mut self, checkpoint: &Checkpoint) -> Result<u64, StoreError> {
        let epoch = self.epoch()? + 1;
        self.write(checkpoint, Some(epoch))?;
        Ok(epoch)
    }

    /// Makes `checkpoint` the live position and appends it to the history,
    /// atomically and durably.
    ///
    /// # Errors
    /// When the write fails; the previous checkpoint then stays in force.
    pub fn save(&mut self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        self.write(checkpoint, None)
    }

    fn write(&mut self, checkpoint: &Checkpoint, new_epoch: Option<u64>) -> Result<(), StoreError> {
        let path = self.path.clone();
        let sqlite = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(sqlite)?;
        let position = checkpoint.position.to_string();
        let events = i64::try_from(checkpoint.events_published).unwrap_or(i64::MAX);
        tx.execute(
            "INSERT INTO live (id, position, source_server_id, commit_time, written_at_ms, events_published)
             VALUES (1, ?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (id) DO UPDATE SET position = ?1, source_server_id = ?2,
                 commit_time = ?3, written_at_ms = ?4, events_published = ?5",
            params![
                position,
                checkpoint.source_server_id,
                checkpoint.commit_time,
                checkpoint.written_at_ms,
                events
            ],
        )
        .map_err(sqlite)?;
        let newest: Option<i64> = tx
            .query_row("SELECT MAX(written_at_ms) FROM history", [], |r| r.get(0))
            .map_err(sqlite)?;
        let due = match self.last_history {
            Some(at) => at.elapsed() >= self.retention.every,
            // The first entry of this process: by the stored time, unless
            // that lies ahead of the clock (which then went back).
            None => newest.is_none_or(|t| {
                let age = checkpoint.written_at_ms - t;
                age < 0 || age >= millis(self.retention.every)
            }),
        };
        if due || new_epoch.is_some() {
            tx.execute(
                "INSERT INTO history (position, source_server_id, commit_time, written_at_ms, events_published)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    position,
                    checkpoint.source_server_id,
                    checkpoint.commit_time,
                    checkpoint.written_at_ms,
                    events
                ],
            )
            .map_err(sqlite)?;
            tx.execute(
                "DELETE FROM history WHERE seq <= (SELECT MAX(seq) FROM history) - ?1
                    OR (written_at_ms < ?2 AND seq < (SELECT MAX(seq) FROM history))",
                params![
                    self.retention.max_entries,
                    checkpoint.written_at_ms - millis(self.retention.max_age)
                ],
            )
            .map_err(sqlite)?;
        }
        if let Some(epoch) = new_epoch {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('epoch', ?1)
                 ON CONFLICT (key) DO UPDATE SET value = ?1",
                [i64::try_from(epoch).unwrap_or(i64::MAX)],
            )
            .map_err(sqlite)?;
        }
        tx.commit().map_err(sqlite)?;
        if due || new_epoch.is_some() {
            self.last_history = Some(std::time::Instant::now());
        }
        Ok(())
    }
}

/// Takes the state directory's lock, or says who holds it.
fn lock_dir(dir: &Path) -> Result<std::fs::File, StoreError> {
    let lock = dir.join(LOCK_FILE_NAME);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock)
        .map_err(|source| StoreError::Create {
            path: lock.clone(),
            source,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Locked {
            dir: dir.to_owned(),
            lock,
        }),
        Err(std::fs::TryLockError::Error(source)) => Err(StoreError::Create { path: lock, source }),
    }
}

/// Creates a fresh store so that `path` appears complete or not at all: the
/// schema is written to a side file, synced, and renamed into place. A reader
/// never sees a half-made store.
fn create_file(dir: &Path, path: &Path) -> Result<(), StoreError> {
    let side = dir.join(format!("{FILE_NAME}.creating"));
    let io = |source| StoreError::Create {
        path: path.to_owned(),
        source,
    };
    // A side file left by a crash during creation never held a checkpoint.
    match std::fs::remove_file(&side) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
        _ => {}
    }
    {
        let conn = Connection::open(&side).map_err(|source| StoreError::Sqlite {
            path: side.clone(),
            source,
        })?;
        Store::create_schema(&conn).map_err(|source| StoreError::Sqlite {
            path: side.clone(),
            source,
        })?;
        // Back to a single file before the rename.
        conn.execute_batch("PRAGMA journal_mode = DELETE;")
            .map_err(|source| StoreError::Sqlite {
                path: side.clone(),
                source,
            })?;
    }
    std::fs::File::open(&side)
        .and_then(|f| f.sync_all())
        .map_err(io)?;
    std::fs::rename(&side, path).map_err(io)?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io)?;
    Ok(())
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_save(max_entries: u32) -> Retention {
        Retention {
            max_entries,
            every: std::time::Duration::ZERO,
            ..Retention::default()
        }
    }

    #[test]
    fn history_is_written_at_most_every_interval_and_aged_out() {
        let dir = temp_dir("every");
        let mut store = Store::open(
            &dir,
            Retention {
                max_entries: 100,
                max_age: std::time::Duration::from_secs(3600),
                every: std::time::Duration::from_secs(10),
            },
        )
        .unwrap();
        let at = |pos: &str, ms: i64| Checkpoint {
            written_at_ms: ms,
            ..cp(pos, 1)
        };
        let t0 = 1_700_000_000_000;
        store.save(&at("0-1-1", t0)).unwrap();
        store.save(&at("0-1-2", t0 + 4_000)).unwrap();
        store.last_history = ago(11);
        store.save(&at("0-1-3", t0 + 11_000)).unwrap();
        let kept: Vec<String> = store
            .history(10)
            .unwrap()
            .iter()
            .map(|(_, c)| c.position.to_string())
            .collect();
        assert_eq!(kept, ["0-1-3", "0-1-1"], "one entry per 10 s");
        assert_eq!(
            store.current().unwrap().unwrap().position.to_string(),
            "0-1-3"
        );
        store.last_history = ago(2 * 3600);
        store.save(&at("0-1-4", t0 + 2 * 3_600_000)).unwrap();
        let kept: Vec<String> = store
            .history(10)
            .unwrap()
            .iter()
            .map(|(_, c)| c.position.to_string())
            .collect();
        assert_eq!(kept, ["0-1-4"], "entries older than an hour are dropped");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// An instant `secs` seconds before now, by the monotonic clock.
    fn ago(secs: u64) -> Option<std::time::Instant> {
        std::time::Instant::now().checked_sub(std::time::Duration::from_secs(secs))
    }

    #[test]
    fn a_wall_clock_stepped_back_does_not_stop_the_history() {
        let dir = temp_dir("clock");
        let every = Retention {
            max_entries: 100,
            max_age: std::time::Duration::from_secs(7 * 24 * 3600),
            every: std::time::Duration::from_secs(10),
        };
        let at = |pos: &str, ms: i64| Checkpoint {
            written_at_ms: ms,
            ..cp(pos, 1)
        };
        let t0 = 1_700_000_000_000;
        {
            let mut store = Store::open(&dir, every).unwrap();
            store.save(&at("0-1-1", t0)).unwrap();
            // 11 s later by the monotonic clock, an hour earlier by the wall.
            store.last_history = ago(11);
            store.save(&at("0-1-2", t0 - 3_600_000)).unwrap();
            assert_eq!(store.history(10).unwrap().len(), 2);
        }
        // A new process whose wall clock is behind the newest entry.
        let mut store = Store::open(&dir, every).unwrap();
        store.save(&at("0-1-3", t0 - 7_200_000)).unwrap();
        assert_eq!(store.history(10).unwrap().len(), 3);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "bt-store-{name}-{}-{}",
            std::process::id(),
            now_ms()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn cp(pos: &str, events: u64) -> Checkpoint {
        Checkpoint {
            position: pos.parse().unwrap(),
            source_server_id: 2,
            commit_time: Some(1_700_000_000),
            written_at_ms: now_ms(),
            events_published: events,
        }
    }

    #[test]
    fn saves_survive_reopening_and_history_is_bounded() {
        let dir = temp_dir("reopen");
        {
            let mut store = Store::open(&dir, every_save(3)).unwrap();
            assert_eq!(store.current().unwrap(), None);
            for i in 1..=5 {
                store
                    .save(&cp(&format!("0-1-{i}@mariadb-bin.000001:{}", i * 100), i))
                    .unwrap();
            }
        }
        let store = Store::open(&dir, every_save(3)).unwrap();
        assert_eq!(
            store.current().unwrap(),
            Some(cp("0-1-5@mariadb-bin.000001:500", 5)).map(|mut c| {
                c.written_at_ms = store.current().unwrap().unwrap().written_at_ms;
                c
            })
        );
        let history = store.history(100).unwrap();
        let positions: Vec<String> = history
            .iter()
            .map(|(_, c)| c.position.to_string())
            .collect();
        assert_eq!(
            positions,
            [
                "0-1-5@mariadb-bin.000001:500",
                "0-1-4@mariadb-bin.000001:400",
                "0-1-3@mariadb-bin.000001:300"
            ]
        );
        let read_only = Store::open_existing(&dir).unwrap().unwrap();
        assert_eq!(read_only.current().unwrap().unwrap().events_published, 5);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_store_keeps_its_random_id_and_a_new_store_gets_another() {
        let dir = temp_dir("identity");
        let id = {
            let mut store = Store::open(&dir, every_save(100)).unwrap();
            store.save(&cp("0-1-10", 10)).unwrap();
            store.identity().unwrap()
        };
        assert!(!id.legacy, "a store with an id from its start");
        let again = Store::open(&dir, every_save(100))
            .unwrap()
            .identity()
            .unwrap();
        assert_eq!(again, id);
        let read_only = Store::open_existing(&dir).unwrap().unwrap();
        assert_eq!(read_only.identity().unwrap(), id);

        let other = temp_dir("identity-other");
        let other = Store::open(&other, every_save(100))
            .unwrap()
            .identity()
            .unwrap();
        assert_ne!(other.store, id.store);
        assert_eq!((other.epoch, id.epoch), (0, 0));
    }

    #[test]
    fn a_store_from_before_ids_is_legacy() {
        let dir = temp_dir("legacy");
        {
            let mut store = Store::open(&dir, every_save(100)).unwrap();
            store.save(&cp("0-1-10", 10)).unwrap();
            // As a build without ids left it.
            store
                .conn
                .execute("DELETE FROM meta WHERE key IN ('store_id', 'legacy')", [])
                .unwrap();
        }
        let id = Store::open(&dir, every_save(100))
            .unwrap()
            .identity()
            .unwrap();
        assert!(id.legacy);
    }

    #[test]
    fn setting_the_live_position_starts_a_new_epoch() {
        let dir = temp_dir("epoch");
        let mut store = Store::open(&dir, every_save(100)).unwrap();
        assert_eq!(store.epoch().unwrap(), 0);
        store.save(&cp("0-1-10", 10)).unwrap();
        store.save(&cp("0-1-20", 20)).unwrap();
        let (seq, first) = store.history(10).unwrap().pop().unwrap();
        assert_eq!(first.position.to_string(), "0-1-10");
        assert_eq!(store.history_entry(seq).unwrap().unwrap().1, first);
        assert_eq!(store.set_live(&first).unwrap(), 1);
        assert_eq!(store.epoch().unwrap(), 1);
        assert_eq!(
            store.current().unwrap().unwrap().position.to_string(),
            "0-1-10"
        );
        assert_eq!(
            store.history(10).unwrap().len(),
            3,
            "the move is in the history too"
        );
        assert!(store.newest_at_or_before(1_699_999_999).unwrap().is_none());
        assert!(store.newest_at_or_before(1_700_000_000).unwrap().is_some());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn one_writer_per_state_directory() {
        let dir = temp_dir("lock");
        let first = Store::open(&dir, every_save(10)).unwrap();
        let err = Store::open(&dir, every_save(10))
            .err()
            .expect("second writer refused");
        assert!(matches!(err, StoreError::Locked { .. }), "{err}");
        // Readers are welcome.
        assert!(Store::open_existing(&dir).unwrap().is_some());
        drop(first);
        assert!(
            Store::open(&dir, every_save(10)).is_ok(),
            "the lock goes with the store"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_store_is_no_checkpoint() {
        let dir = temp_dir("missing");
        assert!(Store::open_existing(&dir).unwrap().is_none());
    }

    #[test]
    fn corrupt_or_foreign_files_are_errors_and_left_untouched() {
        let dir = temp_dir("corrupt");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(FILE_NAME);

        let garbage = b"this is not a database, but it is somebody's file".repeat(100);
        std::fs::write(&path, &garbage).unwrap();
        let err = Store::open(&dir, every_save(10))
            .err()
            .expect("garbage refused")
            .to_string();
        assert!(err.contains("not usable"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), garbage, "file unchanged");

        // An empty file is not a fresh store either.
        std::fs::write(&path, b"").unwrap();
        let err = Store::open(&dir, every_save(10))
            .err()
            .expect("empty refused")
            .to_string();
        assert!(
            err.contains("not a binlog-tailer checkpoint store"),
            "{err}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"");

        // A real store with bytes flipped in the middle.
        std::fs::remove_file(&path).unwrap();
        {
            let mut store = Store::open(&dir, every_save(10)).unwrap();
            for i in 1..50 {
                store.save(&cp(&format!("0-1-{i}"), i)).unwrap();
            }
        }
        let _ = std::fs::remove_file(dir.join(format!("{FILE_NAME}-wal")));
        let mut bytes = std::fs::read(&path).unwrap();
        let len = bytes.len();
        for b in &mut bytes[len / 2..len / 2 + 64] {
            *b ^= 0x5a;
        }
        // Also break the header page's b-tree.
        for b in &mut bytes[100..160] {
            *b ^= 0xff;
        }
        std::fs::write(&path, &bytes).unwrap();
        assert!(
            Store::open(&dir, every_save(10)).is_err(),
            "corrupt store refused"
        );
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "file unchanged");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
