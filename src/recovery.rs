//! Crash recovery: where did the last run stop? Kafka is the record of what was published, so
//! at start the ingester reads the tail of each trade/aggTrade topic and seeds the sequence
//! tracker with the last id per symbol. The first live trade then shows the hole since the last
//! run as a gap, which the backfill thread fills from REST: after a SIGKILL and restart the topic
//! ends with no missing and no repeated ids.
//!
//! The tail is read by the live tracker's quarantine rule ([`Frontier`]): records published
//! `"quarantined":true` never seed the sequence by themselves, and neither does an unflagged id
//! implausibly far ahead (a topic written before quarantine existed), unless the live record
//! after it continues from it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tracing::{info, warn};

use crate::config::Config;
use crate::handoff::readback::{published_id, Published};
use crate::record::RecordType;
use crate::sequence::{Dense, Frontier};
use crate::stream::StreamKind;
use crate::symbols::Symbols;

/// Messages read back per partition: enough to find every symbol's last record unless a symbol
/// has been silent while this many others were published.
const SCAN_PER_PARTITION: i64 = 200_000;

/// Why the topics' tails could not be read. Every one is the broker's or the network's: the run
/// then starts unseeded ([`recover`]), and a later restart tries again.
#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error("recovery consumer: {0}")]
    Consumer(KafkaError),
    #[error("metadata for {0}: {1}")]
    Metadata(String, KafkaError),
    #[error("watermarks {0}/{1}: {2}")]
    Watermarks(String, i32, KafkaError),
    #[error("assign: {0}")]
    Assign(KafkaError),
    #[error("reading {0} back took longer than the recovery timeout")]
    Timeout(String),
    #[error("reading {0}: {1}")]
    Read(String, KafkaError),
}

impl RecoveryError {
    /// A bounded label for the log line.
    pub fn label(&self) -> &'static str {
        match self {
            RecoveryError::Consumer(_) => "consumer",
            RecoveryError::Metadata(..) => "metadata",
            RecoveryError::Watermarks(..) => "watermarks",
            RecoveryError::Assign(_) => "assign",
            RecoveryError::Timeout(_) => "timeout",
            RecoveryError::Read(..) => "read",
        }
    }
}

/// The last published id per (symbol index, sequence), from the tails of the topics.
pub fn last_published(
    cfg: &Config,
    symbols: &Symbols,
    timeout: Duration,
) -> Result<Vec<(u16, Dense, i64)>, RecoveryError> {
    let mut wanted: Vec<(Dense, &str)> = Vec::new();
    if cfg.streams.contains(&StreamKind::Trade) {
        wanted.push((Dense::Trade, &cfg.topics[RecordType::Trade as usize]));
    }
    if cfg.streams.contains(&StreamKind::AggTrade) {
        wanted.push((Dense::AggTrade, &cfg.topics[RecordType::AggTrade as usize]));
    }
    let mut last: HashMap<(u16, u8), Frontier> = HashMap::new();
    let deadline = Instant::now() + timeout;
    let mut topics: Vec<&str> = wanted.iter().map(|(_, t)| *t).collect();
    topics.dedup();
    for topic in topics {
        scan_topic(cfg, topic, symbols, &mut last, deadline)?;
    }
    let mut out: Vec<(u16, Dense, i64)> = Vec::new();
    for ((sym, k), frontier) in last {
        let kind = if k == Dense::Trade as u8 { Dense::Trade } else { Dense::AggTrade };
        if let Some(id) = frontier.last().filter(|_| wanted.iter().any(|(w, _)| *w == kind)) {
            out.push((sym, kind, id));
        }
    }
    out.sort_by_key(|(s, k, _)| (*s, *k as u8));
    Ok(out)
}

fn consumer(cfg: &Config) -> Result<BaseConsumer, RecoveryError> {
    let mut cc = ClientConfig::new();
    // Connection and security settings only: the producer's tuning does not apply to a consumer.
    for (k, v) in crate::kafka_client::properties(cfg) {
        if k == "bootstrap.servers" || k.starts_with("security.") || k.starts_with("sasl.") || k.starts_with("ssl.") {
            cc.set(k, v);
        }
    }
    cc.set("group.id", "marketflow-ingestor-recovery")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("allow.auto.create.topics", "false");
    cc.create().map_err(RecoveryError::Consumer)
}

fn scan_topic(
    cfg: &Config,
    topic: &str,
    symbols: &Symbols,
    last: &mut HashMap<(u16, u8), Frontier>,
    deadline: Instant,
) -> Result<(), RecoveryError> {
    let c = consumer(cfg)?;
    // A broker that does not answer in a few seconds is not waited on for the whole budget:
    // starting late costs more than starting unseeded.
    let left = deadline.saturating_duration_since(Instant::now()).min(Duration::from_secs(5));
    let md = c.fetch_metadata(Some(topic), left).map_err(|e| RecoveryError::Metadata(topic.into(), e))?;
    let Some(t) = md.topics().first() else { return Ok(()) };
    if t.error().is_some() || t.partitions().is_empty() {
        info!(topic, "recovery: topic does not exist yet; nothing to continue from");
        return Ok(());
    }
    let mut tpl = TopicPartitionList::new();
    let mut ends: HashMap<i32, i64> = HashMap::new();
    for p in t.partitions() {
        let left = deadline.saturating_duration_since(Instant::now());
        let (low, high) =
            c.fetch_watermarks(topic, p.id(), left).map_err(|e| RecoveryError::Watermarks(topic.into(), p.id(), e))?;
        if high > low {
            let from = low.max(high - SCAN_PER_PARTITION);
            tpl.add_partition_offset(topic, p.id(), Offset::Offset(from)).map_err(RecoveryError::Assign)?;
            ends.insert(p.id(), high);
        }
    }
    if ends.is_empty() {
        return Ok(());
    }
    c.assign(&tpl).map_err(RecoveryError::Assign)?;
    let mut read = 0u64;
    while !ends.is_empty() {
        if Instant::now() >= deadline {
            return Err(RecoveryError::Timeout(topic.into()));
        }
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                read += 1;
                if m.offset() + 1 >= ends.get(&m.partition()).copied().unwrap_or(i64::MAX) {
                    ends.remove(&m.partition());
                }
                let Some(sym) =
                    m.key().and_then(|k| std::str::from_utf8(k).ok()).and_then(|k| symbols.index_of_upper(k))
                else {
                    continue;
                };
                if let Some((kind, id, how)) = m.payload().and_then(published_id) {
                    let f = last.entry((sym, kind as u8)).or_insert_with(|| Frontier::new(cfg.backfill_max_ids));
                    match how {
                        Published::Live => f.live(id),
                        Published::Quarantined => f.quarantined(id),
                        Published::Settled => f.settled(id),
                    }
                }
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                ends.remove(&p);
            }
            Some(Err(e)) => return Err(RecoveryError::Read(topic.into(), e)),
            None => {}
        }
    }
    info!(topic, read, "recovery: read the topic's tail");
    Ok(())
}

/// Logs and returns what recovery found; a broker that does not answer is not fatal (the run
/// starts unseeded, and says so).
pub fn recover(cfg: &Config, symbols: &Symbols) -> Vec<(u16, Dense, i64)> {
    match last_published(cfg, symbols, Duration::from_secs(20)) {
        Ok(found) => {
            for (s, k, id) in &found {
                info!(symbol = %cfg.symbols[*s as usize], kind = ?k, last_id = id, "recovery: continuing after");
            }
            found
        }
        Err(e) => {
            warn!(
                kind = e.label(),
                "recovery from Kafka failed, starting without it (gaps since the last run will not be backfilled): {e}"
            );
            Vec::new()
        }
    }
}
