//! Our own published messages, read back: which id of which dense sequence a message accounts
//! for, and how it was published. Recovery reads the topics' tails with it; the sink, a failed
//! delivery's payload (off the hot path: failures only). One place knows the published JSON's
//! id fields, beside the gap markers that write half of them.

use super::marker::Reason;
use crate::record::RecordType;
use crate::sequence::Dense;

/// How a record read back was published, which decides what its id may do to the position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Published {
    Live,
    Quarantined,
    /// Backfilled, or the end of a gap marker (an unrecoverable range is settled too).
    Settled,
}

/// The id a published record accounts for (a trade or aggTrade id, or the end of a gap marker)
/// and how it was published.
pub fn published_id(payload: &[u8]) -> Option<(Dense, i64, Published)> {
    let v: serde_json::Value = serde_json::from_slice(payload).ok()?;
    let how = if v["quarantined"] == true {
        Published::Quarantined
    } else if v["backfilled"] == true {
        Published::Settled
    } else {
        Published::Live
    };
    match v["type"].as_str()? {
        "trade" => Some((Dense::Trade, v["trade_id"].as_i64()?, how)),
        "agg_trade" => Some((Dense::AggTrade, v["agg_id"].as_i64()?, how)),
        "gap" => {
            let kind = match v["stream"].as_str()? {
                "trade" => Dense::Trade,
                "aggTrade" => Dense::AggTrade,
                _ => return None,
            };
            Some((kind, v["to_id"].as_i64()?, Published::Settled))
        }
        _ => None,
    }
}

/// The id a failed record asks REST for again: a trade's or an aggTrade's, whatever its flags.
/// Gap markers are not records: what they name is already settled.
pub fn refetchable_id(payload: &[u8]) -> Option<(Dense, i64)> {
    match published_id(payload)? {
        (_, _, Published::Settled) if is_marker(payload) => None,
        (kind, id, _) => Some((kind, id)),
    }
}

/// The ids a trade or aggTrade record (`marker` false) or a gap marker of their streams accounts
/// for, `(first, last)` both included; `None` for anything else. Read from our own encoding
/// without allocating: strict ordering asks it of every trade it publishes. The field names come
/// before any free text (a symbol holds no `"`), so the first match is the field.
pub fn span(kind: RecordType, marker: bool, payload: &[u8]) -> Option<(i64, i64)> {
    if marker {
        if !is_marker(payload) {
            return None;
        }
        return Some((int_after(payload, br#""from_id":"#)?, int_after(payload, br#""to_id":"#)?));
    }
    let id = match kind {
        RecordType::Trade => int_after(payload, br#""trade_id":"#)?,
        RecordType::AggTrade => int_after(payload, br#""agg_id":"#)?,
        _ => return None,
    };
    Some((id, id))
}

/// The `reason` of a gap marker.
pub fn gap_reason(payload: &[u8]) -> Option<Reason> {
    let field = br#""reason":""#;
    let at = find(payload, field)? + field.len();
    let len = payload[at..].iter().position(|&b| b == b'"')?;
    Reason::parse(std::str::from_utf8(&payload[at..at + len]).ok()?)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The integer right after `field` (`"name":`).
fn int_after(payload: &[u8], field: &[u8]) -> Option<i64> {
    let at = find(payload, field)? + field.len();
    let rest = &payload[at..];
    let len = rest.iter().position(|b| !(b.is_ascii_digit() || *b == b'-')).unwrap_or(rest.len());
    std::str::from_utf8(&rest[..len]).ok()?.parse().ok()
}

/// Whether a record or gap marker of ours says it is `exchange`'s (its `exchange` field, which
/// our encoders write second). A topic may hold another venue's records too (an operator who
/// points spot and USD-M at one topic, another producer): their ids are another sequence's.
pub fn is_exchange(payload: &[u8], exchange: &str) -> bool {
    let field = br#""exchange":""#;
    let Some(at) = find(payload, field).map(|i| i + field.len()) else { return false };
    let rest = &payload[at..];
    rest.starts_with(exchange.as_bytes()) && rest.get(exchange.len()) == Some(&b'"')
}

/// The Kafka timestamp (ms) a record or gap marker of ours was produced with, read from its own
/// payload: librdkafka reports none for a failed delivery, and the read-back of a record in
/// doubt must start at or before it. A record's is its `event_time` in ms (floored from µs
/// under `TIME_UNIT=us`, as the pipeline converts it); a marker's, its `recv_time_ns` in ms.
pub fn kafka_timestamp_ms(payload: &[u8]) -> Option<i64> {
    if is_marker(payload) {
        return int_after(payload, br#""recv_time_ns":"#).map(|ns| ns.div_euclid(1_000_000));
    }
    int_after(payload, br#""event_time_ms":"#)
        .or_else(|| int_after(payload, br#""event_time_us":"#).map(|us| us.div_euclid(1_000)))
}

/// The record type whose topic a gap marker goes to (as [`super::marker::meta`] routes it),
/// from its `stream` field; `None` if `payload` is not one of our gap markers.
pub fn marker_kind(payload: &[u8]) -> Option<RecordType> {
    if !is_marker(payload) {
        return None;
    }
    let field = br#""stream":""#;
    let at = find(payload, field)? + field.len();
    let rest = &payload[at..];
    let name = &rest[..rest.iter().position(|&b| b == b'"')?];
    match name {
        b"trade" => Some(RecordType::Trade),
        b"aggTrade" => Some(RecordType::AggTrade),
        b"depth" => Some(RecordType::DepthUpdate),
        _ if name.starts_with(b"kline_") => Some(RecordType::Kline),
        _ => None,
    }
}

/// Whether `payload` is a gap marker (`"type":"gap"`), which our encoders write first.
pub fn is_marker(payload: &[u8]) -> bool {
    payload.starts_with(br#"{"type":"gap""#)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_come_from_records_and_gap_markers() {
        use Published::*;
        assert_eq!(published_id(br#"{"type":"trade","trade_id":42}"#), Some((Dense::Trade, 42, Live)));
        assert_eq!(
            published_id(br#"{"type":"agg_trade","agg_id":7,"backfilled":true}"#),
            Some((Dense::AggTrade, 7, Settled))
        );
        assert_eq!(
            published_id(br#"{"type":"gap","stream":"trade","from_id":5,"to_id":9}"#),
            Some((Dense::Trade, 9, Settled))
        );
        assert_eq!(
            published_id(br#"{"type":"trade","trade_id":9223372036854775807,"quarantined":true}"#),
            Some((Dense::Trade, i64::MAX, Quarantined))
        );
        assert_eq!(published_id(br#"{"type":"kline"}"#), None);
        assert_eq!(published_id(b"not json"), None);
    }

    #[test]
    fn spans_are_read_from_what_our_encoders_write() {
        use crate::handoff::jobs::Seq;
        use crate::record::{AggTrade, Record, Side, Trade};
        let mut out = Vec::new();
        let t = Trade {
            exchange: "binance",
            symbol: "币安人生USDT",
            trade_id: 9_223_372_036_854_775_807,
            price: "1.0".into(),
            qty: "2".into(),
            side: Side::Buy,
            trade_time_ms: 1,
            event_time_ms: 2,
        };
        Record::Trade(t).encode(3, true, &mut out).unwrap();
        assert_eq!(span(RecordType::Trade, false, &out), Some((i64::MAX, i64::MAX)));
        out.clear();
        let a = AggTrade {
            exchange: "binance",
            symbol: "BTCUSDT",
            agg_id: 77,
            first_trade_id: 5,
            last_trade_id: 6,
            price: "1.0".into(),
            qty: "2".into(),
            side: Side::Sell,
            trade_time_ms: 1,
            event_time_ms: 2,
        };
        Record::AggTrade(a).encode(3, false, &mut out).unwrap();
        assert_eq!(span(RecordType::AggTrade, false, &out), Some((77, 77)), "agg_id, not a trade id");
        let seq = Seq::Ids { symbol_idx: 0, kind: Dense::AggTrade };
        let gap = crate::handoff::gap_record("binance", "BTCUSDT", seq, -5, 10, Reason::OrderingTimeout);
        assert_eq!(span(RecordType::AggTrade, true, &gap.payload), Some((-5, 9)));
        assert_eq!(gap_reason(&gap.payload), Some(Reason::OrderingTimeout));
        // Not ours to order: other kinds, other markers.
        assert_eq!(span(RecordType::Kline, false, br#"{"type":"kline","open_time_ms":1}"#), None);
        assert_eq!(span(RecordType::DepthUpdate, true, br#"{"type":"depth_resync"}"#), None);
        assert_eq!(span(RecordType::Trade, false, br#"{"type":"trade","trade_id":x}"#), None);
    }

    #[test]
    fn a_failed_trade_is_refetched_and_a_failed_gap_marker_is_not() {
        assert_eq!(refetchable_id(br#"{"type":"trade","exchange":"binance","trade_id":42}"#), Some((Dense::Trade, 42)));
        assert_eq!(refetchable_id(br#"{"type":"agg_trade","agg_id":7,"backfilled":true}"#), Some((Dense::AggTrade, 7)));
        assert_eq!(refetchable_id(br#"{"type":"trade","trade_id":9,"quarantined":true}"#), Some((Dense::Trade, 9)));
        assert_eq!(refetchable_id(br#"{"type":"gap","stream":"trade","from_id":5,"to_id":9}"#), None);
        assert_eq!(refetchable_id(br#"{"type":"kline","open_time_ms":1}"#), None);
    }

    /// The read-back of a record in doubt starts at its own timestamp, which librdkafka does not
    /// report for a failed delivery: it is read from the payload, as the pipeline set it.
    #[test]
    fn the_kafka_timestamp_is_read_from_our_own_payloads() {
        use crate::handoff::jobs::Seq;
        use crate::record::{Record, Side, Trade};
        use crate::time_unit::TimeUnit;
        let t = Trade {
            exchange: "binance",
            symbol: "BTCUSDT",
            trade_id: 12,
            price: "1.0".into(),
            qty: "2".into(),
            side: Side::Buy,
            trade_time_ms: 1_700_000_000_123_456,
            event_time_ms: 1_700_000_000_124_999,
        };
        for (unit, want) in [(TimeUnit::Millis, 1_700_000_000_124_999), (TimeUnit::Micros, 1_700_000_000_124)] {
            let mut out = Vec::new();
            Record::Trade(t).encode_to(None, unit, 7, true, &mut out).unwrap();
            assert_eq!(kafka_timestamp_ms(&out), Some(want), "{unit:?}: {}", String::from_utf8_lossy(&out));
        }
        let gap = crate::handoff::gap_record(
            "binance",
            "BTCUSDT",
            Seq::Ids { symbol_idx: 0, kind: Dense::Trade },
            1,
            2,
            Reason::Shutdown,
        );
        assert_eq!(
            kafka_timestamp_ms(&gap.payload),
            Some(gap.meta.event_time_ms),
            "a marker's, as marker::meta set it"
        );
        assert_eq!(kafka_timestamp_ms(br#"{"type":"trade","trade_id":1}"#), None);
    }

    #[test]
    fn a_payload_is_one_venues_or_anothers() {
        let spot = br#"{"type":"trade","exchange":"binance","symbol":"BTCUSDT","trade_id":1}"#;
        let usdm = br#"{"type":"trade","exchange":"binance-usdm","symbol":"BTCUSDT","trade_id":1}"#;
        assert!(is_exchange(spot, "binance") && !is_exchange(spot, "binance-usdm"));
        assert!(is_exchange(usdm, "binance-usdm") && !is_exchange(usdm, "binance"), "not a prefix match");
        assert!(!is_exchange(br#"{"type":"trade","trade_id":1}"#, "binance"));
        assert!(!is_exchange(br#"{"exchange":"binance"#, "binance"), "cut short");
    }

    /// A failed gap marker is sent again to the topic `marker::meta` chose for it.
    #[test]
    fn a_gap_markers_topic_is_read_from_its_stream() {
        use crate::handoff::jobs::Seq;
        use crate::time_unit::TimeUnit;
        let seqs = [
            Seq::Ids { symbol_idx: 0, kind: Dense::Trade },
            Seq::Ids { symbol_idx: 0, kind: Dense::AggTrade },
            Seq::Ids { symbol_idx: 0, kind: Dense::Depth },
            Seq::Candles { symbol_idx: 0, interval: 3, unit: TimeUnit::Micros },
        ];
        for seq in seqs {
            let gap = crate::handoff::gap_record("binance", "BTCUSDT", seq, 60_000_000, 120_000_000, Reason::Shutdown);
            assert_eq!(marker_kind(&gap.payload), Some(gap.meta.kind), "{seq:?}");
        }
        assert_eq!(marker_kind(br#"{"type":"trade","stream":"trade"}"#), None, "not a marker");
        assert_eq!(marker_kind(br#"{"type":"gap","stream":"ticker"}"#), None);
        assert_eq!(marker_kind(br#"{"type":"gap","stream":"trade"#), None, "cut short");
    }
}
