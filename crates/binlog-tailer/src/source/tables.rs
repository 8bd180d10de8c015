//! The table-id cache of one session: each TABLE_MAP parsed once (an
//! identical map announced again is recognised by its bytes and not parsed
//! again), and, for the tailed tables, how their rows are published
//! ([`TableLayout`], resolved from the map and the configuration).
//!
//! Table ids are the server's, valid within one connection: the cache is
//! cleared at every session start.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::error::{At, SourceError};
use crate::config::{Config, TableConfig};
use crate::decode::{self, CharsetMap, DecodeError, TableMap};
use crate::map::{ColumnLayout, Logical, TableLayout};

/// A parsed TABLE_MAP and, for tailed tables, how its rows are published.
pub struct KnownTable {
    pub map: Arc<TableMap>,
    /// `database.table`, as metrics and messages name it.
    pub name: String,
    /// The TABLE_MAP body it was parsed from, to skip re-parsing identical maps.
    raw: Vec<u8>,
    /// `Some` for a tailed table.
    pub layout: Option<Arc<TableLayout>>,
}

/// The tables announced in the current session.
pub struct Tables {
    config: Arc<Config>,
    charsets: CharsetMap,
    known: HashMap<u64, KnownTable>,
    /// Untailed tables whose rows could not be decoded (warned once each).
    undecodable: HashSet<String>,
}

impl Tables {
    pub fn new(config: Arc<Config>, charsets: CharsetMap) -> Self {
        Self {
            config,
            charsets,
            known: HashMap::new(),
            undecodable: HashSet::new(),
        }
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
        if let Some(known) = table_map_id(body).and_then(|id| self.known.get(&id)) {
            if known.raw == body {
                return Ok(());
            }
        }
        let map = decode::parse_table_map(body, &self.charsets).map_err(TableError::Decode)?;
        let layout = match self.config.table(&map.database, &map.table) {
            Some(table_config) => Some(Arc::new(layout(&self.config, &map, table_config)?)),
            None => None,
        };
        self.known.insert(
            map.table_id,
            KnownTable {
                name: format!("{}.{}", map.database, map.table),
                map: Arc::new(map),
                raw: body.to_vec(),
                layout,
            },
        );
        Ok(())
    }

    /// Says once per table that rows of an untailed table could not be
    /// decoded (they are passed over, not counted).
    pub fn warn_undecodable(&mut self, table: &str, error: &DecodeError) {
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
