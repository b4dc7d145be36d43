//! The event loop's side of gaps, without a network: outliers quarantined rather than poisoning
//! the sequence, absurd kline open times counted saturating, and a full backfill queue turned into
//! `gap` records written through the ring (never a blocked event loop, never a silent drop).

use marketflow_ingestor::backfill::queue::{self, Job, CHANNEL_JOBS};
use marketflow_ingestor::binance::venue::VENUE;
use marketflow_ingestor::metrics::Metrics;
use marketflow_ingestor::pipeline::{Admission, Outcome, Pipeline};
use marketflow_ingestor::ring::{self, RingReader};
use marketflow_ingestor::sequence::Dense;

fn trade(id: i64) -> String {
    format!(
        r#"{{"stream":"btcusdt@trade","data":{{"e":"trade","E":1,"s":"BTCUSDT","t":{id},"p":"1.5","q":"2","T":1,"m":true}}}}"#
    )
}

fn kline(open: i64, closed: bool, event: i64) -> String {
    format!(
        r#"{{"stream":"btcusdt@kline_1s","data":{{"e":"kline","E":{event},"s":"BTCUSDT","k":{{"t":{open},"T":{},"s":"BTCUSDT","i":"1s","f":1,"L":2,"o":"1","c":"1","h":"1","l":"1","v":"1","n":1,"x":{closed},"q":"1","V":"1","Q":"1","B":"0"}}}}}}"#,
        open.saturating_add(999)
    )
}

/// Every record in the ring, as JSON.
fn drain(r: &mut RingReader) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    r.drain_with(usize::MAX, |v| out.push(serde_json::from_slice(v.payload).unwrap()));
    out
}

fn metric(m: &Metrics, name: &str) -> f64 {
    let text = m.render();
    let series = format!("marketflow_ingestor_{name}{{symbol=\"btcusdt\"}} ");
    text.lines().find_map(|l| l.strip_prefix(&series)).unwrap_or_else(|| panic!("{series}")).parse().unwrap()
}

#[test]
fn an_outlier_id_is_published_flagged_and_does_not_poison_the_sequence() {
    let (w, mut r) = ring::ring(1 << 20);
    let metrics = Metrics::new(&["btcusdt".to_string()]);
    let mut p = Pipeline::new(&VENUE, w, metrics.clone(), None);
    for id in [1, 2, i64::MAX, 3, 4] {
        assert_eq!(p.on_text(&trade(id), 1, Admission::Normal), Outcome::Record, "trade {id}");
    }
    let recs = drain(&mut r);
    let ids: Vec<i64> = recs.iter().map(|v| v["trade_id"].as_i64().unwrap()).collect();
    assert_eq!(ids, [1, 2, i64::MAX, 3, 4], "every real trade after the outlier is published");
    let flagged: Vec<bool> = recs.iter().map(|v| v["quarantined"] == true).collect();
    assert_eq!(flagged, [false, false, true, false, false]);
    assert_eq!(metric(&metrics, "quarantined_total"), 1.0);
    assert_eq!(metric(&metrics, "duplicates_dropped_total"), 0.0);
    assert_eq!(metric(&metrics, "gaps_total"), 0.0, "the outlier opened no gap");
}

#[test]
fn absurd_kline_open_times_never_count_negative_or_overflowing_candles() {
    let (w, _r) = ring::ring(1 << 20);
    let metrics = Metrics::new(&["btcusdt".to_string()]);
    let (tx, rx) = queue::channel(1);
    let mut p = Pipeline::new(&VENUE, w, metrics.clone(), Some(tx));
    let nine = 9_000_000_000_000_000_000i64;
    assert_eq!(p.on_text(&kline(-nine, false, 1), 1, Admission::Normal), Outcome::Record);
    assert_eq!(p.on_text(&kline(nine, false, 2), 1, Admission::Normal), Outcome::Record);
    // Before: `missing=-7445734561826` and gap_ids_missing_total = 1.8e19. Now: quarantined.
    assert_eq!(metric(&metrics, "gap_ids_missing_total"), 0.0);
    assert_eq!(metric(&metrics, "quarantined_total"), 1.0);
    assert!(rx.try_recv().is_none(), "nothing asked of REST for an outlier");
    // Its own closing update confirms it: a gap, saturated, and a refill request that is sane.
    assert_eq!(p.on_text(&kline(nine, true, 3), 1, Admission::Normal), Outcome::Record);
    let missing = metric(&metrics, "gap_ids_missing_total");
    assert_eq!(missing, (i64::MAX / 1_000) as f64, "saturated, not wrapped");
    match rx.try_recv() {
        Some(Job::Klines { from, to, .. }) => {
            assert_eq!(from, -nine, "the candle at -9e18 never closed");
            assert!(to > from, "{from}..{to}");
        }
        j => panic!("{j:?}"),
    }
}

#[test]
fn a_full_backfill_queue_turns_gaps_into_gap_records_through_the_ring() {
    // A ring with room for a handful of records only, so that it fills too.
    let (w, mut r) = ring::ring(2048);
    let metrics = Metrics::new(&["btcusdt".to_string()]);
    let (tx, rx) = queue::channel(1);
    let filler = Job::Range { symbol_idx: 0, kind: Dense::AggTrade, from: 0, to: 1 };
    for _ in 0..CHANNEL_JOBS {
        tx.try_send(filler).unwrap();
    }
    let mut p = Pipeline::new(&VENUE, w, metrics.clone(), Some(tx));
    // A gap on every other trade, ring never drained: trades are dropped at the cap (and their
    // ids owed as gaps too), the event loop never waits longer than its patience.
    let mut outcomes = Vec::new();
    for k in 0..40 {
        outcomes.push(p.on_text(&trade(1 + 2 * k), 1, Admission::Normal));
    }
    assert!(outcomes.contains(&Outcome::Overflowed), "the ring filled: {outcomes:?}");
    // The ring drains; the owed gaps follow at the next housekeeping turn.
    let mut recs = drain(&mut r);
    for _ in 0..100 {
        p.housekeeping();
        recs.extend(drain(&mut r));
    }
    let mut named = vec![0u32; 80];
    for v in &recs {
        match v["type"].as_str().unwrap() {
            "trade" => named[v["trade_id"].as_u64().unwrap() as usize] += 1,
            "gap" => {
                assert_eq!(v["reason"], "backfill_queue_full", "{v}");
                assert_eq!(v["stream"], "trade", "{v}");
                let (a, b) = (v["from_id"].as_u64().unwrap(), v["to_id"].as_u64().unwrap());
                assert_eq!(v["missing"].as_u64().unwrap(), b - a + 1, "{v}");
                for id in a..=b {
                    named[id as usize] += 1;
                }
            }
            t => panic!("{t}"),
        }
    }
    assert_eq!(named[1..80], [1; 79], "every id published or named in a gap record, once");
    assert!(metric(&metrics, "backfill_queue_full_total") >= 1.0);
    assert_eq!(metric(&metrics, "backfill_queue_full_total"), metric(&metrics, "gap_markers_total"));
    assert_eq!(rx.try_recv(), Some(filler), "nothing else got into the full queue");
}

#[test]
fn with_backfill_off_a_gap_is_named_at_once_in_a_gap_record() {
    // BACKFILL=off: nothing will fetch the missing ids, so the promise ("exactly once, or named in
    // a gap record") is kept by naming them at once, through the ring.
    let (w, mut r) = ring::ring(1 << 20);
    let metrics = Metrics::new(&["btcusdt".to_string()]);
    let mut p = Pipeline::new(&VENUE, w, metrics.clone(), None);
    for id in [10, 11, 15, 16] {
        assert_eq!(p.on_text(&trade(id), 1, Admission::Normal), Outcome::Record, "trade {id}");
    }
    let recs = drain(&mut r);
    let gaps: Vec<&serde_json::Value> = recs.iter().filter(|v| v["type"] == "gap").collect();
    assert_eq!(gaps.len(), 1, "{recs:?}");
    let g = gaps[0];
    assert_eq!((g["from_id"].as_i64(), g["to_id"].as_i64(), g["missing"].as_i64()), (Some(12), Some(14), Some(3)));
    assert_eq!(g["reason"], "backfill_off");
    assert_eq!(g["stream"], "trade");
    assert_eq!(metric(&metrics, "gap_markers_total"), 1.0);
    assert_eq!(metric(&metrics, "backfill_queue_full_total"), 0.0);
}

/// `TIME_UNIT=us`: kline times are microseconds, so a candle is 1,000,000 of them, a skipped
/// closed candle is one candle (not a thousand), its refill job carries microseconds, and the
/// record names its times `*_us`.
#[test]
fn microsecond_klines_count_candles_in_microseconds() {
    use marketflow_ingestor::time_unit::TimeUnit;
    let kline_us = |open: i64, closed: bool| {
        format!(
            r#"{{"stream":"btcusdt@kline_1s","data":{{"e":"kline","E":{},"s":"BTCUSDT","k":{{"t":{open},"T":{},"s":"BTCUSDT","i":"1s","f":1,"L":2,"o":"1","c":"1","h":"1","l":"1","v":"1","n":1,"x":{closed},"q":"1","V":"1","Q":"1","B":"0"}}}}}}"#,
            open + 999_999,
            open + 999_999
        )
    };
    let (w, mut r) = ring::ring(1 << 20);
    let metrics = Metrics::new(&["btcusdt".to_string()]);
    let (tx, rx) = queue::channel(1);
    let mut p = Pipeline::new(&VENUE, w, metrics.clone(), Some(tx));
    p.set_time_unit(TimeUnit::Micros);
    let t0 = 1_700_000_000_000_000i64;
    for open in [t0, t0 + 3_000_000] {
        assert_eq!(p.on_text(&kline_us(open, true), 1, Admission::Normal), Outcome::Record);
    }
    assert_eq!(metric(&metrics, "quarantined_total"), 0.0, "a second later is not implausibly far");
    assert_eq!(metric(&metrics, "gap_ids_missing_total"), 2.0, "two candles, not two million");
    match rx.try_recv() {
        Some(Job::Klines { from, to, unit, .. }) => {
            assert_eq!((from, to, unit), (t0 + 1_000_000, t0 + 3_000_000, TimeUnit::Micros));
        }
        j => panic!("{j:?}"),
    }
    let mut kafka_ts = Vec::new();
    let mut recs = Vec::new();
    r.drain_with(usize::MAX, |v| {
        kafka_ts.push(v.meta.event_time_ms);
        recs.push(serde_json::from_slice::<serde_json::Value>(v.payload).unwrap());
    });
    // Kafka's message timestamp is milliseconds whatever the records carry.
    assert_eq!(kafka_ts[0], (t0 + 999_999) / 1000);
    assert_eq!(recs[0]["open_time_us"], t0);
    assert_eq!(recs[0]["close_time_us"], t0 + 999_999);
    assert!(recs[0].get("open_time_ms").is_none(), "{}", recs[0]);
}
