//! The table-id cache of one session: each TABLE_MAP parsed once (an
//! identical map announced again is recognised by its bytes and not parsed
//! again), and, for the tailed tables, how their rows are published
//! ([`TableLayout`], resolved from the map and the configuration).
//!
//! Table ids are the server's, valid within one connection: the cache is
//! cleared at every session start.
//!
//! Bounded: MariaDB writes the TABLE_MAP of every table a transaction uses
//! inside that transaction's group, before its rows, so a map announced in
//! an earlier group is never needed again; it is only kept to skip parsing
//! it once more. Past [`MAX_TABLES`] maps, the least recently announced
//! half of those from earlier groups is dropped (tables that come and go,
//! `FLUSH TABLES` giving every table a new id, many tables).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::error::{At, SourceError};
use crate::config::{Config, TableConfig};
use crate::decode::{self, CharsetMap, DecodeError, TableMap};
use crate::map::{ColumnLayout, Logical, TableLayout};

/// Table maps kept before the older ones are dropped.
pub const MAX_TABLES: usize = 4096;

/// Untailed tables remembered as undecodable (warned once each) before the
/// list starts again.
const MAX_UNDECODABLE: usize = 1024;

/// A parsed TABLE_MAP and, for tailed tables, how its rows are published.
pub struct KnownTable {
    pub map: Arc<TableMap>,
    /// `database.table`, as metrics and messages name it.
    pub name: String,
    /// The TABLE_MAP body it was parsed from, to skip re-parsing identical maps.
    raw: Vec<u8>,
    /// `Some` for a tailed table.
    pub layout: Option<Arc<TableLayout>>,
    /// When it was last announced (the cache's announcement counter).
    last_announced: u64,
}

/// The tables announced in the current session.
pub struct Tables {
    config: Arc<Config>,
    charsets: CharsetMap,
    known: HashMap<u64, KnownTable>,
    /// Untailed tables whose rows could not be decoded (warned once each).
    undecodable: HashSet<String>,
    /// TABLE_MAPs announced in this session.
    announced: u64,
    /// `announced` when the current transaction group began: maps announced
    /// since are in use and never dropped.
    group_start: u64,
}

impl Tables {
    pub fn new(config: Arc<Config>, charsets: CharsetMap) -> Self {
        Self {
            config,
            charsets,
            known: HashMap::new(),
            undecodable: HashSet::new(),
            announced: 0,
            group_start: 0,
        }
    }

    /// A transaction group begins: maps announced before it may be dropped.
    pub fn begin_group(&mut self) {
        self.group_start = self.announced;
    }

    /// How many table maps are kept.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.known.len()
    }

    /// Forgets every table id (a new session: ids are per connection).
    pub fn clear(&mut self) {
        self.known.clear();
    }

    /// The table a rows event names.
    pub fn get(&self, table_id: u64) -> Option<&KnownTable> {
        self.known.get(&table_id)
    }

    /// Parses a TABLE_MAP (unless identical to the one known for its id) and,
    /// for a tailed table, resolves how its rows are published.
    ///
    /// # Errors
    /// A map that cannot be decoded, or a tailed table that cannot be
    /// published (no column names, no primary key).
    pub fn table_map(&mut self, body: &[u8]) -> Result<(), TableError> {
        self.announced += 1;
        if let Some(known) = table_map_id(body).and_then(|id| self.known.get_mut(&id)) {
            if known.raw == body {
                known.last_announced = self.announced;
                return Ok(());
            }
        }
        if self.known.len() >= MAX_TABLES {
            self.evict();
        }
        // A table that is not tailed is read only as far as stepping over its
        // rows needs (column types and sizes): nothing about its columns
        // (a charset, labels, a type this tailer does not know) can stop
        // the tailer.
        let (database, table) = decode::table_map_names(body).map_err(TableError::Decode)?;
        let (map, layout) = match self.config.table(&database, &table) {
            Some(table_config) => {
                let map =
                    decode::parse_table_map(body, &self.charsets).map_err(TableError::Decode)?;
                let layout = Arc::new(layout(&self.config, &map, table_config)?);
                (map, Some(layout))
            }
            None => (
                decode::parse_table_map_layout(body).map_err(TableError::Decode)?,
                None,
            ),
        };
        self.known.insert(
            map.table_id,
            KnownTable {
                name: format!("{}.{}", map.database, map.table),
                map: Arc::new(map),
                raw: body.to_vec(),
                layout,
                last_announced: self.announced,
            },
        );
        Ok(())
    }

    /// Drops the least recently announced half of the maps announced before
    /// the current group.
    fn evict(&mut self) {
        let mut older: Vec<u64> = self
            .known
            .values()
            .map(|k| k.last_announced)
            .filter(|&at| at <= self.group_start)
            .collect();
        if older.is_empty() {
            return;
        }
        let keep_from = older.len() / 2;
        let (_, &mut cut, _) = older.select_nth_unstable(keep_from);
        let group_start = self.group_start;
        self.known
            .retain(|_, k| k.last_announced > group_start || k.last_announced > cut);
    }

    /// Says once per table that rows of an untailed table could not be
    /// decoded (they are passed over, not counted).
    pub fn warn_undecodable(&mut self, table: &str, error: &DecodeError) {
        if self.undecodable.len() >= MAX_UNDECODABLE {
            self.undecodable.clear();
        }
        if self.undecodable.insert(table.to_owned()) {
            tracing::warn!(table = %table, error = %error, "cannot decode rows of a table that is not tailed; they are not counted");
        }
    }
}

/// How the rows of a tailed table are published.
fn layout(
    config: &Config,
    map: &TableMap,
    table_config: &TableConfig,
) -> Result<TableLayout, TableError> {
    let full = format!("{}.{}", map.database, map.table);
    let names = map
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            c.name.clone().ok_or_else(|| TableError::Table {
                table: full.clone(),
                problem: format!(
                    "the TABLE_MAP carries no name for column {i}: the server's binlog_row_metadata \
                     is not FULL. Set binlog_row_metadata=FULL (SET GLOBAL and in the server's config)"
                ),
            })
        })
        .collect::<Result<Vec<String>, _>>()?;
    if map.primary_key.is_empty() {
        return Err(TableError::Table {
            table: full,
            problem: "the table has no primary key, so its events have no key; add a primary key"
                .into(),
        });
    }
    // The binlog does not say which text or binary columns hold JSON,
    // UUIDs or INET6 addresses; the configuration does. Taking it from
    // the configuration (never from the server's current schema) keeps
    // a replay byte-identical to the original, whatever DDL came since.
    let logical: Vec<Logical> = names.iter().map(|n| table_config.logical(n)).collect();
    Ok(TableLayout {
        database: map.database.clone(),
        table: map.table.clone(),
        topic: Arc::from(table_config.topic.as_str()),
        event_type: table_config.event_type.clone(),
        dataschema: table_config.dataschema.clone(),
        source: format!(
            "/mariadb/{}/{}/{}",
            config.source.cluster_name, map.database, map.table
        ),
        columns: names
            .into_iter()
            .zip(logical)
            .map(|(name, logical)| ColumnLayout { name, logical })
            .collect(),
        primary_key: map.primary_key.clone(),
        text: crate::map::LayoutText::default(),
    })
}

/// Errors while resolving a table, before the position is known.
#[derive(Debug)]
pub enum TableError {
    Decode(DecodeError),
    Table { table: String, problem: String },
}

impl TableError {
    /// The source error, located.
    pub fn at(self, at: At) -> SourceError {
        match self {
            TableError::Decode(source) => SourceError::Decode { at, source },
            TableError::Table { table, problem } => SourceError::Table { at, table, problem },
        }
    }
}

/// The table id of a TABLE_MAP body (6 bytes, little-endian), to look up a
/// known map before parsing.
fn table_map_id(body: &[u8]) -> Option<u64> {
    let bytes = body.get(..6)?;
    let mut id = [0u8; 8];
    id[..6].copy_from_slice(bytes);
    Some(u64::from_le_bytes(id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::tests::{big, table_map_body};

    fn config() -> Arc<Config> {
        let dir = std::env::temp_dir().join(format!("bt-tables-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // One file per call: tests run in parallel.
        static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = dir.join(format!("c{call}.toml"));
        std::fs::write(
            &path,
            "[source]\nuser = \"tailer\"\nserver_id = 4001\n\
             [kafka]\nbootstrap_servers = \"127.0.0.1:9092\"\n",
        )
        .unwrap();
        Arc::new(Config::load(Some(&path), std::iter::empty(), &[]).unwrap())
    }

    fn announce(tables: &mut Tables, id: u64) {
        let body = table_map_body(id, "db", &format!("t{id}"), &[big("id")], &[0]);
        tables.table_map(&body).unwrap();
    }

    #[test]
    fn an_untailed_tables_columns_never_fail_its_map() {
        use crate::decode::tests::{col, enum_col};
        let mut tables = Tables::new(config(), CharsetMap::builtin());
        // A type code no MariaDB writes, and ENUM labels in a collation the
        // map does not know: for a table that is not tailed, only sizes are
        // read.
        let cols = [big("id"), enum_col("e", &["a"], 9999), col("x", 200, &[])];
        let body = table_map_body(1, "other", "legacy", &cols, &[0]);
        tables
            .table_map(&body)
            .expect("an untailed table's map is read");
        let known = tables.get(1).expect("known");
        assert!(known.layout.is_none());
        assert_eq!(
            known.map.columns[2].column_type,
            crate::decode::ColumnType::Unknown { type_code: 200 }
        );
        // The same columns in the tailed shop.orders are refused.
        let body = table_map_body(2, "shop", "orders", &cols, &[0]);
        assert!(tables.table_map(&body).is_err());
    }

    #[test]
    fn maps_of_earlier_groups_are_dropped_past_the_bound_never_those_in_use() {
        let mut tables = Tables::new(config(), CharsetMap::builtin());
        let over = MAX_TABLES as u64 + 10;
        // One group using more tables than the bound: all stay while it is open.
        tables.begin_group();
        for id in 0..over {
            announce(&mut tables, id);
        }
        assert_eq!(tables.len(), MAX_TABLES + 10);
        // Re-announced in the next group: recently used, so kept.
        tables.begin_group();
        announce(&mut tables, 3);
        announce(&mut tables, 1_000_000);
        assert!(tables.len() <= MAX_TABLES / 2 + 12, "{}", tables.len());
        assert!(tables.get(1_000_000).is_some(), "announced in this group");
        assert!(tables.get(3).is_some(), "re-announced in this group");
        assert!(tables.get(over - 1).is_some(), "the most recent of the old");
        assert!(tables.get(0).is_none(), "the least recent of the old");
        // FLUSH TABLES between groups gives every table a new id: bounded.
        for group in 0..200u64 {
            tables.begin_group();
            for i in 0..100 {
                announce(&mut tables, 2_000_000 + group * 100 + i);
            }
            assert!(tables.len() <= MAX_TABLES, "{}", tables.len());
        }
    }
}
