//! An SBE trade that is the next of its sequence is written straight into the ring from its
//! fields (`Pipeline::take_trade`); every other one (the first, a duplicate, a gap, one far
//! ahead, one that finds the ring full) goes the record's way. Whichever way each took, the
//! records, outcomes and counters must be those of the same trades sent as JSON text frames,
//! which always go the record's way.

use binance_sbe::encode::{TradeRow, TradesFrame};
use marketflow_ingestor::binance::venue::VENUE;
use marketflow_ingestor::metrics::Metrics;
use marketflow_ingestor::pipeline::{Admission, Outcome, Pipeline};
use marketflow_ingestor::ring::RingReader;
use marketflow_ingestor::stream::StreamKind;
use marketflow_ingestor::venue::{BinaryCtx, Scale};

/// Whole milliseconds, so that the JSON stream's times say the same as SBE's microseconds.
const T_US: i64 = 1_700_000_000_123_000;

fn pipeline(ring: usize, sbe: bool) -> (Pipeline, RingReader, std::sync::Arc<Metrics>) {
    let metrics = Metrics::new(&["btcusdt".to_string(), "ethusdt".to_string()]);
    let (w, r) = marketflow_ingestor::ring::ring(ring);
    let mut p = Pipeline::new(&VENUE, w, metrics.clone(), None);
    p.track_streams(&[StreamKind::Trade]);
    p.set_max_jump(1_000);
    if sbe {
        let scales = vec![Scale { price: 2, qty: 8 }; 2];
        p.set_binary(BinaryCtx::new(metrics.symbols.clone(), scales, Default::default()));
    }
    (p, r, metrics)
}

/// One trade event of `symbol` with these ids at `time_us`, as an SBE frame and as the JSON
/// frames of its trades.
fn event(symbol: &str, ids: &[i64], time_us: i64) -> (Vec<u8>, Vec<String>) {
    let rows: Vec<TradeRow> = ids
        .iter()
        .map(|&id| TradeRow { id, price: 4_200_000 + id, qty: 150_000_000 + id, is_buyer_maker: id % 2 == 0 })
        .collect();
    let sbe = TradesFrame::at(symbol, time_us, &rows).encode().unwrap();
    let json = rows
        .iter()
        .map(|r| {
            let (price, qty) = (format!("{}.{:02}", r.price / 100, r.price % 100), format!("{}.{:08}", r.qty / 100_000_000, r.qty % 100_000_000));
            format!(
                r#"{{"stream":"{}@trade","data":{{"e":"trade","E":{ms},"s":"{symbol}","t":{},"p":"{price}","q":"{qty}","T":{ms},"m":{},"M":true}}}}"#,
                symbol.to_lowercase(),
                r.id,
                r.is_buyer_maker,
                ms = time_us / 1_000
            )
        })
        .collect();
    (sbe, json)
}

/// Every counter the pipeline keeps, and how many latencies each histogram took, as the metrics
/// page shows them. (The SBE transport's refusal reasons are shown at 0 from the start: not
/// compared.)
fn counters(m: &Metrics) -> Vec<String> {
    let counted = |l: &str| l.contains("_total") || l.contains("_count");
    let shown = |l: &&str| !l.starts_with('#') && counted(l) && !l.contains("reason=\"sbe_");
    m.render().lines().filter(shown).map(str::to_string).collect()
}

/// The ring's records; a gap record's `recv_time_ns` (when it was written) cut off.
fn drain(r: &mut RingReader) -> Vec<String> {
    let mut out = Vec::new();
    while r.drain_with(4096, |v| out.push(String::from_utf8(v.payload.to_vec()).unwrap())) > 0 {}
    for r in &mut out {
        if let (true, Some(at)) = (r.starts_with("{\"type\":\"gap\""), r.find(",\"recv_time_ns\"")) {
            r.truncate(at);
        }
    }
    out
}

/// What one way gave: each event's outcome (the binary frame's, the last record's; the JSON
/// frames' last), the ring's records, the counters, and each stream's last receive time.
type Gave = (Vec<Outcome>, Vec<String>, Vec<String>, Vec<u64>);

/// Event `i` happens at a time shared with the event before or after it (pairs), and is received
/// 0.5 ms after that, at a time of its own: a kept tail must be written again for the next event
/// whether its times or only its receive time differ.
fn run(events: &[(&str, &[i64])], ring: usize) -> [Gave; 2] {
    let (mut s, mut sr, sm) = pipeline(ring, true);
    let (mut j, mut jr, jm) = pipeline(ring, false);
    let (mut so, mut jo) = (Vec::new(), Vec::new());
    for (i, (symbol, ids)) in events.iter().enumerate() {
        let time_us = T_US + (i as i64 / 2) * 1_000;
        let recv_ns = (time_us * 1_000 + 500_000) as u64 + i as u64;
        let (sbe, json) = event(symbol, ids, time_us);
        so.push(s.on_binary(&sbe, recv_ns, Admission::Normal));
        jo.push(json.iter().map(|f| j.on_text(f, recv_ns, Admission::Normal)).last().unwrap());
    }
    let (s_seen, j_seen) = (s.streams().last_ns().to_vec(), j.streams().last_ns().to_vec());
    let (s_records, j_records) = (drain(&mut sr), drain(&mut jr));
    // Publishes the latencies.
    s.finish();
    j.finish();
    [(so, s_records, counters(&sm), s_seen), (jo, j_records, counters(&jm), j_seen)]
}

#[test]
fn trades_taken_straight_into_the_ring_are_the_records_and_counts_of_the_record_s_way() {
    let events: &[(&str, &[i64])] = &[
        ("BTCUSDT", &[100]),                // the first of its sequence: the record's way
        ("BTCUSDT", &[101, 102, 103]),      // next, next, next: straight
        ("ETHUSDT", &[7]),                  // another symbol, its first
        ("BTCUSDT", &[103]),                // a duplicate
        ("ETHUSDT", &[8, 9]),               // straight, after a look-up of the other symbol
        ("BTCUSDT", &[106, 107]),           // a gap of two, then straight
        ("BTCUSDT", &[107, 108, 108, 109]), // duplicates between the next ones
        ("BTCUSDT", &[5_000]),              // implausibly far ahead: quarantined
        ("BTCUSDT", &[110, 111]),           // the sequence goes on
    ];
    let [sbe, json] = run(events, 1 << 20);
    // Besides the trades, the gap's record (backfill is off here, so it is named at once).
    let id = |r: &String| Some(r.get(r.find(",\"trade_id\":")? + 12..r.find(",\"price\"")?)?.to_string());
    let ids: Vec<String> = sbe.1.iter().filter_map(id).collect();
    assert_eq!(ids, ["100", "101", "102", "103", "7", "8", "9", "106", "107", "108", "109", "5000", "110", "111"]);
    assert_eq!(sbe.1.iter().filter(|r| r.contains("\"from_id\":104,\"to_id\":105")).count(), 1, "{:#?}", sbe.1);
    assert_eq!(sbe.0, json.0, "outcomes");
    assert_eq!(sbe.1, json.1, "records");
    assert_eq!(sbe.2, json.2, "counters");
    assert_eq!(sbe.3, json.3, "each stream's last receive time");
    assert!(sbe.3.iter().all(|&t| t > 0), "both symbols' trade streams seen: {:?}", sbe.3);
    let latencies: Vec<_> = sbe.2.iter().filter(|l| l.contains("_count") && !l.ends_with(" 0")).collect();
    assert!(!latencies.is_empty(), "latencies counted: {:#?}", sbe.2);
    for name in ["duplicates_dropped_total", "gaps_total", "quarantined_total"] {
        assert!(sbe.2.iter().any(|l| l.contains(name) && !l.ends_with(" 0")), "{name} counted: {:#?}", sbe.2);
    }
}

/// A ring too small for the trades: the ones that find no room go the record's way, which waits,
/// drops, counts and asks for them as the JSON path does.
#[test]
fn a_trade_that_finds_the_ring_full_goes_the_record_s_way() {
    let ids: Vec<i64> = (1..=60).collect();
    let events: Vec<(&str, &[i64])> = ids.chunks(3).map(|c| ("BTCUSDT", c)).collect();
    let [sbe, json] = run(&events, 4096);
    assert!(sbe.1.len() < ids.len() && !sbe.1.is_empty(), "{} of {} records fit", sbe.1.len(), ids.len());
    assert!(sbe.0.contains(&Outcome::Overflowed), "{:?}", sbe.0);
    assert_eq!(sbe.0, json.0, "outcomes");
    assert_eq!(sbe.1, json.1, "records");
    assert_eq!(sbe.2, json.2, "counters");
    assert_eq!(sbe.3, json.3, "each stream's last receive time");
}
