//! A stream's cadence, learned from the gaps between its messages, and the silence it may
//! therefore keep before it counts as silent.
//!
//! Two estimates, the larger wins: [`MEAN_FACTOR`] times a moving average of the gaps (for
//! Poisson-like arrivals, a silence of 12 means has a chance of e^-12, about 6 in a million per
//! gap), and [`PEAK_FACTOR`] times the longest gap of the last 10 to 20 minutes (bursts with
//! long pauses between them). Both are clamped to the configured floor and cap. Before the
//! first gap, a kind that may be rare (trades on an illiquid market) may keep the cap; the
//! others, which any listed market keeps busy, [`FREQUENT_PRIOR`] floors.
//!
//! Gaps are observed by the watch as changes of the slot between two looks (every 100 ms), so
//! a gap is known to within that; the floor is far above it.

use std::time::{Duration, Instant};

use super::Bounds;

/// The bound is at least this many mean gaps.
pub const MEAN_FACTOR: f64 = 12.0;
/// The bound is at least this many times the longest recent gap.
pub const PEAK_FACTOR: u32 = 2;
/// Weight of a new gap in the moving average.
const MEAN_WEIGHT: f64 = 1.0 / 16.0;
/// The longest gap is remembered for one to two of these.
pub const PEAK_WINDOW: Duration = Duration::from_secs(600);
/// Before any gap, a frequent kind may keep this many floors of silence.
pub const FREQUENT_PRIOR: u32 = 6;

#[derive(Clone, Debug, Default)]
pub struct Cadence {
    /// Moving average of the gaps, seconds.
    mean: f64,
    samples: u32,
    /// Longest gap of the current window and of the one before it.
    peak: Duration,
    prev_peak: Duration,
    window_end: Option<Instant>,
    /// The venue's own period for this kind, if it keeps one: the cadence before any gap.
    period: Option<Duration>,
}

impl Cadence {
    /// A cadence that expects a message every `period` (the venue's promise) before it has
    /// learned any gap.
    pub fn expecting(period: Duration) -> Cadence {
        Cadence { period: Some(period), ..Cadence::default() }
    }

    /// Learns one gap, ending at `now`.
    pub fn learn(&mut self, gap: Duration, now: Instant) {
        match self.window_end {
            None => self.window_end = Some(now + PEAK_WINDOW),
            Some(end) if now >= end => {
                // A whole window without a gap forgets both.
                self.prev_peak = if now >= end + PEAK_WINDOW { Duration::ZERO } else { self.peak };
                self.peak = Duration::ZERO;
                self.window_end = Some(now + PEAK_WINDOW);
            }
            Some(_) => {}
        }
        let g = gap.as_secs_f64();
        self.mean = if self.samples == 0 { g } else { self.mean + (g - self.mean) * MEAN_WEIGHT };
        self.samples = self.samples.saturating_add(1);
        self.peak = self.peak.max(gap);
    }

    /// Gaps learned so far (saturating).
    pub fn samples(&self) -> u32 {
        self.samples
    }

    /// The silence the stream may keep before it counts as silent.
    pub fn bound(&self, rare: bool, b: Bounds) -> Duration {
        if self.samples == 0 {
            if let Some(p) = self.period {
                let bound = Duration::try_from_secs_f64(p.as_secs_f64() * MEAN_FACTOR).unwrap_or(b.cap);
                return bound.clamp(b.floor, b.cap.max(b.floor));
            }
            return if rare { b.cap } else { b.floor.saturating_mul(FREQUENT_PRIOR).min(b.cap) };
        }
        let from_mean = Duration::try_from_secs_f64(self.mean * MEAN_FACTOR).unwrap_or(b.cap);
        let from_peak = self.peak.max(self.prev_peak).saturating_mul(PEAK_FACTOR);
        from_mean.max(from_peak).clamp(b.floor, b.cap.max(b.floor))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Bounds = Bounds { floor: Duration::from_secs(10), cap: Duration::from_secs(900) };

    fn s(n: f64) -> Duration {
        Duration::from_secs_f64(n)
    }

    #[test]
    fn before_any_gap_rare_kinds_keep_the_cap_and_frequent_ones_six_floors() {
        let c = Cadence::default();
        assert_eq!(c.bound(true, B), B.cap);
        assert_eq!(c.bound(false, B), s(60.0));
        let tight = Bounds { floor: s(10.0), cap: s(30.0) };
        assert_eq!(c.bound(false, tight), s(30.0), "never past the cap");
    }

    #[test]
    fn a_busy_stream_keeps_the_floor_and_an_illiquid_one_many_of_its_gaps() {
        let t0 = Instant::now();
        // TC0: a trade every 10 ms, seen as a change every 100 ms look.
        let mut busy = Cadence::default();
        for i in 1..=1000u64 {
            busy.learn(s(0.1), t0 + Duration::from_millis(100 * i));
        }
        assert_eq!(busy.bound(true, B), B.floor);
        // TC1: an illiquid listing, one trade every 30-120 s: never alarmed within a gap, even
        // when the first gap was the shortest.
        let mut illiquid = Cadence::default();
        illiquid.learn(s(30.0), t0);
        assert!(illiquid.bound(true, B) >= s(360.0), "{:?}", illiquid.bound(true, B));
        let mut at = t0;
        for g in [120.0, 30.0, 90.0, 45.0, 120.0, 60.0] {
            at += s(g);
            illiquid.learn(s(g), at);
            assert!(illiquid.bound(true, B) >= s(240.0), "{:?}", illiquid.bound(true, B));
        }
        // TC2: bursts every minute: the longest gap, not the average, sets the bound.
        let mut bursty = Cadence::default();
        let mut at = t0;
        for _ in 0..10 {
            for _ in 0..20 {
                at += s(0.1);
                bursty.learn(s(0.1), at);
            }
            at += s(60.0);
            bursty.learn(s(60.0), at);
        }
        assert!(bursty.bound(true, B) >= s(120.0), "{:?}", bursty.bound(true, B));
        // TC3: nothing past the cap, however rare.
        let mut dead = Cadence::default();
        dead.learn(s(10_000.0), t0);
        assert_eq!(dead.bound(true, B), B.cap);
    }

    #[test]
    fn a_long_gap_is_forgotten_after_one_to_two_windows() {
        let t0 = Instant::now();
        let mut c = Cadence::default();
        c.learn(s(0.1), t0);
        c.learn(s(100.0), t0 + s(100.0));
        assert_eq!(c.bound(true, B), s(200.0), "twice the longest gap");
        // Busy again: a look every 100 ms for the rest of this window and the next.
        let mut at = t0 + s(100.0);
        while at < t0 + PEAK_WINDOW * 2 + s(1.0) {
            at += s(0.1);
            c.learn(s(0.1), at);
        }
        assert_eq!(c.bound(true, B), B.floor);
    }
}
