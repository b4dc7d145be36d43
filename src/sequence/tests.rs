use super::*;
use crate::record::{DepthUpdate, Levels, Side, Trade};

fn trade(id: i64) -> Record<'static> {
    Record::Trade(Trade {
        exchange: "binance",
        symbol: "BTCUSDT",
        trade_id: id,
        price: "1".into(),
        qty: "1".into(),
        side: Side::Buy,
        trade_time_ms: 0,
        event_time_ms: 0,
    })
}

fn depth(first: i64, last: i64) -> Record<'static> {
    Record::DepthUpdate(DepthUpdate {
        exchange: "binance",
        symbol: "BTCUSDT",
        first_update_id: first,
        final_update_id: last,
        bids: Levels("[]"),
        asks: Levels("[]"),
        event_time_ms: 0,
        prev_final_update_id: None,
        transaction_time_ms: None,
    })
}

#[test]
fn trades_in_order_duplicates_and_gaps() {
    let mut s = SequenceTracker::new(2);
    let cases = [
        (0, trade(10), Verdict::InOrder),
        (0, trade(11), Verdict::InOrder),
        (0, trade(11), Verdict::Duplicate),
        (0, trade(5), Verdict::Duplicate),
        (0, trade(15), Verdict::Gap { from: 12, missing: 3 }),
        (0, trade(16), Verdict::InOrder),
        // Symbols are independent.
        (1, trade(3), Verdict::InOrder),
        (1, trade(4), Verdict::InOrder),
        (1, trade(90), Verdict::Gap { from: 5, missing: 85 }),
    ];
    for (i, (sym, r, want)) in cases.iter().enumerate() {
        assert_eq!(s.observe(*sym, r), *want, "TC{i}");
    }
    assert_eq!(s.last(0, Dense::Trade), Some(16));
    // Seeding from Kafka after a crash: the next live trade reveals the hole.
    s.seed(1, Dense::Trade, 100);
    assert_eq!(s.observe(1, &trade(104)), Verdict::Gap { from: 101, missing: 3 });
}

fn kline(open: i64, closed: bool, e: i64) -> Record<'static> {
    Record::Kline(crate::record::Kline {
        exchange: "binance",
        symbol: "BTCUSDT",
        interval: "1s",
        open_time_ms: open,
        close_time_ms: open + 999,
        open: "1".into(),
        high: "1".into(),
        low: "1".into(),
        close: "1".into(),
        volume: "1".into(),
        quote_volume: "1".into(),
        trades: 1,
        taker_buy_volume: "1".into(),
        taker_buy_quote_volume: "1".into(),
        closed,
        first_trade_id: Some(1),
        last_trade_id: Some(1),
        event_time_ms: e,
    })
}

#[test]
fn candles_whose_closed_update_never_came_are_gaps() {
    let mut s = SequenceTracker::new(1);
    let cases = [
        // TC0-2: an open candle, its close, the next candle.
        (kline(10_000, false, 10_500), Verdict::InOrder),
        (kline(10_000, true, 10_999), Verdict::InOrder),
        (kline(11_000, false, 11_500), Verdict::InOrder),
        // TC3: the same event again (a rotation's overlap).
        (kline(11_000, false, 11_500), Verdict::Duplicate),
        // TC4: candle 11 000 never closed, and 12 000 and 13 000 were never seen.
        (kline(14_000, false, 14_100), Verdict::Gap { from: 11_000, missing: 3 }),
        // TC5: the closed update of 14 000 right after its first update.
        (kline(14_000, true, 14_999), Verdict::InOrder),
        // TC6: a closed update two candles on: 15 000 is missing.
        (kline(16_000, true, 16_999), Verdict::Gap { from: 15_000, missing: 1 }),
        (kline(17_000, false, 17_100), Verdict::InOrder),
    ];
    for (i, (r, want)) in cases.iter().enumerate() {
        assert_eq!(s.observe(0, r), *want, "TC{i}");
    }
    // A peek remembers nothing.
    assert_eq!(s.peek(0, &kline(19_000, false, 19_100)), Verdict::Gap { from: 17_000, missing: 2 });
    assert_eq!(s.peek(0, &kline(19_000, false, 19_100)), Verdict::Gap { from: 17_000, missing: 2 });
}

#[test]
fn an_outlier_far_ahead_is_quarantined_and_a_confirmed_jump_accepted() {
    let mut s = SequenceTracker::new(2);
    s.set_max_jump(1_000);
    let c = |from, missing, then_from, then_missing| Verdict::Confirmed { from, missing, then_from, then_missing };
    let cases = [
        (trade(10), Verdict::InOrder),
        (trade(11), Verdict::InOrder),
        // TC2-4: one poisoned id does not move the sequence; the real ones after it go on.
        (trade(i64::MAX), Verdict::Quarantined),
        (trade(12), Verdict::InOrder),
        (trade(13), Verdict::InOrder),
        // TC5-6: a plausible gap is still a gap, not a quarantine.
        (trade(1_014), Verdict::Gap { from: 14, missing: 1_000 }),
        (trade(i64::MAX), Verdict::Quarantined),
        // TC7-9: a real jump: the next id continues from the quarantined one.
        (trade(5_000_000), Verdict::Quarantined),
        (trade(5_000_001), c(1_015, 4_998_985, 0, 0)),
        (trade(5_000_002), Verdict::InOrder),
        // TC10-11: confirmed by an id a little further on: both holes are named.
        (trade(9_000_000), Verdict::Quarantined),
        (trade(9_000_003), c(5_000_003, 3_999_997, 9_000_001, 2)),
        // TC12-14: the quarantined record again (overlapping connections) is a duplicate.
        (trade(20_000_000), Verdict::Quarantined),
        (trade(20_000_000), Verdict::Duplicate),
        (trade(20_000_001), c(9_000_004, 10_999_996, 0, 0)),
        // TC15-17: a second outlier replaces the first as the candidate.
        (trade(30_000_000), Verdict::Quarantined),
        (trade(40_000_000), Verdict::Quarantined),
        (trade(40_000_001), c(20_000_002, 19_999_998, 0, 0)),
    ];
    for (i, (r, want)) in cases.iter().enumerate() {
        assert_eq!(s.observe(0, r), *want, "TC{i}");
    }
    // Hostile extremes: never an overflow, never a negative count.
    assert_eq!(s.observe(1, &trade(i64::MIN + 1)), Verdict::InOrder);
    assert_eq!(s.observe(1, &trade(i64::MAX)), Verdict::Quarantined);
    assert_eq!(s.observe(1, &trade(i64::MIN + 2)), Verdict::InOrder);
    // A restart after a long downtime: the first live id is millions past what Kafka held.
    s.seed(1, Dense::Trade, 100);
    assert_eq!(s.observe(1, &trade(5_000_100)), Verdict::Quarantined);
    assert_eq!(s.observe(1, &trade(5_000_101)), c(101, 4_999_999, 0, 0));
}

#[test]
fn absurd_kline_open_times_are_quarantined_and_counted_saturating() {
    let mut s = SequenceTracker::new(1);
    let nine = 9_000_000_000_000_000_000i64;
    // TC0-1: a candle at -9e18, then one at 9e18: quarantined, not a gap of -7e12 candles.
    assert_eq!(s.observe(0, &kline(-nine, false, -nine + 500)), Verdict::InOrder);
    assert_eq!(s.observe(0, &kline(nine, false, nine + 100)), Verdict::Quarantined);
    // TC2: the real next candle goes on as if the outlier never came.
    assert_eq!(s.observe(0, &kline(-nine, true, -nine + 999)), Verdict::InOrder);
    // TC3-4: the outlier confirmed by its own closing update: a gap, saturated, not negative.
    assert_eq!(s.observe(0, &kline(nine, false, nine + 100)), Verdict::Quarantined);
    match s.observe(0, &kline(nine, true, nine + 999)) {
        Verdict::Confirmed { from, missing, then_missing, .. } => {
            assert_eq!(from, -nine + 1_000);
            assert_eq!(missing, (i64::MAX / 1_000), "saturated at i64::MAX ms");
            assert_eq!(then_missing, 0);
        }
        v => panic!("{v:?}"),
    }
    // TC5: an event time alone far ahead is quarantined too (it would poison the duplicates).
    assert_eq!(s.observe(0, &kline(nine + 1_000, false, i64::MAX)), Verdict::Quarantined);
    assert_eq!(s.observe(0, &kline(nine + 1_000, false, nine + 1_100)), Verdict::InOrder);
}

#[test]
fn recovery_frontier_follows_the_same_rule() {
    // Each case: the records read back, in order, and the position they leave.
    #[derive(Clone, Copy)]
    enum R {
        Live(i64),
        Flagged(i64),
        Settled(i64),
    }
    use R::*;
    let cases: [(&[R], Option<i64>); 8] = [
        (&[Live(1), Live(2), Live(3)], Some(3)),
        // TC1: an unflagged outlier in an old topic does not seed the sequence...
        (&[Live(1), Live(2), Live(i64::MAX), Live(3)], Some(3)),
        (&[Live(1), Live(2), Live(i64::MAX)], Some(2)),
        // TC3: ...nor a flagged one, nor a gap marker pretending to end there.
        (&[Live(1), Flagged(i64::MAX), Settled(i64::MAX - 1)], Some(1)),
        // TC4: a confirmed jump (the flagged record, then the live one continuing it) does.
        (&[Live(1), Flagged(5_000_000), Live(5_000_001)], Some(5_000_001)),
        // TC5: backfilled records interleaved with the live ones after a jump.
        (&[Live(1), Flagged(5_000_000), Settled(2), Live(5_000_001), Settled(3)], Some(5_000_001)),
        (&[Settled(1_000), Live(5_000_000), Settled(1_001), Live(5_000_001)], Some(5_000_001)),
        // TC7: a refetched record past the last live one counts.
        (&[Live(10), Settled(11), Settled(9)], Some(11)),
    ];
    for (i, (records, want)) in cases.iter().enumerate() {
        let mut f = Frontier::new(1_000);
        for r in records.iter() {
            match *r {
                Live(id) => f.live(id),
                Flagged(id) => f.quarantined(id),
                Settled(id) => f.settled(id),
            }
        }
        assert_eq!(f.last(), *want, "TC{i}");
    }
}

#[test]
fn depth_updates_chain_first_to_previous_final() {
    let mut s = SequenceTracker::new(1);
    assert_eq!(s.observe(0, &depth(157, 160)), Verdict::InOrder);
    assert_eq!(s.observe(0, &depth(161, 165)), Verdict::InOrder);
    assert_eq!(s.observe(0, &depth(150, 165)), Verdict::Duplicate);
    assert_eq!(s.observe(0, &depth(163, 170)), Verdict::InOrder);
    assert_eq!(s.observe(0, &depth(180, 181)), Verdict::Gap { from: 171, missing: 9 });
}

#[test]
fn futures_depth_updates_chain_by_the_previous_final_id() {
    // USD-M: `pu` is the previous event's `u`, and `U` is mostly not `pu + 1`.
    let futures = |first, last, pu| match depth(first, last) {
        Record::DepthUpdate(d) => Record::DepthUpdate(DepthUpdate { prev_final_update_id: Some(pu), ..d }),
        _ => unreachable!(),
    };
    let mut s = SequenceTracker::new(1);
    s.set_depth_chain(DepthChain::PrevFinal);
    assert_eq!(s.observe(0, &futures(157, 160, 149)), Verdict::InOrder);
    assert_eq!(s.observe(0, &futures(170, 175, 160)), Verdict::InOrder, "U = 170, but pu = the last u");
    assert_eq!(s.observe(0, &futures(170, 175, 160)), Verdict::Duplicate);
    assert_eq!(s.observe(0, &futures(190, 199, 185)), Verdict::Gap { from: 176, missing: 10 }, "pu 185 != 175");
}

#[test]
fn mark_prices_and_liquidations_hours_apart_are_in_order_never_quarantined() {
    use crate::record::{Liquidation, MarkPrice};
    let liq = |t: i64| {
        Record::Liquidation(Liquidation {
            exchange: "binance-usdm",
            symbol: "BTCUSDT",
            side: Side::Sell,
            order_type: "LIMIT",
            time_in_force: "IOC",
            status: "FILLED",
            orig_qty: "1".into(),
            price: "1".into(),
            avg_price: "1".into(),
            last_filled_qty: "1".into(),
            filled_qty: "1".into(),
            trade_time_ms: t,
            event_time_ms: t,
        })
    };
    let mark = |t: i64| {
        Record::MarkPrice(MarkPrice {
            exchange: "binance-usdm",
            symbol: "BTCUSDT",
            mark_price: "1".into(),
            index_price: "1".into(),
            estimated_settle_price: "1".into(),
            funding_rate: "0".into(),
            mark_price_avg: None,
            next_funding_time_ms: 0,
            event_time_ms: t,
        })
    };
    let mut s = SequenceTracker::new(1);
    let hour = 3_600_000;
    assert_eq!(s.observe(0, &liq(hour)), Verdict::InOrder);
    assert_eq!(s.observe(0, &liq(10 * hour)), Verdict::InOrder, "nine quiet hours: not an implausible jump");
    assert_eq!(s.observe(0, &liq(10 * hour)), Verdict::Duplicate, "an overlapping connection's copy");
    assert_eq!(s.observe(0, &mark(hour)), Verdict::InOrder, "its own slot");
    assert_eq!(s.observe(0, &mark(5 * hour)), Verdict::InOrder);
    assert_eq!(s.observe(0, &mark(5 * hour - 1000)), Verdict::Duplicate, "older than what was published");
}

fn agg_trade(id: i64) -> Record<'static> {
    Record::AggTrade(crate::record::AggTrade {
        exchange: "binance",
        symbol: "BTCUSDT",
        agg_id: id,
        first_trade_id: id,
        last_trade_id: id,
        price: "1".into(),
        qty: "1".into(),
        side: Side::Buy,
        trade_time_ms: 0,
        event_time_ms: 0,
    })
}

/// The next-id shortcut of `judge` answers what every rule applied answers, around every kind of
/// last id (none, negative, the ends of i64) and with a quarantined record waiting or not: the
/// shortcut may only skip steps, never change a verdict.
#[test]
fn the_next_id_shortcut_is_the_general_judgement() {
    let lasts = [None, Some(-3), Some(0), Some(41), Some(i64::MAX - 1), Some(i64::MAX), Some(i64::MIN + 1)];
    let mut judged = 0;
    for (kind, make) in [(Dense::Trade, trade as fn(i64) -> Record<'static>), (Dense::AggTrade, agg_trade)] {
        for last in lasts {
            for quarantined in [false, true] {
                let mut s = SequenceTracker::new(1);
                s.set_max_jump(10);
                if let Some(l) = last {
                    s.seed(0, kind, l);
                    if quarantined && l < i64::MAX - 1_000 {
                        assert_eq!(s.observe(0, &make(l + 1_000)), Verdict::Quarantined);
                    }
                }
                let at = last.unwrap_or(0);
                for id in [at.saturating_sub(2), at.saturating_sub(1), at, at.saturating_add(1), at.saturating_add(2)]
                    .into_iter()
                    .chain([i64::MIN, i64::MIN + 1, i64::MAX, at.saturating_add(1_001)])
                {
                    let r = make(id);
                    assert_eq!(s.judge(0, &r), s.judge_general(0, &r), "{kind:?} last {last:?} id {id}");
                    judged += 1;
                }
            }
        }
    }
    assert_eq!(judged, 2 * 7 * 2 * 9);
    // Not for depth: a USD-M event starting right after the last id is still a gap when its `pu`
    // is past the last `u` (the shortcut applied to depth would call it in order). (Book tickers,
    // mark prices and liquidations would get the same answer from it: left to the general way.)
    let mut s = SequenceTracker::new(1);
    s.set_depth_chain(DepthChain::PrevFinal);
    let futures = |first, last, pu| match depth(first, last) {
        Record::DepthUpdate(d) => Record::DepthUpdate(DepthUpdate { prev_final_update_id: Some(pu), ..d }),
        _ => unreachable!(),
    };
    assert_eq!(s.observe(0, &futures(157, 160, 149)), Verdict::InOrder);
    let next = futures(161, 170, 165);
    assert_eq!(s.judge(0, &next), s.judge_general(0, &next));
    assert!(matches!(s.judge(0, &next).verdict(), Verdict::Gap { .. }));
    // Nor for klines: an update a millisecond after the last one still accounts for its candle.
    let mut s = SequenceTracker::new(1);
    assert_eq!(s.observe(0, &kline(0, false, 1_000)), Verdict::InOrder);
    let next = kline(0, false, 1_001);
    assert_eq!(s.judge(0, &next), s.judge_general(0, &next));
    assert!(s.judge(0, &next).candle.is_some());
}
