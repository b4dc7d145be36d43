//! `gap` records: the JSON naming ids (or candles) that will never be published, written without
//! allocating (the event loop writes them straight into the ring when the backfill queue is full).

use std::io::Write;

use crate::interval::{KLINE_INTERVALS, KLINE_INTERVAL_MS};
use crate::record::RecordType;
use crate::ring::{RecordMeta, FLAG_MARKER};
use crate::sequence::Dense;
use crate::time_unit::TimeUnit;

use super::jobs::Seq;

/// Why a range is published as a gap rather than fetched; the `reason` field. Documented in
/// README's Records section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Binance's REST history lacks the ids too.
    NotInRest,
    /// REST refused the request for good (a 4xx other than a rate limit).
    RestError,
    /// Beyond `BACKFILL_MAX_IDS` ids (or candles) of one gap.
    BackfillLimit,
    /// The bounded backfill queue was full: published at once instead of queued.
    QueueFull,
    /// The process stopped before the backfill finished.
    Shutdown,
    /// Backfill is switched off (`BACKFILL=off`): a gap is named at once, never fetched.
    BackfillOff,
    /// `ORDERING=strict`: the gap was not filled within `ORDERING_MAX_WAIT_MS`; the records held
    /// behind it went on.
    OrderingTimeout,
    /// `ORDERING=strict`: the records held behind the gap reached the hold's memory bound.
    OrderingFull,
    /// `ORDERING=strict`: the record came after later ids were published, so it cannot be.
    OrderingLate,
    /// A delivery failed after the broker got the request, and the topic could not be read back
    /// to see whether it was written (`backfill::doubt`): the ids may be in the topic, or not.
    DeliveryInDoubt,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::NotInRest => "not_in_rest",
            Reason::RestError => "rest_error",
            Reason::BackfillLimit => "backfill_limit",
            Reason::QueueFull => "backfill_queue_full",
            Reason::Shutdown => "shutdown",
            Reason::BackfillOff => "backfill_off",
            Reason::OrderingTimeout => "ordering_timeout",
            Reason::OrderingFull => "ordering_full",
            Reason::OrderingLate => "ordering_late",
            Reason::DeliveryInDoubt => "delivery_in_doubt",
        }
    }

    /// The reason a `reason` field names.
    pub fn parse(name: &str) -> Option<Reason> {
        Self::ALL.into_iter().find(|r| r.as_str() == name)
    }

    pub const ALL: [Reason; 10] = [
        Reason::NotInRest,
        Reason::RestError,
        Reason::BackfillLimit,
        Reason::QueueFull,
        Reason::Shutdown,
        Reason::BackfillOff,
        Reason::OrderingTimeout,
        Reason::OrderingFull,
        Reason::OrderingLate,
        Reason::DeliveryInDoubt,
    ];
}

/// The stream name a dense sequence's gaps carry.
pub fn stream_name(kind: Dense) -> &'static str {
    match kind {
        Dense::Trade => "trade",
        Dense::AggTrade => "aggTrade",
        Dense::Depth => "depth",
    }
}

/// Routing and timing of a gap record of `seq` (it shares the topic of the data it speaks for).
pub fn meta(seq: Seq, now_ns: u64) -> RecordMeta {
    let (kind, symbol_idx) = match seq {
        Seq::Ids { symbol_idx, kind: Dense::Trade } => (RecordType::Trade, symbol_idx),
        Seq::Ids { symbol_idx, kind: Dense::AggTrade } => (RecordType::AggTrade, symbol_idx),
        Seq::Ids { symbol_idx, kind: Dense::Depth } => (RecordType::DepthUpdate, symbol_idx),
        Seq::Candles { symbol_idx, .. } => (RecordType::Kline, symbol_idx),
    };
    RecordMeta { kind, flags: FLAG_MARKER, symbol_idx, event_time_ms: (now_ns / 1_000_000) as i64, recv_ns: now_ns }
}

/// How many ids (or candles) `from..to` (exclusive) of `seq` holds; saturating, never negative.
pub fn count(seq: Seq, from: i64, to: i64) -> i64 {
    let span = to.saturating_sub(from).max(0);
    match seq {
        Seq::Ids { .. } => span,
        Seq::Candles { interval, unit, .. } => span / candle_len(interval, unit),
    }
}

/// A candle's length in `unit` (at least 1: a month has no fixed length, and is never a gap's).
fn candle_len(interval: u8, unit: TimeUnit) -> i64 {
    unit.from_ms(KLINE_INTERVAL_MS.get(interval as usize).copied().flatten().unwrap_or(1))
}

/// Whose gap: the venue's `exchange` id and the symbol as its records write it.
#[derive(Clone, Copy, Debug)]
pub struct Owner<'a> {
    pub exchange: &'a str,
    pub symbol: &'a str,
}

/// Appends the `gap` record for `from..to` (exclusive; open times for candles) of `seq`.
pub fn write(out: &mut Vec<u8>, owner: Owner<'_>, seq: Seq, from: i64, to: i64, reason: Reason, now_ns: u64) {
    let Owner { exchange, symbol } = owner;
    let missing = count(seq, from, to);
    let reason = reason.as_str();
    // Writing into a Vec cannot fail.
    let _ = match seq {
        Seq::Ids { kind, .. } => write!(
            out,
            r#"{{"type":"gap","exchange":"{exchange}","symbol":"{symbol}","stream":"{}","from_id":{from},"to_id":{},"missing":{missing},"reason":"{reason}","recv_time_ns":{now_ns}}}"#,
            stream_name(kind),
            to.saturating_sub(1),
        ),
        Seq::Candles { interval, unit, .. } => {
            let iv = KLINE_INTERVALS.get(interval as usize).copied().unwrap_or("1m");
            let u = unit.suffix();
            write!(
                out,
                r#"{{"type":"gap","exchange":"{exchange}","symbol":"{symbol}","stream":"kline_{iv}","interval":"{iv}","from_open_time_{u}":{from},"to_open_time_{u}":{},"missing":{missing},"reason":"{reason}","recv_time_ns":{now_ns}}}"#,
                to.saturating_sub(candle_len(interval, unit)),
            )
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gap_records_count_saturating_and_never_negative() {
        let ids = Seq::Ids { symbol_idx: 0, kind: Dense::Trade };
        let one_sec = Seq::Candles { symbol_idx: 0, interval: 0, unit: TimeUnit::Millis };
        let one_sec_us = Seq::Candles { symbol_idx: 0, interval: 0, unit: TimeUnit::Micros };
        assert_eq!(KLINE_INTERVALS[0], "1s");
        let nine = 9_000_000_000_000_000_000i64;
        let cases = [
            // TC0: the documented example.
            (ids, 1_001, 1_004, r#""from_id":1001,"to_id":1003,"missing":3,"#),
            // TC1: a hostile span: saturated, not wrapped.
            (
                ids,
                -nine,
                nine,
                r#""from_id":-9000000000000000000,"to_id":8999999999999999999,"missing":9223372036854775807,"#,
            ),
            // TC2: candles: open times of the first and last candle.
            (one_sec, 10_000, 13_000, r#""from_open_time_ms":10000,"to_open_time_ms":12000,"missing":3,"#),
            // TC3: candles from -9e18 to 9e18: a huge count, not -7445734561826.
            (one_sec, -nine, nine, r#""missing":9223372036854775,"#),
            // TC4: an empty or inverted span counts nothing.
            (ids, 5, 3, r#""missing":0,"#),
            // TC5: candles in microseconds (TIME_UNIT=us): the names say so, the count is the same.
            (
                one_sec_us,
                10_000_000,
                13_000_000,
                r#""from_open_time_us":10000000,"to_open_time_us":12000000,"missing":3,"#,
            ),
        ];
        for (i, (seq, from, to, want)) in cases.into_iter().enumerate() {
            let mut out = Vec::new();
            write(&mut out, Owner { exchange: "binance", symbol: "BTCUSDT" }, seq, from, to, Reason::QueueFull, 7);
            let s = String::from_utf8(out).unwrap();
            assert!(s.contains(want), "TC{i}: {s}");
            assert!(s.contains(r#""reason":"backfill_queue_full""#), "TC{i}: {s}");
            let v: serde_json::Value = serde_json::from_str(&s).unwrap_or_else(|e| panic!("TC{i}: {e}: {s}"));
            assert!(v["missing"].as_i64().unwrap() >= 0, "TC{i}");
        }
    }
}
