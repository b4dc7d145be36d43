//! A sink that stops acknowledging: how long its records have waited in flight with no
//! acknowledgement, as the producer thread sees it at each turn.
//!
//! What is measured is the time since the last acknowledgement (a delivery report without error)
//! while records are in flight, counted from the moment records were first seen in flight when
//! none were acknowledged since. Not the age of the oldest record in flight: that would need a
//! timestamp per record and a structure ordered by it (delivery reports come back out of order
//! across partitions), on the hot path; this needs one flag the delivery callback sets and one
//! clock read per producer turn. The two grow alike in a stall (every record waits); they differ
//! when one broker of several stops while the others acknowledge, which this does not see (Event
//! Hubs throttles and fails a namespace as a whole). Failed deliveries are no acknowledgement:
//! records that time out while new ones keep waiting leave the stall in place.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::metrics::Metrics;

/// The producer thread's watch over the sink's acknowledgements.
#[derive(Debug)]
pub struct StallWatch {
    bound: Duration,
    /// When the current wait began: the last acknowledgement, or the first turn that found
    /// records in flight after none were; `None` while nothing is in flight.
    since: Option<Instant>,
}

impl StallWatch {
    /// A watch that calls a wait of `bound` or more a stall.
    pub fn new(bound: Duration) -> StallWatch {
        StallWatch { bound, since: None }
    }

    /// One look at `now`: `in_flight` records handed over and not yet reported, and whether any
    /// was acknowledged since the last look. Returns how long they have waited unacknowledged.
    pub fn observe(&mut self, now: Instant, in_flight: usize, acked: bool) -> Duration {
        if in_flight == 0 {
            self.since = None;
            return Duration::ZERO;
        }
        if acked {
            self.since = Some(now);
            return Duration::ZERO;
        }
        now.saturating_duration_since(*self.since.get_or_insert(now))
    }

    /// Whether a wait of `age` is a stall.
    pub fn stalled(&self, age: Duration) -> bool {
        age >= self.bound
    }

    /// [`Self::observe`], published: the `kafka_unacked_age_seconds` gauge, and the stall in the
    /// lane's health (readiness down, `/readyz` naming it) while it lasts.
    pub fn update(&mut self, now: Instant, in_flight: usize, acked: bool, metrics: &Metrics) {
        if acked {
            metrics.health.ack_turns.fetch_add(1, Ordering::Relaxed);
        }
        let age = self.observe(now, in_flight, acked);
        metrics.kafka_unacked_age.set(age.as_secs_f64());
        // At least 1 ms while stalled (the bound is at least 1 s), so 0 keeps meaning "none".
        let stall_ms = if self.stalled(age) { (age.as_millis() as u64).max(1) } else { 0 };
        metrics.health.sink_stall_ms.store(stall_ms, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn the_wait_grows_only_while_records_are_in_flight_and_unacknowledged() {
        let t0 = Instant::now();
        let mut w = StallWatch::new(15 * S);
        assert_eq!(w.observe(t0, 0, false), Duration::ZERO, "nothing in flight");
        // Records handed over: the wait counts from the first look that saw them.
        assert_eq!(w.observe(t0 + S, 10, false), Duration::ZERO);
        assert_eq!(w.observe(t0 + 5 * S, 10, false), 4 * S);
        assert!(!w.stalled(4 * S));
        let age = w.observe(t0 + 16 * S, 500, false);
        assert_eq!(age, 15 * S);
        assert!(w.stalled(age), "the bound itself is a stall");
        // One acknowledgement ends it, whatever is still in flight; the wait restarts from it.
        assert_eq!(w.observe(t0 + 17 * S, 499, true), Duration::ZERO);
        assert_eq!(w.observe(t0 + 18 * S, 499, false), S);
        // Everything reported (acknowledged or failed): no wait, and the next records start afresh.
        assert_eq!(w.observe(t0 + 19 * S, 0, false), Duration::ZERO);
        assert_eq!(w.observe(t0 + 40 * S, 3, false), Duration::ZERO);
        assert_eq!(w.observe(t0 + 41 * S, 3, false), S);
    }

    #[test]
    fn failures_are_no_acknowledgement_and_a_clock_going_back_is_no_wait() {
        let t0 = Instant::now() + 100 * S;
        let mut w = StallWatch::new(S);
        w.observe(t0, 100, false);
        // Records failing (fewer in flight, none acknowledged) while others still wait.
        assert_eq!(w.observe(t0 + 2 * S, 40, false), 2 * S);
        assert_eq!(w.observe(t0 - S, 40, false), Duration::ZERO, "saturates, never panics");
    }

    #[test]
    fn the_stall_reaches_the_gauge_and_readiness_and_leaves_both_on_an_acknowledgement() {
        let m = Metrics::new(&["btcusdt".to_string()]);
        m.health.subscribed.store(true, Ordering::Relaxed);
        m.health.sink_ready.store(true, Ordering::Relaxed);
        let t0 = Instant::now();
        let mut w = StallWatch::new(15 * S);
        w.update(t0, 7, false, &m);
        w.update(t0 + 14 * S, 7, false, &m);
        assert_eq!(m.kafka_unacked_age.get(), 14.0);
        assert!(m.health.ready(), "under the bound");
        w.update(t0 + 20 * S + Duration::from_millis(500), 9, false, &m);
        assert_eq!(m.kafka_unacked_age.get(), 20.5);
        assert_eq!(m.health.sink_stall_ms.load(Ordering::Relaxed), 20_500);
        assert!(!m.health.ready(), "past the bound");
        assert_eq!(m.health.ack_turns.load(Ordering::Relaxed), 0);
        w.update(t0 + 21 * S, 9, true, &m);
        assert_eq!(m.health.ack_turns.load(Ordering::Relaxed), 1, "a turn that saw an acknowledgement is counted");
        assert_eq!((m.kafka_unacked_age.get(), m.health.sink_stall_ms.load(Ordering::Relaxed)), (0.0, 0));
        assert!(m.health.ready(), "ready again on the acknowledgement");
    }
}
