//! The normalized record model and its JSON encoding: one JSON object per Kafka message.
//!
//! Records borrow every string from the frame they were parsed from, and [`Record::encode`]
//! writes into a caller-owned buffer, so producing a record allocates nothing once the buffer
//! has grown to the largest message seen. Prices and quantities are carried as the exact
//! decimal text the venue sent (validated, never converted to floating point). Times are the
//! venue's too, in the unit asked of it: the `*_ms` fields below hold microseconds under
//! `TIME_UNIT=us`, and [`Record::encode_in`] names them for that unit ([`TimeUnit`]).
//!
//! USD-M futures (`"exchange":"binance-usdm"`) add two types and a few fields, each written only
//! when the venue sent it, so a spot record never changes:
//!
//! - `book_ticker` and `depth_update` carry the futures event and transaction times
//!   (`event_time_ms`, `transaction_time_ms`), and `depth_update` the previous event's final
//!   update id, `prev_final_update_id` (Binance's `pu`, what futures depth continuity chains on).
//! - `mark_price`, from `<symbol>@markPrice` (every 3 s) or `<symbol>@markPrice@1s`: mark and
//!   index price, estimated settle price (meaningful only in the last hour before a delivery
//!   contract settles), funding rate and the next funding time (a time to come, not a trade
//!   time); `mark_price_avg` (Binance's `ap`, mark price moving average) when Binance sends it.
//!   ```json
//!   {"type":"mark_price","exchange":"binance-usdm","symbol":"BTCUSDT","mark_price":"11794.15000000","index_price":"11784.62659091","estimated_settle_price":"11784.25641265","funding_rate":"0.00038167","next_funding_time_ms":1562306400000,"event_time_ms":1562305380000,"recv_time_ns":1700000000123456789}
//!   ```
//! - `liquidation`, from `<symbol>@forceOrder`: the liquidation order's side (`buy`/`sell`: the
//!   side of the order that closes the position), type, time in force and status as Binance
//!   writes them, its original quantity, price, average price, last and accumulated filled
//!   quantities, and trade time. **A snapshot**: Binance pushes at most one liquidation per
//!   symbol per second (the latest), so these are not every liquidation, and they carry no id
//!   to detect a gap by; every record says so with `"snapshot":true`.
//!   ```json
//!   {"type":"liquidation","exchange":"binance-usdm","symbol":"BTCUSDT","side":"sell","order_type":"LIMIT","time_in_force":"IOC","orig_qty":"0.014","price":"9910","avg_price":"9910","status":"FILLED","last_filled_qty":"0.014","filled_qty":"0.014","trade_time_ms":1568014460893,"event_time_ms":1568014460893,"snapshot":true,"recv_time_ns":1700000000123456789}
//!   ```

mod decimal;
mod json;
mod prefix;
mod symbol;
mod trade;

use crate::time_unit::TimeUnit;
pub use decimal::{is_decimal, DecimalText, MAX_DECIMAL_LEN};
pub(crate) use json::copy_short;
#[cfg(test)]
pub(crate) use json::put;
pub use json::Out;
use json::{k, kt, JsonWriter};
use prefix::first_key;
pub use prefix::Prefixes;
pub use symbol::is_safe_symbol;
pub use trade::TradeTail;

/// The normalized record types; the discriminant indexes topic and metric tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum RecordType {
    Trade = 0,
    AggTrade = 1,
    Kline = 2,
    BookTicker = 3,
    DepthUpdate = 4,
    MarkPrice = 5,
    Liquidation = 6,
}

impl RecordType {
    pub const COUNT: usize = 7;
    pub const ALL: [RecordType; 7] = [
        RecordType::Trade,
        RecordType::AggTrade,
        RecordType::Kline,
        RecordType::BookTicker,
        RecordType::DepthUpdate,
        RecordType::MarkPrice,
        RecordType::Liquidation,
    ];

    /// The `type` field of the normalized record, also the metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordType::Trade => "trade",
            RecordType::AggTrade => "agg_trade",
            RecordType::Kline => "kline",
            RecordType::BookTicker => "book_ticker",
            RecordType::DepthUpdate => "depth_update",
            RecordType::MarkPrice => "mark_price",
            RecordType::Liquidation => "liquidation",
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
    pub price: DecimalText<'a>,
    pub qty: DecimalText<'a>,
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
    pub price: DecimalText<'a>,
    pub qty: DecimalText<'a>,
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
    pub open: DecimalText<'a>,
    pub high: DecimalText<'a>,
    pub low: DecimalText<'a>,
    pub close: DecimalText<'a>,
    pub volume: DecimalText<'a>,
    pub quote_volume: DecimalText<'a>,
    pub trades: i64,
    pub taker_buy_volume: DecimalText<'a>,
    pub taker_buy_quote_volume: DecimalText<'a>,
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
    pub bid_price: DecimalText<'a>,
    pub bid_qty: DecimalText<'a>,
    pub ask_price: DecimalText<'a>,
    pub ask_qty: DecimalText<'a>,
    /// Futures only (`E`, `T`); spot's bookTicker carries no time.
    pub event_time_ms: Option<i64>,
    pub transaction_time_ms: Option<i64>,
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
    /// Futures only: `pu`, the `final_update_id` of the stream's previous event.
    pub prev_final_update_id: Option<i64>,
    /// Futures only: `T`.
    pub transaction_time_ms: Option<i64>,
}

/// A USD-M `markPriceUpdate`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MarkPrice<'a> {
    pub exchange: &'static str,
    pub symbol: &'a str,
    pub mark_price: DecimalText<'a>,
    pub index_price: DecimalText<'a>,
    pub estimated_settle_price: DecimalText<'a>,
    pub funding_rate: DecimalText<'a>,
    /// `ap`, the mark price moving average, in newer payloads only.
    pub mark_price_avg: Option<DecimalText<'a>>,
    pub next_funding_time_ms: i64,
    pub event_time_ms: i64,
}

/// A USD-M `forceOrder`: the latest liquidation of its symbol in the last second, a snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Liquidation<'a> {
    pub exchange: &'static str,
    pub symbol: &'a str,
    pub side: Side,
    /// `LIMIT`, `IOC`, `FILLED`...: Binance's words, checked to be plain upper-case words.
    pub order_type: &'a str,
    pub time_in_force: &'a str,
    pub status: &'a str,
    pub orig_qty: DecimalText<'a>,
    pub price: DecimalText<'a>,
    pub avg_price: DecimalText<'a>,
    pub last_filled_qty: DecimalText<'a>,
    pub filled_qty: DecimalText<'a>,
    pub trade_time_ms: i64,
    pub event_time_ms: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Record<'a> {
    Trade(Trade<'a>),
    AggTrade(AggTrade<'a>),
    Kline(Kline<'a>),
    BookTicker(BookTicker<'a>),
    DepthUpdate(DepthUpdate<'a>),
    MarkPrice(MarkPrice<'a>),
    Liquidation(Liquidation<'a>),
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
    #[error("field {} is not a plain upper-case word", .0.trim_matches([',', '"', ':']))]
    BadWord(&'static str),
}

impl RecordError {
    pub fn reason(self) -> &'static str {
        match self {
            RecordError::BadDecimal(_) => "bad_decimal",
            RecordError::BadSymbol => "bad_symbol",
            RecordError::BadLevels => "bad_levels",
            RecordError::BadInterval => "bad_interval",
            RecordError::BadWord(_) => "bad_word",
        }
    }
}

/// Longest symbol in UTF-8 bytes: Binance allows 50 UTF-16 code units, and no UTF-16 unit takes
/// more than 3 UTF-8 bytes (a CJK letter: 1 unit, 3 bytes; an astral one: 2 units, 4 bytes).
pub const MAX_SYMBOL_BYTES: usize = 150;

/// Longest enumeration word accepted (`GOOD_TILL_CROSSING` has 18 letters).
const MAX_WORD_LEN: usize = 32;

/// An enumeration value Binance writes as a word (`LIMIT`, `IOC`, `PARTIALLY_FILLED`): upper-case
/// ASCII letters, digits and `_`, so it goes into JSON as it is.
pub fn is_word(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_WORD_LEN
        && s.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

impl<'a> Record<'a> {
    pub fn record_type(&self) -> RecordType {
        match self {
            Record::Trade(_) => RecordType::Trade,
            Record::AggTrade(_) => RecordType::AggTrade,
            Record::Kline(_) => RecordType::Kline,
            Record::BookTicker(_) => RecordType::BookTicker,
            Record::DepthUpdate(_) => RecordType::DepthUpdate,
            Record::MarkPrice(_) => RecordType::MarkPrice,
            Record::Liquidation(_) => RecordType::Liquidation,
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
            Record::MarkPrice(r) => r.exchange,
            Record::Liquidation(r) => r.exchange,
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
            Record::MarkPrice(r) => r.symbol,
            Record::Liquidation(r) => r.symbol,
        }
    }

    /// Exchange event time; spot's bookTicker carries none, so its records use the receive time.
    pub fn event_time_ms(&self) -> Option<i64> {
        match self {
            Record::Trade(r) => Some(r.event_time_ms),
            Record::AggTrade(r) => Some(r.event_time_ms),
            Record::Kline(r) => Some(r.event_time_ms),
            Record::BookTicker(r) => r.event_time_ms,
            Record::DepthUpdate(r) => Some(r.event_time_ms),
            Record::MarkPrice(r) => Some(r.event_time_ms),
            Record::Liquidation(r) => Some(r.event_time_ms),
        }
    }

    /// The exchange's per-symbol sequence id (trade id, agg id, update id, kline open time; the
    /// event time of a mark price or a liquidation, which have no id): what duplicate and gap
    /// detection key on.
    pub fn sequence_id(&self) -> i64 {
        match self {
            Record::Trade(r) => r.trade_id,
            Record::AggTrade(r) => r.agg_id,
            Record::Kline(r) => r.open_time_ms,
            Record::BookTicker(r) => r.update_id,
            Record::DepthUpdate(r) => r.final_update_id,
            Record::MarkPrice(r) => r.event_time_ms,
            Record::Liquidation(r) => r.event_time_ms,
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
        self.encode_to(None, unit, recv_time_ns, backfilled, out)
    }

    /// [`Record::encode_in`] into any [`Out`]: a window of the ring's free space takes the
    /// record where the producer reads it (a full window says so itself, see [`Out::room`]).
    /// `prefix`: the record's constant start, from [`Prefixes::of`] (the same bytes as written
    /// field by field, its symbol checked when the table was built).
    ///
    /// Kept out of line: `scripts/bench_instructions.py` counts its cost by name (the `encode`
    /// figure of the instruction gate), and inlined into `Pipeline::enqueue` it had no name.
    #[inline(never)]
    pub fn encode_to<O: Out + ?Sized>(
        &self,
        prefix: Option<&[u8]>,
        unit: TimeUnit,
        recv_time_ns: u64,
        backfilled: bool,
        out: &mut O,
    ) -> Result<(), RecordError> {
        // Nearly every record is a trade with its prefix: written by one reservation.
        if let (Record::Trade(t), Some(p)) = (self, prefix) {
            return t.encode_after(p, unit, recv_time_ns, backfilled, out);
        }
        let mut w = match prefix {
            Some(p) => JsonWriter::resume(out, p),
            None => {
                let sym = self.symbol();
                if !is_safe_symbol(sym) {
                    return Err(RecordError::BadSymbol);
                }
                let ty = self.record_type();
                JsonWriter::begin(out, ty.as_str(), self.exchange(), sym, first_key(ty))
            }
        };
        // Each type's first value follows the key `begin` wrote (`first_key`).
        match self {
            Record::Trade(r) => {
                w.int_value(r.trade_id);
                w.dec(k!("price"), r.price)?;
                w.dec(k!("qty"), r.qty)?;
                w.str(k!("side"), r.side.as_str());
                w.int(kt!(unit, "trade_time"), r.trade_time_ms);
                w.int(kt!(unit, "event_time"), r.event_time_ms);
            }
            Record::AggTrade(r) => {
                w.int_value(r.agg_id);
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
                w.str_value(r.interval);
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
                w.int_value(r.update_id);
                w.dec(k!("bid_price"), r.bid_price)?;
                w.dec(k!("bid_qty"), r.bid_qty)?;
                w.dec(k!("ask_price"), r.ask_price)?;
                w.dec(k!("ask_qty"), r.ask_qty)?;
                w.some_int(kt!(unit, "event_time"), r.event_time_ms);
                w.some_int(kt!(unit, "transaction_time"), r.transaction_time_ms);
            }
            Record::DepthUpdate(r) => {
                w.int_value(r.first_update_id);
                w.int(k!("final_update_id"), r.final_update_id);
                w.some_int(k!("prev_final_update_id"), r.prev_final_update_id);
                w.levels(k!("bids"), r.bids)?;
                w.levels(k!("asks"), r.asks)?;
                w.int(kt!(unit, "event_time"), r.event_time_ms);
                w.some_int(kt!(unit, "transaction_time"), r.transaction_time_ms);
            }
            Record::MarkPrice(r) => {
                w.dec_value(k!("mark_price"), r.mark_price)?;
                w.dec(k!("index_price"), r.index_price)?;
                w.dec(k!("estimated_settle_price"), r.estimated_settle_price)?;
                w.dec(k!("funding_rate"), r.funding_rate)?;
                if let Some(ap) = r.mark_price_avg {
                    w.dec(k!("mark_price_avg"), ap)?;
                }
                w.int(kt!(unit, "next_funding_time"), r.next_funding_time_ms);
                w.int(kt!(unit, "event_time"), r.event_time_ms);
            }
            Record::Liquidation(r) => {
                w.str_value(r.side.as_str());
                w.word(k!("order_type"), r.order_type)?;
                w.word(k!("time_in_force"), r.time_in_force)?;
                w.dec(k!("orig_qty"), r.orig_qty)?;
                w.dec(k!("price"), r.price)?;
                w.dec(k!("avg_price"), r.avg_price)?;
                w.word(k!("status"), r.status)?;
                w.dec(k!("last_filled_qty"), r.last_filled_qty)?;
                w.dec(k!("filled_qty"), r.filled_qty)?;
                w.int(kt!(unit, "trade_time"), r.trade_time_ms);
                w.int(kt!(unit, "event_time"), r.event_time_ms);
                w.bool(k!("snapshot"), true);
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

#[cfg(test)]
mod tests;
