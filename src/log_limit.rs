//! Rate limits for log lines a peer or a broker can trigger at will (one per frame, one per
//! delivery report): the first occurrence of a kind is logged, then at most one per interval,
//! carrying the number suppressed in between, so a flood costs a bounded number of lines and
//! still says how big it was.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Rate-limits a log line per kind: the first occurrence, then at most one per interval, with the
/// number suppressed in between. Kinds are `&'static str`, so the map is bounded by the code.
pub struct LogLimiter {
    /// A lock rather than `&mut self`: the sink's delivery callbacks only get `&self`. Never
    /// contended on the event loop (one thread), and taken only off the record path.
    last: Mutex<HashMap<&'static str, (Instant, u64)>>,
    every: Duration,
}

impl LogLimiter {
    pub fn new(every: Duration) -> Self {
        LogLimiter { last: Default::default(), every }
    }

    /// `Some(suppressed)` when this kind may be logged now.
    pub fn check(&self, kind: &'static str) -> Option<u64> {
        // A poisoned lock only means another thread panicked mid-check; the counts stay usable.
        let mut m = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        match m.get_mut(kind) {
            Some((t, n)) if now.duration_since(*t) < self.every => {
                *n = n.saturating_add(1);
                None
            }
            Some((t, n)) => {
                let s = *n;
                *t = now;
                *n = 0;
                Some(s)
            }
            None => {
                m.insert(kind, (now, 0));
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_lets_the_first_through_then_counts() {
        let l = LogLimiter::new(Duration::from_secs(3600));
        assert_eq!(l.check("a"), Some(0));
        assert_eq!(l.check("a"), None);
        assert_eq!(l.check("b"), Some(0));
    }

    #[test]
    fn the_line_that_gets_through_carries_the_count_suppressed_before_it() {
        let l = LogLimiter::new(Duration::from_millis(2));
        assert_eq!(l.check("a"), Some(0));
        let mut suppressed = 0;
        let reported = loop {
            match l.check("a") {
                None => suppressed += 1,
                Some(n) => break n,
            }
        };
        assert!(suppressed > 0);
        assert_eq!(reported, suppressed);
    }
}
