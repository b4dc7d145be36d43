//! Each record's constant start, written once per (symbol, kind) instead of once per record:
//! `{"type":"trade","exchange":"binance","symbol":"BTCUSDT","trade_id":` is the same text for
//! every trade of a symbol, up to its first value. Copied as one block it costs one copy where
//! writing it field by field cost eight, and the symbol, checked once when the table is built, is
//! not checked again per record.

use super::json::JsonWriter;
use super::{is_safe_symbol, Record, RecordType, Trade};

/// The prefixes of one venue's records for every configured symbol and record type, built once
/// (with the symbols, at start) and read-only after.
///
/// Memory: one prefix a symbol and type, each at most 80 bytes besides the symbol
/// ([`super::MAX_SYMBOL_BYTES`] at most): about 7 × (60 + symbol) bytes a symbol, 0.5 MB at 1,000
/// symbols of 10 letters, 1.6 MB at the longest symbols, plus 16 bytes of offsets each.
#[derive(Debug, Default)]
pub struct Prefixes {
    exchange: &'static str,
    bytes: Vec<u8>,
    /// Per `symbol * RecordType::COUNT + type`: where its prefix and the symbol in it lie in
    /// `bytes` (`start == end`: no prefix, the symbol could not be a record's).
    spans: Vec<Span>,
}

#[derive(Clone, Copy, Debug, Default)]
struct Span {
    start: u32,
    symbol: u32,
    symbol_end: u32,
    end: u32,
}

impl Prefixes {
    /// The prefixes of `exchange`'s records of `symbols` (as records write them: upper case).
    pub fn new<'s>(exchange: &'static str, symbols: impl IntoIterator<Item = &'s str>) -> Prefixes {
        let mut bytes = Vec::new();
        let mut spans = Vec::new();
        for symbol in symbols {
            for ty in RecordType::ALL {
                let start = bytes.len();
                if is_safe_symbol(symbol) {
                    JsonWriter::begin(&mut bytes, ty.as_str(), exchange, symbol, first_key(ty));
                }
                let end = bytes.len();
                // The symbol is followed by its closing quote and the first key.
                let symbol_end = end.saturating_sub(1 + first_key(ty).len());
                let symbol_at = symbol_end.saturating_sub(symbol.len());
                let at = |n: usize| u32::try_from(n).expect("prefixes of at most u16::MAX symbols fit in u32");
                spans.push(Span { start: at(start), symbol: at(symbol_at), symbol_end: at(symbol_end), end: at(end) });
            }
        }
        bytes.shrink_to_fit();
        Prefixes { exchange, bytes, spans }
    }

    /// The prefix of `record` as the record of symbol `symbol_idx`: `None` unless the record is
    /// this table's venue's and carries exactly that symbol's text (a payload may spell its
    /// symbol in another case than the configured one: it is written as sent, field by field).
    #[inline(always)]
    pub fn of(&self, record: &Record<'_>, symbol_idx: u16) -> Option<&[u8]> {
        self.get(record.record_type(), || record.exchange(), || record.symbol(), symbol_idx)
    }

    /// [`Prefixes::of`] a trade, without a [`Record`] (the fast way of a binary frame's trades).
    #[inline(always)]
    pub fn trade(&self, trade: &Trade<'_>, symbol_idx: u16) -> Option<&[u8]> {
        self.get(RecordType::Trade, || trade.exchange, || trade.symbol, symbol_idx)
    }

    /// The record's exchange and symbol are read where they are compared, as `of` read them
    /// before it also served trades without a `Record` (for a `Record`, each is a `match`).
    #[inline(always)]
    fn get<'r>(
        &self,
        ty: RecordType,
        exchange: impl FnOnce() -> &'r str,
        symbol_text: impl FnOnce() -> &'r str,
        symbol_idx: u16,
    ) -> Option<&[u8]> {
        let span = self.spans.get(usize::from(symbol_idx) * RecordType::COUNT + ty as usize)?;
        let exchange = exchange();
        if span.start == span.end
            || !(std::ptr::eq(exchange, self.exchange) || same_short(exchange.as_bytes(), self.exchange.as_bytes()))
        {
            return None;
        }
        let symbol = self.bytes.get(span.symbol as usize..span.symbol_end as usize)?;
        if !same_short(symbol, symbol_text().as_bytes()) {
            return None;
        }
        self.bytes.get(span.start as usize..span.end as usize)
    }
}

/// The key of each record type's first field after the symbol (what [`Record::encode_to`]
/// writes first): part of the constant prefix.
pub(super) const fn first_key(ty: RecordType) -> &'static str {
    match ty {
        RecordType::Trade => super::k!("trade_id"),
        RecordType::AggTrade => super::k!("agg_id"),
        RecordType::Kline => super::k!("interval"),
        RecordType::BookTicker => super::k!("update_id"),
        RecordType::DepthUpdate => super::k!("first_update_id"),
        RecordType::MarkPrice => super::k!("mark_price"),
        RecordType::Liquidation => super::k!("side"),
    }
}

/// `a == b` for short slices (symbols) by a few word compares, without a `bcmp` call.
#[inline(always)]
fn same_short(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word = |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().unwrap());
    let half = |s: &[u8], at: usize| u32::from_le_bytes(s[at..at + 4].try_into().unwrap());
    match n {
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        4..=7 => half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{AggTrade, BookTicker, DepthUpdate, Kline, Levels, Liquidation, MarkPrice, Side, Trade};
    use crate::time_unit::TimeUnit;

    fn records(exchange: &'static str, symbol: &'static str) -> Vec<Record<'static>> {
        vec![
            Record::Trade(Trade {
                exchange,
                symbol,
                trade_id: 12_345,
                price: "42000.01000000".into(),
                qty: "0.00100000".into(),
                side: Side::Sell,
                trade_time_ms: 1_700_000_000_001,
                event_time_ms: 1_700_000_000_002,
            }),
            Record::AggTrade(AggTrade {
                exchange,
                symbol,
                agg_id: 9,
                first_trade_id: 10,
                last_trade_id: 11,
                price: "1.5".into(),
                qty: "2".into(),
                side: Side::Buy,
                trade_time_ms: 3,
                event_time_ms: 4,
            }),
            Record::Kline(Kline {
                exchange,
                symbol,
                interval: "1m",
                open_time_ms: 0,
                close_time_ms: 59_999,
                open: "1".into(),
                high: "2".into(),
                low: "0.5".into(),
                close: "1.5".into(),
                volume: "10".into(),
                quote_volume: "15".into(),
                trades: 7,
                taker_buy_volume: "4".into(),
                taker_buy_quote_volume: "6".into(),
                closed: true,
                first_trade_id: Some(1),
                last_trade_id: None,
                event_time_ms: 60_000,
            }),
            Record::BookTicker(BookTicker {
                exchange,
                symbol,
                update_id: 77,
                bid_price: "1.1".into(),
                bid_qty: "2".into(),
                ask_price: "1.2".into(),
                ask_qty: "3".into(),
                event_time_ms: Some(5),
                transaction_time_ms: None,
            }),
            Record::DepthUpdate(DepthUpdate {
                exchange,
                symbol,
                first_update_id: 1,
                final_update_id: 2,
                bids: Levels(r#"[ ["0.0024", "10"] ]"#),
                asks: Levels("[]"),
                event_time_ms: 3,
                prev_final_update_id: Some(0),
                transaction_time_ms: Some(4),
            }),
            Record::MarkPrice(MarkPrice {
                exchange,
                symbol,
                mark_price: "11794.15000000".into(),
                index_price: "11784.62659091".into(),
                estimated_settle_price: "11784.25641265".into(),
                funding_rate: "0.00038167".into(),
                mark_price_avg: Some("11790.1".into()),
                next_funding_time_ms: 1_562_306_400_000,
                event_time_ms: 1_562_305_380_000,
            }),
            Record::Liquidation(Liquidation {
                exchange,
                symbol,
                side: Side::Sell,
                order_type: "LIMIT",
                time_in_force: "IOC",
                status: "FILLED",
                orig_qty: "0.014".into(),
                price: "9910".into(),
                avg_price: "9910".into(),
                last_filled_qty: "0.014".into(),
                filled_qty: "0.014".into(),
                trade_time_ms: 1_568_014_460_893,
                event_time_ms: 1_568_014_460_893,
            }),
        ]
    }

    fn encoded(r: &Record<'_>, prefix: Option<&[u8]>, unit: TimeUnit) -> Result<Vec<u8>, crate::record::RecordError> {
        let mut out = Vec::new();
        r.encode_to(prefix, unit, 1_700_000_000_123_456_789, true, &mut out).map(|()| out)
    }

    /// Every record type, every length of symbol a short compare handles differently: the
    /// record written from its prefix is the record written field by field, byte for byte.
    #[test]
    fn a_record_from_its_prefix_is_the_record_written_field_by_field() {
        let symbols =
            ["B", "BNB", "ETHB", "BTCUSDT", "1000SATSUSDT", "ABCDEFGHIJKLMNOP", "ABCDEFGHIJKLMNOPQ", "币安人生USDT"];
        let table = Prefixes::new("binance", symbols);
        for (i, symbol) in symbols.into_iter().enumerate() {
            let records = records("binance", symbol);
            assert_eq!(records.len(), RecordType::COUNT, "every record type");
            for r in &records {
                let prefix = table.of(r, i as u16).unwrap_or_else(|| panic!("{symbol} {:?}", r.record_type()));
                for unit in [TimeUnit::Millis, TimeUnit::Micros] {
                    assert_eq!(
                        encoded(r, Some(prefix), unit),
                        encoded(r, None, unit),
                        "{symbol} {:?}",
                        r.record_type()
                    );
                }
                // Another symbol's index, another venue: no prefix.
                assert_eq!(table.of(r, ((i + 1) % symbols.len()) as u16), None);
                assert_eq!(Prefixes::new("binance-usdm", symbols).of(r, i as u16), None);
            }
        }
        assert_eq!(table.of(&records("binance", "BTCUSDT")[0], symbols.len() as u16), None, "past the table");
    }

    /// A payload's symbol in another case than the configured one is written as sent (the
    /// parser matched it case-insensitively to its stream), and a symbol that cannot be written
    /// has no prefix, so the record is refused as before.
    #[test]
    fn a_symbol_spelled_otherwise_or_unsafe_has_no_prefix() {
        let table = Prefixes::new("binance", ["BTCUSDT", "BAD\"SYM", "BTCUSDTX"]);
        let mixed = &records("binance", "BtcUSDT")[0];
        assert_eq!(table.of(mixed, 0), None);
        assert_eq!(table.of(&records("binance", "BTCUSDTX")[0], 0), None);
        assert_eq!(table.of(&records("binance", "BTCUSDT")[0], 2), None);
        let bad = &records("binance", "BAD\"SYM")[0];
        assert_eq!(table.of(bad, 1), None);
        assert_eq!(encoded(bad, None, TimeUnit::Millis).unwrap_err().reason(), "bad_symbol");
    }

    #[test]
    fn short_compares_are_equality() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"", b""),
            (b"A", b"A"),
            (b"A", b"B"),
            (b"ABCD", b"ABCE"),
            (b"ABCDE", b"XBCDE"),
            (b"ABCDEF", b"ABCDEX"),
            (b"ABCDEFGHIJ", b"ABCDEFGHIX"),
            (b"ABCDEFGHIJ", b"XBCDEFGHIJ"),
            (b"ABCDEFGH", b"ABCDEFGH"),
            (b"ABCDEFGHI", b"ABCDEFGHJ"),
            (b"ABCDEFGHIJKLMNOP", b"ABCDEFGHIJKLMNOQ"),
            (b"ABCDEFGHIJKLMNOPQ", b"ABCDEFGHIJKLMNOPQ"),
            (b"ABCDEFGHIJKLMNOPQ", b"ABCDEFGHIJKLMNOPR"),
            (b"ABC", b"ABCD"),
        ];
        for &(a, b) in cases {
            assert_eq!(same_short(a, b), a == b, "{a:?} {b:?}");
        }
    }
}
