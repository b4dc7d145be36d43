//! The ingester's parser against the simulator's payloads: every stream kind the simulator
//! serves, as it renders it, parses as a market record of that kind, encodes, and keeps the
//! values sent. The simulator is written from Binance's documentation independently of the
//! parser (crates/binance-sim); the end-to-end tests rely on the two agreeing.

use binance_sim::{Market, SimConfig, StreamKind as SimKind};
use marketflow_ingestor::binance::stream::StreamKind;
use marketflow_ingestor::binance::wire::{parse_payload, Frame};
use marketflow_ingestor::record::Record;

#[test]
fn every_rendered_payload_parses_as_binance() {
    let m = Market::new(SimConfig::default());
    let mut kinds = 0;
    for sim_kind in SimKind::all() {
        kinds += 1;
        let name = sim_kind.to_string();
        let kind: StreamKind = name.parse().unwrap_or_else(|e| panic!("the ingester does not read {name}: {e}"));
        let stream = sim_kind.stream_name("ethusdt");
        for i in 0..50 {
            let mut s = String::new();
            m.render(sim_kind, 1, i, &mut s);
            let f = parse_payload(&stream, &s).unwrap_or_else(|e| panic!("{name}: {e}: {s}"));
            let Frame::Market { kind: parsed, stream_symbol, record } = f else {
                panic!("{name}: not a market frame: {s}")
            };
            assert_eq!((parsed, stream_symbol), (kind, "ethusdt"), "{s}");
            let mut out = Vec::new();
            record.encode(1, false, &mut out).unwrap_or_else(|e| panic!("{name}: {e}: {s}"));
            match record {
                Record::Trade(t) => {
                    let e = m.expected_trade(1, i);
                    assert_eq!(
                        (t.trade_id, t.price.as_str(), t.qty.as_str()),
                        (e.trade_id, e.price.as_str(), e.qty.as_str())
                    );
                    assert_eq!((t.symbol, t.trade_time_ms), (e.symbol.as_str(), e.trade_time_ms));
                }
                Record::Kline(k) => assert_eq!(k.interval, &name["kline_".len()..], "{s}"),
                _ => {}
            }
        }
    }
    assert_eq!(kinds, 5 + binance_sim::KLINE_INTERVALS.len());
}

/// A closed candle as streamed carries the values the simulator serves over REST, which is what
/// a backfilled candle is checked against.
#[test]
fn closed_candles_parse_to_the_final_values() {
    let m = Market::new(SimConfig { aux_rate: 50.0, ..SimConfig::default() });
    let iv = binance_sim::interval_index("1s").unwrap();
    let mut closed = 0;
    for k in 0..500 {
        let mut s = String::new();
        m.render(SimKind::Kline(iv), 0, k, &mut s);
        let Ok(Frame::Market { record: Record::Kline(kl), .. }) = parse_payload("btcusdt@kline_1s", &s) else {
            panic!("{s}")
        };
        if !kl.closed {
            continue;
        }
        closed += 1;
        let c = m.candle(0, iv, kl.open_time_ms);
        assert_eq!(
            (
                kl.close_time_ms,
                kl.open.as_str(),
                kl.high.as_str(),
                kl.low.as_str(),
                kl.close.as_str(),
                kl.volume.as_str(),
                kl.trades
            ),
            (
                c.close_time_ms,
                c.open.as_str(),
                c.high.as_str(),
                c.low.as_str(),
                c.close.as_str(),
                c.volume.as_str(),
                c.trades
            ),
            "{s}"
        );
        assert_eq!(kl.first_trade_id, Some(c.first_trade_id), "{s}");
    }
    assert!(closed >= 5, "{closed} closed candles in 10 s of 1 s candles");
}
