//! Binance's SBE market-data endpoint (`stream-sbe.binance.com`, shared README §2.6) on a
//! listener of its own: the same paths, subscriptions, pings and control replies as the JSON
//! endpoint (JSON text frames, `serverShutdown` too), an API key required on the upgrade, and
//! market data as SBE binary frames built by `binance_sbe::encode` (the encoders the official SBE
//! tool generated from Binance's schema, which share nothing with the ingester's reading of them).
//!
//! Served, from the same market history as the JSON streams: `<symbol>@trade` as
//! `TradesStreamEvent` (the JSON trades); `<symbol>@bestBidAsk` as `BestBidAskStreamEvent` (the
//! JSON `bookTicker` events, with their event time); `<symbol>@depth` as `DepthDiffStreamEvent`
//! (the JSON diff-depth events, same update ids and levels). Prices are cents (exponent -2),
//! quantities 10^-8 units (exponent -8), times microseconds whatever `timeUnit` says. One trade
//! event carries the consecutive trades of one transaction (one transact time), as Binance groups
//! a taker order's fills. Other names are accepted and send nothing: `depth20` is not simulated,
//! and Binance's SBE endpoint has no aggTrade, kline or `bookTicker` stream.

use binance_sbe::encode::{BestBidAskFrame, DepthDiffFrame, LevelRow, TradeRow, TradesFrame};

use crate::kind::StreamKind;
use crate::market::Market;

/// Binance's answer to a missing or refused key ("Invalid API-key, IP, or permissions for
/// action", code -2015), with HTTP 401.
pub(crate) const KEY_REFUSED: &str = r#"{"code":-2015,"msg":"Invalid API-key, IP, or permissions for action."}"#;

/// The most trades one event carries (a bound on a frame; Binance documents none).
const MAX_TRADES_PER_EVENT: usize = 64;
/// The book's quantities are in units of 10^-5 (`book::qty_text`); SBE sends them at 10^-8.
const QTY_UNITS_TO_1E8: i64 = 1_000;

/// Whether an upgrade carrying `key` (the `X-MBX-APIKEY` header, if any) is let in.
pub(crate) fn key_accepted(market: &Market, key: Option<&[u8]>) -> bool {
    match (key, &market.cfg.sbe_api_key) {
        (None, _) => false,
        (Some(k), Some(want)) => k == want.as_bytes(),
        (Some(k), None) => !k.is_empty(),
    }
}

/// The market stream an SBE stream name's suffix (after `<symbol>@`) is served from.
pub(crate) fn delivered(suffix: &str) -> Option<StreamKind> {
    match suffix {
        "trade" => Some(StreamKind::Trade),
        "bestBidAsk" => Some(StreamKind::BookTicker),
        "depth" => Some(StreamKind::Depth),
        _ => None,
    }
}

/// Buffers a connection reuses from one event to the next.
#[derive(Default)]
pub(crate) struct Rows {
    trades: Vec<TradeRow>,
    bids: Vec<LevelRow>,
    asks: Vec<LevelRow>,
}

/// Encodes into `out` the event of the stream `kind` of symbol `sym` starting at event `k`, at
/// most `until` (exclusive; events `omit` says the stream leaves out end an event early), and
/// returns the next event to send; `None` when the stream has nothing in SBE.
pub(crate) fn event(
    market: &Market,
    kind: StreamKind,
    sym: usize,
    k: u64,
    until: u64,
    rows: &mut Rows,
    out: &mut Vec<u8>,
) -> Option<u64> {
    let symbol = market.cfg.symbols[sym].to_uppercase();
    // A configured symbol is at most 50 characters, an event at most 64 trades and a diff the
    // book's levels: within what the encoder takes.
    match kind {
        StreamKind::Trade => return trades(market, sym, k, until, &symbol, &mut rows.trades, out),
        StreamKind::BookTicker => {
            // The JSON bookTicker event k: the best levels after depth event k, its update id.
            let (bids, asks) = market.book.top(sym, k + 1, 1);
            let level = |l: Option<&(i64, u64)>| l.map_or((0, 0), |&(p, q)| (p, q as i64 * QTY_UNITS_TO_1E8));
            let ((bid_price, bid_qty), (ask_price, ask_qty)) = (level(bids.first()), level(asks.first()));
            BestBidAskFrame {
                event_time_us: market.time_us(kind, sym, k),
                book_update_id: Market::depth_update_ids(sym, k).1,
                price_exponent: -2,
                qty_exponent: -8,
                bid_price,
                bid_qty,
                ask_price,
                ask_qty,
                symbol: &symbol,
            }
            .encode_into(out)
            .ok()?;
        }
        StreamKind::Depth => {
            let (first, last) = Market::depth_update_ids(sym, k);
            let d = market.book.diff(sym, k);
            let rows_of = |levels: &[(i64, u64)], out: &mut Vec<LevelRow>| {
                out.clear();
                out.extend(levels.iter().map(|&(p, q)| LevelRow { price: p, qty: q as i64 * QTY_UNITS_TO_1E8 }));
            };
            rows_of(&d.bids, &mut rows.bids);
            rows_of(&d.asks, &mut rows.asks);
            DepthDiffFrame {
                event_time_us: market.time_us(kind, sym, k),
                first_book_update_id: first,
                last_book_update_id: last,
                price_exponent: -2,
                qty_exponent: -8,
                bids: &rows.bids,
                asks: &rows.asks,
                symbol: &symbol,
            }
            .encode_into(out)
            .ok()?;
        }
        _ => return None,
    }
    Some(k + 1)
}

fn trades(
    market: &Market,
    sym: usize,
    k: u64,
    until: u64,
    symbol: &str,
    rows: &mut Vec<TradeRow>,
    out: &mut Vec<u8>,
) -> Option<u64> {
    let kind = StreamKind::Trade;
    rows.clear();
    let (_, _, _, time_us) = market.trade_mantissas(sym, k);
    let mut next = k;
    while next < until && rows.len() < MAX_TRADES_PER_EVENT && !market.stream_omits(kind, next) {
        let (price, qty, is_buyer_maker, t) = market.trade_mantissas(sym, next);
        if t != time_us {
            break;
        }
        rows.push(TradeRow { id: Market::trade_id_base(sym) + next as i64, price, qty, is_buyer_maker });
        next += 1;
    }
    let frame = TradesFrame {
        event_time_us: time_us,
        transact_time_us: time_us,
        price_exponent: -2,
        qty_exponent: -8,
        trades: rows,
        symbol,
    };
    frame.encode_into(out).ok()?;
    Some(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SimConfig;

    fn fixed(d: binance_sbe::Decimal) -> String {
        let mut buf = [0u8; binance_sbe::MAX_TEXT_LEN];
        let n = d.write_fixed(8, &mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn trades_encode_as_the_json_stream_sends_them() {
        let m = Market::new(SimConfig::default());
        let (mut rows, mut out) = (Rows::default(), Vec::new());
        let next = event(&m, StreamKind::Trade, 1, 5, 100, &mut rows, &mut out).unwrap();
        assert_eq!(next, 6, "the market's trades have distinct times: one per event");
        let Ok(binance_sbe::Message::Trades(ev)) = binance_sbe::decode(&out) else { panic!("not a trade event") };
        let t = ev.trades().next().unwrap();
        let want = m.expected_trade(1, 5);
        assert_eq!((fixed(t.price), fixed(t.qty)), (want.price, want.qty));
        assert_eq!(
            (ev.symbol(), t.id, t.is_buyer_maker, ev.transact_time_us(), ev.event_time_us()),
            ("ETHUSDT", want.trade_id, want.buyer_is_maker, want.trade_time_us, want.trade_time_us)
        );
        for unserved in [StreamKind::AggTrade, StreamKind::Kline(1), StreamKind::Depth100ms] {
            assert_eq!(event(&m, unserved, 1, 5, 100, &mut rows, &mut out), None, "{unserved:?}");
        }
        assert_eq!(
            ["trade", "bestBidAsk", "depth", "bookTicker", "depth20", "aggTrade"].map(delivered),
            [Some(StreamKind::Trade), Some(StreamKind::BookTicker), Some(StreamKind::Depth), None, None, None]
        );
    }

    /// The JSON payload of event `k` of `kind`, parsed.
    fn json(m: &Market, kind: StreamKind, k: u64) -> serde_json::Value {
        let mut s = String::new();
        m.render(kind, 0, k, &mut s);
        serde_json::from_str(&s).unwrap()
    }

    #[test]
    fn best_bid_ask_and_depth_diffs_are_the_json_streams_events() {
        let m = Market::new(SimConfig { depth_levels: 40, ..SimConfig::default() });
        let (mut rows, mut out) = (Rows::default(), Vec::new());
        for k in [0, 1, 7, 300] {
            assert_eq!(event(&m, StreamKind::BookTicker, 0, k, k + 5, &mut rows, &mut out), Some(k + 1));
            let Ok(binance_sbe::Message::BestBidAsk(b)) = binance_sbe::decode(&out) else { panic!("not bestBidAsk") };
            let j = json(&m, StreamKind::BookTicker, k);
            assert_eq!(b.book_update_id(), j["u"].as_i64().unwrap());
            assert_eq!(
                [fixed(b.bid_price()), fixed(b.bid_qty()), fixed(b.ask_price()), fixed(b.ask_qty())],
                ["b", "B", "a", "A"].map(|f| j[f].as_str().unwrap().to_string())
            );
            assert_eq!((b.symbol(), b.event_time_us()), ("BTCUSDT", m.time_us(StreamKind::BookTicker, 0, k)));

            assert_eq!(event(&m, StreamKind::Depth, 0, k, k + 5, &mut rows, &mut out), Some(k + 1));
            let Ok(binance_sbe::Message::DepthDiff(d)) = binance_sbe::decode(&out) else { panic!("not a depth diff") };
            let j = json(&m, StreamKind::Depth100ms, k);
            assert_eq!(
                (d.first_book_update_id(), d.last_book_update_id(), d.event_time_us() / 1000),
                (j["U"].as_i64().unwrap(), j["u"].as_i64().unwrap(), j["E"].as_i64().unwrap())
            );
            let texts = |levels: &mut dyn Iterator<Item = binance_sbe::Level>| {
                serde_json::Value::from(levels.map(|l| vec![fixed(l.price), fixed(l.qty)]).collect::<Vec<_>>())
            };
            assert_eq!((texts(&mut d.bids()), texts(&mut d.asks())), (j["b"].clone(), j["a"].clone()), "event {k}");
            assert!(d.bid_count() + d.ask_count() > 0, "event {k} changes the book");
        }
    }

    #[test]
    fn the_key_is_required_and_checked_when_one_is_configured() {
        let any = Market::new(SimConfig::default());
        assert!(!key_accepted(&any, None) && !key_accepted(&any, Some(b"")) && key_accepted(&any, Some(b"k")));
        let one = Market::new(SimConfig { sbe_api_key: Some("k1".into()), ..SimConfig::default() });
        assert!(key_accepted(&one, Some(b"k1")) && !key_accepted(&one, Some(b"k2")));
    }
}
