//! Scanning our own topics, off the hot path: crash recovery reads each topic's tail at start
//! (`crate::recovery`), and the backfill thread reads what follows a failed delivery that may
//! have been written anyway (`crate::backfill::doubt`). One consumer setup and one bounded scan
//! for both; what a message means is the hand-off layer's (`handoff::readback`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::config::Config;

/// Why a topic could not be read back. Every one is the broker's or the network's.
#[derive(Debug, thiserror::Error)]
pub enum ReadBackError {
    #[error("read-back consumer: {0}")]
    Consumer(KafkaError),
    #[error("metadata for {0}: {1}")]
    Metadata(String, KafkaError),
    #[error("watermarks {0}/{1}: {2}")]
    Watermarks(String, i32, KafkaError),
    #[error("offsets for times of {0}: {1}")]
    OffsetsForTimes(String, KafkaError),
    #[error("assign: {0}")]
    Assign(KafkaError),
    #[error("reading {0} back took longer than its deadline")]
    Timeout(String),
    #[error("reading {0}: {1}")]
    Read(String, KafkaError),
    #[error("{0} does not exist or could not be described")]
    NoTopic(String),
    #[error("stopped (shutdown) while reading {0}")]
    Stopped(String),
}

impl ReadBackError {
    /// A bounded label for a log line.
    pub fn label(&self) -> &'static str {
        match self {
            ReadBackError::Consumer(_) => "consumer",
            ReadBackError::Metadata(..) => "metadata",
            ReadBackError::Watermarks(..) => "watermarks",
            ReadBackError::OffsetsForTimes(..) => "offsets_for_times",
            ReadBackError::Assign(_) => "assign",
            ReadBackError::Timeout(_) => "timeout",
            ReadBackError::Read(..) => "read",
            ReadBackError::NoTopic(_) => "no_topic",
            ReadBackError::Stopped(_) => "stopped",
        }
    }
}

/// Where in each partition a scan starts; it ends at the partition's end as it was when the scan
/// started.
#[derive(Clone, Copy, Debug)]
pub enum Start {
    /// The last `n` messages of each partition.
    Tail(i64),
    /// The first message whose timestamp is at or after this (ms since the epoch). A message
    /// produced with timestamp `t` (our records carry their event time) is at or after it, and so
    /// is one the broker stamped on append (later than its event time, and appends are in order).
    Since(i64),
}

/// What a scan read: the number of messages, and whether the topic exists.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Scanned {
    pub read: u64,
    pub topic_exists: bool,
}

/// What a scan hands each message to: its key and payload.
pub type OnMessage<'a> = dyn FnMut(Option<&[u8]>, Option<&[u8]>) + 'a;

/// A consumer for reading back: connection and security settings only (the producer's tuning does
/// not apply to a consumer), no group offsets committed.
fn consumer(cfg: &Config, group: &str) -> Result<BaseConsumer, ReadBackError> {
    let mut cc = ClientConfig::new();
    for (k, v) in crate::kafka_client::properties(cfg) {
        if k == "bootstrap.servers" || k.starts_with("security.") || k.starts_with("sasl.") || k.starts_with("ssl.") {
            cc.set(k, v);
        }
    }
    cc.set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        // A start offset retention has removed reads from the oldest kept, not from the end.
        .set("auto.offset.reset", "earliest")
        .set("allow.auto.create.topics", "false");
    cc.create().map_err(ReadBackError::Consumer)
}

/// One scan: which topic, partitions and messages, by when.
pub struct Scan<'a> {
    /// Names the consumer to the broker (nothing is committed).
    pub group: &'a str,
    pub topic: &'a str,
    pub start: Start,
    /// Only these partitions; all if `None`.
    pub partitions: Option<&'a [i32]>,
    /// Past it the scan fails ([`ReadBackError::Timeout`]).
    pub deadline: Instant,
    /// Checked between polls: true ends the scan ([`ReadBackError::Stopped`]).
    pub stop: &'a dyn Fn() -> bool,
}

/// Whether a topic's error in a metadata answer says it does not exist (yet: with auto-creation
/// on, the broker may be creating it as it answers). Any other (authorization, ...) is an error,
/// not an empty topic: read as one, recovery would start unseeded saying the topic did not exist,
/// and the read-back would find nothing in it.
fn is_missing(code: RDKafkaErrorCode) -> bool {
    matches!(code, RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::LeaderNotAvailable)
}

/// Reads the partitions of a topic from `start` to their ends as of now, handing `on` each
/// message's key and payload. A topic that does not exist reads nothing
/// ([`Scanned::topic_exists`] false).
pub fn scan(cfg: &Config, scan: &Scan<'_>, on: &mut OnMessage<'_>) -> Result<Scanned, ReadBackError> {
    let Scan { group, topic, start, partitions, deadline, stop } = *scan;
    let left = || deadline.saturating_duration_since(Instant::now());
    let stopped = || if stop() { Err(ReadBackError::Stopped(topic.into())) } else { Ok(()) };
    stopped()?;
    let c = consumer(cfg, group)?;
    // A broker that does not answer in a few seconds is not waited on for the whole budget.
    let md = c
        .fetch_metadata(Some(topic), left().min(Duration::from_secs(5)))
        .map_err(|e| ReadBackError::Metadata(topic.into(), e))?;
    let Some(t) = md.topics().first() else { return Ok(Scanned::default()) };
    match t.error().map(RDKafkaErrorCode::from) {
        None => {}
        Some(code) if is_missing(code) => return Ok(Scanned::default()),
        Some(code) => return Err(ReadBackError::Metadata(topic.into(), KafkaError::MetadataFetch(code))),
    }
    if t.partitions().is_empty() {
        return Ok(Scanned::default());
    }
    let mut ends: HashMap<i32, i64> = HashMap::new();
    let mut from: HashMap<i32, i64> = HashMap::new();
    for p in t.partitions().iter().filter(|p| partitions.is_none_or(|only| only.contains(&p.id()))) {
        stopped()?;
        // A few seconds a call at most, so that shutdown is seen between them.
        let (low, high) = c
            .fetch_watermarks(topic, p.id(), left().min(Duration::from_secs(5)))
            .map_err(|e| ReadBackError::Watermarks(topic.into(), p.id(), e))?;
        if high > low {
            ends.insert(p.id(), high);
            from.insert(p.id(), if let Start::Tail(n) = start { low.max(high.saturating_sub(n)) } else { low });
        }
    }
    // Nothing to read (and librdkafka refuses an empty offsets-for-times request).
    if ends.is_empty() {
        return Ok(Scanned { read: 0, topic_exists: true });
    }
    stopped()?;
    if let Start::Since(ms) = start {
        let mut by_time = TopicPartitionList::new();
        for p in ends.keys() {
            by_time.add_partition_offset(topic, *p, Offset::Offset(ms)).map_err(ReadBackError::Assign)?;
        }
        let found = c
            .offsets_for_times(by_time, left().min(Duration::from_secs(5)))
            .map_err(|e| ReadBackError::OffsetsForTimes(topic.into(), e))?;
        for e in found.elements() {
            match e.offset() {
                // No message that late: nothing of this partition to read.
                Offset::End => {
                    ends.remove(&e.partition());
                }
                Offset::Offset(o) => {
                    from.insert(e.partition(), o);
                }
                // Not an answer to a time: read the partition whole rather than guess.
                _ => {}
            }
        }
    }
    ends.retain(|p, end| from.get(p).is_some_and(|f| f < end));
    let mut tpl = TopicPartitionList::new();
    for (p, f) in from.iter().filter(|(p, _)| ends.contains_key(p)) {
        tpl.add_partition_offset(topic, *p, Offset::Offset(*f)).map_err(ReadBackError::Assign)?;
    }
    let mut scanned = Scanned { read: 0, topic_exists: true };
    if ends.is_empty() {
        return Ok(scanned);
    }
    c.assign(&tpl).map_err(ReadBackError::Assign)?;
    while !ends.is_empty() {
        stopped()?;
        if Instant::now() >= deadline {
            return Err(ReadBackError::Timeout(topic.into()));
        }
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                scanned.read += 1;
                if m.offset() + 1 >= ends.get(&m.partition()).copied().unwrap_or(i64::MAX) {
                    ends.remove(&m.partition());
                }
                on(m.key(), m.payload());
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                ends.remove(&p);
            }
            Some(Err(e)) => return Err(ReadBackError::Read(topic.into(), e)),
            None => {}
        }
    }
    Ok(scanned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_topic_is_an_error_not_an_empty_topic() {
        assert!(is_missing(RDKafkaErrorCode::UnknownTopicOrPartition));
        assert!(is_missing(RDKafkaErrorCode::LeaderNotAvailable));
        for refused in [
            RDKafkaErrorCode::TopicAuthorizationFailed,
            RDKafkaErrorCode::ClusterAuthorizationFailed,
            RDKafkaErrorCode::InvalidTopic,
        ] {
            assert!(!is_missing(refused), "{refused:?}");
        }
    }
}
