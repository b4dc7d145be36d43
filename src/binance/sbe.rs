//! Binance's SBE market-data streams (`stream-sbe.binance.com`, shared README §2.6) as the spot
//! venue's binary transport ([`BINARY`]): trade, best bid/ask and diff-depth events become the
//! same trade, `book_ticker` and `depth_update` records as the JSON streams'. The frames are read
//! by `binance_sbe::decode` (codecs generated from Binance's schema by the official SBE tool,
//! behind a layer that checks every bound first); what is left here is the mapping to records.
//!
//! SBE sends prices and quantities as mantissa and exponent; the JSON stream sends text with a
//! fixed number of decimals per symbol, its `exchangeInfo` scale, fetched once at start
//! ([`scales`]). The text is exact or refused (`sbe_inexact_decimal`): never rounded; an exponent
//! that would make it longer than any decimal a record takes is refused too (`sbe_bad_exponent`).
//! Times are always microseconds on SBE; records carry them in `TIME_UNIT`'s unit (floored to
//! milliseconds by default).
//!
//! Streams: `<symbol>@trade`; `<symbol>@bestBidAsk` carries what `bookTicker` is configured for
//! (with an event time, which JSON's spot bookTicker lacks; Binance drops outdated ones under
//! load, so its update ids jump: not a gap, as for JSON's bookTicker whose ids are not dense
//! either); `<symbol>@depth` (every 20 ms) carries `depth` and `depth@100ms`. Binance has no SBE
//! aggTrade, kline or ticker stream ([`carried`]).

mod book;
pub mod scales;
#[cfg(test)]
mod tests;

use binance_sbe::{decode, Decimal, Message, SbeError};

pub use scales::{parse_scales, scales_call};

use super::EXCHANGE;
use crate::record::{DecimalText, Record, Side, Trade, MAX_DECIMAL_LEN};
use crate::stream::StreamKind;
use crate::venue::{Binary, BinaryCtx, BinarySink, Frame, Refusal, Scale, Venue};

/// The spot venue's SBE transport.
pub static BINARY: Binary = Binary {
    name: "sbe",
    parse,
    // "Please put your API Key in the X-MBX-APIKEY header when opening the connection."
    key_header: "X-MBX-APIKEY",
    reasons: REASONS,
    scales_call,
    parse_scales,
    rescale_reason: INEXACT.reason,
    venue: &SBE_VENUE,
    carried,
};

/// The spot venue as the SBE endpoint serves it: the same paths, requests and limits (SBE
/// market-data streams page, "WebSocket Limits"), its own stream names.
pub static SBE_VENUE: Venue = Venue { stream_name, binary: Some(&BINARY), ..super::venue::TEXT };

/// The SBE stream carrying a configured kind's events.
pub fn carried(kind: StreamKind) -> Option<StreamKind> {
    match kind {
        StreamKind::Trade | StreamKind::BookTicker | StreamKind::Depth => Some(kind),
        // One diff-depth stream on SBE, at its own pace (20 ms).
        StreamKind::Depth100ms => Some(StreamKind::Depth),
        _ => None,
    }
}

/// `<symbol>@trade`, `<symbol>@bestBidAsk`, `<symbol>@depth`.
fn stream_name(symbol: &str, kind: StreamKind) -> String {
    // Connections keep the configured kinds (a lane moves between transports): `depth@100ms`
    // is carried by SBE's `@depth`.
    match carried(kind).unwrap_or(kind) {
        StreamKind::BookTicker => format!("{symbol}@bestBidAsk"),
        other => other.stream_name(symbol),
    }
}

/// The `messages_rejected_total` reason of a frame `binance_sbe::decode` refused.
pub const fn reason(e: &SbeError) -> &'static str {
    match e {
        SbeError::ShortHeader { .. } => "sbe_short_header",
        SbeError::UnknownSchema { .. } => "sbe_unknown_schema",
        SbeError::UnknownVersion { .. } => "sbe_unknown_version",
        SbeError::UnknownTemplate { .. } => "sbe_unknown_template",
        SbeError::BlockTooShort { .. } => "sbe_block_too_short",
        SbeError::Truncated { .. } => "sbe_truncated",
        SbeError::InvalidBool { .. } => "sbe_invalid_bool",
        SbeError::SymbolNotUtf8 { .. } => "sbe_symbol_not_utf8",
        SbeError::TrailingBytes { .. } => "sbe_trailing_bytes",
    }
}

/// Every reason this transport refuses a frame or a trade with (pre-registered at 0).
pub const REASONS: &[&str] = &[
    "sbe_short_header",
    "sbe_unknown_schema",
    "sbe_unknown_version",
    "sbe_unknown_template",
    "sbe_block_too_short",
    "sbe_truncated",
    "sbe_invalid_bool",
    "sbe_symbol_not_utf8",
    "sbe_trailing_bytes",
    "sbe_unsupported_message",
    "sbe_inexact_decimal",
    "sbe_bad_exponent",
];

fn refusal(e: &SbeError) -> Refusal {
    let why = match e {
        SbeError::ShortHeader { .. } => "SBE frame shorter than the message header",
        SbeError::UnknownSchema { .. } => "SBE schema id is not the stream schema's",
        SbeError::UnknownVersion { .. } => "SBE schema version is not the one the decoder was generated from",
        SbeError::UnknownTemplate { .. } => "SBE template id is no message of the stream schema",
        SbeError::BlockTooShort { .. } => "SBE block length shorter than the schema's",
        SbeError::Truncated { .. } => "SBE frame ends before a part its lengths announce",
        SbeError::InvalidBool { .. } => "SBE isBuyerMaker neither False nor True",
        SbeError::SymbolNotUtf8 { .. } => "SBE symbol is not UTF-8",
        SbeError::TrailingBytes { .. } => "SBE frame has bytes after its message",
    };
    Refusal { reason: reason(e), why }
}

const UNSUPPORTED: Refusal =
    Refusal { reason: "sbe_unsupported_message", why: "SBE message of a stream this transport does not subscribe" };
const UNKNOWN_SYMBOL: Refusal = Refusal { reason: "unknown_symbol", why: "SBE event for a symbol not in SYMBOLS" };
const INEXACT: Refusal =
    Refusal { reason: "sbe_inexact_decimal", why: "SBE price or quantity has digits beyond the symbol's scale" };
const BAD_EXPONENT: Refusal = Refusal {
    reason: "sbe_bad_exponent",
    why: "SBE exponent makes a price or quantity longer than any decimal a record takes",
};

// The decimals' buffers are long enough for `write_fixed`'s short way.
const _: () = assert!(MAX_DECIMAL_LEN >= binance_sbe::SHORT_ROOM);

/// The exact text of `d` at `scale` decimals, in `buf`: a record takes it without checking it
/// again ([`DecimalText`]).
// Inlined always: the compiler kept it a call (two a trade) with its `Result` returned through
// memory; inlined with the trades iterator, 70 instructions an SBE trade fewer
// (bench-results/sbe-trade-bench-s13/).
#[inline(always)]
fn text(d: Decimal, scale: u8, buf: &mut [u8; MAX_DECIMAL_LEN]) -> Result<DecimalText<'_>, Refusal> {
    d.write_fixed_str(scale, buf).map(DecimalText::from).map_err(|e| match e {
        binance_sbe::FormatError::Inexact { .. } => INEXACT,
        binance_sbe::FormatError::BufferTooSmall { .. } => BAD_EXPONENT,
    })
}

/// `bytes` as text if it is ASCII (a depth event's levels: `write_fixed`'s digits, `-` and `.`
/// in JSON punctuation): a word-wide check inlined, where `str::from_utf8` was a call of about
/// 100 instructions.
#[inline]
fn ascii(bytes: &[u8]) -> Option<&str> {
    // SAFETY: ASCII is UTF-8.
    bytes.is_ascii().then(|| unsafe { std::str::from_utf8_unchecked(bytes) })
}

/// A configured symbol's stream name and scale, from the symbol an event names.
fn symbol<'a>(symbol: &str, ctx: &'a BinaryCtx) -> Result<(&'a str, Scale), Refusal> {
    symbol_at(symbol, ctx).map(|(_, name, scale)| (name, scale))
}

/// [`symbol`] and the symbol's configured index.
#[inline(always)]
fn symbol_at<'a>(symbol: &str, ctx: &'a BinaryCtx) -> Result<(u16, &'a str, Scale), Refusal> {
    let idx = ctx.symbols.index_of_upper_from(ctx.last_symbol.get(), symbol).ok_or(UNKNOWN_SYMBOL)?;
    ctx.last_symbol.set(idx);
    let at = usize::from(idx);
    // Scales has one entry per configured symbol (built with them at start).
    let scale = ctx.scales.get(at).copied().ok_or(UNKNOWN_SYMBOL)?;
    Ok((idx, ctx.symbols[at].as_str(), scale))
}

/// [`crate::venue::BinaryParse`] for Binance's SBE frames: a `TradesStreamEvent` becomes one
/// trade record per trade, in the event's order, each with the event's times (offered to the
/// sink as a trade first); a `BestBidAskStreamEvent` a `book_ticker` record; a
/// `DepthDiffStreamEvent` a `depth_update` record, its levels written as JSON's text in
/// `scratch`.
fn parse<'a>(
    frame: &'a [u8],
    ctx: &'a BinaryCtx,
    scratch: &'a mut Vec<u8>,
    sink: &mut dyn BinarySink,
) -> Result<(), Refusal> {
    match decode(frame).map_err(|e| refusal(&e))? {
        Message::Trades(event) => trades(&event, ctx, sink),
        Message::BestBidAsk(event) => book::best_bid_ask(&event, ctx, sink),
        Message::DepthDiff(event) => book::depth_diff(&event, ctx, scratch, sink),
        // `@depth20` is not subscribed: the book comes from REST and the diffs.
        Message::DepthSnapshot(_) => Err(UNSUPPORTED),
    }
}

fn trades(event: &binance_sbe::TradesEvent<'_>, ctx: &BinaryCtx, sink: &mut dyn BinarySink) -> Result<(), Refusal> {
    let symbol_text = event.symbol();
    let (symbol_idx, stream_symbol, scale) = symbol_at(symbol_text, ctx)?;
    let event_time = ctx.unit.from_us(event.event_time_us());
    let trade_time = ctx.unit.from_us(event.transact_time_us());
    let (mut price_buf, mut qty_buf) = ([0u8; MAX_DECIMAL_LEN], [0u8; MAX_DECIMAL_LEN]);
    let trades = event.trades();
    let mut left = trades.len();
    for t in trades {
        left -= 1;
        let (price, qty) = match (text(t.price, scale.price, &mut price_buf), text(t.qty, scale.qty, &mut qty_buf)) {
            (Ok(p), Ok(q)) => (p, q),
            (Err(e), _) | (_, Err(e)) => {
                sink.frame(Err(e));
                continue;
            }
        };
        let trade = Trade {
            exchange: EXCHANGE,
            symbol: symbol_text,
            trade_id: t.id,
            price,
            qty,
            side: Side::from_buyer_is_maker(t.is_buyer_maker),
            trade_time_ms: trade_time,
            event_time_ms: event_time,
        };
        if !sink.trade(symbol_idx, &trade, left > 0) {
            let record = Record::Trade(trade);
            sink.frame(Ok(Frame::Market { kind: StreamKind::Trade, stream_symbol, record }));
        }
    }
    Ok(())
}
