//! Exactly-once into Kafka across crashes: what each partition already holds.
//!
//! # What a live record carries
//! Its source position (`binlog.gtid`, `binlog.row`), the id of the
//! checkpoint store that published it (`binlog.store`, random, chosen when the
//! store is created) and the store's epoch (`binlog.epoch`, moved by
//! `checkpoint set`). The tailer chooses each record's partition itself
//! (Kafka's murmur2 of the key, as the Java client does), so it knows where a
//! record would go before sending it.
//!
//! # The frontier
//! At start-up, every partition of every target topic is read backwards from
//! its end. For each replication domain, the first live record of this store
//! and epoch met is the newest one of that domain in the partition: the
//! partition's frontier in that domain. A record routed to a partition is
//! skipped when the partition's frontier in the record's domain is at or
//! after it (same or lower sequence number; same sequence number and same or
//! lower row).
//!
//! The read stops at the first of:
//! - a live record of this store and epoch that the checkpoint includes (its
//!   GTID at or before the checkpoint's in its domain);
//! - a live record of another store or another epoch;
//! - the start of the partition.
//!
//! Replays (`binlog.replay`) and records without our headers are read past:
//! they never stop the read and never count. The read therefore costs the
//! records published after the checkpoint (at most `checkpoint.interval` of
//! traffic plus what was in flight, or more while an `XA PREPARE` holds the
//! checkpoint back), plus what other writers put between them, whatever the
//! size of the topic.
//!
//! # Why it is sound
//! 1. One partition receives its records in the order the tailer sends them
//!    (one idempotent producer with `enable.gapless.guarantee`: a record
//!    refused for good stops the producer before any later record of its
//!    partition is written), and the tailer sends in binlog order.
//! 2. Within a domain, binlog order is GTID order: the source refuses a GTID
//!    whose sequence number does not grow within its domain, and a
//!    transaction's rows keep their row order.
//! 3. So, if `F` is the newest record of domain `d` in partition `p`, every
//!    record of `d` routed to `p` at or before `F` is in `p` (1 and 2), and
//!    none after it is: skipping exactly those publishes each record once.
//!    Records of other domains interleave freely; they have frontiers of
//!    their own.
//! 4. Stopping the read at a record `R` that the checkpoint includes loses no
//!    frontier that matters: every record before `R` in the partition was
//!    sent before `R`, so it lies before the checkpoint in the binlog (when
//!    the tailer reads the same binlog order it published in), so the
//!    restart, which reads from the checkpoint on, never meets it.
//! 5. Stopping at a record of another store or epoch is sound because
//!    a topic has one live store at a time and an epoch changes only while
//!    the tailer is stopped: every record of this store and epoch comes after
//!    every record of the ones before.
//!
//! # Conditions
//! - One live store publishes into a topic at a time, and no other producer
//!   writes records with our headers.
//! - Partition counts do not change while records are in flight: a change
//!   moves keys between partitions.
//! - Point 4 takes the binlog order of the server that published the records
//!   after the checkpoint. A server whose binlog interleaves *different*
//!   domains in another order (a replica with domain-parallel replication,
//!   after a failover between the two while the tailer was down) can make the
//!   read stop before the newest record of a domain: that domain's records
//!   after the checkpoint are then published again (never skipped).
//! - A store created anew never counts another store's records (random store
//!   id): after `RESET MASTER` or a rebuilt source, give the tailer a new store
//!   or a new epoch (`checkpoint set`), and nothing it never published is
//!   skipped. Stores made before store ids existed keep counting the records
//!   of their epoch that carry no `binlog.store`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use crate::map::{
    HEADER_EPOCH, HEADER_GTID, HEADER_REPLAY, HEADER_ROW, HEADER_SNAPSHOT, HEADER_SNAPSHOT_TABLE,
    HEADER_STORE,
};
use crate::position::{Gtid, GtidState};

/// Records read per step backwards at first; each further step doubles, up
/// to [`MAX_STEP`].
const FIRST_STEP: i64 = 256;
const MAX_STEP: i64 = 32_768;

/// Which store, in which epoch, publishes the live records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    /// Chosen at random when the store is created.
    pub store: u64,
    /// Moved by `checkpoint set`.
    pub epoch: u64,
    /// The store was made before store ids: records of its epoch without a
    /// `binlog.store` header are its own.
    pub legacy: bool,
}

impl Identity {
    /// The `binlog.store` header value.
    pub fn store_header(&self) -> String {
        format!("{:016x}", self.store)
    }
}

/// The newest record of one domain in one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    pub gtid: Gtid,
    pub row: u32,
}

/// What the target topics already hold, and how they are partitioned.
#[derive(Debug, Clone, Default)]
pub struct Frontier {
    partitions: HashMap<String, i32>,
    /// topic → partition → domain → its newest record.
    last: HashMap<String, HashMap<i32, HashMap<u32, Published>>>,
    /// Records read to find it.
    records_read: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum FrontierError {
    #[error("reading what topic {topic} already holds: {source}")]
    Kafka { topic: String, source: KafkaError },
    #[error("reading what topic {topic} already holds: no answer within {timeout:?}")]
    Timeout { topic: String, timeout: Duration },
    #[error("topic {topic} does not exist, has no partitions, or has partitions without a leader")]
    NoTopic { topic: String },
}

impl Frontier {
    /// A frontier that skips nothing but still partitions by key.
    pub fn empty(partitions: HashMap<String, i32>) -> Self {
        Frontier {
            partitions,
            ..Frontier::default()
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
            .and_then(|domains| domains.get(&gtid.domain))
            .is_some_and(|last| (gtid.seq, row) <= (last.gtid.seq, last.row))
    }

    /// The frontier of each partition and domain that has one.
    pub fn entries(&self) -> impl Iterator<Item = (&str, i32, Published)> + '_ {
        self.last.iter().flat_map(|(t, ps)| {
            ps.iter()
                .flat_map(move |(p, ds)| ds.values().map(move |l| (t.as_str(), *p, *l)))
        })
    }

    /// Partition counts of the topics.
    pub fn partition_counts(&self) -> &HashMap<String, i32> {
        &self.partitions
    }

    /// How many records were read to find the frontier.
    pub fn records_read(&self) -> u64 {
        self.records_read
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

/// How a record read back bears on the frontier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    /// A live record of this store and epoch.
    Ours(Published),
    /// A live record of another store or epoch: nothing of ours lies before it.
    Earlier,
    /// A replay, or a record without our headers: read past it.
    Other,
}

/// What reading a partition backwards found.
#[derive(Debug, Default, PartialEq, Eq)]
struct Found {
    newest: HashMap<u32, Published>,
    done: bool,
}

impl Found {
    /// Takes in one record, newest first; true once the read may stop.
    fn take(&mut self, seen: Seen, checkpoint: Option<&GtidState>) -> bool {
        match seen {
            Seen::Other => {}
            Seen::Earlier => self.done = true,
            Seen::Ours(published) => {
                self.newest
                    .entry(published.gtid.domain)
                    .or_insert(published);
                if checkpoint.is_some_and(|c| c.contains(published.gtid)) {
                    self.done = true;
                }
            }
        }
        self.done
    }
}

/// The partition count of each of `topics`, without reading records.
/// Blocking: call it from a blocking thread.
///
/// # Errors
/// [`FrontierError`] when a topic cannot be described in time.
pub fn partitions_only(
    client: &ClientConfig,
    topics: &[String],
    timeout: Duration,
) -> Result<Frontier, FrontierError> {
    let consumer: BaseConsumer =
        frontier_consumer(client)
            .create()
            .map_err(|source| FrontierError::Kafka {
                topic: topics.join(","),
                source,
            })?;
    let mut frontier = Frontier::default();
    for topic in topics {
        let partitions = partition_ids(&consumer, topic, timeout)?;
        frontier.partitions.insert(
            topic.clone(),
            i32::try_from(partitions.len()).unwrap_or(i32::MAX),
        );
    }
    close_in_background(consumer);
    Ok(frontier)
}

/// Reads the frontier of every partition of `topics` for the live records
/// of `identity`, back to `checkpoint` (see the module documentation).
/// Blocking: call it from a blocking thread.
///
/// # Errors
/// [`FrontierError`] when a topic cannot be read in time.
pub fn read(
    client: &ClientConfig,
    topics: &[String],
    identity: Identity,
    checkpoint: Option<&GtidState>,
    timeout: Duration,
) -> Result<Frontier, FrontierError> {
    let mut frontier = Frontier::default();
    for topic in topics {
        let kafka = |source| FrontierError::Kafka {
            topic: topic.clone(),
            source,
        };
        let consumer: BaseConsumer = frontier_consumer(client).create().map_err(kafka)?;
        let partitions = partition_ids(&consumer, topic, timeout)?;
        frontier.partitions.insert(
            topic.clone(),
            i32::try_from(partitions.len()).unwrap_or(i32::MAX),
        );
        let mut found: HashMap<i32, Found> = HashMap::new();
        frontier.records_read += read_back(
            &consumer,
            topic,
            &partitions,
            timeout,
            &|m| classify(m, identity),
            |partition, seen| found.entry(partition).or_default().take(seen, checkpoint),
        )?;
        for (partition, found) in found {
            if !found.newest.is_empty() {
                frontier
                    .last
                    .entry(topic.clone())
                    .or_default()
                    .insert(partition, found.newest);
            }
        }
        close_in_background(consumer);
    }
    Ok(frontier)
}

/// Drops a Kafka client on a thread of its own, so that nothing waits for
/// it: destroying a librdkafka client stops and joins its threads, which
/// took about 100 ms in one start-up of two (the frontier's reads were done
/// in 70 ms, and start-up then waited 105 ms for its consumer to go).
pub fn close_in_background<T: Send + 'static>(client: T) {
    // Should no thread be available, the client is dropped here instead.
    let _ = std::thread::Builder::new()
        .name("kafka-close".into())
        .spawn(move || drop(client));
}

fn frontier_consumer(client: &ClientConfig) -> ClientConfig {
    let mut config = client.clone();
    config
        .set("group.id", "binlog-tailer-frontier")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("isolation.level", "read_uncommitted")
        // Each step back re-assigns the partition; a fetch waiting for more
        // data would hold the next step up.
        .set("fetch.wait.max.ms", "10");
    config
}

fn partition_ids(
    consumer: &BaseConsumer,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<i32>, FrontierError> {
    // A topic just created (by this tailer, or by a broker on first use)
    // answers for a moment without partitions or without leaders: asked
    // again until every partition has a leader, within `timeout`.
    let deadline = Instant::now() + timeout;
    loop {
        let metadata = consumer
            .fetch_metadata(Some(topic), timeout)
            .map_err(|source| FrontierError::Kafka {
                topic: topic.to_owned(),
                source,
            })?;
        let ready: Option<Vec<i32>> = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none())
            .filter(|t| {
                t.partitions()
                    .iter()
                    .all(|p| p.error().is_none() && p.leader() >= 0)
            })
            .map(|t| t.partitions().iter().map(|p| p.id()).collect())
            .filter(|ids: &Vec<i32>| !ids.is_empty());
        if let Some(partitions) = ready {
            return Ok(partitions);
        }
        if Instant::now() >= deadline {
            return Err(FrontierError::NoTopic {
                topic: topic.to_owned(),
            });
        }
        std::thread::sleep(SETTLE_PAUSE);
    }
}

/// Between two questions to a topic that is still settling.
const SETTLE_PAUSE: Duration = Duration::from_millis(100);

/// Asks again, within `timeout`, while Kafka answers that the partition is
/// still settling (a topic just created, a leader being elected); any other
/// answer is returned as it is.
fn settled<T>(
    timeout: Duration,
    mut ask: impl FnMut() -> Result<T, KafkaError>,
) -> Result<T, KafkaError> {
    use rdkafka::types::RDKafkaErrorCode as Code;
    let deadline = Instant::now() + timeout;
    loop {
        match ask() {
            Err(e)
                if Instant::now() < deadline
                    && matches!(
                        e.rdkafka_error_code(),
                        Some(
                            Code::NotLeaderForPartition
                                | Code::LeaderNotAvailable
                                | Code::UnknownTopicOrPartition
                                | Code::UnknownPartition
                                | Code::UnknownTopic
                        )
                    ) =>
            {
                std::thread::sleep(SETTLE_PAUSE);
            }
            other => return other,
        }
    }
}

/// Reads `partitions` of `topic` backwards from their ends, all partitions
/// in each step at once (one assignment, one fetch per broker rather than a
/// round trip per partition): the first step reads the last [`FIRST_STEP`]
/// records of each, each later step twice as many before those, up to
/// [`MAX_STEP`]. Every record goes to `take`, newest first within its
/// partition, classified by `classify`; a partition is done when `take`
/// says so or its start is reached. Returns the records read.
fn read_back<T>(
    consumer: &BaseConsumer,
    topic: &str,
    partitions: &[i32],
    timeout: Duration,
    classify: &dyn Fn(&rdkafka::message::BorrowedMessage<'_>) -> T,
    mut take: impl FnMut(i32, T) -> bool,
) -> Result<u64, FrontierError> {
    let kafka = |source| FrontierError::Kafka {
        topic: topic.to_owned(),
        source,
    };
    // (partition, low watermark, end of what is left to read)
    let mut left = Vec::with_capacity(partitions.len());
    for &partition in partitions {
        let (low, high) = settled(timeout, || {
            consumer.fetch_watermarks(topic, partition, timeout)
        })
        .map_err(kafka)?;
        if high > low {
            left.push((partition, low, high));
        }
    }
    let mut records = 0u64;
    let mut step = FIRST_STEP;
    while !left.is_empty() {
        let ranges: Vec<(i32, i64, i64)> = left
            .iter()
            .map(|&(partition, low, end)| (partition, low.max(end - step), end))
            .collect();
        let mut read = read_ranges(consumer, topic, &ranges, timeout, classify)?;
        let mut next = Vec::with_capacity(left.len());
        for (&(partition, low, _), &(_, from, _)) in left.iter().zip(&ranges) {
            let seen = read.remove(&partition).unwrap_or_default();
            records += seen.len() as u64;
            let mut done = false;
            for s in seen.into_iter().rev() {
                if take(partition, s) {
                    done = true;
                    break;
                }
            }
            if !done && from > low {
                next.push((partition, low, from));
            }
        }
        left = next;
        step = (step * 2).min(MAX_STEP);
    }
    Ok(records)
}

/// The records at offsets `from..end` of each `(partition, from, end)` of
/// `topic`, oldest first per partition, read in one assignment.
fn read_ranges<T>(
    consumer: &BaseConsumer,
    topic: &str,
    ranges: &[(i32, i64, i64)],
    timeout: Duration,
    classify: &dyn Fn(&rdkafka::message::BorrowedMessage<'_>) -> T,
) -> Result<HashMap<i32, Vec<T>>, FrontierError> {
    let kafka = |source| FrontierError::Kafka {
        topic: topic.to_owned(),
        source,
    };
    let mut assignment = TopicPartitionList::new();
    // partition -> end of its range, for the ranges not yet read to the end
    let mut open: HashMap<i32, i64> = HashMap::with_capacity(ranges.len());
    let mut seen: HashMap<i32, Vec<T>> = HashMap::with_capacity(ranges.len());
    for &(partition, from, end) in ranges {
        if from >= end {
            continue;
        }
        assignment
            .add_partition_offset(topic, partition, Offset::Offset(from))
            .map_err(kafka)?;
        open.insert(partition, end);
        seen.insert(
            partition,
            Vec::with_capacity(usize::try_from(end - from).unwrap_or(0)),
        );
    }
    if open.is_empty() {
        return Ok(seen);
    }
    consumer.assign(&assignment).map_err(kafka)?;
    let deadline = Instant::now() + timeout;
    while !open.is_empty() {
        if Instant::now() > deadline {
            return Err(FrontierError::Timeout {
                topic: topic.to_owned(),
                timeout,
            });
        }
        match consumer.poll(Duration::from_millis(200)) {
            Some(message) => {
                let message = message.map_err(kafka)?;
                let partition = message.partition();
                let Some(&end) = open.get(&partition) else {
                    continue;
                };
                if message.offset() < end {
                    if let Some(records) = seen.get_mut(&partition) {
                        records.push(classify(&message));
                    }
                }
                if message.offset() + 1 >= end {
                    open.remove(&partition);
                }
            }
            // Offsets may be missing (compaction, transaction markers): the
            // consumer's positions say when a range is read.
            None => {
                let position = consumer.position().map_err(kafka)?;
                open.retain(|&partition, &mut end| {
                    let next =
                        position
                            .find_partition(topic, partition)
                            .and_then(|p| match p.offset() {
                                Offset::Offset(o) => Some(o),
                                _ => None,
                            });
                    next.is_none_or(|o| o < end)
                });
            }
        }
    }
    Ok(seen)
}

/// What a record read back is, for the store and epoch `identity`.
fn classify<M: Message>(message: &M, identity: Identity) -> Seen {
    let Some(headers) = message.headers() else {
        return Seen::Other;
    };
    let mut gtid = None;
    let mut row = None;
    let mut epoch = None;
    let mut store = None;
    let mut snapshot = false;
    for header in headers.iter() {
        let value = header.value.and_then(|v| std::str::from_utf8(v).ok());
        match header.key {
            HEADER_GTID => gtid = value.and_then(|v| v.parse::<Gtid>().ok()),
            HEADER_ROW => row = value.and_then(|v| v.parse::<u32>().ok()),
            HEADER_EPOCH => epoch = value.and_then(|v| v.parse::<u64>().ok()),
            HEADER_STORE => store = value.and_then(|v| u64::from_str_radix(v, 16).ok()),
            HEADER_REPLAY => return Seen::Other,
            HEADER_SNAPSHOT => snapshot = true,
            _ => {}
        }
    }
    if snapshot {
        // The snapshot `run` takes (this store's, this epoch's) is published
        // before any live record of the store: nothing of ours lies before
        // it. Any other snapshot (a backfill) is read past.
        return if store == Some(identity.store) && epoch == Some(identity.epoch) {
            Seen::Earlier
        } else {
            Seen::Other
        };
    }
    classify_headers(gtid, row, epoch, store, identity)
}

/// What a snapshot's resumption needs of the topics: for each partition,
/// the largest key of `table` that snapshot `snapshot` already put there
/// after `after` (the last key of an acknowledged chunk; rows up to it are
/// in their partitions).
///
/// Each partition is read backwards from its end and the read stops at the
/// first record of this snapshot whose table is not `table` (an earlier
/// table, whose rows all come before) or whose key is at or below `after`,
/// at a record of another snapshot of the same store (earlier), or at the
/// partition's start. A snapshot sends its rows in key order, and a
/// partition receives them in that order, so the first record met is the
/// largest key there.
///
/// # Errors
/// [`FrontierError`] when a topic cannot be read in time.
pub fn read_snapshot(
    client: &ClientConfig,
    topics: &[String],
    snapshot: &str,
    table: &str,
    after: Option<i128>,
    timeout: Duration,
) -> Result<HashMap<(String, i32), i128>, FrontierError> {
    #[derive(Clone, Copy)]
    enum Mark {
        Key(i128),
        Stop,
        Other,
    }
    let classify = |message: &rdkafka::message::BorrowedMessage<'_>| -> Mark {
        let Some(headers) = message.headers() else {
            return Mark::Other;
        };
        let mut id = None;
        let mut of_table = None;
        for header in headers.iter() {
            match header.key {
                HEADER_SNAPSHOT => id = header.value,
                HEADER_SNAPSHOT_TABLE => of_table = header.value,
                _ => {}
            }
        }
        match id {
            None => Mark::Other,
            Some(id) if id != snapshot.as_bytes() => Mark::Other,
            Some(_) if of_table != Some(table.as_bytes()) => Mark::Stop,
            Some(_) => {
                let key = message
                    .key()
                    .and_then(|k| std::str::from_utf8(k).ok())
                    .and_then(|k| k.parse::<i128>().ok());
                match key {
                    Some(k) if after.is_none_or(|a| k > a) => Mark::Key(k),
                    _ => Mark::Stop,
                }
            }
        }
    };
    let mut found = HashMap::new();
    for topic in topics {
        let kafka = |source| FrontierError::Kafka {
            topic: topic.clone(),
            source,
        };
        let consumer: BaseConsumer = frontier_consumer(client).create().map_err(kafka)?;
        let partitions = partition_ids(&consumer, topic, timeout)?;
        read_back(
            &consumer,
            topic,
            &partitions,
            timeout,
            &classify,
            |partition, mark| match mark {
                Mark::Other => false,
                Mark::Stop => true,
                Mark::Key(k) => {
                    found.insert((topic.clone(), partition), k);
                    true
                }
            },
        )?;
        close_in_background(consumer);
    }
    Ok(found)
}

fn classify_headers(
    gtid: Option<Gtid>,
    row: Option<u32>,
    epoch: Option<u64>,
    store: Option<u64>,
    identity: Identity,
) -> Seen {
    let (Some(gtid), Some(row), Some(epoch)) = (gtid, row, epoch) else {
        return Seen::Other;
    };
    let same_store = match store {
        Some(store) => store == identity.store,
        None => identity.legacy,
    };
    if same_store && epoch == identity.epoch {
        Seen::Ours(Published { gtid, row })
    } else {
        Seen::Earlier
    }
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

    fn g(domain: u32, seq: u64) -> Gtid {
        Gtid {
            domain,
            server_id: 1,
            seq,
        }
    }

    fn ours(domain: u32, seq: u64, row: u32) -> Seen {
        Seen::Ours(Published {
            gtid: g(domain, seq),
            row,
        })
    }

    #[test]
    fn skips_only_what_the_partition_holds_in_the_record_s_domain() {
        let mut f = Frontier::empty(HashMap::from([("t".to_owned(), 3)]));
        f.last.entry("t".into()).or_default().insert(
            1,
            HashMap::from([
                (
                    0,
                    Published {
                        gtid: g(0, 10),
                        row: 2,
                    },
                ),
                (
                    7,
                    Published {
                        gtid: g(7, 3),
                        row: 0,
                    },
                ),
            ]),
        );
        assert!(f.already_published("t", 1, g(0, 10), 2));
        assert!(f.already_published("t", 1, g(0, 9), 7));
        assert!(!f.already_published("t", 1, g(0, 10), 3));
        assert!(!f.already_published("t", 1, g(0, 11), 0));
        assert!(!f.already_published("t", 0, g(0, 1), 0), "other partition");
        assert!(f.already_published("t", 1, g(7, 3), 0));
        assert!(f.already_published("t", 1, g(7, 1), 5));
        assert!(!f.already_published("t", 1, g(7, 4), 0));
        assert!(!f.already_published("t", 1, g(1, 1), 0), "domain not seen");
        assert_eq!(f.entries().count(), 2);
    }

    /// Reads `newest_first` as the frontier read does.
    fn read_back(newest_first: &[Seen], checkpoint: Option<&GtidState>) -> (Found, usize) {
        let mut found = Found::default();
        let mut read = 0;
        for s in newest_first {
            read += 1;
            if found.take(*s, checkpoint) {
                break;
            }
        }
        (found, read)
    }

    #[test]
    fn reads_back_to_the_checkpoint_keeping_the_newest_record_of_each_domain() {
        let checkpoint: GtidState = [g(0, 5), g(1, 2)].into_iter().collect();
        // Newest first: domains 0, 1 and 2 interleaved, a replay and a
        // foreign record among them, then a record the checkpoint includes.
        let partition = [
            ours(1, 4, 0),
            ours(0, 8, 1),
            Seen::Other,
            ours(0, 8, 0),
            ours(2, 1, 0),
            ours(1, 3, 0),
            Seen::Other,
            ours(0, 6, 0),
            ours(1, 2, 0),
            ours(0, 5, 0),
            ours(2, 0, 0),
        ];
        let (found, read) = read_back(&partition, Some(&checkpoint));
        assert_eq!(read, 9, "stops at 0-1-2, which the checkpoint includes");
        assert_eq!(found.newest[&0].gtid, g(0, 8));
        assert_eq!(found.newest[&0].row, 1);
        assert_eq!(found.newest[&1].gtid, g(1, 4));
        assert_eq!(found.newest[&2].gtid, g(2, 1));
        assert!(found.done);
    }

    #[test]
    fn a_domain_new_since_the_checkpoint_is_read_to_its_newest_record() {
        // Domain 3 is not in the checkpoint: reading continues past records
        // of known domains until one the checkpoint includes.
        let checkpoint: GtidState = [g(0, 5)].into_iter().collect();
        let partition = [ours(0, 7, 0), ours(0, 6, 0), ours(3, 9, 0), ours(0, 5, 0)];
        let (found, read) = read_back(&partition, Some(&checkpoint));
        assert_eq!(read, 4);
        assert_eq!(found.newest[&3].gtid, g(3, 9));
    }

    #[test]
    fn another_store_or_epoch_ends_the_read() {
        let partition = [ours(0, 3, 0), Seen::Earlier, ours(0, 2, 0)];
        let (found, read) = read_back(&partition, None);
        assert_eq!(read, 2);
        assert_eq!(found.newest.len(), 1);
        assert!(found.done);
        // Without a checkpoint or an earlier record, the whole partition.
        let (found, read) = read_back(&[ours(0, 3, 0), Seen::Other, ours(0, 2, 0)], None);
        assert_eq!(read, 3);
        assert!(!found.done);
    }

    #[test]
    fn records_are_ours_only_with_our_store_and_epoch() {
        let me = Identity {
            store: 0xabc,
            epoch: 2,
            legacy: false,
        };
        let at = Some(g(0, 1));
        assert_eq!(
            classify_headers(at, Some(0), Some(2), Some(0xabc), me),
            ours(0, 1, 0)
        );
        assert_eq!(
            classify_headers(at, Some(0), Some(1), Some(0xabc), me),
            Seen::Earlier
        );
        assert_eq!(
            classify_headers(at, Some(0), Some(2), Some(0xdef), me),
            Seen::Earlier,
            "a store created anew does not count another store's records"
        );
        assert_eq!(
            classify_headers(at, Some(0), Some(2), None, me),
            Seen::Earlier,
            "records from before store ids belong to a legacy store only"
        );
        let legacy = Identity { legacy: true, ..me };
        assert_eq!(
            classify_headers(at, Some(0), Some(2), None, legacy),
            ours(0, 1, 0)
        );
        assert_eq!(
            classify_headers(None, None, None, None, me),
            Seen::Other,
            "a record without our headers"
        );
        assert_eq!(me.store_header(), "0000000000000abc");
    }
}
