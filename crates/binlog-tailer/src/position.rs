//! Binlog positions: MariaDB GTIDs, GTID states and binlog file coordinates.
//!
//! A [`Position`] names the end of a completed transaction. It carries the
//! GTID state (the last completed GTID of each replication domain), which is
//! what resumes across servers, and the binlog file coordinate on the server
//! it was read from, which is what people read and what resumes on a server
//! without GTIDs.
//!
//! # Text forms
//! One text form per type, shared by the CLI, the checkpoint store and the
//! logs (`Display` and `FromStr` round-trip; tests pin them):
//! - [`Gtid`]: `domain-server-seq`, e.g. `0-1-42`.
//! - [`GtidState`]: GTIDs joined by commas in domain order, e.g. `0-1-42,1-3-7`;
//!   the empty state is the empty string.
//! - [`BinlogCoord`]: `file:offset`, e.g. `mariadb-bin.000003:1234`.
//! - [`Position`]: `gtid_state@file:offset`, either side optional but not both:
//!   `0-1-42@mariadb-bin.000003:1234`, `0-1-42`, `@mariadb-bin.000003:1234`.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use smallvec::SmallVec;

/// A MariaDB global transaction id: replication domain, originating server,
/// sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Gtid {
    pub domain: u32,
    pub server_id: u32,
    pub seq: u64,
}

impl fmt::Display for Gtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.domain, self.server_id, self.seq)
    }
}

/// Why a position's text could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {text:?}: {reason}")]
pub struct ParsePositionError {
    what: &'static str,
    text: String,
    reason: &'static str,
}

impl ParsePositionError {
    fn new(what: &'static str, text: &str, reason: &'static str) -> Self {
        Self {
            what,
            text: text.to_owned(),
            reason,
        }
    }
}

impl FromStr for Gtid {
    type Err = ParsePositionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| ParsePositionError::new("GTID", s, reason);
        let mut parts = s.trim().splitn(3, '-');
        let (Some(domain), Some(server), Some(seq)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(err("expected domain-server-sequence, e.g. 0-1-42"));
        };
        Ok(Gtid {
            domain: domain
                .parse()
                .map_err(|_| err("the domain is not a 32-bit number"))?,
            server_id: server
                .parse()
                .map_err(|_| err("the server id is not a 32-bit number"))?,
            seq: seq
                .parse()
                .map_err(|_| err("the sequence number is not a 64-bit number"))?,
        })
    }
}

/// The last completed GTID of each replication domain: MariaDB's
/// `gtid_slave_pos` / `@slave_connect_state` form.
///
/// One GTID per domain, ordered by domain. Every transaction's commit mark
/// carries a copy, so the usual one or two domains are kept inline: copying
/// the state then allocates nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct GtidState(SmallVec<[Gtid; 2]>);

impl GtidState {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn find(&self, domain: u32) -> Result<usize, usize> {
        self.0.binary_search_by_key(&domain, |g| g.domain)
    }

    /// Records `gtid` as the last completed transaction of its domain.
    pub fn apply(&mut self, gtid: Gtid) {
        match self.find(gtid.domain) {
            Ok(i) => self.0[i] = gtid,
            Err(i) => self.0.insert(i, gtid),
        }
    }

    pub fn get(&self, domain: u32) -> Option<Gtid> {
        self.find(domain).ok().map(|i| self.0[i])
    }

    pub fn iter(&self) -> impl Iterator<Item = Gtid> + '_ {
        self.0.iter().copied()
    }

    /// Whether `gtid` is at or before this state in its domain (already
    /// completed, as far as sequence numbers within a domain tell).
    pub fn contains(&self, gtid: Gtid) -> bool {
        self.get(gtid.domain).is_some_and(|g| gtid.seq <= g.seq)
    }
}

impl FromIterator<Gtid> for GtidState {
    fn from_iter<I: IntoIterator<Item = Gtid>>(iter: I) -> Self {
        let mut state = GtidState::new();
        for gtid in iter {
            state.apply(gtid);
        }
        state
    }
}

impl fmt::Display for GtidState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, gtid) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{gtid}")?;
        }
        Ok(())
    }
}

impl FromStr for GtidState {
    type Err = ParsePositionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut state = GtidState::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let gtid: Gtid = part.parse()?;
            if state.get(gtid.domain).is_some() {
                return Err(ParsePositionError::new(
                    "GTID state",
                    s,
                    "names one replication domain twice",
                ));
            }
            state.apply(gtid);
        }
        Ok(state)
    }
}

/// A byte offset in a named binlog file of one server.
///
/// Ordering compares the files by their numeric suffix (`.000010` after
/// `.000009`), then the offsets. It is meaningful only between coordinates of
/// the same server.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BinlogCoord {
    pub file: String,
    pub offset: u64,
}

impl BinlogCoord {
    pub fn new(file: impl Into<String>, offset: u64) -> Self {
        Self {
            file: file.into(),
            offset,
        }
    }

    /// The file's base name and numeric suffix: `("mariadb-bin", 3)` for
    /// `mariadb-bin.000003`.
    pub fn split_file(&self) -> (&str, Option<u64>) {
        match self.file.rsplit_once('.') {
            Some((base, suffix))
                if !suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_digit()) =>
            {
                (base, suffix.parse().ok())
            }
            _ => (&self.file, None),
        }
    }
}

impl PartialOrd for BinlogCoord {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        let (base_a, n_a) = self.split_file();
        let (base_b, n_b) = other.split_file();
        if base_a != base_b {
            return None;
        }
        Some(n_a.cmp(&n_b).then(self.offset.cmp(&other.offset)))
    }
}

impl fmt::Display for BinlogCoord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.offset)
    }
}

impl FromStr for BinlogCoord {
    type Err = ParsePositionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| ParsePositionError::new("binlog coordinate", s, reason);
        let (file, offset) = s
            .trim()
            .rsplit_once(':')
            .ok_or_else(|| err("expected file:offset, e.g. mariadb-bin.000003:1234"))?;
        if file.is_empty() {
            return Err(err("the file name is empty"));
        }
        let offset = offset
            .parse()
            .map_err(|_| err("the offset is not a number"))?;
        Ok(BinlogCoord::new(file, offset))
    }
}

/// The end of a completed transaction: where to resume.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Position {
    /// Last completed GTID per domain.
    pub gtid: GtidState,
    /// The binlog file and the offset just after the transaction, on the
    /// server the position was read from.
    pub coord: Option<BinlogCoord>,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.gtid)?;
        if let Some(coord) = &self.coord {
            write!(f, "@{coord}")?;
        }
        Ok(())
    }
}

impl FromStr for Position {
    type Err = ParsePositionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (gtid, coord) = match s.split_once('@') {
            Some((gtid, coord)) => (gtid, Some(coord.parse()?)),
            None => (s, None),
        };
        let gtid: GtidState = gtid.parse()?;
        if gtid.is_empty() && coord.is_none() {
            return Err(ParsePositionError::new(
                "position",
                s,
                "neither a GTID state nor a file:offset",
            ));
        }
        Ok(Position { gtid, coord })
    }
}

/// A point the operator names on the command line (`checkpoint set`,
/// `replay --from/--to`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `#N`: entry N of `checkpoint list`.
    Entry(u64),
    /// A GTID state: `0-1-42` or `0-1-42,1-2-7`.
    Gtid(GtidState),
    /// `file:offset` on the server read.
    Coord(BinlogCoord),
    /// An RFC 3339 time (`2026-11-26T10:32:00Z`): the newest stored
    /// checkpoint whose transaction committed at or before it. Unix seconds.
    Time(i64),
}

impl FromStr for Target {
    type Err = ParsePositionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if let Some(n) = s.strip_prefix('#') {
            return n.parse().map(Target::Entry).map_err(|_| {
                ParsePositionError::new(
                    "history entry",
                    s,
                    "expected #N, a number from `checkpoint list`",
                )
            });
        }
        if let Ok(t) =
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        {
            return Ok(Target::Time(t.unix_timestamp()));
        }
        if s.contains(':') {
            return s.parse().map(Target::Coord);
        }
        let state: GtidState = s.parse()?;
        if state.is_empty() {
            return Err(ParsePositionError::new(
                "target",
                s,
                "expected #N, a GTID state (0-1-42), file:offset, or an RFC 3339 time",
            ));
        }
        Ok(Target::Gtid(state))
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Entry(n) => write!(f, "#{n}"),
            Target::Gtid(g) => write!(f, "{g}"),
            Target::Coord(c) => write!(f, "{c}"),
            Target::Time(t) => write!(f, "the newest checkpoint at or before Unix time {t}"),
        }
    }
}

/// Where a reading session starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// After the transactions of this GTID state.
    Gtid(GtidState),
    /// At this file offset (a transaction boundary). `gtid` is the state at
    /// that point when known; `None` to learn it from the file's GTID list
    /// (only at offset 4).
    Coord {
        coord: BinlogCoord,
        gtid: Option<GtidState>,
    },
}

impl Start {
    /// Where to start to read what follows `position`: by GTID when it has
    /// one, else by its file coordinate.
    pub fn after(position: &Position) -> Start {
        match &position.coord {
            Some(coord) if position.gtid.is_empty() => Start::Coord {
                coord: coord.clone(),
                gtid: Some(GtidState::new()),
            },
            _ => Start::Gtid(position.gtid.clone()),
        }
    }
}

impl fmt::Display for Start {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Start::Gtid(state) => write!(f, "GTID state {state}"),
            Start::Coord { coord, .. } => write!(f, "{coord}"),
        }
    }
}

/// Where a bounded read stops: after the transaction that reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopAt {
    Gtid(GtidState),
    Coord(BinlogCoord),
}

impl StopAt {
    /// Whether `position` is at or past this point.
    pub fn reached(&self, position: &Position) -> bool {
        match self {
            StopAt::Gtid(target) => target.iter().all(|g| position.gtid.contains(g)),
            StopAt::Coord(target) => position.coord.as_ref().is_some_and(|c| {
                c.partial_cmp(target)
                    .is_some_and(|o| o != std::cmp::Ordering::Less)
            }),
        }
    }
}

impl fmt::Display for StopAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopAt::Gtid(g) => write!(f, "GTID state {g}"),
            StopAt::Coord(c) => write!(f, "{c}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms_are_pinned_and_round_trip() {
        let text = "0-1-42,7-3-18446744073709551615@mariadb-bin.000003:1234";
        let pos: Position = text.parse().unwrap();
        assert_eq!(
            pos.gtid.get(7),
            Some(Gtid {
                domain: 7,
                server_id: 3,
                seq: u64::MAX
            })
        );
        assert_eq!(
            pos.coord,
            Some(BinlogCoord::new("mariadb-bin.000003", 1234))
        );
        assert_eq!(pos.to_string(), text);

        for text in ["0-1-42", "@mariadb-bin.000001:4", "1-2-3,0-1-5"] {
            let pos: Position = text.parse().unwrap();
            let again: Position = pos.to_string().parse().unwrap();
            assert_eq!(pos, again);
        }
        // Domains are printed in order whatever order they were given in.
        assert_eq!(
            "1-2-3,0-1-5".parse::<Position>().unwrap().to_string(),
            "0-1-5,1-2-3"
        );
    }

    #[test]
    fn bad_text_is_refused_with_a_reason() {
        for bad in [
            "",
            "0-1",
            "a-1-2",
            "0-1-2,0-1-3",
            "@file",
            "@:4",
            "0-1-x@f:1",
        ] {
            assert!(bad.parse::<Position>().is_err(), "{bad:?} was accepted");
        }
        let err = "0-1".parse::<Gtid>().unwrap_err().to_string();
        assert!(err.contains("domain-server-sequence"), "{err}");
    }

    #[test]
    fn targets_parse_in_every_form() {
        assert_eq!("#12".parse::<Target>(), Ok(Target::Entry(12)));
        assert_eq!(
            "0-1-42".parse::<Target>(),
            Ok(Target::Gtid("0-1-42".parse().unwrap()))
        );
        assert_eq!(
            "mariadb-bin.000002:345".parse::<Target>(),
            Ok(Target::Coord(BinlogCoord::new("mariadb-bin.000002", 345)))
        );
        assert_eq!(
            "2026-11-26T10:32:00Z".parse::<Target>(),
            Ok(Target::Time(1_795_689_120))
        );
        assert!("#x".parse::<Target>().is_err());
        assert!("".parse::<Target>().is_err());
    }

    #[test]
    fn coordinates_order_by_numeric_file_suffix() {
        let a = BinlogCoord::new("mariadb-bin.999999", 500);
        let b = BinlogCoord::new("mariadb-bin.1000000", 4);
        assert!(a < b);
        let c = BinlogCoord::new("other-bin.000001", 4);
        assert_eq!(a.partial_cmp(&c), None);
    }

    #[test]
    fn gtid_state_contains_completed_transactions() {
        let state: GtidState = "0-1-10,2-5-3".parse().unwrap();
        assert!(state.contains("0-2-10".parse().unwrap()));
        assert!(!state.contains("0-1-11".parse().unwrap()));
        assert!(!state.contains("1-1-1".parse().unwrap()));
    }
}
