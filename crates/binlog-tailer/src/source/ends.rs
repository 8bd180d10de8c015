//! Where each event ends in its binlog file.
//!
//! The event header's `end_log_pos` says so on MariaDB 10.x. MariaDB 11.x
//! writes 0 there for the events inside a transaction (the row, table-map,
//! annotate and savepoint events: only the events that start or end a group,
//! GTID, XID, XA_PREPARE and the closing QUERY, carry their position, unless
//! `binlog_legacy_event_pos=ON`), so that a transaction can be copied into
//! the binlog without rewriting it. Events of a file follow one another with
//! no gap, so such an event ends where the previous one ended plus its own
//! size: this tracker keeps that running end, corrected by every real
//! position, and every position the reader reports comes from it.

use crate::decode;

/// The running end of the last event read from the file being streamed.
#[derive(Debug, Clone, Copy, Default)]
pub struct EventEnds {
    last: u64,
}

impl EventEnds {
    /// Starting at `offset` of a file (the next event begins there).
    pub fn at(offset: u64) -> Self {
        Self { last: offset }
    }

    /// Where the event with this header ends. Events the server makes up
    /// (the first ROTATE, an artificial GTID_LIST, heartbeats) and a format
    /// description re-sent at a start past the file's beginning are not
    /// in the file at this place: they leave the running end as it is.
    pub fn end_of(&mut self, kind: u8, flags: u16, log_pos: u32, size: u32) -> u64 {
        let log_pos = u64::from(log_pos);
        let not_here = kind == decode::HEARTBEAT_LOG_EVENT
            || flags & decode::LOG_EVENT_ARTIFICIAL_F != 0
            || (kind == decode::FORMAT_DESCRIPTION_EVENT && log_pos == 0);
        if not_here {
            return if log_pos == 0 { self.last } else { log_pos };
        }
        self.last = if log_pos != 0 {
            log_pos
        } else {
            self.last.saturating_add(u64::from(size))
        };
        self.last
    }

    /// A ROTATE: the next event is at `offset` of the file it names.
    pub fn rotate(&mut self, offset: u64) {
        self.last = offset;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_without_a_position_end_after_the_previous_one() {
        // A transaction as MariaDB 11.8 writes it: GTID at 389..439, then
        // annotate (58), table map (43), rows (49) with end_log_pos 0, then
        // XID with its real end.
        let mut ends = EventEnds::at(389);
        assert_eq!(ends.end_of(decode::GTID_EVENT, 0, 439, 50), 439);
        assert_eq!(ends.end_of(decode::ANNOTATE_ROWS_EVENT, 0, 0, 58), 497);
        assert_eq!(ends.end_of(decode::TABLE_MAP_EVENT, 0, 0, 43), 540);
        assert_eq!(ends.end_of(decode::WRITE_ROWS_EVENT_V1, 0, 0, 49), 589);
        assert_eq!(ends.end_of(decode::XID_EVENT, 0, 620, 31), 620);
    }

    #[test]
    fn a_real_position_always_wins() {
        let mut ends = EventEnds::at(4);
        assert_eq!(ends.end_of(decode::QUERY_EVENT, 0, 0, 100), 104);
        // Whatever was computed, the header's position is the truth.
        assert_eq!(ends.end_of(decode::GTID_EVENT, 0, 1000, 42), 1000);
        assert_eq!(ends.end_of(decode::QUERY_EVENT, 0, 0, 10), 1010);
    }

    #[test]
    fn made_up_events_do_not_move_the_end() {
        let mut ends = EventEnds::at(4);
        // The first ROTATE and a format description re-sent at a start at
        // offset 500.
        ends.rotate(500);
        assert_eq!(
            ends.end_of(decode::FORMAT_DESCRIPTION_EVENT, 0, 0, 256),
            500
        );
        assert_eq!(
            ends.end_of(
                decode::GTID_LIST_EVENT,
                decode::LOG_EVENT_ARTIFICIAL_F,
                0,
                60
            ),
            500
        );
        assert_eq!(ends.end_of(decode::HEARTBEAT_LOG_EVENT, 0, 500, 40), 500);
        assert_eq!(ends.end_of(decode::GTID_EVENT, 0, 542, 42), 542);
        assert_eq!(ends.end_of(decode::TABLE_MAP_EVENT, 0, 0, 43), 585);
    }
}
