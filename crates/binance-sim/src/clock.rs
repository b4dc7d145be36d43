//! When each event happens, and the unit its times are written in.
//!
//! Event `k` of a stream happens a fixed offset after the market's start: a pure function of
//! `k`, so every connection and REST agree on it and a test can recompute it.

use crate::hash::mix;

/// The unit of every time field a client asked for: Binance's `timeUnit=` URL parameter on
/// streams and `X-MBX-TIME-UNIT` header on REST (README §2.4: `MILLISECOND`, `millisecond`,
/// `MICROSECOND`, `microsecond`; milliseconds when absent).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TimeUnit {
    #[default]
    Millisecond,
    Microsecond,
}

impl TimeUnit {
    /// The unit named by a `timeUnit` parameter or `X-MBX-TIME-UNIT` header; `None` for a value
    /// Binance does not list (mixed case included).
    pub fn parse(s: &str) -> Option<TimeUnit> {
        match s {
            "MILLISECOND" | "millisecond" => Some(TimeUnit::Millisecond),
            "MICROSECOND" | "microsecond" => Some(TimeUnit::Microsecond),
            _ => None,
        }
    }

    /// A time held in microseconds, written in this unit (milliseconds round down, as a
    /// millisecond clock reads).
    pub fn from_us(self, us: i64) -> i64 {
        match self {
            TimeUnit::Millisecond => us.div_euclid(1000),
            TimeUnit::Microsecond => us,
        }
    }

    /// A time held in milliseconds (a candle boundary), written in this unit.
    pub fn from_ms(self, ms: i64) -> i64 {
        match self {
            TimeUnit::Millisecond => ms,
            TimeUnit::Microsecond => ms.saturating_mul(1000),
        }
    }

    /// The last instant of a span ending before the millisecond boundary `end_ms` (a candle's
    /// close time: `t + len - 1` in either unit).
    pub fn last_before_ms(self, end_ms: i64) -> i64 {
        self.from_ms(end_ms) - 1
    }
}

/// Far enough in the future to mean "never", with room left to add an epoch.
const NEVER_US: u64 = i64::MAX as u64 / 4;

/// When events of one stream happen, counted in microseconds from the market's start.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Schedule {
    /// `rate` events a second, evenly: event `k` once `k + 1` intervals have passed.
    Even { rate: f64 },
    /// Gaps drawn from `mean - 2 * jitter ..= mean + 2 * jitter`: event `k` at
    /// `(k + 1) * mean + d(k)`, each `d(k)` in `-jitter..=jitter`, so two consecutive events are
    /// `mean + d(k) - d(k-1)` apart, and the count by any time is found in two steps.
    Jittered { mean_us: u64, jitter_us: u64, key: u64 },
}

impl Schedule {
    /// Gaps between `min` and `max` microseconds (in either order), drawn from `key`.
    pub(crate) fn every(min_us: u64, max_us: u64, key: u64) -> Schedule {
        let (lo, hi) = (min_us.min(max_us), min_us.max(max_us));
        // A zero gap would put every event at the start: one microsecond at least.
        let mean_us = (lo / 2 + hi / 2 + (lo % 2 + hi % 2) / 2).max(1);
        Schedule::Jittered { mean_us, jitter_us: (hi - lo) / 4, key }
    }

    /// Microseconds after the start at which event `k` happens.
    pub(crate) fn offset_us(&self, k: u64) -> u64 {
        match *self {
            Schedule::Even { rate } if rate > 0.0 => {
                let us = (k as f64 + 1.0) * 1e6 / rate;
                if us < NEVER_US as f64 {
                    us as u64
                } else {
                    NEVER_US
                }
            }
            Schedule::Even { .. } => NEVER_US,
            Schedule::Jittered { mean_us, jitter_us, key } => {
                let d = mix(key ^ k) % (2 * jitter_us + 1);
                k.saturating_add(1).saturating_mul(mean_us).saturating_add(d).saturating_sub(jitter_us).min(NEVER_US)
            }
        }
    }

    /// Events that have happened `elapsed_us` after the start.
    pub(crate) fn count(&self, elapsed_us: u64) -> u64 {
        match *self {
            Schedule::Even { rate } if rate > 0.0 => (elapsed_us as f64 / 1e6 * rate).floor() as u64,
            Schedule::Even { .. } => 0,
            Schedule::Jittered { mean_us, jitter_us, .. } => {
                // Event k is at least (k+1)*mean - jitter and at most (k+1)*mean + jitter: the
                // first (e - jitter)/mean events have surely happened, and 2*jitter <= mean leaves
                // at most two more to look at.
                let mut n = elapsed_us.saturating_sub(jitter_us) / mean_us;
                while n < u64::MAX && self.offset_us(n) <= elapsed_us {
                    n += 1;
                }
                n
            }
        }
    }

    /// Events a second, on average.
    pub(crate) fn rate(&self) -> f64 {
        match *self {
            Schedule::Even { rate } => rate.max(0.0),
            Schedule::Jittered { mean_us, .. } => 1e6 / mean_us as f64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jittered_gaps_stay_in_their_range_and_the_count_agrees_with_the_times() {
        let s = Schedule::every(30_000_000, 120_000_000, 7);
        let times: Vec<u64> = (0..2_000).map(|k| s.offset_us(k)).collect();
        assert!((30_000_000..=120_000_000).contains(&times[0]), "{}", times[0]);
        let gaps: Vec<u64> = times.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.iter().all(|g| (30_000_000..=120_000_000).contains(g)), "{gaps:?}");
        // Random, not a fixed beat: both halves of the range are used.
        assert!(gaps.iter().any(|g| *g < 50_000_000) && gaps.iter().any(|g| *g > 100_000_000));
        for (k, t) in times.iter().enumerate().take(200) {
            assert_eq!(s.count(*t), k as u64 + 1, "event {k} has happened at its own time");
            assert_eq!(s.count(t - 1), k as u64, "and not a microsecond before");
        }
        assert_eq!(s.count(0), 0);
    }

    #[test]
    fn even_schedules_keep_their_rate_and_a_zero_rate_never_fires() {
        let s = Schedule::Even { rate: 1_000.0 };
        assert_eq!((s.offset_us(0), s.offset_us(999)), (1_000, 1_000_000));
        assert_eq!(s.count(1_000_000), 1_000);
        let never = Schedule::Even { rate: 0.0 };
        assert_eq!(never.count(u64::MAX / 2), 0);
        assert!(never.offset_us(0) >= NEVER_US);
    }

    #[test]
    fn time_units_are_binance_s_four_spellings() {
        for (s, u) in [
            ("MICROSECOND", TimeUnit::Microsecond),
            ("microsecond", TimeUnit::Microsecond),
            ("MILLISECOND", TimeUnit::Millisecond),
            ("millisecond", TimeUnit::Millisecond),
        ] {
            assert_eq!(TimeUnit::parse(s), Some(u));
        }
        for bad in ["Microsecond", "us", "", "NANOSECOND"] {
            assert_eq!(TimeUnit::parse(bad), None, "{bad}");
        }
        assert_eq!(TimeUnit::Millisecond.from_us(1_700_000_000_123_999), 1_700_000_000_123);
        assert_eq!(TimeUnit::Microsecond.last_before_ms(60_000), 59_999_999);
        assert_eq!(TimeUnit::Millisecond.last_before_ms(60_000), 59_999);
    }
}
