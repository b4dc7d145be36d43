//! Rate limits for log lines a peer or a broker can trigger at will (one per frame, one per
//! delivery report, one per librdkafka log call): the first `burst` occurrences of a kind in an
//! interval are logged, then none until the interval has passed, and the next line carries the
//! number suppressed in between, so a flood costs a bounded number of lines and still says how big
//! it was.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Rate-limits a log line per kind. Kinds beyond [`LogLimiter::MAX_KINDS`] share one entry, so
/// memory stays bounded whatever the kinds are (librdkafka names its own facilities).
pub struct LogLimiter {
    /// A lock rather than `&mut self`: the sink's delivery callbacks only get `&self`. Never
    /// contended on the event loop (one thread), and taken only off the record path.
    last: Mutex<HashMap<Box<str>, Entry>>,
    every: Duration,
    burst: u32,
}

struct Entry {
    since: Instant,
    logged: u32,
    suppressed: u64,
}

impl LogLimiter {
    pub const MAX_KINDS: usize = 64;

    pub fn new(every: Duration) -> Self {
        Self::with_burst(every, 1)
    }

    pub fn with_burst(every: Duration, burst: u32) -> Self {
        LogLimiter { last: Default::default(), every, burst: burst.max(1) }
    }

    /// `Some(suppressed)` when this kind may be logged now.
    pub fn check(&self, kind: &str) -> Option<u64> {
        self.check_at(kind, Instant::now())
    }

    fn check_at(&self, kind: &str, now: Instant) -> Option<u64> {
        // A poisoned lock only means another thread panicked mid-check; the counts stay usable.
        let mut m = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let kind = if m.len() >= Self::MAX_KINDS && !m.contains_key(kind) { "(other)" } else { kind };
        let Some(e) = m.get_mut(kind) else {
            m.insert(kind.into(), Entry { since: now, logged: 1, suppressed: 0 });
            return Some(0);
        };
        if now.duration_since(e.since) >= self.every {
            e.since = now;
            e.logged = 0;
        }
        if e.logged < self.burst {
            e.logged += 1;
            Some(std::mem::take(&mut e.suppressed))
        } else {
            e.suppressed = e.suppressed.saturating_add(1);
            None
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
    fn limiter_allows_a_burst_and_bounds_its_kinds() {
        let l = LogLimiter::with_burst(Duration::from_secs(3600), 3);
        assert_eq!(
            [l.check("FAIL"), l.check("FAIL"), l.check("FAIL"), l.check("FAIL")],
            [Some(0), Some(0), Some(0), None]
        );
        let l = LogLimiter::new(Duration::from_secs(3600));
        for i in 0..LogLimiter::MAX_KINDS + 10 {
            l.check(&format!("kind{i}"));
        }
        assert!(l.last.lock().unwrap().len() <= LogLimiter::MAX_KINDS + 1, "bounded");
    }

    #[test]
    fn the_line_that_gets_through_carries_the_count_suppressed_before_it() {
        let l = LogLimiter::new(Duration::ZERO);
        assert_eq!(l.check("a"), Some(0));
        assert_eq!(l.check("a"), Some(0), "a zero interval suppresses nothing");
        let l = LogLimiter::new(Duration::from_secs(3600));
        let t0 = Instant::now();
        assert_eq!(l.check_at("a", t0), Some(0));
        assert_eq!(l.check_at("a", t0 + Duration::from_secs(1)), None);
        assert_eq!(l.check_at("a", t0 + Duration::from_secs(3599)), None);
        assert_eq!(l.check_at("a", t0 + Duration::from_secs(3600)), Some(2));
        assert_eq!(l.check_at("a", t0 + Duration::from_secs(3601)), None);
    }
}
