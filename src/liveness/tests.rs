use super::*;

const FLOOR: Duration = Duration::from_secs(10);
const CAP: Duration = Duration::from_secs(900);
const LOOK: Duration = Duration::from_millis(100);

fn secs(n: f64) -> Duration {
    Duration::from_secs_f64(n)
}

/// A watch over `symbols` x `kinds`, every stream carried by a connection subscribed at `t0`,
/// looked at every 100 ms.
struct Rig {
    slots: Slots,
    watch: Watch,
    carried: Vec<Option<Instant>>,
    t0: Instant,
    now: Instant,
    events: Vec<(Duration, Event)>,
}

impl Rig {
    fn new(symbols: usize, kinds: &[StreamKind]) -> Rig {
        let t0 = Instant::now();
        let slots = Slots::new(symbols, kinds);
        let watch = Watch::new(&slots, Bounds { floor: FLOOR, cap: CAP }, t0);
        Rig { carried: vec![Some(t0); slots.len()], slots, watch, t0, now: t0, events: Vec::new() }
    }

    /// Runs the looks until `until` (from t0); `deliver(slot, t)` says whether the stream of
    /// `slot` sent a message in the look interval ending at `t`.
    fn run(&mut self, until: Duration, mut deliver: impl FnMut(usize, Duration) -> bool) {
        while self.now < self.t0 + until {
            self.now += LOOK;
            let t = self.now - self.t0;
            for s in 0..self.slots.len() {
                if deliver(s, t) {
                    let (sym, kind) = self.slots.stream(s);
                    self.slots.seen(sym, kind, 1_000_000_000 + t.as_nanos() as u64);
                }
            }
            let mut out = Vec::new();
            let now_ns = 1_000_000_000 + t.as_nanos() as u64;
            self.watch.check(self.now, now_ns, self.slots.last_ns(), &self.carried, &mut out);
            self.events.extend(out.into_iter().map(|e| (t, e)));
        }
    }

    fn actions(&self) -> Vec<(u64, Action)> {
        self.events.iter().map(|(t, e)| (t.as_secs(), e.action)).collect()
    }
}

#[test]
fn slots_are_one_per_configured_stream() {
    let kinds = [StreamKind::Trade, StreamKind::Kline(1), StreamKind::Depth100ms, StreamKind::Trade];
    let mut s = Slots::new(2, &kinds);
    assert_eq!(s.len(), 6, "duplicates counted once");
    assert_eq!(s.index(1, StreamKind::Kline(1)), Some(4));
    assert_eq!(s.stream(4), (1, StreamKind::Kline(1)));
    assert_eq!(s.index(0, StreamKind::Depth), None, "depth is not depth@100ms");
    assert_eq!(s.index(0, StreamKind::Kline(0)), None);
    assert_eq!(s.index(2, StreamKind::Trade), None, "no such symbol");
    assert_eq!(s.index(0, StreamKind::Kline(200)), None, "an interval out of range");
    s.seen(1, StreamKind::Depth100ms, 7);
    s.seen(0, StreamKind::BookTicker, 9);
    assert_eq!(s.last_ns(), &[0, 0, 0, 0, 0, 7]);
    assert!(Slots::new(3, &[]).is_empty());
}

#[test]
fn a_muted_busy_stream_is_resubscribed_then_replaced_and_the_fault_is_not_learned() {
    let mut rig = Rig::new(1, &[StreamKind::AggTrade, StreamKind::BookTicker]);
    // The aggTrade stream delivers on every look until 30 s; the book ticker always.
    rig.run(secs(50.5), |s, t| s == 1 || t < secs(30.0));
    let steps: Vec<(u64, Action)> = rig.actions();
    assert_eq!(steps, [(40, Action::Resubscribe), (50, Action::ReplaceConnection)]);
    // Found silent 10 s after its last message (at 29.9 s), replaced 10 s later.
    let (at, first) = rig.events[0];
    assert!(at > secs(39.9) && at <= secs(40.1), "{at:?}");
    assert_eq!((first.slot, first.bound), (0, FLOOR));
    assert_eq!(first.since_ns, 1_000_000_000 + secs(29.9).as_nanos() as u64);
    // The replacement subscribes at 50.5 s and the stream is back on it at once.
    rig.carried = vec![Some(rig.now); 2];
    rig.run(secs(80.0), |_, _| true);
    let (at, back) = rig.events[2];
    assert_eq!((back.action, back.since_ns), (Action::Recovered, first.since_ns));
    assert!(at <= secs(50.7) && back.silent >= secs(20.6) && back.silent <= secs(20.8), "{:?}", rig.events);
    assert_eq!(rig.events.len(), 3, "{:?}", rig.events);
    assert_eq!(rig.watch.bound(0), FLOOR, "the fault's silence is not the stream's cadence");
    assert!(!rig.watch.is_silent(0) && rig.watch.silent_count() == 0);
}

#[test]
fn an_illiquid_symbol_trading_every_30_to_120_s_is_never_alarmed() {
    // Two symbols: one trading 10 times a second, one every 30-120 s (as the simulator's
    // `Cadence::Every` draws them), both with a frequent book ticker; ten minutes.
    let mut rig = Rig::new(2, &[StreamKind::Trade, StreamKind::AggTrade, StreamKind::BookTicker]);
    let gaps = [30.0, 117.0, 45.5, 120.0, 30.2, 88.0, 61.0, 119.9];
    let mut times = Vec::new();
    let mut at = 0.0;
    for g in gaps {
        at += g;
        times.push(secs(at));
    }
    rig.run(secs(600.0), |s, t| {
        let (sym, kind) = (s / 3, s % 3);
        if sym == 0 || kind == 2 {
            return true;
        }
        times.iter().any(|x| *x <= t && t - *x < LOOK)
    });
    assert_eq!(rig.actions(), [], "no false alarm");
    assert!(rig.watch.bound(3) >= secs(240.0), "learned: {:?}", rig.watch.bound(3));
}

#[test]
fn a_trade_stream_is_silent_when_its_aggtrade_sibling_delivers() {
    // Nothing learned yet (a rare kind's prior is the cap), but the same symbol's aggregate
    // trades keep coming: trades happen, so the silent trade stream is found at the floor.
    let mut rig = Rig::new(1, &[StreamKind::Trade, StreamKind::AggTrade]);
    rig.run(secs(15.0), |s, _| s == 1);
    assert_eq!(rig.actions(), [(10, Action::Resubscribe)]);
    assert_eq!(rig.events[0].1.since_ns, 1_000_000_000, "subscribed at the start, nothing since");
    // Without a sibling, the prior holds.
    let mut rig = Rig::new(1, &[StreamKind::Trade]);
    rig.run(secs(60.0), |_, _| false);
    assert_eq!(rig.actions(), []);
}

#[test]
fn remedies_that_do_not_help_are_retried_at_doubling_intervals() {
    let mut rig = Rig::new(1, &[StreamKind::BookTicker]);
    rig.run(secs(1200.0), |_, t| t < secs(5.0));
    let got = rig.actions();
    // Silent from 4.9 s: resubscribe at 15, replace at 25, wait 20 s after 35, then 40, 80, ...
    assert_eq!(
        got[..4],
        [
            (15, Action::Resubscribe),
            (25, Action::ReplaceConnection),
            (55, Action::Resubscribe),
            (65, Action::ReplaceConnection)
        ]
    );
    let resubscribes: Vec<u64> = got.iter().filter(|(_, a)| *a == Action::Resubscribe).map(|(t, _)| *t).collect();
    let waits: Vec<u64> = resubscribes.windows(2).map(|w| w[1] - w[0] - 20).collect();
    assert_eq!(waits, [20, 40, 80, 160, 320], "doubling up to the cap (the next one is past the run)");
    assert!(rig.watch.is_silent(0));
}

#[test]
fn a_stream_that_comes_back_on_its_own_teaches_its_cadence() {
    // A book ticker every look for a minute, then one every 60 s (a market gone quiet).
    let mut rig = Rig::new(1, &[StreamKind::BookTicker]);
    rig.run(secs(300.0), |_, t| t < secs(60.0) || (t.as_millis() % 60_000) < 100);
    let got = rig.actions();
    // The first quiet minute is a false alarm, ended by the stream itself well after the
    // replacement; learned, the next quiet minutes are not alarmed.
    assert_eq!(
        got,
        [
            (70, Action::Resubscribe),
            (80, Action::ReplaceConnection),
            (110, Action::Resubscribe),
            (120, Action::Recovered)
        ]
    );
    assert!(rig.watch.bound(0) >= secs(120.0), "{:?}", rig.watch.bound(0));
}

#[test]
fn a_stream_not_carried_by_a_ready_connection_is_not_judged() {
    let mut rig = Rig::new(1, &[StreamKind::BookTicker]);
    rig.run(secs(5.0), |_, _| true);
    // The connection is lost for a minute (backoff, reconnect): no alarm, and the downtime is
    // not a gap of the stream.
    rig.carried[0] = None;
    rig.run(secs(65.0), |_, _| false);
    let back = rig.now;
    rig.carried[0] = Some(back);
    rig.run(secs(70.0), |_, t| t >= secs(65.5));
    assert_eq!(rig.actions(), []);
    assert_eq!(rig.watch.bound(0), FLOOR);
    // Subscribed again but silent: judged from the new subscription, not from the last message.
    rig.run(secs(90.0), |_, t| t < secs(72.0));
    assert_eq!(rig.actions(), [(82, Action::Resubscribe)]);
    assert!(rig.watch.age(0, rig.now) >= secs(18.0));
}

#[test]
fn stale_records_say_which_stream_since_when_and_what_was_done() {
    let ev = Event {
        slot: 0,
        action: Action::ReplaceConnection,
        silent: Duration::from_millis(20_250),
        bound: FLOOR,
        since_ns: 1_700_000_000_123_456_789,
    };
    let mut out = Vec::new();
    write_record(&mut out, "binance", "BTCUSDT", "aggTrade", &ev, 1_700_000_020_373_456_789);
    assert_eq!(
        std::str::from_utf8(&out).unwrap(),
        r#"{"type":"stale","exchange":"binance","symbol":"BTCUSDT","stream":"aggTrade","since_ns":1700000000123456789,"silent_ms":20250,"bound_ms":10000,"action":"replace_connection","recv_time_ns":1700000020373456789}"#
    );
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["action"], "replace_connection");
}

#[test]
fn a_liquidation_stream_is_never_stale_however_long_it_is_quiet() {
    // forceOrder speaks only when a position is liquidated: a calm market may have none for
    // hours, so its silence proves nothing (and the watch must not resubscribe or replace a
    // healthy connection for it). Beside it, a mark-price stream on the same silent connection
    // is found.
    let mut rig = Rig::new(1, &[StreamKind::ForceOrder, StreamKind::MarkPrice]);
    rig.run(secs(3600.0), |_, _| false);
    assert!(rig.events.iter().all(|(_, e)| e.slot == 1), "{:?}", rig.events);
    assert!(!rig.watch.is_silent(0));
    assert!(rig.watch.is_silent(1));
    // A liquidation now and then changes nothing either.
    let mut rig = Rig::new(1, &[StreamKind::ForceOrder]);
    rig.run(secs(7200.0), |_, t| t.as_secs() % 1800 == 0 && t.subsec_millis() == 0);
    assert_eq!(rig.actions(), []);
}

#[test]
fn a_mark_price_stream_is_held_to_its_clock_from_the_first_look() {
    // Nothing learned yet: a kind of unknown cadence may keep six floors (60 s), but a mark
    // price comes every 3 s, so 12 periods (36 s) of silence are a fault; every second: 12 s.
    let mut rig = Rig::new(1, &[StreamKind::MarkPrice, StreamKind::MarkPrice1s, StreamKind::BookTicker]);
    assert_eq!((rig.watch.bound(0), rig.watch.bound(1), rig.watch.bound(2)), (secs(36.0), secs(12.0), secs(60.0)));
    rig.run(secs(40.0), |_, _| false);
    let found: Vec<(usize, u64)> = rig.events.iter().map(|(t, e)| (e.slot, t.as_secs())).collect();
    assert_eq!(found, [(1, 12), (1, 24), (0, 36)]);
    // Delivering on its clock, it is never alarmed, and what it learns keeps the bound tight.
    let mut rig = Rig::new(1, &[StreamKind::MarkPrice]);
    rig.run(secs(300.0), |_, t| t.as_millis() % 3000 == 0);
    assert_eq!(rig.actions(), []);
    assert_eq!(rig.watch.bound(0), secs(36.0));
}
