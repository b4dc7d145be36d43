//! What a connection may spend and what it tolerates: the venue's outgoing-message and
//! connection-attempt limits (numbers from [`crate::venue::Limits`]), the reconnect backoff, and
//! the ping rate past which a peer is not Binance.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rand::RngExt;

use crate::stream::{Pace, StreamKind};

/// Our control requests count against the budget this much longer than a second: the server
/// counts a message when it reads it, a little later than we sent it, so at the edge of the
/// window its count can still hold a request ours has already let go.
const CONTROL_MARGIN: Duration = Duration::from_millis(250);

/// Binance pings every 20 s. A peer pinging more often than this within one second is not
/// Binance: each ping costs a pong (a write), and pongs past Binance's own limit of 5 messages
/// a second would get an honest connection cut anyway. The margin over that limit lets a few
/// pings delayed together by the network through.
pub const PING_FLOOD_LIMIT: u32 = 10;

/// A connection counts as stable once it has been open this long and delivered data; only then
/// does its next reconnect start the backoff over. Longer than Binance's 20 s ping interval (a
/// stable connection has answered a ping), and short enough that a connection lost after a
/// normal stretch of streaming reconnects at once: a peer that flaps any faster costs at most
/// one quick reconnect per 30 s, 10 per 5 minutes, against Binance's 280 of [`AttemptBudget`].
pub const STABLE_AFTER: Duration = Duration::from_secs(30);

/// The least silence a connection carrying streams of `kinds` may keep, whatever `WS_STALE_MS`
/// says: one and a half of the venue's ping intervals when every stream may be quiet for hours
/// (liquidations: then only pings show the peer alive, and USD-M pings every 3 minutes), else
/// nothing.
pub fn quiet_floor(mut kinds: impl Iterator<Item = StreamKind>, ping: Duration) -> Duration {
    if kinds.all(|k| k.pace() == Pace::Eventual) {
        ping.saturating_add(ping / 2)
    } else {
        Duration::ZERO
    }
}

/// How long to wait before reconnect attempt `attempt` (0 for the first after a stable
/// connection): 250 ms doubling to a 30 s cap, times a random factor in [0.5, 1) so a fleet
/// does not reconnect in lockstep.
pub fn backoff(attempt: u32) -> Duration {
    let base = Duration::from_millis(250).saturating_mul(1u32 << attempt.min(7));
    let capped = base.min(Duration::from_secs(30));
    capped.mul_f64(rand::rng().random_range(0.5..1.0))
}

/// The last `limit` send times of one kind, oldest at `next` (allocated once per connection).
#[derive(Debug)]
struct SendTimes {
    at: Box<[Option<Instant>]>,
    next: usize,
}

impl SendTimes {
    fn new(limit: usize) -> SendTimes {
        SendTimes { at: vec![None; limit.max(1)].into_boxed_slice(), next: 0 }
    }

    fn record(&mut self, now: Instant) {
        self.at[self.next] = Some(now);
        self.next = (self.next + 1) % self.at.len();
    }

    /// When each send still counted at `now` stops counting, a `window` after it was sent.
    fn expiries(&self, now: Instant, window: Duration) -> impl Iterator<Item = Instant> + '_ {
        self.at.iter().flatten().map(move |t| *t + window).filter(move |e| *e > now)
    }
}

/// The venue's outgoing limit (`limit` messages a second: Binance's is 5) over a sliding second,
/// so no second, however the venue aligns its count, holds more than `limit`. Pongs cannot wait
/// (tungstenite answers a ping as soon as it is read), so control requests leave room for as many
/// pongs as the last second saw, plus one, and keep one more spare.
#[derive(Debug)]
pub struct OutgoingBudget {
    control: SendTimes,
    pongs: SendTimes,
    /// Recent controls plus recent pongs may be at most this for another request to go:
    /// `controls + 1 + (pongs + 1) < limit`.
    room: usize,
}

impl OutgoingBudget {
    pub fn new(limit: usize) -> OutgoingBudget {
        OutgoingBudget { control: SendTimes::new(limit), pongs: SendTimes::new(limit), room: limit.saturating_sub(3) }
    }

    /// When a control request may go: now, or once enough sends have stopped counting.
    pub fn control_at(&self, now: Instant) -> Instant {
        let mut expiries: Vec<Instant> = self
            .control
            .expiries(now, Duration::from_secs(1) + CONTROL_MARGIN)
            .chain(self.pongs.expiries(now, Duration::from_secs(1)))
            .collect();
        match expiries.len().checked_sub(self.room) {
            None | Some(0) => now,
            Some(over) => {
                // Each send that stops counting lowers the sum by one.
                expiries.sort_unstable();
                expiries[over - 1]
            }
        }
    }

    pub fn allows_control(&self, now: Instant) -> bool {
        self.control_at(now) <= now
    }

    pub fn record_control(&mut self, now: Instant) {
        self.control.record(now);
    }

    pub fn record_pong(&mut self, now: Instant) {
        self.pongs.record(now);
    }
}

/// Pings counted per one-second window, to tell Binance (one every 20 s) from a flood.
#[derive(Debug)]
pub struct PingRate {
    window_start: Instant,
    in_window: u32,
}

impl PingRate {
    pub fn new(now: Instant) -> PingRate {
        PingRate { window_start: now, in_window: 0 }
    }

    /// Counts a ping received at `now`; false once more than [`PING_FLOOD_LIMIT`] came within
    /// one window.
    pub fn allow(&mut self, now: Instant) -> bool {
        if now.saturating_duration_since(self.window_start) >= Duration::from_secs(1) {
            self.window_start = now;
            self.in_window = 0;
        }
        self.in_window = self.in_window.saturating_add(1);
        self.in_window <= PING_FLOOD_LIMIT
    }
}

/// The venue's connection-attempt limit (Binance: 300 per 5 minutes per IP); one budget for all
/// connections.
pub struct AttemptBudget {
    /// Bounded by `max`: a slot is pushed only while fewer than `max` are held.
    recent: VecDeque<Instant>,
    max: usize,
    window: Duration,
}

impl AttemptBudget {
    /// At most `max` attempts in any `window`.
    pub fn new(max: usize, window: Duration) -> AttemptBudget {
        AttemptBudget { recent: Default::default(), max, window }
    }

    /// Takes a slot now, or says when one frees up.
    pub fn take(&mut self, now: Instant) -> Result<(), Instant> {
        while self.recent.front().is_some_and(|t| now.duration_since(*t) >= self.window) {
            self.recent.pop_front();
        }
        if self.recent.len() >= self.max {
            return Err(self.recent[0] + self.window);
        }
        self.recent.push_back(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_requests_leave_room_for_the_pongs() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        // No pings (Binance pings every 20 s): three requests, then a pause of a second and the
        // margin, so the server's count (taken a little later) has let them go too.
        let mut b = OutgoingBudget::new(crate::binance::venue::MESSAGES_PER_SECOND);
        for _ in 0..3 {
            assert!(b.allows_control(t0));
            b.record_control(t0);
        }
        assert!(!b.allows_control(ms(1000)), "still inside the margin");
        assert_eq!(b.control_at(ms(10)), ms(1250));
        // Pings every 400 ms: at most three pongs in a second, so at most two requests.
        let mut b = OutgoingBudget::new(crate::binance::venue::MESSAGES_PER_SECOND);
        b.record_pong(ms(0));
        b.record_pong(ms(400));
        assert!(b.allows_control(ms(500)));
        b.record_control(ms(500));
        assert!(!b.allows_control(ms(500)), "2 pongs + 1 request + room for 2 more pongs");
        assert_eq!(b.control_at(ms(500)), ms(1000), "when the pong at 0 stops counting");
        b.record_pong(ms(800));
        assert_eq!(b.control_at(ms(900)), ms(1400));
    }

    #[test]
    fn a_ping_flood_is_told_from_binance_and_from_a_burst() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        // Binance: one ping every 20 s, for an hour.
        let mut r = PingRate::new(t0);
        assert!((0..180).all(|i| r.allow(ms(i * 20_000))));
        // Pings held up by the network and delivered together: let through.
        let mut r = PingRate::new(t0);
        assert!((0..PING_FLOOD_LIMIT).all(|_| r.allow(ms(5))));
        // One more within the same second is a flood; a second later the count starts over.
        assert!(!r.allow(ms(900)));
        assert!(r.allow(ms(1005)));
        // Hundreds a second: refused within the first second.
        let mut r = PingRate::new(t0);
        assert_eq!((0..300).position(|i| !r.allow(ms(i * 3))), Some(PING_FLOOD_LIMIT as usize));
    }

    #[test]
    fn backoff_doubles_to_a_jittered_cap() {
        for (attempt, full_ms) in [(0, 250), (1, 500), (3, 2_000), (6, 16_000), (7, 30_000), (40, 30_000)] {
            let d = backoff(attempt).as_millis() as u64;
            assert!(d >= full_ms / 2 && d < full_ms, "attempt {attempt}: {d} ms");
        }
    }

    #[test]
    fn the_attempt_budget_refuses_past_its_limit_until_the_window_moves() {
        let t0 = Instant::now();
        let l = crate::binance::venue::VENUE.limits;
        let mut b = AttemptBudget::new(l.attempts, l.attempt_window);
        for _ in 0..280 {
            assert!(b.take(t0).is_ok());
        }
        assert_eq!(b.take(t0 + Duration::from_secs(1)), Err(t0 + Duration::from_secs(300)));
        assert!(b.take(t0 + Duration::from_secs(300)).is_ok());
    }
}
