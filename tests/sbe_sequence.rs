//! The sequence checks on SBE's book streams, through the pipeline as `TRANSPORT=sbe` runs it:
//! best bid/ask update ids that jump (Binance drops outdated `bestBidAsk` events under load,
//! "auto-culling") are published and counted as no gap, while a diff-depth event that does not
//! continue the one before is a gap.

use binance_sbe::encode::{BestBidAskFrame, DepthDiffFrame, LevelRow};
use marketflow_ingestor::binance::venue::VENUE;
use marketflow_ingestor::metrics::Metrics;
use marketflow_ingestor::pipeline::{Admission, Outcome, Pipeline};
use marketflow_ingestor::stream::StreamKind;
use marketflow_ingestor::venue::{BinaryCtx, Scale};

fn bba(update_id: i64) -> Vec<u8> {
    BestBidAskFrame {
        event_time_us: 1_700_000_000_000_000 + update_id,
        book_update_id: update_id,
        price_exponent: -2,
        qty_exponent: -8,
        bid_price: 4_200_000,
        bid_qty: 1,
        ask_price: 4_200_100,
        ask_qty: 2,
        symbol: "BTCUSDT",
    }
    .encode()
    .unwrap()
}

fn diff(first: i64, last: i64) -> Vec<u8> {
    let level = [LevelRow { price: 4_200_000, qty: 3 }];
    DepthDiffFrame {
        event_time_us: 1_700_000_000_000_000 + last,
        first_book_update_id: first,
        last_book_update_id: last,
        price_exponent: -2,
        qty_exponent: -8,
        bids: &level,
        asks: &[],
        symbol: "BTCUSDT",
    }
    .encode()
    .unwrap()
}

#[test]
fn culled_best_bid_ask_updates_are_no_gap_and_a_broken_depth_chain_is_one() {
    let metrics = Metrics::new(&["btcusdt".to_string()]);
    let (w, mut r) = marketflow_ingestor::ring::ring(1 << 20);
    let mut p = Pipeline::new(&VENUE, w, metrics.clone(), None);
    p.track_streams(&[StreamKind::BookTicker, StreamKind::Depth]);
    p.set_binary(BinaryCtx::new(metrics.symbols.clone(), vec![Scale { price: 8, qty: 8 }], Default::default()));
    let gaps = |m: &Metrics| {
        m.render()
            .lines()
            .filter(|l| l.starts_with("marketflow_ingestor_gaps_total{"))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum::<f64>()
    };

    // Consecutive, then culled: 3 ids, 120, then 900,000 (seconds of culling on a busy book).
    let ids = [100, 101, 104, 224, 900_224, 900_225];
    for id in ids {
        assert_eq!(p.on_binary(&bba(id), 1, Admission::Normal), Outcome::Record, "update id {id}");
    }
    // The same update again (an overlapping connection) is a duplicate, not a second record.
    assert_eq!(p.on_binary(&bba(900_225), 1, Admission::Normal), Outcome::Duplicate);
    assert_eq!(gaps(&metrics), 0.0, "a jump in bookUpdateId is not a gap");
    let mut published = Vec::new();
    while r.drain_with(64, |v| {
        let rec: serde_json::Value = serde_json::from_slice(v.payload).unwrap();
        assert_eq!(rec["type"], "book_ticker", "{rec}");
        published.push(rec["update_id"].as_i64().unwrap());
    }) > 0
    {}
    assert_eq!(published, ids, "every update published, in order, nothing else");

    // Diff depth is dense: 1..3, 4..6 continue; 10..12 leaves 7..9 out.
    for (first, last) in [(1, 3), (4, 6), (10, 12)] {
        assert_eq!(p.on_binary(&diff(first, last), 1, Admission::Normal), Outcome::Record);
    }
    assert_eq!(gaps(&metrics), 1.0, "the depth break is counted");
}
