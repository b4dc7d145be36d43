//! Binance's SBE market-data endpoint (`stream-sbe.binance.com`, shared README §2.6) on a
//! listener of its own: the same paths, subscriptions, pings and control replies as the JSON
//! endpoint (JSON text frames, `serverShutdown` too), an API key required on the upgrade, and
//! market data as SBE binary frames built by `binance_sbe::encode` (the encoders the official SBE
//! tool generated from Binance's schema, which share nothing with the ingester's reading of them).
//!
//! Served: `<symbol>@trade` as `TradesStreamEvent`, from the same trades as the JSON stream.
//! Prices are cents (exponent -2), quantities 10^-8 units (exponent -8), times microseconds
//! whatever `timeUnit` says. One event carries the consecutive trades of one transaction (one
//! transact time), as Binance groups a taker order's fills. Other streams are accepted and send
//! nothing yet (`bestBidAsk`, `depth` and `depth20` are to come; Binance has no SBE `aggTrade`
//! or kline).

use binance_sbe::encode::{TradeRow, TradesFrame};

use crate::kind::StreamKind;
use crate::market::Market;

/// Binance's answer to a missing or refused key ("Invalid API-key, IP, or permissions for
/// action", code -2015), with HTTP 401.
pub(crate) const KEY_REFUSED: &str = r#"{"code":-2015,"msg":"Invalid API-key, IP, or permissions for action."}"#;

/// The most trades one event carries (a bound on a frame; Binance documents none).
const MAX_TRADES_PER_EVENT: usize = 64;

/// Whether an upgrade carrying `key` (the `X-MBX-APIKEY` header, if any) is let in.
pub(crate) fn key_accepted(market: &Market, key: Option<&[u8]>) -> bool {
    match (key, &market.cfg.sbe_api_key) {
        (None, _) => false,
        (Some(k), Some(want)) => k == want.as_bytes(),
        (Some(k), None) => !k.is_empty(),
    }
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
    rows: &mut Vec<TradeRow>,
    out: &mut Vec<u8>,
) -> Option<u64> {
    if kind != StreamKind::Trade {
        return None;
    }
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
    let symbol = market.cfg.symbols[sym].to_uppercase();
    let frame = TradesFrame {
        event_time_us: time_us,
        transact_time_us: time_us,
        price_exponent: -2,
        qty_exponent: -8,
        trades: rows,
        symbol: &symbol,
    };
    // A configured symbol is at most 50 characters and an event at most 64 trades: within
    // what the encoder takes.
    frame.encode_into(out).ok()?;
    Some(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SimConfig;

    #[test]
    fn trades_encode_as_the_json_stream_sends_them() {
        let m = Market::new(SimConfig::default());
        let (mut rows, mut out) = (Vec::new(), Vec::new());
        let next = event(&m, StreamKind::Trade, 1, 5, 100, &mut rows, &mut out).unwrap();
        assert_eq!(next, 6, "the market's trades have distinct times: one per event");
        let Ok(binance_sbe::Message::Trades(ev)) = binance_sbe::decode(&out) else { panic!("not a trade event") };
        let t = ev.trades().next().unwrap();
        let want = m.expected_trade(1, 5);
        let mut buf = [0u8; binance_sbe::MAX_TEXT_LEN];
        let n = t.price.write_fixed(8, &mut buf).unwrap();
        assert_eq!(std::str::from_utf8(&buf[..n]).unwrap(), want.price);
        let n = t.qty.write_fixed(8, &mut buf).unwrap();
        assert_eq!(std::str::from_utf8(&buf[..n]).unwrap(), want.qty);
        assert_eq!(
            (ev.symbol(), t.id, t.is_buyer_maker, ev.transact_time_us(), ev.event_time_us()),
            ("ETHUSDT", want.trade_id, want.buyer_is_maker, want.trade_time_us, want.trade_time_us)
        );
        assert_eq!(event(&m, StreamKind::Depth, 1, 5, 100, &mut rows, &mut out), None);
    }

    #[test]
    fn the_key_is_required_and_checked_when_one_is_configured() {
        let any = Market::new(SimConfig::default());
        assert!(!key_accepted(&any, None) && !key_accepted(&any, Some(b"")) && key_accepted(&any, Some(b"k")));
        let one = Market::new(SimConfig { sbe_api_key: Some("k1".into()), ..SimConfig::default() });
        assert!(key_accepted(&one, Some(b"k1")) && !key_accepted(&one, Some(b"k2")));
    }
}
