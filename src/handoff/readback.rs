//! Our own published messages, read back: which id of which dense sequence a message accounts
//! for, and how it was published. Recovery reads the topics' tails with it; the sink, a failed
//! delivery's payload (off the hot path: failures only). One place knows the published JSON's
//! id fields, beside the gap markers that write half of them.

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

/// Whether `payload` is a gap marker (`"type":"gap"`), which our encoders write first.
fn is_marker(payload: &[u8]) -> bool {
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
    fn a_failed_trade_is_refetched_and_a_failed_gap_marker_is_not() {
        assert_eq!(refetchable_id(br#"{"type":"trade","exchange":"binance","trade_id":42}"#), Some((Dense::Trade, 42)));
        assert_eq!(refetchable_id(br#"{"type":"agg_trade","agg_id":7,"backfilled":true}"#), Some((Dense::AggTrade, 7)));
        assert_eq!(refetchable_id(br#"{"type":"trade","trade_id":9,"quarantined":true}"#), Some((Dense::Trade, 9)));
        assert_eq!(refetchable_id(br#"{"type":"gap","stream":"trade","from_id":5,"to_id":9}"#), None);
        assert_eq!(refetchable_id(br#"{"type":"kline","open_time_ms":1}"#), None);
    }
}
