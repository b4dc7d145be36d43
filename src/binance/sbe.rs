//! Binance's SBE market-data streams (`stream-sbe.binance.com`, shared README §2.6) as the spot
//! venue's binary transport ([`BINARY`]): trade events become the same trade records as the JSON
//! stream's. The frames are read by `binance_sbe::decode` (codecs generated from Binance's schema
//! by the official SBE tool, behind a layer that checks every bound first); what is left here is
//! the mapping to records.
//!
//! SBE sends prices and quantities as mantissa and exponent; the JSON stream sends text with a
//! fixed number of decimals per symbol. That number is the one Binance writes the symbol's
//! `PRICE_FILTER` `tickSize` and `LOT_SIZE` `stepSize` with in `exchangeInfo` (`"0.01000000"`:
//! 8), fetched once at start ([`scales_call`], [`parse_scales`]). The text is exact or refused
//! (`sbe_inexact_decimal`): never rounded. Times are always microseconds on SBE; records carry
//! them in `TIME_UNIT`'s unit (floored to milliseconds by default).

use binance_sbe::{decode, Message, SbeError, MAX_TEXT_LEN};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde::Deserialize;

use super::EXCHANGE;
use crate::record::{Record, Side, Trade};
use crate::stream::StreamKind;
use crate::venue::rest::Call;
use crate::venue::{Binary, BinaryCtx, Frame, Refusal, Scale};

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
};

/// `/api/v3/exchangeInfo?symbols=[...]` for the configured symbols (weight 20, `rest-api.md`).
pub fn scales_call(symbols: &[String]) -> Call {
    let list: Vec<String> = symbols.iter().map(|s| format!("\"{}\"", s.to_uppercase())).collect();
    let query = format!("[{}]", list.join(","));
    Call {
        path: format!("/api/v3/exchangeInfo?symbols={}", utf8_percent_encode(&query, NON_ALPHANUMERIC)),
        label: "exchangeInfo",
        weight: 20,
        on_fallback: true,
    }
}

#[derive(Deserialize)]
struct ExchangeInfo {
    symbols: Vec<SymbolInfo>,
}

#[derive(Deserialize)]
struct SymbolInfo {
    symbol: String,
    #[serde(default)]
    filters: Vec<Filter>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Filter {
    filter_type: String,
    tick_size: Option<String>,
    step_size: Option<String>,
}

/// Every configured symbol's [`Scale`] from an `exchangeInfo` body, in `symbols`' order; a
/// symbol missing, or without a `PRICE_FILTER` `tickSize` or `LOT_SIZE` `stepSize`, is an error
/// naming it (the lane then streams JSON: a guessed scale would publish other text than JSON's).
pub fn parse_scales(body: &str, symbols: &[String]) -> Result<Vec<Scale>, String> {
    let info: ExchangeInfo = serde_json::from_str(body).map_err(|e| format!("exchangeInfo is not understood: {e}"))?;
    symbols
        .iter()
        .map(|s| {
            let up = s.to_uppercase();
            let sym = info.symbols.iter().find(|i| i.symbol == up).ok_or(format!("{up} is not in exchangeInfo"))?;
            let filter = |kind: &str, value: fn(&Filter) -> Option<&String>| {
                sym.filters
                    .iter()
                    .filter(|f| f.filter_type == kind)
                    .find_map(value)
                    .and_then(|v| decimals(v))
                    .ok_or(format!("{up} has no {kind} in exchangeInfo"))
            };
            Ok(Scale {
                price: filter("PRICE_FILTER", |f| f.tick_size.as_ref())?,
                qty: filter("LOT_SIZE", |f| f.step_size.as_ref())?,
            })
        })
        .collect()
}

/// The number of decimals of a decimal text (`"0.01000000"`: 8, `"1"`: 0); `None` if it is not
/// one, or has more decimals than a scale can say.
fn decimals(text: &str) -> Option<u8> {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    (!int.is_empty() && digits(int) && digits(frac)).then(|| u8::try_from(frac.len()).ok()).flatten()
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

/// [`crate::venue::BinaryParse`] for Binance's SBE frames: a `TradesStreamEvent` becomes one
/// trade record per trade, in the event's order, each with the event's times.
fn parse<'a>(
    frame: &'a [u8],
    ctx: &'a BinaryCtx,
    emit: &mut dyn for<'b> FnMut(Result<Frame<'b>, Refusal>),
) -> Result<(), Refusal> {
    let Message::Trades(event) = decode(frame).map_err(|e| refusal(&e))? else {
        return Err(UNSUPPORTED);
    };
    let symbol = event.symbol();
    let idx = ctx.symbols.index_of_upper(symbol).ok_or(UNKNOWN_SYMBOL)?;
    // Scales has one entry per configured symbol (built with them at start).
    let scale = ctx.scales.get(usize::from(idx)).copied().ok_or(UNKNOWN_SYMBOL)?;
    let stream_symbol = ctx.symbols[usize::from(idx)].as_str();
    let event_time = ctx.unit.from_us(event.event_time_us());
    let trade_time = ctx.unit.from_us(event.transact_time_us());
    let (mut price_buf, mut qty_buf) = ([0u8; MAX_TEXT_LEN], [0u8; MAX_TEXT_LEN]);
    for t in event.trades() {
        let written = (t.price.write_fixed(scale.price, &mut price_buf), t.qty.write_fixed(scale.qty, &mut qty_buf));
        let (Ok(p), Ok(q)) = written else {
            emit(Err(INEXACT));
            continue;
        };
        // write_fixed writes ASCII digits, `-` and `.` only.
        let (Ok(price), Ok(qty)) = (std::str::from_utf8(&price_buf[..p]), std::str::from_utf8(&qty_buf[..q])) else {
            emit(Err(INEXACT));
            continue;
        };
        let record = Record::Trade(Trade {
            exchange: EXCHANGE,
            symbol,
            trade_id: t.id,
            price,
            qty,
            side: Side::from_buyer_is_maker(t.is_buyer_maker),
            trade_time_ms: trade_time,
            event_time_ms: event_time,
        });
        emit(Ok(Frame::Market { kind: StreamKind::Trade, stream_symbol, record }));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::symbols::Symbols;
    use crate::time_unit::TimeUnit;
    use binance_sbe::encode::{BestBidAskFrame, TradeRow, TradesFrame};
    use std::sync::Arc;

    fn ctx(unit: TimeUnit) -> BinaryCtx {
        let symbols = Arc::new(Symbols::new(&["btcusdt".into(), "ethusdt".into()]));
        BinaryCtx { symbols, scales: vec![Scale { price: 8, qty: 8 }, Scale { price: 2, qty: 4 }], unit }
    }

    fn trades_frame(symbol: &str, rows: &[TradeRow]) -> Vec<u8> {
        TradesFrame {
            event_time_us: 1_700_000_000_123_456,
            transact_time_us: 1_700_000_000_123_001,
            price_exponent: -2,
            qty_exponent: -8,
            trades: rows,
            symbol,
        }
        .encode()
        .unwrap()
    }

    /// (trade id, price, qty, side, trade time, event time) of each record, or the refusal.
    fn records(frame: &[u8], ctx: &BinaryCtx) -> Result<Vec<Result<String, &'static str>>, &'static str> {
        let mut out = Vec::new();
        parse(frame, ctx, &mut |r| {
            out.push(match r {
                Ok(Frame::Market { kind: StreamKind::Trade, stream_symbol, record: Record::Trade(t) }) => Ok(format!(
                    "{stream_symbol} {} {} {} {} {} {} {}",
                    t.symbol,
                    t.trade_id,
                    t.price,
                    t.qty,
                    t.side.as_str(),
                    t.trade_time_ms,
                    t.event_time_ms
                )),
                Ok(other) => panic!("not a trade: {other:?}"),
                Err(e) => Err(e.reason),
            })
        })
        .map_err(|e| e.reason)?;
        Ok(out)
    }

    #[test]
    fn a_trade_event_becomes_one_record_per_trade_at_the_symbol_s_scale() {
        let rows = [
            TradeRow { id: 7, price: 4_200_012, qty: 150_000_000, is_buyer_maker: true },
            TradeRow { id: 8, price: 4_200_100, qty: 1, is_buyer_maker: false },
        ];
        let frame = trades_frame("BTCUSDT", &rows);
        assert_eq!(
            records(&frame, &ctx(TimeUnit::Millis)).unwrap(),
            [
                Ok("btcusdt BTCUSDT 7 42000.12000000 1.50000000 sell 1700000000123 1700000000123".to_string()),
                Ok("btcusdt BTCUSDT 8 42001.00000000 0.00000001 buy 1700000000123 1700000000123".to_string()),
            ]
        );
        let us = records(&frame, &ctx(TimeUnit::Micros)).unwrap();
        assert!(us[0].as_ref().unwrap().ends_with(" 1700000000123001 1700000000123456"), "{us:?}");
    }

    #[test]
    fn digits_beyond_the_scale_refuse_that_trade_only() {
        // ethusdt: qty scale 4, so 0.00000001 cannot be written; the other trade still goes.
        let rows = [
            TradeRow { id: 1, price: 250_000, qty: 1, is_buyer_maker: false },
            TradeRow { id: 2, price: 250_001, qty: 10_000, is_buyer_maker: false },
        ];
        let got = records(&trades_frame("ETHUSDT", &rows), &ctx(TimeUnit::Millis)).unwrap();
        assert_eq!(got[0], Err("sbe_inexact_decimal"));
        assert!(got[1].as_ref().unwrap().starts_with("ethusdt ETHUSDT 2 2500.01 0.0001 buy"), "{got:?}");
    }

    #[test]
    fn frames_that_are_not_trades_of_a_configured_symbol_are_refused_whole() {
        let c = ctx(TimeUnit::Millis);
        let row = [TradeRow { id: 1, price: 1, qty: 1, is_buyer_maker: false }];
        assert_eq!(records(&trades_frame("SOLUSDT", &row), &c), Err("unknown_symbol"));
        let bba = BestBidAskFrame {
            event_time_us: 1,
            book_update_id: 1,
            price_exponent: -2,
            qty_exponent: -8,
            bid_price: 1,
            bid_qty: 1,
            ask_price: 2,
            ask_qty: 1,
            symbol: "BTCUSDT",
        };
        assert_eq!(records(&bba.encode().unwrap(), &c), Err("sbe_unsupported_message"));
        let mut frame = trades_frame("BTCUSDT", &row);
        frame[2] = 0x99; // template id
        assert_eq!(records(&frame, &c), Err("sbe_unknown_template"));
        let mut frame = trades_frame("BTCUSDT", &row);
        frame[6] = 1; // schema version
        assert_eq!(records(&frame, &c), Err("sbe_unknown_version"));
        assert_eq!(records(&frame[..5], &c), Err("sbe_short_header"));
        let whole = trades_frame("BTCUSDT", &row);
        assert_eq!(records(&whole[..whole.len() - 3], &c), Err("sbe_truncated"));
    }

    #[test]
    fn scales_come_from_the_filters_as_binance_writes_them() {
        let body = r#"{"symbols":[
            {"symbol":"ETHUSDT","filters":[{"filterType":"PRICE_FILTER","minPrice":"0.01","tickSize":"0.01"},{"filterType":"LOT_SIZE","stepSize":"0.00010000"}]},
            {"symbol":"BTCUSDT","filters":[{"filterType":"LOT_SIZE","stepSize":"0.00000100"},{"filterType":"PRICE_FILTER","tickSize":"0.01000000"}]},
            {"symbol":"SOLUSDT","filters":[{"filterType":"PRICE_FILTER","tickSize":"1"}]}]}"#;
        let syms = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            parse_scales(body, &syms(&["btcusdt", "ethusdt"])),
            Ok(vec![Scale { price: 8, qty: 8 }, Scale { price: 2, qty: 8 }])
        );
        assert_eq!(parse_scales(body, &syms(&["solusdt"])), Err("SOLUSDT has no LOT_SIZE in exchangeInfo".into()));
        assert_eq!(parse_scales(body, &syms(&["bnbusdt"])), Err("BNBUSDT is not in exchangeInfo".into()));
        assert!(parse_scales("{", &syms(&["btcusdt"])).unwrap_err().starts_with("exchangeInfo is not understood"));
        assert_eq!(
            (decimals("1"), decimals("0.x1"), decimals(".5"), decimals("12.345")),
            (Some(0), None, None, Some(3))
        );
        assert_eq!(scales_call(&syms(&["btcusdt"])).path, "/api/v3/exchangeInfo?symbols=%5B%22BTCUSDT%22%5D");
    }
}
