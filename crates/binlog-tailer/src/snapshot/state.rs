//! A snapshot's progress as the checkpoint store keeps it, and the
//! [`Cover`] the stream consults after a snapshot that was resumed.

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::map::Record;
use crate::position::{GtidState, Position};

/// Saved after every acknowledged chunk (JSON in the store's `snapshot`
/// table, under the snapshot's name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Random, 16 hex digits: the `binlog.snapshot` header of its records.
    pub id: String,
    /// The tables read, in order (`database.table`).
    pub tables: Vec<String>,
    /// `--topic`, if given.
    pub topic: Option<String>,
    /// `--where`, if given.
    pub filter: Option<String>,
    /// The read views used, oldest first: one, plus one per resumption.
    pub views: Vec<View>,
    /// The table being read (index into `tables`); `tables.len()` when all
    /// are read.
    pub table: usize,
    /// The last key of that table whose chunk is acknowledged (text of an
    /// integer); `None` before its first chunk.
    pub after: Option<String>,
    /// Rows acknowledged.
    pub rows: u64,
    /// Every table read and acknowledged.
    pub done: bool,
}

/// One read view: where it stands in the binlog, and which rows it read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct View {
    /// Its binlog position (`Position` text).
    pub position: String,
    /// When it was opened, Unix seconds (the events' `time`).
    pub time: u32,
    /// `@@server_id` of the server read.
    pub server_id: u32,
    /// The first table it read, and the key after which it read it (the
    /// earlier views published that table up to there) ...
    pub from_table: usize,
    pub after: Option<String>,
    /// ... and, per partition, the largest key of that table the earlier
    /// views had already put there beyond `after` (passed over by this one).
    pub bounds: Vec<Bound>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bound {
    pub topic: String,
    pub partition: i32,
    pub key: String,
}

impl View {
    /// The key at or below which partition `(topic, partition)` of
    /// `from_table` holds this view's predecessors' rows.
    pub fn bound(&self, topic: &str, partition: i32) -> Option<i128> {
        let after = self.after.as_deref().and_then(|k| k.parse::<i128>().ok());
        let own = self
            .bounds
            .iter()
            .find(|b| b.topic == topic && b.partition == partition)
            .and_then(|b| b.key.parse::<i128>().ok());
        after.max(own)
    }
}

/// Which stream records a snapshot's rows already stand for, when the
/// snapshot used several read views (it was resumed after a stop).
///
/// Streaming starts at the first view's position. A row read by a later
/// view `V` at position `P` holds every insert committed at or before `P`
/// of a key that view read, so the stream passes over those inserts; an
/// insert committed after `P`, or of a key an earlier view read, is
/// published. With one view there is nothing to pass over.
#[derive(Debug)]
pub struct Cover {
    views: Vec<CoverView>,
    /// Per configured table: its index in the snapshot, topic, and the
    /// start of its events' `source` member.
    tables: Vec<(usize, String, Vec<u8>)>,
}

#[derive(Debug)]
struct CoverView {
    gtid: GtidState,
    from_table: usize,
    view: View,
}

impl Cover {
    /// The cover of a finished snapshot; `None` when it used one view.
    pub fn of(state: &State, config: &Config) -> Option<Cover> {
        if state.views.len() < 2 {
            return None;
        }
        let views = state
            .views
            .iter()
            .map(|v| CoverView {
                gtid: v
                    .position
                    .parse::<Position>()
                    .map(|p| p.gtid)
                    .unwrap_or_default(),
                from_table: v.from_table,
                view: v.clone(),
            })
            .collect();
        let tables = config
            .tables
            .iter()
            .filter_map(|t| {
                let index = state.tables.iter().position(|n| *n == t.table)?;
                let (database, table) = t.split_name()?;
                let source = format!("/mariadb/{}/{database}/{table}", config.source.cluster_name);
                let source = serde_json::to_vec(&source).unwrap_or_default();
                Some((index, t.topic.clone(), source))
            })
            .collect();
        Some(Cover { views, tables })
    }

    /// Whether the snapshot already published `record` (an insert read
    /// from the binlog, routed to `partition`).
    pub fn covers(&self, record: &Record, partition: i32) -> bool {
        let Some(table) = self.table_of(record) else {
            return false;
        };
        let Some(key) = std::str::from_utf8(&record.key)
            .ok()
            .and_then(|k| k.parse::<i128>().ok())
        else {
            return false;
        };
        let Some((first, later)) = self.views.split_first() else {
            return false;
        };
        let mut reader = first;
        for view in later {
            let later = table > view.from_table
                || (table == view.from_table
                    && view
                        .view
                        .bound(&record.topic, partition)
                        .is_none_or(|b| key > b));
            if later {
                reader = view;
            }
        }
        reader.gtid.contains(record.gtid)
    }

    /// The snapshot's index of the table a record comes from: by its topic
    /// when one table publishes there, else by its event's `source`.
    fn table_of(&self, record: &Record) -> Option<usize> {
        let mut candidates = self
            .tables
            .iter()
            .filter(|(_, topic, _)| **topic == *record.topic);
        let first = candidates.next()?;
        if candidates.next().is_none() {
            return Some(first.0);
        }
        // `{"specversion":"1.0","id":<id>,"source":<source>,…`
        let id = serde_json::to_vec(&record.id).ok()?;
        let at = br#"{"specversion":"1.0","id":"#.len() + id.len() + br#","source":"#.len();
        let rest = record.payload.get(at..)?;
        self.tables
            .iter()
            .find(|(_, topic, source)| **topic == *record.topic && rest.starts_with(source))
            .map(|(index, _, _)| *index)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::map::Headers;
    use crate::position::Gtid;

    fn view(position: &str, after: Option<&str>, bounds: &[(i32, &str)]) -> View {
        View {
            position: position.to_owned(),
            time: 0,
            server_id: 1,
            from_table: 0,
            after: after.map(str::to_owned),
            bounds: bounds
                .iter()
                .map(|(partition, key)| Bound {
                    topic: "t".into(),
                    partition: *partition,
                    key: (*key).to_owned(),
                })
                .collect(),
        }
    }

    fn record(key: u64, seq: u64) -> Record {
        let gtid = Gtid {
            domain: 0,
            server_id: 1,
            seq,
        };
        Record {
            topic: Arc::from("t"),
            key: key.to_string().into_bytes(),
            payload: Vec::new(),
            headers: Headers::default(),
            id: format!("{gtid}.0"),
            gtid,
            row_index: 0,
            snapshot_table: None,
        }
    }

    #[test]
    fn each_insert_is_covered_by_the_view_that_read_its_key_if_it_saw_it() {
        // The first view (at 0-1-10) read keys up to 100 everywhere, and up
        // to 150 in partition 0; the second (at 0-1-20) read the rest.
        let views = [
            view("0-1-10@bin.000001:100", None, &[]),
            view("0-1-20@bin.000001:900", Some("100"), &[(0, "150")]),
        ];
        let cover = Cover {
            views: views
                .iter()
                .map(|v| CoverView {
                    gtid: v.position.parse::<Position>().unwrap().gtid,
                    from_table: v.from_table,
                    view: v.clone(),
                })
                .collect(),
            tables: vec![(0, "t".into(), Vec::new())],
        };
        // Key 50, committed after the first view: the stream publishes it.
        assert!(!cover.covers(&record(50, 15), 1));
        // Key 120 in partition 0 belongs to the first view: published.
        assert!(!cover.covers(&record(120, 15), 0));
        // Key 120 in partition 1 belongs to the second view, which saw it.
        assert!(cover.covers(&record(120, 15), 1));
        // Key 200, committed after the second view: published.
        assert!(!cover.covers(&record(200, 25), 2));
        assert!(cover.covers(&record(200, 20), 2));
        // Another topic: not the snapshot's.
        let mut other = record(200, 20);
        other.topic = Arc::from("u");
        assert!(!cover.covers(&other, 2));
    }
}
