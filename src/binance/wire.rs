//! Binance combined-stream frames, parsed with sonic-rs into borrowed [`Record`]s.
//!
//! A combined frame wraps each payload as `{"stream":"<name>","data":<payload>}`
//! (<https://github.com/binance/binance-spot-api-docs/blob/master/web-socket-streams.md>, "combined
//! streams"). The same socket also carries control replies (`{"result":null,"id":1}`), error
//! replies (`{"code":2,"msg":"..."}`) and the `serverShutdown` notice. Every field is borrowed from
//! the frame text: parsing allocates nothing. USD-M futures frames (`usdm::wire`) share the
//! envelope, the control frames, the checks and the aggTrade and kline payloads parsed here.

use serde::{Deserialize, Deserializer};
use sonic_rs::LazyValue;

mod fold;

use super::stream::StreamKind;
use super::EXCHANGE;
use crate::record::{AggTrade, BookTicker, DepthUpdate, Kline, Levels, Record, Side, Trade};

/// The engine's frame (`crate::venue::Frame`) is what this parser returns: the same type, so the
/// venue seam hands it on without moving the record again.
pub use crate::venue::Frame;

/// Why a frame was rejected; `reason()` is a bounded metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.why())]
pub enum ParseError {
    Json,
    UnknownShape,
    UnknownStream,
    EventTypeMismatch,
    SymbolMismatch,
    IntervalMismatch,
    TooDeep,
    /// USD-M: a liquidation's side is neither `BUY` nor `SELL`.
    UnknownSide,
}

impl ParseError {
    /// What went wrong, for the log (the `Display` text).
    pub fn why(self) -> &'static str {
        match self {
            ParseError::Json => "not valid JSON for its shape",
            ParseError::UnknownShape => "neither a combined-stream payload nor a control or error reply",
            ParseError::UnknownStream => "stream name is not one this ingester subscribes to",
            ParseError::EventTypeMismatch => "payload event type does not match its stream",
            ParseError::SymbolMismatch => "payload symbol does not match its stream name",
            ParseError::IntervalMismatch => "kline interval does not match its stream name",
            ParseError::TooDeep => "JSON nested deeper than any Binance frame",
            ParseError::UnknownSide => "liquidation side is neither BUY nor SELL",
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            ParseError::Json => "malformed_json",
            ParseError::UnknownShape => "unknown_shape",
            ParseError::UnknownStream => "unknown_stream",
            ParseError::EventTypeMismatch => "event_type_mismatch",
            ParseError::SymbolMismatch => "symbol_mismatch",
            ParseError::IntervalMismatch => "interval_mismatch",
            ParseError::TooDeep => "too_deep",
            ParseError::UnknownSide => "unknown_side",
        }
    }
}

/// Deserializes a field that is present, whatever its value (`"result": null` is `Some`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<LazyValue<'de>>, D::Error> {
    LazyValue::deserialize(d).map(Some)
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    stream: Option<&'a str>,
    #[serde(borrow, default, deserialize_with = "present")]
    data: Option<LazyValue<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    result: Option<LazyValue<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    id: Option<LazyValue<'a>>,
    #[serde(default)]
    code: Option<i64>,
    #[serde(borrow, default)]
    msg: Option<&'a str>,
    /// A bare event's type: only `serverShutdown` comes unwrapped (on a raw `/ws` connection,
    /// or once `SET_PROPERTY combined false` took the wrapper off).
    #[serde(borrow, default, rename = "e")]
    event: Option<&'a str>,
    #[serde(default, rename = "E")]
    event_time: Option<i64>,
}

/// `{"e":"trade","E":1672515782136,"s":"BNBBTC","t":12345,"p":"0.001","q":"100","T":1672515782136,"m":true,"M":true}`
#[derive(Deserialize)]
struct TradeWire<'a> {
    #[serde(borrow)]
    e: &'a str,
    #[serde(rename = "E")]
    event_time: i64,
    #[serde(borrow)]
    s: &'a str,
    t: i64,
    #[serde(borrow)]
    p: &'a str,
    #[serde(borrow)]
    q: &'a str,
    #[serde(rename = "T")]
    trade_time: i64,
    m: bool,
}

/// `{"e":"aggTrade","E":1672515782136,"s":"BNBBTC","a":12345,"p":"0.001","q":"100","f":100,"l":105,"T":1672515782136,"m":true,"M":true}`
#[derive(Deserialize)]
struct AggTradeWire<'a> {
    #[serde(borrow)]
    e: &'a str,
    #[serde(rename = "E")]
    event_time: i64,
    #[serde(borrow)]
    s: &'a str,
    a: i64,
    #[serde(borrow)]
    p: &'a str,
    #[serde(borrow)]
    q: &'a str,
    f: i64,
    l: i64,
    #[serde(rename = "T")]
    trade_time: i64,
    m: bool,
}

/// `{"e":"kline","E":..,"s":"BNBBTC","k":{"t":..,"T":..,"s":"BNBBTC","i":"1m","f":100,"L":200,"o":"0.0010",
/// "c":"0.0020","h":"0.0025","l":"0.0015","v":"1000","n":100,"x":false,"q":"1.0000","V":"500","Q":"0.500","B":"123456"}}`
#[derive(Deserialize)]
struct KlineWire<'a> {
    #[serde(borrow)]
    e: &'a str,
    #[serde(rename = "E")]
    event_time: i64,
    #[serde(borrow)]
    s: &'a str,
    #[serde(borrow)]
    k: KlineInner<'a>,
}

#[derive(Deserialize)]
struct KlineInner<'a> {
    t: i64,
    #[serde(rename = "T")]
    close_time: i64,
    #[serde(borrow)]
    i: &'a str,
    f: i64,
    #[serde(rename = "L")]
    last_trade_id: i64,
    #[serde(borrow)]
    o: &'a str,
    #[serde(borrow)]
    c: &'a str,
    #[serde(borrow)]
    h: &'a str,
    #[serde(borrow)]
    l: &'a str,
    #[serde(borrow)]
    v: &'a str,
    n: i64,
    x: bool,
    #[serde(borrow)]
    q: &'a str,
    #[serde(borrow, rename = "V")]
    taker_buy_volume: &'a str,
    #[serde(borrow, rename = "Q")]
    taker_buy_quote_volume: &'a str,
}

/// `{"u":400900217,"s":"BNBUSDT","b":"25.35190000","B":"31.21000000","a":"25.36520000","A":"40.66000000"}`
#[derive(Deserialize)]
struct BookTickerWire<'a> {
    u: i64,
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

/// `{"e":"depthUpdate","E":..,"s":"BNBBTC","U":157,"u":160,"b":[["0.0024","10"]],"a":[["0.0026","100"]]}`
#[derive(Deserialize)]
struct DepthWire<'a> {
    #[serde(borrow)]
    e: &'a str,
    #[serde(rename = "E")]
    event_time: i64,
    #[serde(borrow)]
    s: &'a str,
    #[serde(rename = "U")]
    first: i64,
    u: i64,
    #[serde(borrow)]
    b: LazyValue<'a>,
    #[serde(borrow)]
    a: LazyValue<'a>,
}

#[derive(Deserialize)]
struct ShutdownWire {
    #[serde(rename = "E")]
    event_time: i64,
}

/// The raw text of a lazily parsed value, borrowed from the frame (never copied: the frame is a
/// byte slice, so sonic-rs always hands out borrowed raw text).
pub(super) fn raw<'a>(v: &LazyValue<'a>) -> Result<&'a str, ParseError> {
    match v.as_raw_cow() {
        std::borrow::Cow::Borrowed(s) => Ok(s),
        std::borrow::Cow::Owned(_) => Err(ParseError::Json),
    }
}

pub(super) fn check_symbol(payload: &str, stream: &str) -> Result<(), ParseError> {
    // Stream names carry the symbol lower case; a UTF-8 listing's letters may have case too
    // (Greek, Cyrillic), which only a Unicode comparison sees. ASCII symbols never pay for it.
    let same = if let Some(same) = fold::ascii_eq_ignore_case(payload.as_bytes(), stream.as_bytes()) {
        same
    } else if payload.is_ascii() {
        payload.eq_ignore_ascii_case(stream)
    } else {
        payload.chars().flat_map(char::to_lowercase).eq(stream.chars())
    };
    if same {
        Ok(())
    } else {
        Err(ParseError::SymbolMismatch)
    }
}

pub(super) fn check_event(e: &str, want: &str) -> Result<(), ParseError> {
    if e == want {
        Ok(())
    } else {
        Err(ParseError::EventTypeMismatch)
    }
}

/// Splits Binance's exact combined framing, `{"stream":"<name>","data":<payload>}`, without a
/// JSON pass: the envelope is fixed text, and deserializing it (skipping the whole payload once
/// just to find its end) cost more than parsing the payload itself. Anything that does not match
/// to the byte falls back to the general parser, and the payload is still fully parsed.
fn split_combined(text: &str) -> Option<(&str, &str)> {
    let rest = text.strip_prefix(r#"{"stream":""#)?;
    let q = rest.find('"')?;
    let stream = &rest[..q];
    if stream.contains('\\') {
        return None;
    }
    let data = rest[q..].strip_prefix(r#"","data":"#)?.strip_suffix('}')?;
    Some((stream, data))
}

/// Deepest JSON nesting a frame may have. Binance frames nest at most four levels (a depth
/// update's `[price, qty]` pairs inside its level array inside `data` inside the envelope).
/// The limit exists because sonic-rs skips ignored and lazily captured values recursively
/// (cloudwego/sonic-rs#232): a valid frame nested ~18,000 levels deep would overflow the event-loop
/// thread's stack and abort the process. A debug build overflows at ~47 levels, so this stays low.
pub const MAX_NESTING: usize = 16;

/// Whether `text` nests at most [`MAX_NESTING`] levels, checked before sonic-rs sees it.
pub(super) fn nesting_ok(text: &str) -> bool {
    let b = text.as_bytes();
    // A frame cannot nest deeper than it has opening brackets, and a trade frame has two: this
    // count vectorizes, so ordinary frames never pay for the string-aware scan.
    // (`[` is 0x5B and `{` 0x7B, so `c | 0x20 == b'{'` matches both; u8 sums over 255-byte chunks
    // cannot overflow and compile to SIMD adds.)
    let opens: usize = b.chunks(255).map(|c| c.iter().map(|&c| u8::from(c | 0x20 == b'{')).sum::<u8>() as usize).sum();
    opens <= MAX_NESTING || deepest(b) <= MAX_NESTING
}

/// The deepest bracket nesting of `b`, ignoring brackets inside strings; stops counting once
/// past [`MAX_NESTING`]. Malformed text gets some answer: sonic-rs rejects it afterwards anyway.
fn deepest(b: &[u8]) -> usize {
    let (mut depth, mut max, mut i) = (0usize, 0usize, 0usize);
    while i < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                // Skip to the closing quote; a backslash escapes the byte after it.
                loop {
                    let Some(j) = memchr::memchr2(b'"', b'\\', b.get(i..).unwrap_or_default()) else {
                        return max;
                    };
                    i += j;
                    if b[i] == b'"' {
                        break;
                    }
                    i += 2;
                }
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    max = depth;
                    if max > MAX_NESTING {
                        return max;
                    }
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    max
}

/// Parses one combined-stream frame given as bytes (validated as UTF-8 first).
pub fn parse_frame(text: &[u8]) -> Result<Frame<'_>, ParseError> {
    parse_text(std::str::from_utf8(text).map_err(|_| ParseError::Json)?)
}

/// Parses one combined-stream text frame. Takes `&str` because a WebSocket text message has
/// already been validated as UTF-8: the hot path does not pay for it twice.
pub fn parse_text(text: &str) -> Result<Frame<'_>, ParseError> {
    parse_combined(text, payload)
}

/// A combined-stream frame whose `data` of stream `stream` is parsed by `payload` (spot's or a
/// futures market's), or a control frame. The nesting is checked first.
pub(super) fn parse_combined<'a>(
    text: &'a str,
    payload: fn(&'a str, &'a str) -> Result<Frame<'a>, ParseError>,
) -> Result<Frame<'a>, ParseError> {
    if !nesting_ok(text) {
        return Err(ParseError::TooDeep);
    }
    if let Some((stream, data)) = split_combined(text) {
        if let Ok(f) = payload(stream, data) {
            return Ok(f);
        }
        // The fast split may have been wrong (say, a key after `data`): decide on the full parse.
    }
    let env: Envelope<'_> = sonic_rs::from_str(text).map_err(|_| ParseError::Json)?;
    match (env.stream, env.data) {
        (Some(stream), Some(data)) => payload(stream, raw(&data)?),
        (None, None) => {
            if let (Some("serverShutdown"), Some(event_time_ms)) = (env.event, env.event_time) {
                return Ok(Frame::ServerShutdown { event_time_ms });
            }
            if let Some(code) = env.code {
                return Ok(Frame::ErrorReply { code, msg: env.msg.unwrap_or("") });
            }
            match (env.result, env.id) {
                (Some(result), id) => {
                    // Binance echoes whatever id we sent; ours are integers, anything else is None.
                    let id = id.and_then(|v| v.as_raw_str().parse::<i64>().ok());
                    Ok(Frame::ControlReply { id, result: raw(&result)? })
                }
                _ => Err(ParseError::UnknownShape),
            }
        }
        _ => Err(ParseError::UnknownShape),
    }
}

/// Parses the `data` of stream `stream` (e.g. `btcusdt@trade`).
pub fn parse_payload<'a>(stream: &'a str, data: &'a str) -> Result<Frame<'a>, ParseError> {
    if !nesting_ok(data) {
        return Err(ParseError::TooDeep);
    }
    payload(stream, data)
}

/// The `serverShutdown` notice if `stream` is its combined name (`!serverShutdown`).
pub(super) fn shutdown<'a>(stream: &str, data: &str) -> Option<Result<Frame<'a>, ParseError>> {
    (stream == "!serverShutdown").then(|| {
        let w: ShutdownWire = sonic_rs::from_str(data).map_err(|_| ParseError::Json)?;
        Ok(Frame::ServerShutdown { event_time_ms: w.event_time })
    })
}

/// An aggTrade payload of `stream_symbol`'s stream as a record of `exchange`. USD-M's has no
/// `M` and may carry `nq` and `st`: fields this parse does not name are skipped.
pub(super) fn agg_trade<'a>(
    exchange: &'static str,
    stream_symbol: &str,
    data: &'a str,
) -> Result<Record<'a>, ParseError> {
    let w: AggTradeWire<'a> = sonic_rs::from_str(data).map_err(|_| ParseError::Json)?;
    check_event(w.e, "aggTrade")?;
    check_symbol(w.s, stream_symbol)?;
    Ok(Record::AggTrade(AggTrade {
        exchange,
        symbol: w.s,
        agg_id: w.a,
        first_trade_id: w.f,
        last_trade_id: w.l,
        price: w.p.into(),
        qty: w.q.into(),
        side: Side::from_buyer_is_maker(w.m),
        trade_time_ms: w.trade_time,
        event_time_ms: w.event_time,
    }))
}

/// A kline payload of `stream_symbol`'s stream of interval `iv` as a record of `exchange`
/// (USD-M's `k` has spot's fields).
pub(super) fn kline<'a>(
    exchange: &'static str,
    stream_symbol: &str,
    iv: u8,
    data: &'a str,
) -> Result<Record<'a>, ParseError> {
    let w: KlineWire<'a> = sonic_rs::from_str(data).map_err(|_| ParseError::Json)?;
    check_event(w.e, "kline")?;
    check_symbol(w.s, stream_symbol)?;
    if Some(&w.k.i) != super::stream::KLINE_INTERVALS.get(iv as usize) {
        return Err(ParseError::IntervalMismatch);
    }
    Ok(Record::Kline(Kline {
        exchange,
        symbol: w.s,
        interval: w.k.i,
        open_time_ms: w.k.t,
        close_time_ms: w.k.close_time,
        open: w.k.o.into(),
        high: w.k.h.into(),
        low: w.k.l.into(),
        close: w.k.c.into(),
        volume: w.k.v.into(),
        quote_volume: w.k.q.into(),
        trades: w.k.n,
        taker_buy_volume: w.k.taker_buy_volume.into(),
        taker_buy_quote_volume: w.k.taker_buy_quote_volume.into(),
        closed: w.k.x,
        first_trade_id: Some(w.k.f),
        last_trade_id: Some(w.k.last_trade_id),
        event_time_ms: w.event_time,
    }))
}

/// [`parse_payload`] once the nesting has been checked.
fn payload<'a>(stream: &'a str, data: &'a str) -> Result<Frame<'a>, ParseError> {
    if let Some(f) = shutdown(stream, data) {
        return f;
    }
    let (stream_symbol, suffix) = stream.split_once('@').ok_or(ParseError::UnknownStream)?;
    let kind = StreamKind::from_suffix(suffix).ok_or(ParseError::UnknownStream)?;
    let json = |_| ParseError::Json;
    let record = match kind {
        StreamKind::Trade => {
            let w: TradeWire<'a> = sonic_rs::from_str(data).map_err(json)?;
            check_event(w.e, "trade")?;
            check_symbol(w.s, stream_symbol)?;
            Record::Trade(Trade {
                exchange: EXCHANGE,
                symbol: w.s,
                trade_id: w.t,
                price: w.p.into(),
                qty: w.q.into(),
                side: Side::from_buyer_is_maker(w.m),
                trade_time_ms: w.trade_time,
                event_time_ms: w.event_time,
            })
        }
        StreamKind::AggTrade => agg_trade(EXCHANGE, stream_symbol, data)?,
        StreamKind::Kline(iv) => kline(EXCHANGE, stream_symbol, iv, data)?,
        StreamKind::BookTicker => {
            let w: BookTickerWire<'a> = sonic_rs::from_str(data).map_err(json)?;
            check_symbol(w.s, stream_symbol)?;
            Record::BookTicker(BookTicker {
                exchange: EXCHANGE,
                symbol: w.s,
                update_id: w.u,
                bid_price: w.b.into(),
                bid_qty: w.bid_qty.into(),
                ask_price: w.a.into(),
                ask_qty: w.ask_qty.into(),
                event_time_ms: None,
                transaction_time_ms: None,
            })
        }
        StreamKind::Depth | StreamKind::Depth100ms => {
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
                prev_final_update_id: None,
                transaction_time_ms: None,
            })
        }
        // USD-M kinds: `from_suffix` never names them for spot.
        StreamKind::MarkPrice | StreamKind::MarkPrice1s | StreamKind::ForceOrder | StreamKind::Depth500ms => {
            return Err(ParseError::UnknownStream)
        }
    };
    Ok(Frame::Market { kind, stream_symbol, record })
}
