//! USD-M combined-stream frames, parsed with sonic-rs into borrowed [`Record`]s.
//!
//! The envelope (`{"stream":"<name>","data":<payload>}`), the control replies, `serverShutdown`,
//! the nesting limit and the aggTrade and kline payloads are spot's (`binance::wire`); what
//! differs is here, each payload as Binance documents it
//! (developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams):
//!
//! - aggTrade: spot's without `M`; newer payloads add `nq` and `st`, which are skipped.
//! - bookTicker: `e`, `E` and `T` besides spot's fields, all kept.
//! - depthUpdate: `T` and `pu` (the previous event's `u`), both kept.
//! - markPriceUpdate and forceOrder (the liquidation in its `o` object), USD-M only.
//!
//! Every field is borrowed from the frame text: parsing allocates nothing.

use serde::Deserialize;
use sonic_rs::LazyValue;

use super::stream::from_suffix;
use super::EXCHANGE;
use crate::binance::wire::{
    agg_trade, check_event, check_symbol, kline, nesting_ok, parse_combined, raw, shutdown, Frame, ParseError,
};
use crate::record::{BookTicker, DepthUpdate, Levels, Liquidation, MarkPrice, Record, Side};
use crate::stream::StreamKind;

/// `{"e":"bookTicker","u":400900217,"E":1568014460893,"T":1568014460891,"s":"BNBUSDT","b":"25.35190000","B":"31.21000000","a":"25.36520000","A":"40.66000000"}`
#[derive(Deserialize)]
struct BookTickerWire<'a> {
    #[serde(borrow)]
    e: &'a str,
    u: i64,
    #[serde(rename = "E")]
    event_time: i64,
    #[serde(rename = "T")]
    transaction_time: i64,
    #[serde(borrow)]
    s: &'a str,
    #[serde(borrow)]
    b: &'a str,
    #[serde(borrow, rename = "B")]
    bid_qty: &'a str,
    #[serde(borrow)]
    a: &'a str,
    #[serde(borrow, rename = "A")]
    ask_qty: &'a str,
}

/// `{"e":"depthUpdate","E":123456789,"T":123456788,"s":"BTCUSDT","U":157,"u":160,"pu":149,"b":[["0.0024","10"]],"a":[["0.0026","100"]]}`
#[derive(Deserialize)]
struct DepthWire<'a> {
    #[serde(borrow)]
    e: &'a str,
    #[serde(rename = "E")]
    event_time: i64,
    #[serde(rename = "T")]
    transaction_time: i64,
    #[serde(borrow)]
    s: &'a str,
    #[serde(rename = "U")]
    first: i64,
    u: i64,
    pu: i64,
    #[serde(borrow)]
    b: LazyValue<'a>,
    #[serde(borrow)]
    a: LazyValue<'a>,
}

/// `{"e":"markPriceUpdate","E":1562305380000,"s":"BTCUSDT","p":"11794.15000000","i":"11784.62659091","P":"11784.25641265","r":"0.00038167","T":1562306400000}`
/// (newer payloads add `ap`, kept, and `st`, skipped).
#[derive(Deserialize)]
struct MarkPriceWire<'a> {
    #[serde(borrow)]
    e: &'a str,
    #[serde(rename = "E")]
    event_time: i64,
    #[serde(borrow)]
    s: &'a str,
    #[serde(borrow)]
    p: &'a str,
    #[serde(borrow)]
    i: &'a str,
    #[serde(borrow, rename = "P")]
    settle: &'a str,
    #[serde(borrow)]
    r: &'a str,
    #[serde(rename = "T")]
    next_funding_time: i64,
    #[serde(borrow, default)]
    ap: Option<&'a str>,
}

/// `{"e":"forceOrder","E":1568014460893,"o":{"s":"BTCUSDT","S":"SELL","o":"LIMIT","f":"IOC","q":"0.014","p":"9910","ap":"9910","X":"FILLED","l":"0.014","z":"0.014","T":1568014460893}}`
#[derive(Deserialize)]
struct ForceOrderWire<'a> {
    #[serde(borrow)]
    e: &'a str,
    #[serde(rename = "E")]
    event_time: i64,
    #[serde(borrow)]
    o: OrderWire<'a>,
}

#[derive(Deserialize)]
struct OrderWire<'a> {
    #[serde(borrow)]
    s: &'a str,
    #[serde(borrow, rename = "S")]
    side: &'a str,
    #[serde(borrow)]
    o: &'a str,
    #[serde(borrow)]
    f: &'a str,
    #[serde(borrow)]
    q: &'a str,
    #[serde(borrow)]
    p: &'a str,
    #[serde(borrow)]
    ap: &'a str,
    #[serde(borrow, rename = "X")]
    status: &'a str,
    #[serde(borrow)]
    l: &'a str,
    #[serde(borrow)]
    z: &'a str,
    #[serde(rename = "T")]
    trade_time: i64,
}

/// Parses one USD-M combined-stream text frame (already valid UTF-8: a WebSocket text message).
pub fn parse_text(text: &str) -> Result<Frame<'_>, ParseError> {
    parse_combined(text, payload)
}

/// Parses the `data` of USD-M stream `stream` (e.g. `btcusdt@markPrice`).
pub fn parse_payload<'a>(stream: &'a str, data: &'a str) -> Result<Frame<'a>, ParseError> {
    if !nesting_ok(data) {
        return Err(ParseError::TooDeep);
    }
    payload(stream, data)
}

/// [`parse_payload`] once the nesting has been checked.
fn payload<'a>(stream: &'a str, data: &'a str) -> Result<Frame<'a>, ParseError> {
    if let Some(f) = shutdown(stream, data) {
        return f;
    }
    let (stream_symbol, suffix) = stream.split_once('@').ok_or(ParseError::UnknownStream)?;
    let kind = from_suffix(suffix).ok_or(ParseError::UnknownStream)?;
    let json = |_| ParseError::Json;
    let record = match kind {
        StreamKind::AggTrade => agg_trade(EXCHANGE, stream_symbol, data)?,
        StreamKind::Kline(iv) => kline(EXCHANGE, stream_symbol, iv, data)?,
        StreamKind::BookTicker => {
            let w: BookTickerWire<'a> = sonic_rs::from_str(data).map_err(json)?;
            check_event(w.e, "bookTicker")?;
            check_symbol(w.s, stream_symbol)?;
            Record::BookTicker(BookTicker {
                exchange: EXCHANGE,
                symbol: w.s,
                update_id: w.u,
                bid_price: w.b.into(),
                bid_qty: w.bid_qty.into(),
                ask_price: w.a.into(),
                ask_qty: w.ask_qty.into(),
                event_time_ms: Some(w.event_time),
                transaction_time_ms: Some(w.transaction_time),
            })
        }
        StreamKind::Depth | StreamKind::Depth100ms | StreamKind::Depth500ms => {
            let w: DepthWire<'a> = sonic_rs::from_str(data).map_err(json)?;
            check_event(w.e, "depthUpdate")?;
            check_symbol(w.s, stream_symbol)?;
            Record::DepthUpdate(DepthUpdate {
                exchange: EXCHANGE,
                symbol: w.s,
                first_update_id: w.first,
                final_update_id: w.u,
                bids: Levels(raw(&w.b)?),
                asks: Levels(raw(&w.a)?),
                event_time_ms: w.event_time,
                prev_final_update_id: Some(w.pu),
                transaction_time_ms: Some(w.transaction_time),
            })
        }
        StreamKind::MarkPrice | StreamKind::MarkPrice1s => {
            let w: MarkPriceWire<'a> = sonic_rs::from_str(data).map_err(json)?;
            check_event(w.e, "markPriceUpdate")?;
            check_symbol(w.s, stream_symbol)?;
            Record::MarkPrice(MarkPrice {
                exchange: EXCHANGE,
                symbol: w.s,
                mark_price: w.p.into(),
                index_price: w.i.into(),
                estimated_settle_price: w.settle.into(),
                funding_rate: w.r.into(),
                mark_price_avg: w.ap.map(Into::into),
                next_funding_time_ms: w.next_funding_time,
                event_time_ms: w.event_time,
            })
        }
        StreamKind::ForceOrder => {
            let w: ForceOrderWire<'a> = sonic_rs::from_str(data).map_err(json)?;
            check_event(w.e, "forceOrder")?;
            let o = w.o;
            check_symbol(o.s, stream_symbol)?;
            let side = match o.side {
                "BUY" => Side::Buy,
                "SELL" => Side::Sell,
                _ => return Err(ParseError::UnknownSide),
            };
            Record::Liquidation(Liquidation {
                exchange: EXCHANGE,
                symbol: o.s,
                side,
                order_type: o.o,
                time_in_force: o.f,
                status: o.status,
                orig_qty: o.q.into(),
                price: o.p.into(),
                avg_price: o.ap.into(),
                last_filled_qty: o.l.into(),
                filled_qty: o.z.into(),
                trade_time_ms: o.trade_time,
                event_time_ms: w.event_time,
            })
        }
        // `from_suffix` never names it on USD-M.
        StreamKind::Trade => return Err(ParseError::UnknownStream),
    };
    Ok(Frame::Market { kind, stream_symbol, record })
}
