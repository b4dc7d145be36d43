//! The normalized record model and its JSON encoding: one JSON object per Kafka message.
//!
//! Records borrow every string from the frame they were parsed from, and [`Record::encode`]
//! writes into a caller-owned buffer, so producing a record allocates nothing once the buffer
//! has grown to the largest message seen. Prices and quantities are carried as the exact
//! decimal text the venue sent (validated, never converted to floating point). Times are the
//! venue's too, in the unit asked of it: the `*_ms` fields below hold microseconds under
//! `TIME_UNIT=us`, and [`Record::encode_in`] names them for that unit ([`TimeUnit`]).

use crate::time_unit::TimeUnit;

/// The normalized record types; the discriminant indexes topic and metric tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum RecordType {
    Trade = 0,
    AggTrade = 1,
    Kline = 2,
    BookTicker = 3,
    DepthUpdate = 4,
}

impl RecordType {
    pub const COUNT: usize = 5;
    pub const ALL: [RecordType; 5] =
        [RecordType::Trade, RecordType::AggTrade, RecordType::Kline, RecordType::BookTicker, RecordType::DepthUpdate];

    /// The `type` field of the normalized record, also the metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordType::Trade => "trade",
            RecordType::AggTrade => "agg_trade",
            RecordType::Kline => "kline",
            RecordType::BookTicker => "book_ticker",
            RecordType::DepthUpdate => "depth_update",
        }
    }

    pub fn from_u8(v: u8) -> Option<RecordType> {
        RecordType::ALL.get(v as usize).copied()
    }
}

/// The taker side. Binance's `m` ("is the buyer the market maker?") true means the seller took
/// liquidity, so the trade is a sell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Buy,
    Sell,
}

impl Side {
    pub fn from_buyer_is_maker(m: bool) -> Side {
        if m {
            Side::Sell
        } else {
            Side::Buy
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trade<'a> {
    /// The venue's id, the `exchange` field (see `venue::Venue::exchange`).
    pub exchange: &'static str,
    pub symbol: &'a str,
    pub trade_id: i64,
    pub price: &'a str,
    pub qty: &'a str,
    pub side: Side,
    pub trade_time_ms: i64,
    pub event_time_ms: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AggTrade<'a> {
    pub exchange: &'static str,
    pub symbol: &'a str,
    pub agg_id: i64,
    pub first_trade_id: i64,
    pub last_trade_id: i64,
    pub price: &'a str,
    pub qty: &'a str,
    pub side: Side,
    pub trade_time_ms: i64,
    pub event_time_ms: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kline<'a> {
    pub exchange: &'static str,
    pub symbol: &'a str,
    pub interval: &'a str,
    pub open_time_ms: i64,
    pub close_time_ms: i64,
    pub open: &'a str,
    pub high: &'a str,
    pub low: &'a str,
    pub close: &'a str,
    pub volume: &'a str,
    pub quote_volume: &'a str,
    pub trades: i64,
    pub taker_buy_volume: &'a str,
    pub taker_buy_quote_volume: &'a str,
    pub closed: bool,
    /// `None` for candles refilled from REST, which gives the trade count but not the ids.
    pub first_trade_id: Option<i64>,
    pub last_trade_id: Option<i64>,
    pub event_time_ms: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BookTicker<'a> {
    pub exchange: &'static str,
    pub symbol: &'a str,
    pub update_id: i64,
    pub bid_price: &'a str,
    pub bid_qty: &'a str,
    pub ask_price: &'a str,
    pub ask_qty: &'a str,
}

/// Price levels as the raw JSON array text Binance sent (`[["0.0024","10"],...]`); validated and
/// re-encoded compactly by [`Record::encode`], so a depth update never collects into a `Vec`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Levels<'a>(pub &'a str);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DepthUpdate<'a> {
    pub exchange: &'static str,
    pub symbol: &'a str,
    pub first_update_id: i64,
    pub final_update_id: i64,
    pub bids: Levels<'a>,
    pub asks: Levels<'a>,
    pub event_time_ms: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Record<'a> {
    Trade(Trade<'a>),
    AggTrade(AggTrade<'a>),
    Kline(Kline<'a>),
    BookTicker(BookTicker<'a>),
    DepthUpdate(DepthUpdate<'a>),
}

/// Why a record could not be encoded; the `reason()` is a bounded metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("field {} is not a decimal number", .0.trim_matches([',', '"', ':']))]
    BadDecimal(&'static str),
    #[error("symbol contains characters that cannot be a Kafka key or JSON text")]
    BadSymbol,
    #[error("price levels are not an array of [price, qty] string pairs")]
    BadLevels,
    #[error("kline interval is not one of the known candle intervals")]
    BadInterval,
}

impl RecordError {
    pub fn reason(self) -> &'static str {
        match self {
            RecordError::BadDecimal(_) => "bad_decimal",
            RecordError::BadSymbol => "bad_symbol",
            RecordError::BadLevels => "bad_levels",
            RecordError::BadInterval => "bad_interval",
        }
    }
}

/// Longest decimal text accepted; Binance sends at most ~20 characters.
const MAX_DECIMAL_LEN: usize = 64;

/// Plain decimal text: optional `-`, digits, optional `.` and digits. No exponent, no sign `+`,
/// no whitespace: what Binance sends, and what a consumer can feed to any decimal parser.
pub fn is_decimal(s: &str) -> bool {
    let b = s.as_bytes();
    if b.is_empty() || b.len() > MAX_DECIMAL_LEN {
        return false;
    }
    let digits = if b[0] == b'-' { &b[1..] } else { b };
    let (int, frac) = match digits.iter().position(|&c| c == b'.') {
        Some(i) => (&digits[..i], Some(&digits[i + 1..])),
        None => (digits, None),
    };
    !int.is_empty()
        && int.iter().all(u8::is_ascii_digit)
        && frac.is_none_or(|f| !f.is_empty() && f.iter().all(u8::is_ascii_digit))
}

/// Longest symbol in UTF-8 bytes: Binance allows 50 UTF-16 code units, and no UTF-16 unit takes
/// more than 3 UTF-8 bytes (a CJK letter: 1 unit, 3 bytes; an astral one: 2 units, 4 bytes).
pub const MAX_SYMBOL_BYTES: usize = 150;

/// A symbol becomes the Kafka key and JSON text verbatim, so it must need no escaping.
pub fn is_safe_symbol(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_SYMBOL_BYTES && s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\' && b != 0x7f)
}

impl<'a> Record<'a> {
    pub fn record_type(&self) -> RecordType {
        match self {
            Record::Trade(_) => RecordType::Trade,
            Record::AggTrade(_) => RecordType::AggTrade,
            Record::Kline(_) => RecordType::Kline,
            Record::BookTicker(_) => RecordType::BookTicker,
            Record::DepthUpdate(_) => RecordType::DepthUpdate,
        }
    }

    /// The venue it came from: the `exchange` field.
    pub fn exchange(&self) -> &'static str {
        match self {
            Record::Trade(r) => r.exchange,
            Record::AggTrade(r) => r.exchange,
            Record::Kline(r) => r.exchange,
            Record::BookTicker(r) => r.exchange,
            Record::DepthUpdate(r) => r.exchange,
        }
    }

    /// The symbol as the venue sent it (upper case); the Kafka message key.
    pub fn symbol(&self) -> &'a str {
        match self {
            Record::Trade(r) => r.symbol,
            Record::AggTrade(r) => r.symbol,
            Record::Kline(r) => r.symbol,
            Record::BookTicker(r) => r.symbol,
            Record::DepthUpdate(r) => r.symbol,
        }
    }

    /// Exchange event time; bookTicker carries none, so its records use the receive time.
    pub fn event_time_ms(&self) -> Option<i64> {
        match self {
            Record::Trade(r) => Some(r.event_time_ms),
            Record::AggTrade(r) => Some(r.event_time_ms),
            Record::Kline(r) => Some(r.event_time_ms),
            Record::BookTicker(_) => None,
            Record::DepthUpdate(r) => Some(r.event_time_ms),
        }
    }

    /// The exchange's per-symbol sequence id (trade id, agg id, update id, kline open time):
    /// what duplicate and gap detection key on.
    pub fn sequence_id(&self) -> i64 {
        match self {
            Record::Trade(r) => r.trade_id,
            Record::AggTrade(r) => r.agg_id,
            Record::Kline(r) => r.open_time_ms,
            Record::BookTicker(r) => r.update_id,
            Record::DepthUpdate(r) => r.final_update_id,
        }
    }

    /// [`Record::encode_in`] for times in milliseconds, Binance's default.
    pub fn encode(&self, recv_time_ns: u64, backfilled: bool, out: &mut Vec<u8>) -> Result<(), RecordError> {
        self.encode_in(TimeUnit::Millis, recv_time_ns, backfilled, out)
    }

    /// Validates and appends the normalized JSON object to `out`, its time fields named for
    /// `unit` (`trade_time_ms` or `trade_time_us`: the values are the venue's, in that unit). On
    /// error `out` may hold a partial object; callers truncate back to where they started.
    pub fn encode_in(
        &self,
        unit: TimeUnit,
        recv_time_ns: u64,
        backfilled: bool,
        out: &mut Vec<u8>,
    ) -> Result<(), RecordError> {
        let sym = self.symbol();
        if !is_safe_symbol(sym) {
            return Err(RecordError::BadSymbol);
        }
        let mut w = JsonWriter::begin(out, self.record_type().as_str(), self.exchange(), sym);
        match self {
            Record::Trade(r) => {
                w.int(k!("trade_id"), r.trade_id);
                w.dec(k!("price"), r.price)?;
                w.dec(k!("qty"), r.qty)?;
                w.str(k!("side"), r.side.as_str());
                w.int(kt!(unit, "trade_time"), r.trade_time_ms);
                w.int(kt!(unit, "event_time"), r.event_time_ms);
            }
            Record::AggTrade(r) => {
                w.int(k!("agg_id"), r.agg_id);
                w.int(k!("first_trade_id"), r.first_trade_id);
                w.int(k!("last_trade_id"), r.last_trade_id);
                w.dec(k!("price"), r.price)?;
                w.dec(k!("qty"), r.qty)?;
                w.str(k!("side"), r.side.as_str());
                w.int(kt!(unit, "trade_time"), r.trade_time_ms);
                w.int(kt!(unit, "event_time"), r.event_time_ms);
            }
            Record::Kline(r) => {
                if crate::interval::index(r.interval).is_none() {
                    return Err(RecordError::BadInterval);
                }
                w.str(k!("interval"), r.interval);
                w.int(kt!(unit, "open_time"), r.open_time_ms);
                w.int(kt!(unit, "close_time"), r.close_time_ms);
                w.dec(k!("open"), r.open)?;
                w.dec(k!("high"), r.high)?;
                w.dec(k!("low"), r.low)?;
                w.dec(k!("close"), r.close)?;
                w.dec(k!("volume"), r.volume)?;
                w.dec(k!("quote_volume"), r.quote_volume)?;
                w.int(k!("trades"), r.trades);
                w.dec(k!("taker_buy_volume"), r.taker_buy_volume)?;
                w.dec(k!("taker_buy_quote_volume"), r.taker_buy_quote_volume)?;
                w.bool(k!("closed"), r.closed);
                w.opt_int(k!("first_trade_id"), r.first_trade_id);
                w.opt_int(k!("last_trade_id"), r.last_trade_id);
                w.int(kt!(unit, "event_time"), r.event_time_ms);
            }
            Record::BookTicker(r) => {
                w.int(k!("update_id"), r.update_id);
                w.dec(k!("bid_price"), r.bid_price)?;
                w.dec(k!("bid_qty"), r.bid_qty)?;
                w.dec(k!("ask_price"), r.ask_price)?;
                w.dec(k!("ask_qty"), r.ask_qty)?;
            }
            Record::DepthUpdate(r) => {
                w.int(k!("first_update_id"), r.first_update_id);
                w.int(k!("final_update_id"), r.final_update_id);
                w.levels(k!("bids"), r.bids)?;
                w.levels(k!("asks"), r.asks)?;
                w.int(kt!(unit, "event_time"), r.event_time_ms);
            }
        }
        w.uint(k!("recv_time_ns"), recv_time_ns);
        if backfilled {
            w.bool(k!("backfilled"), true);
        }
        w.end();
        Ok(())
    }
}

/// `,"name":` as one static string, so each field costs a single copy of its key.
macro_rules! k {
    ($name:expr) => {
        concat!(",\"", $name, "\":")
    };
}
use k;

/// The key of time field `$base` in `$unit`: `,"<base>_ms":` or `,"<base>_us":`, both static.
macro_rules! kt {
    ($unit:expr, $base:literal) => {
        match $unit {
            TimeUnit::Millis => k!(concat!($base, "_ms")),
            TimeUnit::Micros => k!(concat!($base, "_us")),
        }
    };
}
use kt;

/// Appends `"key":value` pairs; keys are static ASCII (written whole, with their comma and
/// colon) and values are pre-validated, so nothing needs escaping and every write is a `memcpy`
/// or an `itoa`.
struct JsonWriter<'o> {
    out: &'o mut Vec<u8>,
}

impl<'o> JsonWriter<'o> {
    fn begin(out: &'o mut Vec<u8>, ty: &str, exchange: &str, symbol: &str) -> Self {
        out.extend_from_slice(b"{\"type\":\"");
        out.extend_from_slice(ty.as_bytes());
        out.extend_from_slice(b"\",\"exchange\":\"");
        out.extend_from_slice(exchange.as_bytes());
        out.extend_from_slice(b"\",\"symbol\":\"");
        out.extend_from_slice(symbol.as_bytes());
        out.push(b'"');
        JsonWriter { out }
    }
    fn int(&mut self, key: &str, v: i64) {
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
    }
    fn opt_int(&mut self, key: &str, v: Option<i64>) {
        match v {
            Some(v) => self.int(key, v),
            None => {
                self.out.extend_from_slice(key.as_bytes());
                self.out.extend_from_slice(b"null");
            }
        }
    }
    fn uint(&mut self, key: &str, v: u64) {
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
    }
    fn bool(&mut self, key: &str, v: bool) {
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(if v { b"true" } else { b"false" });
    }
    fn str(&mut self, key: &str, v: &str) {
        self.out.extend_from_slice(key.as_bytes());
        self.out.push(b'"');
        self.out.extend_from_slice(v.as_bytes());
        self.out.push(b'"');
    }
    fn dec(&mut self, key: &'static str, v: &str) -> Result<(), RecordError> {
        if !is_decimal(v) {
            return Err(RecordError::BadDecimal(key));
        }
        self.str(key, v);
        Ok(())
    }
    /// Re-encodes `[["price","qty"],...]` compactly straight into the output in one pass.
    fn levels(&mut self, key: &'static str, levels: Levels<'_>) -> Result<(), RecordError> {
        use serde::de::DeserializeSeed;
        self.out.extend_from_slice(key.as_bytes());
        let mut writer = LevelsWriter { out: self.out, bad_decimal: false };
        let mut de = sonic_rs::Deserializer::from_str(levels.0);
        let parsed = (&mut writer).deserialize(&mut de).and_then(|_| de.end());
        match parsed {
            Ok(()) => Ok(()),
            Err(_) if writer.bad_decimal => Err(RecordError::BadDecimal(key)),
            Err(_) => Err(RecordError::BadLevels),
        }
    }
    fn end(self) {
        self.out.push(b'}');
    }
}

/// A serde visitor that writes each validated `[price, qty]` pair as it is read.
struct LevelsWriter<'o> {
    out: &'o mut Vec<u8>,
    bad_decimal: bool,
}

impl<'de> serde::de::Visitor<'de> for &mut LevelsWriter<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an array of [price, qty] string pairs")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.out.push(b'[');
        let mut first = true;
        while let Some((p, q)) = seq.next_element::<(&'de str, &'de str)>()? {
            if !is_decimal(p) || !is_decimal(q) {
                self.bad_decimal = true;
                return Err(serde::de::Error::custom("not a decimal"));
            }
            if !first {
                self.out.push(b',');
            }
            first = false;
            self.out.extend_from_slice(b"[\"");
            self.out.extend_from_slice(p.as_bytes());
            self.out.extend_from_slice(b"\",\"");
            self.out.extend_from_slice(q.as_bytes());
            self.out.extend_from_slice(b"\"]");
        }
        self.out.push(b']');
        Ok(())
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for &mut LevelsWriter<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_plain_text_numbers() {
        for ok in ["0", "0.001", "100", "25.35190000", "-1.5", "123456789012345678901234567890.123"] {
            assert!(is_decimal(ok), "{ok}");
        }
        for bad in ["", "-", ".5", "5.", "1e5", "+1", " 1", "1 ", "0x10", "NaN", "1.2.3", "١٢"] {
            assert!(!is_decimal(bad), "{bad}");
        }
        assert!(!is_decimal(&"9".repeat(65)));
    }

    #[test]
    fn side_follows_the_maker_flag() {
        assert_eq!(Side::from_buyer_is_maker(true), Side::Sell);
        assert_eq!(Side::from_buyer_is_maker(false), Side::Buy);
    }

    #[test]
    fn levels_are_reencoded_compactly_and_validated() {
        let d = |b: &'static str| {
            Record::DepthUpdate(DepthUpdate {
                exchange: "binance",
                symbol: "BNBBTC",
                first_update_id: 1,
                final_update_id: 2,
                bids: Levels(b),
                asks: Levels("[]"),
                event_time_ms: 3,
            })
        };
        let mut out = Vec::new();
        d(r#"[ [ "0.0024", "10" ], ["0.0025","0.00000000"] ]"#).encode(7, false, &mut out).unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"type":"depth_update","exchange":"binance","symbol":"BNBBTC","first_update_id":1,"final_update_id":2,"bids":[["0.0024","10"],["0.0025","0.00000000"]],"asks":[],"event_time_ms":3,"recv_time_ns":7}"#
        );
        for bad in [r#"[["1"]]"#, r#"[["1","2","3"]]"#, r#"[[1,2]]"#, r#"{"a":1}"#, r#"[["x","1"]]"#, "7"] {
            out.clear();
            assert!(d(bad).encode(7, false, &mut out).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_unknown_kline_interval_is_counted_as_such() {
        let k = Kline {
            exchange: "binance",
            symbol: "BNBBTC",
            interval: "2m",
            open_time_ms: 0,
            close_time_ms: 59_999,
            open: "1",
            high: "1",
            low: "1",
            close: "1",
            volume: "1",
            quote_volume: "1",
            trades: 1,
            taker_buy_volume: "1",
            taker_buy_quote_volume: "1",
            closed: true,
            first_trade_id: None,
            last_trade_id: None,
            event_time_ms: 1,
        };
        let e = Record::Kline(k).encode(1, false, &mut Vec::new()).unwrap_err();
        assert_eq!(e.reason(), "bad_interval");
        let ok = Record::Kline(Kline { interval: "1M", ..k });
        assert!(ok.encode(1, false, &mut Vec::new()).is_ok());
    }

    #[test]
    fn unsafe_symbols_are_refused() {
        assert!(is_safe_symbol("BTCUSDT"));
        assert!(is_safe_symbol("币安人生USDT"));
        // Fifty CJK letters: Binance's longest symbol, 150 bytes.
        assert!(is_safe_symbol(&"币".repeat(50)));
        assert!(!is_safe_symbol(&"币".repeat(51)));
        assert!(!is_safe_symbol("BTC\"USDT"));
        assert!(!is_safe_symbol("BTC\u{1}"));
        assert!(!is_safe_symbol(""));
    }
}
