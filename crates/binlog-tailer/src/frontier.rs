//! Exactly-once into Kafka across crashes: what each partition already holds.
//!
//! # How
//! Every record carries its source position in headers (`binlog.gtid`,
//! `binlog.row`) and the store's epoch (`binlog.epoch`). The tailer chooses
//! each record's partition itself (Kafka's murmur2 of the key, as the Java
//! client does), so it knows where a record would go before sending it. At
//! start-up it reads the newest record of the current epoch in every
//! partition of every target topic: that is the partition's frontier. A record
//! at or before its partition's frontier (same replication domain, same or
//! lower sequence number, same or lower row) is already there and is skipped.
//!
//! Why it is sound: one partition receives the records routed to it in
//! commit order (one producer, idempotent, acknowledgements in order), so
//! every record before the frontier that belongs to the partition is in it.
//! After a crash the tailer re-reads from the checkpoint, which is never after
//! the frontier, and skips exactly what was published after the checkpoint.
//!
//! # Conditions
//! - No other producer writes records with our headers and the current epoch
//!   into the topics.
//! - Partition counts do not change while records are in flight: a change
//!   moves keys between partitions.
//! - One replication domain per partition frontier: a record of another
//!   domain than the frontier's is never skipped (a duplicate is possible
//!   when several domains interleave; nothing is ever skipped wrongly).
//! - Deliberate rewinds (`checkpoint set`) start a new epoch, so the records
//!   of earlier epochs do not count, and replays (`replay`) are not skipped.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use crate::map::{HEADER_EPOCH, HEADER_GTID, HEADER_REPLAY, HEADER_ROW};
use crate::position::Gtid;

/// How far back from a partition's end the newest record of the current
/// epoch is looked for.
const LOOK_BACK: i64 = 200;

/// The newest record of the current epoch in one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    pub gtid: Gtid,
    pub row: u32,
}

/// What the target topics already hold, and how they are partitioned.
#[derive(Debug, Clone, Default)]
pub struct Frontier {
    partitions: HashMap<String, i32>,
    /// topic → partition → its newest record (looked up per record, by &str).
    last: HashMap<String, HashMap<i32, Published>>,
}

#[derive(Debug, thiserror::Error)]
pub enum FrontierError {
    #[error("reading what topic {topic} already holds: {source}")]
    Kafka { topic: String, source: KafkaError },
    #[error("reading what topic {topic} already holds: no answer within {timeout:?}")]
    Timeout { topic: String, timeout: Duration },
    #[error("topic {topic} does not exist or has no partitions")]
    NoTopic { topic: String },
}

impl Frontier {
    /// A frontier that skips nothing but still partitions by key.
    pub fn empty(partitions: HashMap<String, i32>) -> Self {
        Frontier {
            partitions,
            last: HashMap::new(),
        }
    }

    /// The partition a key goes to in `topic`, if the topic is known.
    pub fn partition_of(&self, topic: &str, key: &[u8]) -> Option<i32> {
        self.partitions
            .get(topic)
            .map(|&n| murmur2_partition(key, n))
    }

    /// Whether the record `(gtid, row)` routed to `partition` is already in it.
    pub fn already_published(&self, topic: &str, partition: i32, gtid: Gtid, row: u32) -> bool {
        self.last
            .get(topic)
            .and_then(|partitions| partitions.get(&partition))
            .is_some_and(|last| {
                last.gtid.domain == gtid.domain && (gtid.seq, row) <= (last.gtid.seq, last.row)
            })
    }

    /// The frontier of each partition that has one.
    pub fn entries(&self) -> impl Iterator<Item = (&str, i32, Published)> + '_ {
        self.last
            .iter()
            .flat_map(|(t, ps)| ps.iter().map(move |(p, l)| (t.as_str(), *p, *l)))
    }

    /// Partition counts of the topics.
    pub fn partition_counts(&self) -> &HashMap<String, i32> {
        &self.partitions
    }
}

/// Kafka's default partitioner: `toPositive(murmur2(key)) % partitions`, as
/// the Java client (and librdkafka's `murmur2` partitioner) compute it.
pub fn murmur2_partition(key: &[u8], partitions: i32) -> i32 {
    if partitions <= 0 {
        return 0;
    }
    (murmur2(key) & 0x7fff_ffff) % partitions
}

/// MurmurHash2, 32 bits, with Kafka's seed.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    // Kafka hashes with an int length: keys are far below 2^31 bytes.
    let mut h: u32 = SEED ^ (data.len() as u32);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Reads the frontier of every partition of `topics` for records of `epoch`.
/// Blocking: call it from a blocking thread.
///
/// # Errors
/// [`FrontierError`] when a topic cannot be read in time.
pub fn read(
    client: &ClientConfig,
    topics: &[String],
    epoch: u64,
    timeout: Duration,
) -> Result<Frontier, FrontierError> {
    let mut config = client.clone();
    config
        .set("group.id", "binlog-tailer-frontier")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("isolation.level", "read_uncommitted");
    let mut frontier = Frontier::default();
    for topic in topics {
        let kafka = |source| FrontierError::Kafka {
            topic: topic.clone(),
            source,
        };
        let consumer: BaseConsumer = config.create().map_err(kafka)?;
        let metadata = consumer
            .fetch_metadata(Some(topic), timeout)
            .map_err(kafka)?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none())
            .map(|t| t.partitions().iter().map(|p| p.id()).collect())
            .unwrap_or_default();
        if partitions.is_empty() {
            return Err(FrontierError::NoTopic {
                topic: topic.clone(),
            });
        }
        frontier.partitions.insert(
            topic.clone(),
            i32::try_from(partitions.len()).unwrap_or(i32::MAX),
        );

        let mut assignment = TopicPartitionList::new();
        let mut ends = HashMap::new();
        for &p in &partitions {
            let (low, high) = consumer
                .fetch_watermarks(topic, p, timeout)
                .map_err(kafka)?;
            if high > low {
                assignment
                    .add_partition_offset(topic, p, Offset::Offset(low.max(high - LOOK_BACK)))
                    .map_err(kafka)?;
                ends.insert(p, high);
            }
        }
        if ends.is_empty() {
            continue;
        }
        consumer.assign(&assignment).map_err(kafka)?;
        let deadline = Instant::now() + timeout;
        while !ends.is_empty() {
            if Instant::now() > deadline {
                return Err(FrontierError::Timeout {
                    topic: topic.clone(),
                    timeout,
                });
            }
            let Some(message) = consumer.poll(Duration::from_millis(200)) else {
                continue;
            };
            let message = message.map_err(kafka)?;
            let partition = message.partition();
            if let Some(published) = ours(&message, epoch) {
                frontier
                    .last
                    .entry(topic.clone())
                    .or_default()
                    .insert(partition, published);
            }
            if ends
                .get(&partition)
                .is_some_and(|&high| message.offset() + 1 >= high)
            {
                ends.remove(&partition);
            }
        }
    }
    Ok(frontier)
}

/// The position of a record the live tailer published in `epoch`.
fn ours<M: Message>(message: &M, epoch: u64) -> Option<Published> {
    let headers = message.headers()?;
    let mut gtid = None;
    let mut row = None;
    let mut record_epoch = None;
    for header in headers.iter() {
        let value = header.value.and_then(|v| std::str::from_utf8(v).ok());
        match header.key {
            HEADER_GTID => gtid = value.and_then(|v| v.parse::<Gtid>().ok()),
            HEADER_ROW => row = value.and_then(|v| v.parse::<u32>().ok()),
            HEADER_EPOCH => record_epoch = value.and_then(|v| v.parse::<u64>().ok()),
            HEADER_REPLAY => return None,
            _ => {}
        }
    }
    if record_epoch.unwrap_or(0) != epoch {
        return None;
    }
    Some(Published {
        gtid: gtid?,
        row: row?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafka() {
        // Kafka's own test vectors (clients' UtilsTest).
        for (input, expected) in [
            (&b"21"[..], -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ] {
            assert_eq!(
                murmur2(input),
                expected,
                "{}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn skips_only_what_the_partition_holds() {
        let mut f = Frontier::empty(HashMap::from([("t".to_owned(), 3)]));
        let g = |seq| Gtid {
            domain: 0,
            server_id: 1,
            seq,
        };
        f.last.entry("t".into()).or_default().insert(
            1,
            Published {
                gtid: g(10),
                row: 2,
            },
        );
        assert!(f.already_published("t", 1, g(10), 2));
        assert!(f.already_published("t", 1, g(9), 7));
        assert!(!f.already_published("t", 1, g(10), 3));
        assert!(!f.already_published("t", 1, g(11), 0));
        assert!(!f.already_published("t", 0, g(1), 0), "other partition");
        let other_domain = Gtid {
            domain: 1,
            server_id: 1,
            seq: 1,
        };
        assert!(!f.already_published("t", 1, other_domain, 0));
    }
}
