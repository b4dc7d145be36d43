//! What the USD-M market sends, as a pure function of (symbol, sequence number, start time), so
//! tests recompute it: aggregate trades, mark prices, liquidations, and the order book's update
//! ids. The book itself is spot's (`book.rs`); only its ids and texts are futures'.

use crate::book::{Book, Levels};
use crate::hash::mix;
use crate::kind::StreamKind;
use crate::market::Market;

/// How long before its event time (`E`) a futures event happened in the matching engine (its
/// `T`): Binance's examples have `T` a few milliseconds before `E`.
pub(crate) const ENGINE_LAG_MS: i64 = 2;

/// Funding happens every 8 hours, at 00:00, 08:00 and 16:00 UTC.
const FUNDING_PERIOD_MS: i64 = 8 * 3_600_000;

/// An aggregate trade as the USD-M market sends it (stream and `/fapi/v1/aggTrades`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpectedAggTrade {
    pub symbol: String,
    /// `a`: dense per symbol, from [`Market::trade_id_base`].
    pub agg_id: i64,
    pub price: String,
    pub qty: String,
    /// `f..=l`: the trade ids it aggregates; the next aggregate's `f` may skip ids (insurance
    /// fund and ADL trades are not aggregated, README §6).
    pub first_trade_id: i64,
    pub last_trade_id: i64,
    /// `T`.
    pub trade_time_ms: i64,
    /// `E` (the stream only).
    pub event_time_ms: i64,
    pub buyer_is_maker: bool,
}

/// A `markPriceUpdate`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpectedMarkPrice {
    pub symbol: String,
    pub event_time_ms: i64,
    /// `p`, `i`, `P`, `r`: mark, index and estimated settle price, funding rate.
    pub mark_price: String,
    pub index_price: String,
    pub settle_price: String,
    pub funding_rate: String,
    /// `T`: the next funding time, not a trade time.
    pub next_funding_time_ms: i64,
}

/// A `forceOrder` event: the latest liquidation of its second, a snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpectedLiquidation {
    pub symbol: String,
    pub event_time_ms: i64,
    /// `S`: `SELL` (a long liquidated) or `BUY`.
    pub side: String,
    /// `o`, `f`, `X`: order type, time in force, status.
    pub order_type: String,
    pub time_in_force: String,
    pub status: String,
    /// `q`, `p`, `ap`, `l`, `z`: original quantity, price, average price, last filled and
    /// accumulated filled quantity; prices without trailing zeros, as Binance's `"9910"`.
    pub orig_qty: String,
    pub price: String,
    pub avg_price: String,
    pub last_filled_qty: String,
    pub filled_qty: String,
    /// `T`: the order's trade time, within the second before `E`.
    pub trade_time_ms: i64,
}

/// `units / 10^8` as Binance writes a mark price or funding rate: eight decimals, signed.
fn dec8(units: i64) -> String {
    let sign = if units < 0 { "-" } else { "" };
    let u = units.unsigned_abs();
    format!("{sign}{}.{:08}", u / 100_000_000, u % 100_000_000)
}

/// `cents / 100` without trailing zeros: `"9910"`, `"9910.5"`, `"9910.25"`.
fn trimmed_cents(cents: u64) -> String {
    match cents % 100 {
        0 => format!("{}", cents / 100),
        c if c % 10 == 0 => format!("{}.{}", cents / 100, c / 10),
        c => format!("{}.{c:02}", cents / 100),
    }
}

/// `thousandths / 1000` with three decimals, as a futures quantity: `"0.014"`.
fn qty3(thousandths: u64) -> String {
    format!("{}.{:03}", thousandths / 1000, thousandths % 1000)
}

/// A book price in ticks as USD-M writes it: two decimals, `"20000.01"` (spot pads to eight).
pub(crate) fn price_text(tick: i64) -> String {
    format!("{}.{:02}", tick / 100, tick % 100)
}

/// A book quantity in units of 0.00001 as the USD-M market writes it: `"12.34567"`, `"0.00000"`.
pub(crate) fn qty_text(units: u64) -> String {
    format!("{}.{:05}", units / 100_000, units % 100_000)
}

pub(crate) fn level_texts(levels: &[(i64, u64)]) -> Vec<(String, String)> {
    levels.iter().map(|&(i, q)| (price_text(i), qty_text(q))).collect()
}

/// A symbol's price level: five digits before the point, like the book's.
fn base_price_cents(sym: usize) -> u64 {
    (20_000 + 1_000 * (sym as u64 % 70)) * 100
}

impl Market {
    /// `(U, u, pu)` of USD-M diff-depth event `k`: ten update ids a slot, `U` a few ids into it
    /// and `u` a few before its end, so `U` is mostly not the previous `u` + 1 (futures chain by
    /// `pu` = the previous event's `u`, README §6); event 0's `pu` is the first book's id.
    pub fn usdm_depth_ids(sym: usize, k: u64) -> (i64, i64, i64) {
        let pu = if k == 0 { Self::trade_id_base(sym) - 1 } else { Self::usdm_depth_range(sym, k - 1).1 };
        let (first, last) = Self::usdm_depth_range(sym, k);
        (first, last, pu)
    }

    fn usdm_depth_range(sym: usize, k: u64) -> (i64, i64) {
        let slot = Self::trade_id_base(sym) + 10 * k as i64;
        let h = mix((sym as u64) << 40 ^ k ^ 0xD3F7);
        (slot + (h % 4) as i64, slot + 9 - ((h >> 8) % 3) as i64)
    }

    /// Events whose `U` is at most `update_id` (a book at an id inside an event's `[U, u]` holds
    /// that whole event, as a futures snapshot does), and the `u` of the last of them.
    fn usdm_events_through(sym: usize, update_id: i64) -> (u64, i64) {
        let base = Self::trade_id_base(sym);
        if update_id < base {
            return (0, Self::usdm_book_id(sym, 0));
        }
        // Events before slot t0 all begin at or below base + 10*t0 - 7; event t0 may; later ones not.
        let t0 = ((update_id - base) / 10) as u64;
        let t = t0 + u64::from(Self::usdm_depth_range(sym, t0).0 <= update_id);
        (t, Self::usdm_book_id(sym, t))
    }

    /// The `lastUpdateId` a `/fapi/v1/depth` snapshot after `t` events reports: an id within the
    /// last event's `[U, u]`, not always its `u` — Binance's sync rule (the first event to apply
    /// has `U <= lastUpdateId <= u`) is written for exactly that, and a client that looks for
    /// `pu == lastUpdateId` instead must not pass here and fail there.
    pub fn usdm_snapshot_id(sym: usize, t: u64) -> i64 {
        match t {
            0 => Self::usdm_book_id(sym, 0),
            t => {
                let (first, last) = Self::usdm_depth_range(sym, t - 1);
                first + (mix((sym as u64) << 40 ^ t ^ 0x5AA9) % (last - first + 1) as u64) as i64
            }
        }
    }

    /// The `lastUpdateId` of the book after `t` events: the last one's `u`.
    pub(crate) fn usdm_book_id(sym: usize, t: u64) -> i64 {
        match t {
            0 => Self::trade_id_base(sym) - 1,
            t => Self::usdm_depth_range(sym, t - 1).1,
        }
    }

    fn usdm_book(&self, last_update_id: i64, (bids, asks): Levels) -> Book {
        Book { last_update_id, bids: level_texts(&bids), asks: level_texts(&asks) }
    }

    /// [`Market::book_at`] for USD-M ids and texts.
    pub(crate) fn usdm_book_at(&self, sym: usize, update_id: i64) -> Book {
        let (t, id) = Self::usdm_events_through(sym, update_id);
        self.usdm_book(id, self.book.replay(sym, t))
    }

    /// [`Market::depth_snapshot`] for USD-M ids and texts.
    pub(crate) fn usdm_depth_snapshot(&self, sym: usize, limit: usize) -> Book {
        self.usdm_snapshot_at(sym, self.generated_for(StreamKind::Depth, sym), limit)
    }

    /// The top `limit` levels a side of the book after `t` events, as a snapshot reports it.
    pub(crate) fn usdm_snapshot_at(&self, sym: usize, t: u64, limit: usize) -> Book {
        self.usdm_book(Self::usdm_snapshot_id(sym, t), self.book.top(sym, t, limit))
    }

    /// The engine time of the latest event a `/fapi/v1/depth` snapshot includes (its `T`).
    pub(crate) fn usdm_book_time_ms(&self, sym: usize, t: u64) -> i64 {
        match t {
            0 => self.time_ms(StreamKind::Depth, sym, 0) - 1_000,
            t => self.time_ms(StreamKind::Depth, sym, t - 1) - ENGINE_LAG_MS,
        }
    }

    /// Exactly what USD-M aggregate trade `k` of symbol `sym` looks like.
    pub fn expected_agg_trade(&self, sym: usize, k: u64) -> ExpectedAggTrade {
        let h = mix((sym as u64) << 40 ^ k ^ 0xA667);
        let e = self.time_ms(StreamKind::AggTrade, sym, k);
        let first = Self::trade_id_base(sym) + 3 * k as i64;
        let cents = base_price_cents(sym) + h % 50_000;
        ExpectedAggTrade {
            symbol: self.cfg.symbols[sym].to_uppercase(),
            agg_id: Self::trade_id_base(sym) + k as i64,
            price: format!("{}.{:02}", cents / 100, cents % 100),
            qty: qty3(1 + (h >> 20) % 5_000),
            first_trade_id: first,
            // Three trade ids an aggregate; one in eight leaves its third out (not aggregated).
            last_trade_id: first + if (h >> 40) % 8 == 0 { 1 } else { 2 },
            trade_time_ms: e - ENGINE_LAG_MS,
            event_time_ms: e,
            buyer_is_maker: (h >> 60) & 1 == 1,
        }
    }

    /// Exactly what mark price update `k` of symbol `sym` looks like on `kind`
    /// ([`StreamKind::MarkPrice1s`], else the 3 s [`StreamKind::MarkPrice`]). Both sample one
    /// series, second by second: 3 s update `k` carries the values of 1 s update `3k + 2`.
    pub fn expected_mark_price(&self, sym: usize, kind: StreamKind, k: u64) -> ExpectedMarkPrice {
        let (kind, second) = match kind {
            StreamKind::MarkPrice1s => (kind, k + 1),
            _ => (StreamKind::MarkPrice, 3 * (k + 1)),
        };
        let e = self.time_ms(kind, sym, k);
        let h = mix((sym as u64) << 40 ^ second ^ 0x3A7C);
        let index = (base_price_cents(sym) * 1_000_000 + h % 50_000_000_000) as i64;
        let premium = ((h >> 16) % 2_000_000_001) as i64 - 1_000_000_000;
        ExpectedMarkPrice {
            symbol: self.cfg.symbols[sym].to_uppercase(),
            event_time_ms: e,
            mark_price: dec8(index + premium),
            index_price: dec8(index),
            settle_price: dec8(index + ((h >> 40) % 200_000_000) as i64),
            // Within +-0.0005, the sign of the premium.
            funding_rate: dec8(premium / 20_000),
            next_funding_time_ms: (e.div_euclid(FUNDING_PERIOD_MS) + 1) * FUNDING_PERIOD_MS,
        }
    }

    /// Exactly what liquidation snapshot `k` of symbol `sym` looks like.
    pub fn expected_liquidation(&self, sym: usize, k: u64) -> ExpectedLiquidation {
        let h = mix((sym as u64) << 40 ^ k ^ 0x11D0);
        let e = self.time_ms(StreamKind::ForceOrder, sym, k);
        let sell = h & 1 == 1;
        let qty = 1 + (h >> 8) % 5_000;
        // One in five is still being filled.
        let filled = if (h >> 24) % 5 == 0 { qty.div_ceil(2) } else { qty };
        let price = base_price_cents(sym) + (h >> 32) % 100_000;
        // A liquidation sells at or above its limit, buys at or below it.
        let slip = (h >> 48) % 300;
        let avg = if sell { price + slip } else { price.saturating_sub(slip) };
        ExpectedLiquidation {
            symbol: self.cfg.symbols[sym].to_uppercase(),
            event_time_ms: e,
            side: if sell { "SELL" } else { "BUY" }.into(),
            order_type: "LIMIT".into(),
            time_in_force: "IOC".into(),
            status: if filled == qty { "FILLED" } else { "PARTIALLY_FILLED" }.into(),
            orig_qty: qty3(qty),
            price: trimmed_cents(price),
            avg_price: trimmed_cents(avg),
            last_filled_qty: qty3(filled),
            filled_qty: qty3(filled),
            // Liquidations are at least a second apart, so these stay in order too.
            trade_time_ms: e - ((h >> 12) % 1_000) as i64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SimConfig;

    fn market() -> Market {
        Market::usdm(SimConfig::usdm_market())
    }

    #[test]
    fn aggregate_ids_are_dense_while_their_trade_ids_skip() {
        let m = market();
        let aggs: Vec<ExpectedAggTrade> = (0..2_000).map(|k| m.expected_agg_trade(1, k)).collect();
        assert_eq!(aggs[0].agg_id, Market::trade_id_base(1));
        let mut skips = 0;
        for w in aggs.windows(2) {
            assert_eq!(w[1].agg_id, w[0].agg_id + 1, "a is dense");
            assert!(w[0].first_trade_id <= w[0].last_trade_id && w[1].first_trade_id > w[0].last_trade_id);
            skips += usize::from(w[1].first_trade_id > w[0].last_trade_id + 1);
            assert!(w[1].trade_time_ms >= w[0].trade_time_ms, "trade times in order");
            assert_eq!(w[0].event_time_ms - w[0].trade_time_ms, ENGINE_LAG_MS);
        }
        assert!((100..=500).contains(&skips), "{skips} skips in 2000: f..l skips sometimes, not always");
        assert!(aggs.iter().all(|a| a.price.split('.').nth(1).map(str::len) == Some(2) && a.qty.len() >= 5));
    }

    #[test]
    fn depth_ids_chain_by_pu_and_u_need_not_follow_the_previous_u() {
        let (mut dense, mut sparse, mut inside) = (0, 0, 0);
        let mut prev_u = Market::trade_id_base(2) - 1;
        for k in 0..3_000 {
            let (first, last, pu) = Market::usdm_depth_ids(2, k);
            assert_eq!(pu, prev_u, "pu is the previous u");
            assert!(pu < first && first <= last, "event {k}: {pu} {first} {last}");
            if first == pu + 1 {
                dense += 1;
            } else {
                sparse += 1;
            }
            // The book after this event, from its first id on, and before it until then.
            assert_eq!(Market::usdm_events_through(2, last), (k + 1, last));
            assert_eq!(Market::usdm_events_through(2, first), (k + 1, last), "a snapshot inside it holds it");
            assert_eq!(Market::usdm_events_through(2, first - 1), (k, pu));
            assert_eq!(Market::usdm_events_through(2, pu), (k, pu));
            let snap = Market::usdm_snapshot_id(2, k + 1);
            assert!((first..=last).contains(&snap), "a snapshot after it reports an id inside it");
            inside += usize::from(snap < last);
            prev_u = last;
        }
        assert!(dense > 100 && sparse > 2 * dense, "{dense} with U = pu + 1, {sparse} without");
        assert!(inside > 1_000, "{inside} snapshots of 3000 report an id before the event's u");
        assert_eq!(Market::usdm_snapshot_id(2, 0), Market::trade_id_base(2) - 1);
        assert_eq!(Market::usdm_events_through(2, i64::MIN), (0, Market::trade_id_base(2) - 1));
        assert_eq!(Market::usdm_events_through(2, Market::trade_id_base(2) - 1).0, 0);
    }

    #[test]
    fn the_3s_mark_price_samples_the_1s_series_and_funding_is_every_8_hours() {
        let m = market();
        for k in [0, 1, 7, 1_000] {
            let slow = m.expected_mark_price(0, StreamKind::MarkPrice, k);
            let fast = m.expected_mark_price(0, StreamKind::MarkPrice1s, 3 * k + 2);
            assert_eq!(
                (&slow.mark_price, &slow.index_price, &slow.funding_rate, slow.event_time_ms),
                (&fast.mark_price, &fast.index_price, &fast.funding_rate, fast.event_time_ms)
            );
            let t = slow.next_funding_time_ms;
            assert!(
                t > slow.event_time_ms && t - slow.event_time_ms <= FUNDING_PERIOD_MS && t % FUNDING_PERIOD_MS == 0
            );
        }
        let rates: Vec<String> =
            (0..200).map(|k| m.expected_mark_price(1, StreamKind::MarkPrice1s, k).funding_rate).collect();
        assert!(rates.iter().any(|r| r.starts_with('-')) && rates.iter().any(|r| !r.starts_with('-')), "{rates:?}");
        assert!(rates.iter().all(|r| r.len() >= 10 && r.trim_start_matches('-').starts_with("0.000")), "{rates:?}");
        assert_eq!(dec8(-1), "-0.00000001");
        assert_eq!(dec8(1_179_415_000_000), "11794.15000000");
    }

    #[test]
    fn liquidations_are_at_least_a_second_apart_and_consistent() {
        let m = market();
        let l: Vec<ExpectedLiquidation> = (0..500).map(|k| m.expected_liquidation(0, k)).collect();
        for w in l.windows(2) {
            assert!(
                w[1].event_time_ms - w[0].event_time_ms >= 999,
                "{} then {}",
                w[0].event_time_ms,
                w[1].event_time_ms
            );
            assert!(w[1].trade_time_ms >= w[0].trade_time_ms);
        }
        let num = |s: &str| s.parse::<f64>().unwrap();
        for x in &l {
            assert!(x.trade_time_ms <= x.event_time_ms && x.event_time_ms - x.trade_time_ms < 1_000);
            assert!(num(&x.filled_qty) <= num(&x.orig_qty) && x.last_filled_qty == x.filled_qty);
            assert_eq!(x.status == "FILLED", x.filled_qty == x.orig_qty);
            let (p, ap) = (num(&x.price), num(&x.avg_price));
            assert!(if x.side == "SELL" { ap >= p } else { ap <= p }, "{x:?}");
        }
        assert!(l.iter().any(|x| x.side == "BUY") && l.iter().any(|x| x.status == "PARTIALLY_FILLED"));
        assert!(l.iter().any(|x| !x.price.contains('.')), "some prices are whole, written without a point");
        assert_eq!(
            (trimmed_cents(991_000), trimmed_cents(991_050), trimmed_cents(991_025)),
            ("9910".into(), "9910.5".into(), "9910.25".into())
        );
    }
}
