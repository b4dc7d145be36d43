//! The seam between the backfill thread and a venue's REST API, as data, as [`super::Venue`] is
//! for streams: which request fetches aggregate trades from an id, candles in a window and a book
//! snapshot, what each costs, how much weight a minute the venue allows and where it says how
//! much is used, whether a market-data-only fallback host exists, and how its diff-depth events
//! chain. A venue (`binance/rest.rs`, `binance/usdm/rest.rs`) fills in one [`RestApi`]; the
//! backfill thread is handed the lane's and never names a venue's path, weight or body.
//!
//! Bodies come back as plain rows ([`AggTradeRow`], ...): the venue's parser knows its field
//! names, the backfill only what a row means. REST is off the hot path: rows own their text.

use std::time::Duration;

use crate::sequence::DepthChain;

/// One REST request: its path and query, and what the venue charges for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// Path and query, appended to the host's base URL.
    pub path: String,
    /// The `endpoint` label of `rest_requests_total`.
    pub label: &'static str,
    /// The request weight the venue counts against its per-minute limit.
    pub weight: u32,
    /// Whether the venue's market-data-only fallback host serves it.
    pub on_fallback: bool,
}

/// One aggregate trade.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AggTradeRow {
    pub agg_id: i64,
    pub price: String,
    pub qty: String,
    pub first_trade_id: i64,
    pub last_trade_id: i64,
    pub time: i64,
    pub buyer_is_maker: bool,
}

/// One trade.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TradeRow {
    pub id: i64,
    pub price: String,
    pub qty: String,
    pub time: i64,
    pub buyer_is_maker: bool,
}

/// One candle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KlineRow {
    pub open_time: i64,
    pub open: String,
    pub high: String,
    pub low: String,
    pub close: String,
    pub volume: String,
    pub close_time: i64,
    pub quote_volume: String,
    pub trades: i64,
    pub taker_buy_volume: String,
    pub taker_buy_quote_volume: String,
}

/// An order-book snapshot: `[price, qty]` levels, best first, as the venue wrote them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DepthRow {
    pub last_update_id: i64,
    pub bids: Vec<[String; 2]>,
    pub asks: Vec<[String; 2]>,
}

/// A body that is not what the endpoint returns: said in the log and retried.
pub type BodyError = String;

/// One venue's REST API as the backfill uses it.
#[derive(Clone, Copy, Debug)]
pub struct RestApi {
    /// Who this is, for log lines (`binance spot`, `binance usd-m`).
    pub name: &'static str,
    /// Aggregate trades from `from_id` on, at most `limit` (at most [`RestApi::page`]).
    pub agg_trades: fn(symbol: &str, from_id: i64, limit: i64) -> Call,
    /// Trades from `from_id` on; `None` where the venue has no trade sequence to backfill.
    pub trades: Option<fn(symbol: &str, from_id: i64, limit: i64) -> Call>,
    /// Candles of `interval` opening in `start..=end`, at most `limit` (at most
    /// [`RestApi::klines_page`]).
    pub klines: fn(symbol: &str, interval: &str, start: i64, end: i64, limit: i64) -> Call,
    /// A snapshot of about `levels` a side: the venue rounds to a depth it serves.
    pub depth: fn(symbol: &str, levels: usize) -> Call,
    pub parse_agg_trades: fn(body: &str) -> Result<Vec<AggTradeRow>, BodyError>,
    pub parse_trades: fn(body: &str) -> Result<Vec<TradeRow>, BodyError>,
    pub parse_klines: fn(body: &str) -> Result<Vec<KlineRow>, BodyError>,
    pub parse_depth: fn(body: &str) -> Result<DepthRow, BodyError>,
    /// Ids one trades or aggregate-trades page asks for.
    pub page: i64,
    /// Candles one klines page asks for.
    pub klines_page: i64,
    /// The weight a minute we use of what the venue allows per IP (room is left for other
    /// clients on the same IP). Order-book snapshots take at most half of it.
    pub weight_budget: u32,
    /// The response header carrying the weight used in the current minute.
    pub used_weight_header: &'static str,
    /// The request header asking for microsecond times; `None`: the venue answers in ms only.
    pub time_unit_header: Option<&'static str>,
    /// Whether a market-data-only fallback host exists (its URL is configuration).
    pub has_fallback: bool,
    /// The wait a 429/418's `Retry-After` asks for, bounded.
    pub retry_after: fn(header: Option<&str>) -> Duration,
    /// How long to pause once the budget is spent, from our clock in ms.
    pub weight_pause: fn(now_ms: i64) -> Duration,
    /// How the venue's diff-depth events chain, and its book's start rule.
    pub depth_chain: DepthChain,
}
