//! The USD-M parser against the simulator's USD-M payloads (crates/binance-sim/src/usdm/, written
//! from Binance's documentation independently of the parser): every kind the simulator serves
//! on USD-M is a kind `usdm::stream::parse_kind` accepts, each rendered event parses as a
//! market record of that kind, encodes, and keeps every value sent.

use binance_sim::{usdm_kinds, Market, SimConfig};
use marketflow_ingestor::binance::usdm::stream::{parse_kind, route};
use marketflow_ingestor::binance::usdm::wire::parse_payload;
use marketflow_ingestor::binance::wire::Frame;
use marketflow_ingestor::record::{Record, Side};

fn side(s: &str) -> Side {
    match s {
        "BUY" => Side::Buy,
        "SELL" => Side::Sell,
        other => panic!("the simulator sent side {other}"),
    }
}

#[test]
fn every_rendered_usd_m_payload_parses_with_every_value_kept() {
    let m = Market::usdm(SimConfig { aux_rate: 50.0, ..SimConfig::usdm_market() });
    let (mut kinds, mut marks, mut liquidations, mut futures_depth) = (0, 0, 0, 0);
    for sim_kind in usdm_kinds() {
        kinds += 1;
        let name = sim_kind.to_string();
        let kind = parse_kind(&name).unwrap_or_else(|e| panic!("the ingester does not read USD-M {name}: {e}"));
        assert!(route(kind) == "/public" || route(kind) == "/market", "{name}");
        let stream = format!("ethusdt@{name}");
        for i in 0..50 {
            let mut s = String::new();
            m.render(sim_kind, 1, i, &mut s);
            let f = parse_payload(&stream, &s).unwrap_or_else(|e| panic!("{name}: {e}: {s}"));
            let Frame::Market { kind: parsed, stream_symbol, record } = f else { panic!("{name}: {s}") };
            assert_eq!((parsed, stream_symbol, record.exchange()), (kind, "ethusdt", "binance-usdm"), "{s}");
            let mut out = Vec::new();
            record.encode(1, false, &mut out).unwrap_or_else(|e| panic!("{name}: {e}: {s}"));
            match record {
                Record::AggTrade(a) => {
                    let e = m.expected_agg_trade(1, i);
                    assert_eq!(
                        (a.agg_id, a.first_trade_id, a.last_trade_id, a.price.as_str(), a.qty.as_str()),
                        (e.agg_id, e.first_trade_id, e.last_trade_id, e.price.as_str(), e.qty.as_str())
                    );
                    assert_eq!((a.trade_time_ms, a.event_time_ms), (e.trade_time_ms, e.event_time_ms));
                    assert_eq!(a.side, Side::from_buyer_is_maker(e.buyer_is_maker));
                }
                Record::MarkPrice(p) => {
                    marks += 1;
                    let e = m.expected_mark_price(1, sim_kind, i);
                    assert_eq!(
                        (
                            p.symbol,
                            p.mark_price.as_str(),
                            p.index_price.as_str(),
                            p.estimated_settle_price.as_str(),
                            p.funding_rate.as_str()
                        ),
                        (
                            e.symbol.as_str(),
                            e.mark_price.as_str(),
                            e.index_price.as_str(),
                            e.settle_price.as_str(),
                            e.funding_rate.as_str()
                        ),
                        "{s}"
                    );
                    assert_eq!(
                        (p.next_funding_time_ms, p.event_time_ms, p.mark_price_avg),
                        (e.next_funding_time_ms, e.event_time_ms, None)
                    );
                }
                Record::Liquidation(l) => {
                    liquidations += 1;
                    let e = m.expected_liquidation(1, i);
                    assert_eq!(
                        (l.symbol, l.side, l.order_type, l.time_in_force, l.status),
                        (
                            e.symbol.as_str(),
                            side(&e.side),
                            e.order_type.as_str(),
                            e.time_in_force.as_str(),
                            e.status.as_str()
                        ),
                        "{s}"
                    );
                    assert_eq!(
                        (
                            l.orig_qty.as_str(),
                            l.price.as_str(),
                            l.avg_price.as_str(),
                            l.last_filled_qty.as_str(),
                            l.filled_qty.as_str()
                        ),
                        (
                            e.orig_qty.as_str(),
                            e.price.as_str(),
                            e.avg_price.as_str(),
                            e.last_filled_qty.as_str(),
                            e.filled_qty.as_str()
                        ),
                        "{s}"
                    );
                    assert_eq!((l.trade_time_ms, l.event_time_ms), (e.trade_time_ms, e.event_time_ms));
                }
                Record::DepthUpdate(d) => {
                    futures_depth += 1;
                    let (first, last, pu) = Market::usdm_depth_ids(1, i);
                    assert_eq!((d.first_update_id, d.final_update_id, d.prev_final_update_id), (first, last, Some(pu)));
                    assert!(d.transaction_time_ms.is_some_and(|t| t <= d.event_time_ms), "{s}");
                }
                Record::BookTicker(b) => {
                    assert!(b.event_time_ms.is_some() && b.transaction_time_ms.is_some(), "{s}");
                    assert_eq!(b.update_id, Market::usdm_depth_ids(1, i).1);
                }
                Record::Kline(k) => assert_eq!(k.interval, &name["kline_".len()..], "{s}"),
                Record::Trade(_) => panic!("USD-M has no trade stream: {s}"),
            }
        }
    }
    assert_eq!(kinds, 8 + 15, "no 1s candles on futures");
    assert_eq!((marks, liquidations, futures_depth), (100, 50, 150));
}
