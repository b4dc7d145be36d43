//! Wake-up coalescing (`LOOP_COALESCE_US`). At a smooth rate every message otherwise costs the
//! blocking loop a wake-up of its own: the context switch, `epoll_wait`, a `recv` that returns
//! one message and one that returns `WouldBlock`. Waiting a little after a turn that read data
//! lets the next messages gather in the socket, so one wake-up and one read take them together.
//!
//! The wait is a `park_timeout` (nanosecond timer; `epoll_wait` rounds up to a millisecond),
//! which shutdown ends by unparking the thread. It is adaptive: it starts only once two data
//! turns came less than half a window apart (at least two messages a window to gather), and it
//! stops as soon as a nap found nothing waiting after it, so at low rates every message still
//! goes at once and costs no extra wake-up. A nap cannot tell one message from many, so every
//! [`PROBE_EVERY`] naps one turn goes without and the gap to the next data turn is measured
//! again: a rate that fell to about one message a window (each nap then buys latency, no saved
//! wake-up) turns it off.

use std::time::{Duration, Instant};

use crate::shutdown::Shutdown;

/// Naps between two turns without one, which measure the rate again.
const PROBE_EVERY: u32 = 32;

pub struct Coalescer {
    window: Duration,
    /// When the last turn that read data began.
    last_data_turn: Option<Instant>,
    /// Messages arrive fast enough for a nap to gather some.
    on: bool,
    /// Naps since the last probe.
    naps: u32,
    /// This turn went without a nap: the next data turn's gap decides whether to go on.
    probing: bool,
}

impl Coalescer {
    /// `window`: `LOOP_COALESCE_US` (zero: never waits).
    pub fn new(window: Duration) -> Coalescer {
        Coalescer { window, last_data_turn: None, on: false, naps: 0, probing: false }
    }

    pub fn enabled(&self) -> bool {
        !self.window.is_zero()
    }

    pub fn window(&self) -> Duration {
        self.window
    }

    /// How long to nap before the next poll, after a turn that began (its poll returned) at
    /// `began` and ended at `now`. `read`: the turn handled a connection's readiness (data,
    /// mostly); `more`: a connection still holds data it had no budget to read (no wait then);
    /// `deadline`: the earliest timer (pings and pongs, handshake and stale timeouts,
    /// housekeeping), which a nap never passes.
    pub fn after_turn(&mut self, began: Instant, now: Instant, read: bool, more: bool, deadline: Instant) -> Duration {
        if self.window.is_zero() || !read {
            return Duration::ZERO;
        }
        if let Some(last) = self.last_data_turn.replace(began) {
            // Two data turns within half a window: at least two messages a window to gather.
            let fast = began.saturating_duration_since(last) < self.window / 2;
            let probed = std::mem::take(&mut self.probing);
            self.on = fast || (self.on && !probed);
        }
        if !self.on || more {
            return Duration::ZERO;
        }
        self.naps += 1;
        if self.naps >= PROBE_EVERY {
            self.naps = 0;
            self.probing = true;
            return Duration::ZERO;
        }
        (began + self.window).min(deadline).saturating_duration_since(now)
    }

    /// After the poll that follows a nap: `found` is whether anything was waiting. Nothing
    /// waiting means the nap bought no message, only latency: stop until the rate comes back.
    pub fn after_nap(&mut self, found: bool) {
        self.on &= found;
    }
}

/// Sleeps `d` unless shutdown comes first (the thread must be registered with
/// [`Shutdown::add_thread`]); true when it slept the whole time. Spurious wake-ups park again
/// for the rest: the loop never spins here.
pub fn nap(d: Duration, shutdown: &Shutdown) -> bool {
    nap_then(d, shutdown, || {})
}

/// [`nap`], calling `before_park` after each look at the shutdown flag, right before it parks
/// (a test triggers shutdown there: only the unpark can end that park).
fn nap_then(d: Duration, shutdown: &Shutdown, mut before_park: impl FnMut()) -> bool {
    let until = Instant::now() + d;
    loop {
        if shutdown.is_triggered() {
            return false;
        }
        let now = Instant::now();
        if now >= until {
            return true;
        }
        before_park();
        std::thread::park_timeout(until - now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Duration = Duration::from_micros(500);

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    /// A coalescer that has seen two data turns 100 µs apart (so it naps), the second at `t`.
    fn coalescing(t: Instant) -> Coalescer {
        let mut c = Coalescer::new(W);
        let far = t + Duration::from_secs(1);
        assert_eq!(c.after_turn(t - us(100), t - us(100), true, false, far), Duration::ZERO, "first turn: no rate yet");
        assert_eq!(c.after_turn(t, t, true, false, far), W);
        c
    }

    #[test]
    fn the_wait_runs_to_one_window_after_the_wake_up_and_no_further() {
        let t = Instant::now();
        let mut c = coalescing(t);
        let far = t + Duration::from_secs(1);
        // The turn took 120 µs: the nap is the rest of the window from the wake-up.
        assert_eq!(c.after_turn(t + us(400), t + us(520), true, false, far), us(380));
        // A turn that outlasted the window: poll at once.
        assert_eq!(c.after_turn(t + us(800), t + us(1400), true, false, far), Duration::ZERO);
    }

    #[test]
    fn a_due_deadline_cuts_the_wait() {
        let t = Instant::now();
        let mut c = coalescing(t);
        assert_eq!(c.after_turn(t + us(200), t + us(200), true, false, t + us(300)), us(100), "a ping due sooner");
        assert_eq!(c.after_turn(t + us(400), t + us(400), true, false, t + us(350)), Duration::ZERO, "already due");
    }

    #[test]
    fn no_wait_after_a_turn_without_data_or_with_data_left_unread() {
        let t = Instant::now();
        let mut c = coalescing(t);
        let far = t + Duration::from_secs(1);
        assert_eq!(c.after_turn(t + us(100), t + us(100), false, false, far), Duration::ZERO, "a timer's turn");
        assert_eq!(c.after_turn(t + us(200), t + us(200), true, true, far), Duration::ZERO, "read budget ran out");
        assert_eq!(c.after_turn(t + us(300), t + us(300), true, false, far), W, "still on");
    }

    #[test]
    fn slow_arrivals_never_wait_and_a_nap_that_found_nothing_stops_it() {
        let t = Instant::now();
        let far = t + Duration::from_secs(10);
        let mut c = Coalescer::new(W);
        // 1k msg/s: a data turn every millisecond, more than half a window apart.
        for i in 0..10 {
            let at = t + us(1000 * i);
            assert_eq!(c.after_turn(at, at, true, false, far), Duration::ZERO, "turn {i}");
        }
        let mut c = coalescing(t);
        c.after_nap(true);
        assert_eq!(c.after_turn(t + us(600), t + us(600), true, false, far), W, "the nap gathered messages");
        c.after_nap(false);
        assert_eq!(
            c.after_turn(t + us(1500), t + us(1500), true, false, far),
            Duration::ZERO,
            "off until the rate returns"
        );
        assert_eq!(c.after_turn(t + us(1600), t + us(1600), true, false, far), W, "two turns 100 µs apart: on again");
    }

    #[test]
    fn a_probe_turns_it_off_when_the_rate_fell_to_one_message_a_window() {
        let t = Instant::now();
        let far = t + Duration::from_secs(10);
        // 16k msg/s: the probe's next data turn comes 62 µs later, and naps go on.
        let mut c = coalescing(t);
        let mut at = t;
        let mut probes = 0;
        for _ in 0..(3 * PROBE_EVERY) {
            at += W;
            if c.after_turn(at, at, true, false, far).is_zero() {
                probes += 1;
                at += us(62);
                assert_eq!(c.after_turn(at, at, true, false, far), W, "fast: still on after the probe");
            }
            c.after_nap(true);
        }
        assert_eq!(probes, 3);
        // 1k msg/s with a 500 µs window: each nap still finds the next message (it came during
        // the nap), but the probe sees a millisecond between data turns.
        let mut c = coalescing(t);
        let mut at = t;
        let naps = (0..10 * PROBE_EVERY).find(|_| {
            at += us(1000);
            let probe = c.after_turn(at, at, true, false, far).is_zero();
            c.after_nap(true);
            probe
        });
        assert_eq!(naps, Some(PROBE_EVERY - 2), "the probe came after {PROBE_EVERY} naps in all");
        at += us(1000);
        assert_eq!(c.after_turn(at, at, true, false, far), Duration::ZERO, "off after the probe");
        at += us(1000);
        assert_eq!(c.after_turn(at, at, true, false, far), Duration::ZERO, "and stays off");
    }

    #[test]
    fn a_zero_window_never_waits() {
        let t = Instant::now();
        let mut c = Coalescer::new(Duration::ZERO);
        assert!(!c.enabled());
        for i in 0..5 {
            let at = t + us(10 * i);
            assert_eq!(c.after_turn(at, at, true, false, t + Duration::from_secs(1)), Duration::ZERO);
        }
    }

    #[test]
    fn shutdown_ends_a_nap() {
        let shutdown = Shutdown::new();
        let (parking_tx, parking) = std::sync::mpsc::channel();
        let (done_tx, done) = std::sync::mpsc::channel();
        let s = shutdown.clone();
        std::thread::spawn(move || {
            s.add_thread(std::thread::current());
            let slept = nap_then(Duration::from_secs(3600), &s, || {
                let _ = parking_tx.send(());
            });
            done_tx.send(slept).unwrap();
        });
        // The napper has seen the flag unset and is about to park: from here only the unpark
        // can end its hour.
        parking.recv().unwrap();
        shutdown.trigger();
        // The minute only bounds the wait, for a failure to be reported rather than hang.
        let slept = done.recv_timeout(Duration::from_secs(60)).expect("shutdown did not end the nap");
        assert!(!slept, "the nap reports that it was cut short");
        assert!(!nap(Duration::from_secs(3600), &shutdown), "after shutdown a nap does not start");
    }

    #[test]
    fn a_nap_sleeps_its_time_through_stray_unparks() {
        let shutdown = Shutdown::new();
        let me = std::thread::current();
        me.unpark();
        // A stray unpark token ends one park early; the nap parks again for the rest.
        let t = Instant::now();
        assert!(nap(Duration::from_millis(20), &shutdown));
        assert!(t.elapsed() >= Duration::from_millis(20));
    }
}
