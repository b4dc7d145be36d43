//! The simulated market: a pure function of (symbol, sequence number, start time), so every
//! connection and the REST endpoints agree, and tests can recompute what was sent. What each
//! event looks like on the wire is `render.rs`; the order book is `book.rs`.

use std::collections::HashSet;
use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use crate::arrival::Segments;
use crate::book::{level_texts, Book, BookShape};
use crate::clock::Schedule;
use crate::config::{Cadence, SimConfig};
use crate::faults::Faults;
use crate::hash::mix;
use crate::kind::{interval_ms, StreamKind};

/// A trade as the simulator sends it, for tests to compare against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpectedTrade {
    pub symbol: String,
    pub trade_id: i64,
    pub price: String,
    pub qty: String,
    pub buyer_is_maker: bool,
    pub trade_time_ms: i64,
    /// The same instant in microseconds (`timeUnit=MICROSECOND`, `X-MBX-TIME-UNIT`).
    pub trade_time_us: i64,
}

/// A candle's final values, as the simulator publishes them closed and serves them over REST.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpectedCandle {
    pub open_time_ms: i64,
    pub close_time_ms: i64,
    pub open: String,
    pub high: String,
    pub low: String,
    pub close: String,
    pub volume: String,
    pub quote_volume: String,
    pub trades: i64,
    pub taker_buy_volume: String,
    pub taker_buy_quote_volume: String,
    pub first_trade_id: i64,
}

/// Which Binance market a [`Market`] is: its stream names, payloads, update ids and REST.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Venue {
    Spot,
    /// USD-M futures (`usdm/`).
    UsdM,
}

/// The deterministic market.
pub struct Market {
    pub cfg: SimConfig,
    pub(crate) venue: Venue,
    /// The start: the instant of the first subscription (or REST request) and the Unix time
    /// then, in microseconds.
    start: OnceLock<(Instant, i64)>,
    /// Streams subscribed at least once (for [`SimConfig::first_from_start`]).
    subscribed: Mutex<HashSet<String>>,
    /// Per symbol: its own trade schedule, if [`SimConfig::cadences`] gives it one.
    cadences: Vec<Option<Schedule>>,
    /// Per symbol, with [`SimConfig::arrival`]: its trades' and aggregate trades' times.
    arrivals: Vec<Option<[Segments; 2]>>,
    pub(crate) book: BookShape,
    pub(crate) faults: Faults,
    /// Events sent over all connections (for logs and tests).
    pub sent: AtomicU64,
    /// Flushes that carried events, over all connections: `sent / data_writes` is the mean number
    /// of messages per write (per TCP segment, at these sizes and with TCP_NODELAY).
    pub data_writes: AtomicU64,
    /// Bumped to make every connection drop abruptly (no close frame).
    pub(crate) drop_generation: AtomicU64,
    /// Bumped to make every connection announce `serverShutdown` and close soon after.
    pub(crate) shutdown_generation: AtomicU64,
    /// WebSocket connections accepted so far.
    pub connections: AtomicU64,
    /// Connections that went silent (the `silence` fault) so far.
    pub silenced: AtomicU64,
    /// Streams stopped by the `mutes` fault so far, and how many of those a resubscription
    /// brought back.
    pub muted: AtomicU64,
    pub unmuted: AtomicU64,
    /// WebSocket upgrades answered 403 (the WAF fault).
    pub ws_refused: AtomicU64,
    /// SBE upgrades refused for their API key (missing, or not the configured one).
    pub sbe_key_refused: AtomicU64,
}

/// Whether `k` falls in the last `len` of every `period` (the simulator's skip windows).
fn in_window(window: Option<(u64, u64)>, k: u64) -> bool {
    window.is_some_and(|(period, len)| period > 0 && k % period >= period.saturating_sub(len))
}

impl Market {
    /// A spot market.
    pub fn new(cfg: SimConfig) -> Market {
        Market::with_venue(cfg, Venue::Spot)
    }

    /// A USD-M futures market (`usdm/mod.rs` says what `cfg` means there).
    pub fn usdm(cfg: SimConfig) -> Market {
        Market::with_venue(cfg, Venue::UsdM)
    }

    pub fn venue(&self) -> Venue {
        self.venue
    }

    fn with_venue(cfg: SimConfig, venue: Venue) -> Market {
        let cadences: Vec<Option<Schedule>> = cfg
            .symbols
            .iter()
            .enumerate()
            .map(|(sym, s)| {
                let (_, c) = cfg.cadences.iter().rev().find(|(name, _)| name == s)?;
                Some(match *c {
                    Cadence::PerSecond(rate) => Schedule::Even { rate },
                    Cadence::Every { min, max } => Schedule::every(
                        u64::try_from(min.as_micros()).unwrap_or(u64::MAX),
                        u64::try_from(max.as_micros()).unwrap_or(u64::MAX),
                        mix(cfg.seed ^ ((sym as u64) << 32) ^ 0x7EAD),
                    ),
                })
            })
            .collect();
        let arrivals = cadences.iter().enumerate().map(|(sym, c)| {
            let a = cfg.arrival.filter(|_| c.is_none())?;
            let n = cfg.symbols.len();
            let common = |kind| Market::common_rate(&cfg, venue, kind);
            let key = |tag: u64| mix(cfg.seed ^ ((sym as u64) << 32) ^ tag);
            Some([
                Segments::new(a, common(StreamKind::Trade), sym, n, key(0xA771)),
                Segments::new(a, common(StreamKind::AggTrade), sym, n, key(0xA772)),
            ])
        });
        let arrivals = arrivals.collect();
        Market {
            arrivals,
            book: BookShape::new(cfg.depth_levels, cfg.seed),
            faults: Faults::new(&cfg),
            cadences,
            cfg,
            venue,
            start: OnceLock::new(),
            subscribed: Mutex::new(HashSet::new()),
            sent: AtomicU64::new(0),
            data_writes: AtomicU64::new(0),
            drop_generation: AtomicU64::new(0),
            shutdown_generation: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            silenced: AtomicU64::new(0),
            muted: AtomicU64::new(0),
            unmuted: AtomicU64::new(0),
            ws_refused: AtomicU64::new(0),
            sbe_key_refused: AtomicU64::new(0),
        }
    }

    /// Whether trade `k` is left out of the stream (REST still has it unless `rest_lacks`).
    pub fn stream_skips(&self, k: u64) -> bool {
        in_window(self.cfg.stream_skip, k)
    }

    /// Whether event `k` of `kind` is left out of the stream (REST still has it).
    pub fn stream_omits(&self, kind: StreamKind, k: u64) -> bool {
        match kind {
            StreamKind::Trade => self.stream_skips(k),
            StreamKind::Kline(iv) => {
                let (open, _) = self.kline_of(iv, k);
                self.cfg.kline_skip.is_some() && in_window(self.cfg.kline_skip, self.candle_index(iv, open))
            }
            StreamKind::Depth | StreamKind::Depth100ms | StreamKind::Depth500ms => in_window(self.cfg.depth_skip, k),
            // USD-M has no trade stream: its trade skips are aggregate trades.
            StreamKind::AggTrade if self.venue == Venue::UsdM => self.stream_skips(k),
            _ => false,
        }
    }

    /// Length of a candle of interval `iv` in ms (a month counts as 30 days here).
    pub fn kline_len(iv: u8) -> i64 {
        interval_ms(iv)
    }

    /// Kline event `k`: the open time of its candle and whether it is the candle's last (closed)
    /// update. Events are spread evenly in time; a candle holds those whose event time falls in it.
    pub(crate) fn kline_of(&self, iv: u8, k: u64) -> (i64, bool) {
        let len = Self::kline_len(iv);
        let kind = StreamKind::Kline(iv);
        let (e, next) = (self.time_ms(kind, 0, k), self.time_ms(kind, 0, k + 1));
        let open = e - e.rem_euclid(len);
        (open, next - next.rem_euclid(len) != open)
    }

    /// Open time of the first candle the stream touched.
    pub fn first_candle(&self, iv: u8) -> i64 {
        self.kline_of(iv, 0).0
    }

    /// Candle number, counted from the first candle.
    pub fn candle_index(&self, iv: u8, open: i64) -> u64 {
        ((open - self.first_candle(iv)) / Self::kline_len(iv)).max(0) as u64
    }

    /// The final values of the candle of interval `iv` opening at `open`: (open, high, low,
    /// close, volume, quote volume, trades, taker buy volume, taker buy quote volume, first
    /// trade id). Both the closed stream update and REST's `/api/v3/klines` carry exactly these.
    pub fn candle(&self, sym: usize, iv: u8, open: i64) -> ExpectedCandle {
        let h = mix((sym as u64) << 40 ^ (iv as u64) << 56 ^ open as u64);
        let p = |off: u64| format!("{}.{:08}", 100 * (sym as u64 + 1) + off, h % 100_000_000);
        let first_trade_id = Self::trade_id_base(sym) + 100 * self.candle_index(iv, open) as i64;
        ExpectedCandle {
            open_time_ms: open,
            close_time_ms: open + Self::kline_len(iv) - 1,
            open: p(1),
            high: p(3),
            low: p(0),
            close: p(2),
            volume: format!("{}.{:03}", 1000 + h % 1000, h % 997),
            quote_volume: format!("{}.0000", h % 100_000),
            trades: 100,
            taker_buy_volume: format!("{}.5", 500 + h % 100),
            taker_buy_quote_volume: format!("{}.500", h % 10_000),
            first_trade_id,
        }
    }

    /// Whether trade `k` is missing from REST too: truly unrecoverable.
    pub fn rest_lacks(&self, k: u64) -> bool {
        in_window(self.cfg.rest_missing, k)
    }

    /// Events of `kind` generated so far for a symbol trading at the common rate (every symbol
    /// but those with a [`SimConfig::cadences`] entry; see [`Market::generated_for`]).
    pub fn generated(&self, kind: StreamKind) -> u64 {
        self.common_schedule(kind).count(self.elapsed_us(Instant::now()))
    }

    /// Events of `kind` generated so far for symbol `sym` (REST serves up to this).
    pub fn generated_for(&self, kind: StreamKind, sym: usize) -> u64 {
        self.available(kind, sym, Instant::now())
    }

    /// Aggregate trade `k` of a symbol: (agg id, price, qty, first trade id, last trade id, time, maker).
    pub fn agg_parts(&self, sym: usize, k: u64) -> (i64, String, String, i64, i64, i64, bool) {
        let t = self.time_ms(StreamKind::AggTrade, sym, k);
        let h = mix((sym as u64) << 40 ^ k ^ 0x5555);
        let first = Self::trade_id_base(sym) + 2 * k as i64;
        (
            Self::trade_id_base(sym) + k as i64,
            format!("{}.{:08}", 100 * (sym as u64 + 1) + h % 50, h % 100_000_000),
            format!("{}.{:03}", h % 10, h % 1000),
            first,
            first + 1,
            t,
            h & 1 == 1,
        )
    }

    pub fn symbol_index(&self, s: &str) -> Option<usize> {
        self.cfg.symbols.iter().position(|x| x == s)
    }

    /// First trade id of a symbol: symbols get disjoint id ranges so a mix-up cannot go unseen.
    /// Order-book update ids of the symbol start there too.
    pub fn trade_id_base(sym: usize) -> i64 {
        (sym as i64 + 1) * 1_000_000_000
    }

    /// `(U, u)` of diff-depth event `k`: three update ids each, dense (`U` = the previous `u` + 1).
    pub fn depth_update_ids(sym: usize, k: u64) -> (i64, i64) {
        let first = Self::trade_id_base(sym) + 3 * k as i64;
        (first, first + 2)
    }

    /// The `lastUpdateId` of the book after `t` events (`U - 1` of event `t`).
    fn last_update_id(sym: usize, t: u64) -> i64 {
        Self::depth_update_ids(sym, t).0 - 1
    }

    /// Levels per side the book holds at most.
    pub fn depth_levels(&self) -> usize {
        self.book.levels()
    }

    /// The book after every diff-depth event whose `u` is at most `update_id` (on USD-M: whose
    /// `U` is; its `last_update_id` is the last one's `u`), rebuilt by applying the stream's own
    /// events to the first book: the truth a client's book is checked against. O(events) work:
    /// for tests.
    pub fn book_at(&self, sym: usize, update_id: i64) -> Book {
        if self.venue == Venue::UsdM {
            return self.usdm_book_at(sym, update_id);
        }
        let t = (update_id.saturating_sub(Self::last_update_id(sym, 0)) / 3).max(0) as u64;
        let (bids, asks) = self.book.replay(sym, t);
        Book { last_update_id: Self::last_update_id(sym, t), bids: level_texts(&bids), asks: level_texts(&asks) }
    }

    /// What `GET /api/v3/depth?limit=` answers now: the book as of the latest generated event,
    /// top `limit` levels a side.
    pub fn depth_snapshot(&self, sym: usize, limit: usize) -> Book {
        if self.venue == Venue::UsdM {
            return self.usdm_depth_snapshot(sym, limit);
        }
        let t = self.generated_for(StreamKind::Depth, sym);
        let (bids, asks) = self.book.top(sym, t, limit);
        Book { last_update_id: Self::last_update_id(sym, t), bids: level_texts(&bids), asks: level_texts(&asks) }
    }

    /// Whether this is the first subscription of `stream` (remembered; later calls say false).
    pub(crate) fn first_subscription(&self, stream: &str) -> bool {
        self.subscribed.lock().unwrap_or_else(|e| e.into_inner()).insert(stream.to_string())
    }

    /// Starts the clock (first subscription); later calls keep the first start.
    fn started(&self) -> (Instant, i64) {
        *self.start.get_or_init(|| (Instant::now(), crate::now_us()))
    }

    /// Microseconds of market time by `now`: from the start, and no further than `duration`.
    fn elapsed_us(&self, now: Instant) -> u64 {
        let (t0, _) = self.started();
        let mut d = now.saturating_duration_since(t0);
        if let Some(end) = self.cfg.duration {
            d = d.min(end);
        }
        u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
    }

    /// How a symbol without a cadence of its own paces `kind` (liquidations: as symbol 0).
    fn common_schedule(&self, kind: StreamKind) -> Schedule {
        match kind {
            StreamKind::ForceOrder => self.liquidations(0),
            _ => Schedule::Even { rate: Market::common_rate(&self.cfg, self.venue, kind) },
        }
    }

    /// Events a second of `kind` per symbol at the common rate.
    fn common_rate(cfg: &SimConfig, venue: Venue, kind: StreamKind) -> f64 {
        match kind {
            StreamKind::Trade => cfg.trade_rate / cfg.symbols.len().max(1) as f64,
            // USD-M has no trade stream: its aggregate trades take the trade rate.
            StreamKind::AggTrade if venue == Venue::UsdM => cfg.trade_rate / cfg.symbols.len().max(1) as f64,
            // Binance's own cadences ("Update Speed: 3000ms or 1000ms").
            StreamKind::MarkPrice => 1.0 / 3.0,
            StreamKind::MarkPrice1s => 1.0,
            _ => cfg.aux_rate,
        }
    }

    /// The arrival process's times for `kind` of symbol `sym`, when it has them.
    fn segments(&self, kind: StreamKind, sym: usize) -> Option<&Segments> {
        let s = self.arrivals.get(sym)?.as_ref()?;
        match kind {
            StreamKind::Trade => Some(&s[0]),
            StreamKind::AggTrade => Some(&s[1]),
            _ => None,
        }
    }

    /// Events of `kind` for symbol `sym` by `elapsed_us` of market time.
    fn count_by(&self, kind: StreamKind, sym: usize, elapsed_us: u64) -> u64 {
        match self.segments(kind, sym) {
            Some(s) => s.count(elapsed_us),
            None => self.schedule(kind, sym).count(elapsed_us),
        }
    }

    /// Microseconds of market time at which event `k` of `kind` for symbol `sym` happens.
    fn offset_us(&self, kind: StreamKind, sym: usize, k: u64) -> u64 {
        match self.segments(kind, sym) {
            Some(s) => s.offset_us(k),
            None => self.schedule(kind, sym).offset_us(k),
        }
    }

    /// The instant event `k` of `kind` for symbol `sym` falls due (a connection sleeps until then).
    pub(crate) fn due_at(&self, kind: StreamKind, sym: usize, k: u64) -> Instant {
        let (t0, _) = self.started();
        t0.checked_add(std::time::Duration::from_micros(self.offset_us(kind, sym, k)))
            .unwrap_or_else(|| t0 + std::time::Duration::from_secs(86_400 * 365))
    }

    /// When symbol `sym` has liquidations: 1 to 3 s apart, so never two within a second (Binance
    /// pushes "only the latest one liquidation order within 1000ms").
    fn liquidations(&self, sym: usize) -> Schedule {
        Schedule::every(1_000_000, 3_000_000, mix(self.cfg.seed ^ ((sym as u64) << 32) ^ 0xF0CE))
    }

    /// How symbol `sym` paces `kind`: its cadence for trades and aggregate trades, if it has one.
    fn schedule(&self, kind: StreamKind, sym: usize) -> Schedule {
        match (kind, self.cadences.get(sym)) {
            (StreamKind::Trade | StreamKind::AggTrade, Some(Some(s))) => *s,
            (StreamKind::ForceOrder, _) => self.liquidations(sym),
            _ => self.common_schedule(kind),
        }
    }

    /// Trades per symbol the market will ever generate for a symbol trading at the common rate
    /// (`None` = unbounded; see [`Market::total_trades_for`]).
    pub fn total_trades_per_symbol(&self) -> Option<u64> {
        let d = u64::try_from(self.cfg.duration?.as_micros()).unwrap_or(u64::MAX);
        Some(self.common_schedule(StreamKind::Trade).count(d))
    }

    /// Trades symbol `sym` will ever generate (`None` = unbounded).
    pub fn total_trades_for(&self, sym: usize) -> Option<u64> {
        let d = u64::try_from(self.cfg.duration?.as_micros()).unwrap_or(u64::MAX);
        Some(self.count_by(StreamKind::Trade, sym, d))
    }

    /// Events a second of `kind` for symbol `sym`, on average.
    pub(crate) fn rate_for(&self, kind: StreamKind, sym: usize) -> f64 {
        match self.segments(kind, sym) {
            Some(s) => s.rate(),
            None => self.schedule(kind, sym).rate(),
        }
    }

    /// Events of `kind` for symbol `sym` generated by `now`.
    pub(crate) fn available(&self, kind: StreamKind, sym: usize, now: Instant) -> u64 {
        self.count_by(kind, sym, self.elapsed_us(now))
    }

    /// Event time (Unix µs) of event `k` of `kind` for symbol `sym`: the instant it became due.
    pub(crate) fn time_us(&self, kind: StreamKind, sym: usize, k: u64) -> i64 {
        let (_, epoch) = self.started();
        epoch.saturating_add(self.offset_us(kind, sym, k) as i64)
    }

    /// [`Market::time_us`] in milliseconds.
    pub(crate) fn time_ms(&self, kind: StreamKind, sym: usize, k: u64) -> i64 {
        self.time_us(kind, sym, k).div_euclid(1000)
    }

    /// Trade `k` of symbol `sym` as SBE sends it: price in cents (exponent -2), quantity in
    /// units of 10^-8 (exponent -8), whether the buyer made, and its time in µs.
    pub fn trade_mantissas(&self, sym: usize, k: u64) -> (i64, i64, bool, i64) {
        let h = mix((sym as u64) << 40 ^ k);
        let p = 1_000_000 * (sym as u64 + 1) + h % 100_000;
        let q = 1 + (h >> 20) % 99_999_999;
        (p as i64, q as i64, (h >> 60) & 1 == 1, self.time_us(StreamKind::Trade, sym, k))
    }

    /// Exactly what trade `k` of symbol `sym` looks like on the wire.
    pub fn expected_trade(&self, sym: usize, k: u64) -> ExpectedTrade {
        let (p, q, buyer_is_maker, us) = self.trade_mantissas(sym, k);
        ExpectedTrade {
            symbol: self.cfg.symbols[sym].to_uppercase(),
            trade_id: Self::trade_id_base(sym) + k as i64,
            price: format!("{}.{:02}000000", p / 100, p % 100),
            qty: format!("0.{q:08}"),
            buyer_is_maker,
            trade_time_ms: us.div_euclid(1000),
            trade_time_us: us,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn trade_ids_are_sequential_and_disjoint_per_symbol() {
        let m = Market::new(SimConfig::default());
        assert_eq!(m.expected_trade(0, 0).trade_id + 1, m.expected_trade(0, 1).trade_id);
        assert!(m.expected_trade(1, 0).trade_id > m.expected_trade(0, 10_000_000).trade_id);
    }

    /// One illiquid listing among busy ones: its trades come 30-120 s apart, the others keep
    /// the common rate, and the expected counts say so per symbol.
    #[test]
    fn an_illiquid_symbol_trades_at_its_own_cadence() {
        let every = Cadence::Every { min: Duration::from_secs(30), max: Duration::from_secs(120) };
        let m = Market::new(SimConfig {
            symbols: vec!["btcusdt".into(), "illqusdt".into()],
            trade_rate: 200.0,
            cadences: vec![("illqusdt".into(), every)],
            duration: Some(Duration::from_secs(600)),
            ..SimConfig::default()
        });
        let illiquid = m.total_trades_for(1).unwrap();
        assert!((5..=20).contains(&illiquid), "{illiquid} trades in 10 minutes");
        assert_eq!(m.total_trades_for(0), Some(60_000));
        assert_eq!(m.total_trades_per_symbol(), Some(60_000), "the common rate is unchanged");
        let times: Vec<i64> = (0..illiquid + 1).map(|k| m.expected_trade(1, k).trade_time_us).collect();
        let gaps: Vec<i64> =
            std::iter::once(times[0] - m.started().1).chain(times.windows(2).map(|w| w[1] - w[0])).collect();
        assert!(gaps.iter().all(|g| (30_000_000..=120_000_000).contains(g)), "{gaps:?}");
        assert!(
            times[illiquid as usize - 1] - m.started().1 <= 600_000_000
                && times[illiquid as usize] - m.started().1 > 600_000_000
        );
        // aggTrade follows the same cadence; other kinds keep theirs.
        assert_eq!(m.rate_for(StreamKind::AggTrade, 1), m.rate_for(StreamKind::Trade, 1));
        assert_eq!(m.rate_for(StreamKind::Depth, 1), m.cfg.aux_rate);
        // Another seed, other gaps.
        let other = Market::new(SimConfig { seed: 9, ..m.cfg.clone() });
        assert_ne!(other.schedule(StreamKind::Trade, 1).offset_us(0), m.schedule(StreamKind::Trade, 1).offset_us(0));
    }

    /// An arrival process times the trades and aggregate trades of the symbols at the common
    /// rate (not one with its own cadence, not other kinds), and the stream's count and REST's
    /// times agree with it.
    #[test]
    fn an_arrival_process_times_the_trade_streams_only() {
        let m = Market::new(SimConfig {
            symbols: vec!["btcusdt".into(), "ethusdt".into(), "slowusdt".into()],
            trade_rate: 3_000.0,
            aux_rate: 500.0,
            cadences: vec![("slowusdt".into(), Cadence::PerSecond(5.0))],
            arrival: Some("burst:10".parse().unwrap()),
            duration: Some(Duration::from_secs(10)),
            ..SimConfig::default()
        });
        let t0 = m.started().1;
        let at = |kind, sym, k| m.time_us(kind, sym, k) - t0;
        // Spot aggregate trades run at the aux rate.
        for (kind, gap) in [(StreamKind::Trade, 10_000), (StreamKind::AggTrade, 20_000)] {
            assert_eq!(at(kind, 0, 0), at(kind, 0, 9), "{kind:?}: ten at one instant");
            assert_eq!(at(kind, 0, 10) - at(kind, 0, 9), gap, "{kind:?}: in tens at its rate");
            assert!(at(kind, 1, 0) > at(kind, 0, 0), "{kind:?}: the symbols take turns");
            assert_eq!(m.count_by(kind, 0, at(kind, 0, 10) as u64), 20);
        }
        assert_eq!(m.total_trades_for(0), Some(10_000));
        assert_eq!(at(StreamKind::Trade, 2, 1) - at(StreamKind::Trade, 2, 0), 200_000, "its own cadence");
        assert_ne!(at(StreamKind::BookTicker, 0, 0), at(StreamKind::BookTicker, 0, 1), "other kinds as before");
    }

    #[test]
    fn the_book_after_an_update_id_is_the_book_after_its_event() {
        let m = Market::new(SimConfig { depth_levels: 20, ..SimConfig::default() });
        let base = Market::trade_id_base(1);
        assert_eq!(Market::depth_update_ids(1, 0), (base, base + 2));
        assert_eq!(Market::depth_update_ids(1, 1).0, base + 3, "dense: U = previous u + 1");
        assert_eq!(m.book_at(1, base - 1).last_update_id, base - 1, "the first book, before any event");
        assert_eq!(m.book_at(1, base + 1).last_update_id, base - 1, "event 0 is not done until its u");
        assert_eq!(m.book_at(1, base + 2).last_update_id, base + 2);
        let b = m.book_at(1, base + 3 * 500 + 2);
        assert_eq!(b.last_update_id, base + 3 * 500 + 2);
        let (bids, asks) = m.book.top(1, 501, usize::MAX);
        assert_eq!((b.bids, b.asks), (level_texts(&bids), level_texts(&asks)), "replay and closed form agree");
    }
}
