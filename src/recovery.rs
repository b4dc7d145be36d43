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

use tracing::{info, warn};

use crate::config::Config;
use crate::handoff::readback::{is_exchange, published_id, Published};
use crate::kafka_client::topic_scan::{self, Scan, Start};
use crate::record::RecordType;
use crate::sequence::{Dense, Frontier};
use crate::stream::StreamKind;
use crate::symbols::Symbols;

/// Messages read back per partition: enough to find every symbol's last record unless a symbol
/// has been silent while this many others were published.
const SCAN_PER_PARTITION: i64 = 200_000;

/// The consumer group recovery reads as (nothing is committed).
const GROUP: &str = "marketflow-ingestor-recovery";

/// Why the topics' tails could not be read. Every one is the broker's or the network's: the run
/// then starts unseeded ([`recover`]), and a later restart tries again.
pub use crate::kafka_client::topic_scan::ReadBackError as RecoveryError;

/// The last published id per (symbol index, sequence), from the tails of the topics.
pub fn last_published(
    cfg: &Config,
    exchange: &str,
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
        scan_topic(cfg, topic, exchange, symbols, &mut last, deadline)?;
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

fn scan_topic(
    cfg: &Config,
    topic: &str,
    exchange: &str,
    symbols: &Symbols,
    last: &mut HashMap<(u16, u8), Frontier>,
    deadline: Instant,
) -> Result<(), RecoveryError> {
    let mut on = |key: Option<&[u8]>, payload: Option<&[u8]>| {
        if let (Some(key), Some(payload)) = (key, payload) {
            account(last, cfg.backfill_max_ids, exchange, symbols, key, payload);
        }
    };
    let scan = Scan {
        group: GROUP,
        topic,
        start: Start::Tail(SCAN_PER_PARTITION),
        partitions: None,
        deadline,
        stop: &|| false,
    };
    let scanned = topic_scan::scan(cfg, &scan, &mut on)?;
    if scanned.topic_exists {
        info!(topic, read = scanned.read, "recovery: read the topic's tail");
    } else {
        info!(topic, "recovery: topic does not exist yet; nothing to continue from");
    }
    Ok(())
}

/// Takes one message read back into the positions: only `exchange`'s records and markers of a
/// configured symbol count. Another venue's in the same topic (spot and USD-M pointed at one
/// topic, another producer) carry ids of another sequence: taken as ours, a higher one would make
/// every live trade look like a repeat, and a lower one a gap to backfill.
fn account(
    last: &mut HashMap<(u16, u8), Frontier>,
    max_jump: i64,
    exchange: &str,
    symbols: &Symbols,
    key: &[u8],
    payload: &[u8],
) {
    let Some(sym) = std::str::from_utf8(key).ok().and_then(|k| symbols.index_of_upper(k)) else { return };
    if !is_exchange(payload, exchange) {
        return;
    }
    if let Some((kind, id, how)) = published_id(payload) {
        let f = last.entry((sym, kind as u8)).or_insert_with(|| Frontier::new(max_jump));
        match how {
            Published::Live => f.live(id),
            Published::Quarantined => f.quarantined(id),
            Published::Settled => f.settled(id),
        }
    }
}

/// Logs and returns what recovery found for `exchange`'s records; a broker that does not answer
/// is not fatal (the run starts unseeded, and says so).
pub fn recover(cfg: &Config, exchange: &str, symbols: &Symbols) -> Vec<(u16, Dense, i64)> {
    match last_published(cfg, exchange, symbols, Duration::from_secs(20)) {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Spot and USD-M records of the same symbol in one topic: each market's recovery takes only
    /// its own ids (USD-M's trade ids are another sequence, here far ahead of spot's).
    #[test]
    fn recovery_takes_only_its_own_venues_records() {
        let symbols = Symbols::new(&["btcusdt".to_string()]);
        let spot = br#"{"type":"trade","exchange":"binance","symbol":"BTCUSDT","trade_id":100}"#;
        let usdm = br#"{"type":"trade","exchange":"binance-usdm","symbol":"BTCUSDT","trade_id":900000}"#;
        for (exchange, want) in [("binance", 100), ("binance-usdm", 900_000)] {
            let mut last = HashMap::new();
            for payload in [&spot[..], &usdm[..], &spot[..]] {
                account(&mut last, 1_000_000, exchange, &symbols, b"BTCUSDT", payload);
            }
            let got: Vec<_> = last.values().filter_map(|f| f.last()).collect();
            assert_eq!(got, [want], "{exchange}");
        }
        let mut last = HashMap::new();
        account(&mut last, 1_000_000, "binance", &symbols, b"ETHUSDT", spot);
        assert!(last.is_empty(), "a symbol not configured");
    }
}
