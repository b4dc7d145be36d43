//! One clock read per binary frame: the trades of one SBE trade event are stamped with the same
//! enqueue time (the first one's), while the next event reads the clock again.

use binance_sbe::encode::{TradeRow, TradesFrame};
use marketflow_ingestor::binance::venue::VENUE;
use marketflow_ingestor::metrics::Metrics;
use marketflow_ingestor::pipeline::{Admission, Outcome, Pipeline};
use marketflow_ingestor::stream::StreamKind;
use marketflow_ingestor::venue::{BinaryCtx, Scale};

fn event(first_id: i64, trades: i64) -> Vec<u8> {
    let rows: Vec<TradeRow> = (0..trades)
        .map(|i| TradeRow { id: first_id + i, price: 4_200_000 + i, qty: 1 + i, is_buyer_maker: i % 2 == 1 })
        .collect();
    TradesFrame::at("BTCUSDT", 1_700_000_000_000_000 + first_id, &rows).encode().unwrap()
}

#[test]
fn the_trades_of_one_event_share_the_enqueue_time_of_its_first() {
    let metrics = Metrics::new(&["btcusdt".to_string()]);
    let (w, mut r) = marketflow_ingestor::ring::ring(1 << 20);
    let mut p = Pipeline::new(&VENUE, w, metrics.clone(), None);
    p.track_streams(&[StreamKind::Trade]);
    p.set_binary(BinaryCtx::new(metrics.symbols.clone(), vec![Scale { price: 8, qty: 8 }], Default::default()));
    assert_eq!(p.on_binary(&event(100, 5), 1, Admission::Normal), Outcome::Record);
    // Long enough for the clock to move between the events on any machine.
    std::thread::sleep(std::time::Duration::from_millis(2));
    assert_eq!(p.on_binary(&event(105, 3), 1, Admission::Normal), Outcome::Record);
    let mut stamps = Vec::new();
    while r.drain_with(64, |v| stamps.push(v.enqueue_ns)) > 0 {}
    assert_eq!(stamps.len(), 8, "one record per trade");
    let (first, second) = stamps.split_at(5);
    assert!(first.iter().all(|&t| t == first[0]), "one event, one enqueue time: {first:?}");
    assert!(second.iter().all(|&t| t == second[0]), "one event, one enqueue time: {second:?}");
    assert!(second[0] > first[0], "the next event reads the clock again: {stamps:?}");
}
