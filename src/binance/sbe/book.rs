//! The book streams: `BestBidAskStreamEvent` -> `book_ticker`, `DepthDiffStreamEvent` ->
//! `depth_update`, the records the JSON `bookTicker` and diff-depth streams give, so that the
//! sequence checks, the in-process book and the consumers see one model whatever the transport.

use binance_sbe::{BestBidAskEvent, DepthDiffEvent, Level};

use super::{ascii, symbol, text, MAX_DECIMAL_LEN};
use crate::binance::EXCHANGE;
use crate::record::{BookTicker, DepthUpdate, Levels, Record};
use crate::stream::StreamKind;
use crate::venue::{BinaryCtx, BinarySink, Frame, Refusal, Scale};

/// One `book_ticker` record; a price or quantity that cannot be written refuses the event.
/// `event_time_ms` is the event's (spot JSON's bookTicker has none; USD-M's has one too).
pub(super) fn best_bid_ask(
    event: &BestBidAskEvent<'_>,
    ctx: &BinaryCtx,
    sink: &mut dyn BinarySink,
) -> Result<(), Refusal> {
    let (stream_symbol, scale) = symbol(event.symbol(), ctx)?;
    let mut bufs = [[0u8; MAX_DECIMAL_LEN]; 4];
    let [b, bq, a, aq] = &mut bufs;
    let record = Record::BookTicker(BookTicker {
        exchange: EXCHANGE,
        symbol: event.symbol(),
        update_id: event.book_update_id(),
        bid_price: text(event.bid_price(), scale.price, b)?,
        bid_qty: text(event.bid_qty(), scale.qty, bq)?,
        ask_price: text(event.ask_price(), scale.price, a)?,
        ask_qty: text(event.ask_qty(), scale.qty, aq)?,
        event_time_ms: Some(ctx.unit.from_us(event.event_time_us())),
        transaction_time_ms: None,
    });
    sink.frame(Ok(Frame::Market { kind: StreamKind::BookTicker, stream_symbol, record }));
    Ok(())
}

/// One `depth_update` record, its levels as the JSON stream's text (`[["0.01000000","2.5"],...]`)
/// in `scratch`. A level that cannot be written refuses the whole event: a diff with a level
/// left out would leave a wrong book, one refused is a gap the book resyncs after.
///
/// `scratch` holds at most `2 × (MAX_DECIMAL_LEN + 3) + 3` bytes per level, about 8 times the
/// 16 bytes the level takes in the frame, so at most 9 times the largest frame the connection
/// accepts (`ws/dial.rs`' message limit); it keeps the largest size it reached.
pub(super) fn depth_diff<'a>(
    event: &DepthDiffEvent<'a>,
    ctx: &'a BinaryCtx,
    scratch: &'a mut Vec<u8>,
    sink: &mut dyn BinarySink,
) -> Result<(), Refusal> {
    let (stream_symbol, scale) = symbol(event.symbol(), ctx)?;
    scratch.clear();
    write_levels(event.bids(), scale, scratch)?;
    let mid = scratch.len();
    write_levels(event.asks(), scale, scratch)?;
    let (bids, asks) = scratch.split_at(mid);
    // Brackets, quotes, commas and write_fixed's digits, `-` and `.`: ASCII only.
    let (Some(bids), Some(asks)) = (ascii(bids), ascii(asks)) else {
        return Err(super::INEXACT);
    };
    let record = Record::DepthUpdate(DepthUpdate {
        exchange: EXCHANGE,
        symbol: event.symbol(),
        first_update_id: event.first_book_update_id(),
        final_update_id: event.last_book_update_id(),
        bids: Levels(bids),
        asks: Levels(asks),
        event_time_ms: ctx.unit.from_us(event.event_time_us()),
        prev_final_update_id: None,
        transaction_time_ms: None,
    });
    sink.frame(Ok(Frame::Market { kind: StreamKind::Depth, stream_symbol, record }));
    Ok(())
}

/// Appends `[["<price>","<qty>"],...]`.
fn write_levels(levels: impl Iterator<Item = Level>, scale: Scale, out: &mut Vec<u8>) -> Result<(), Refusal> {
    let (mut p, mut q) = ([0u8; MAX_DECIMAL_LEN], [0u8; MAX_DECIMAL_LEN]);
    out.push(b'[');
    for (n, level) in levels.enumerate() {
        if n > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"[\"");
        out.extend_from_slice(text(level.price, scale.price, &mut p)?.as_str().as_bytes());
        out.extend_from_slice(b"\",\"");
        out.extend_from_slice(text(level.qty, scale.qty, &mut q)?.as_str().as_bytes());
        out.extend_from_slice(b"\"]");
    }
    out.push(b']');
    Ok(())
}
