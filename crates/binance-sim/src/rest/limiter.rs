//! Binance's REQUEST_WEIGHT limiter, one per REST listener, and the counters tests read.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// REST requests served (for tests), and the limiter's state.
#[derive(Default)]
pub struct RestStats {
    pub requests: AtomicU64,
    /// 429 answers: over the weight limit.
    pub throttled: AtomicU64,
    /// 418 answers: banned, by `RestStats::ban` or for ignoring a `Retry-After`.
    pub banned: AtomicU64,
    /// Requests that came before the `Retry-After` of an earlier 429/418 had passed (Binance
    /// answers those with an IP ban; a well-behaved client makes none).
    pub early: AtomicU64,
    /// 403 answers: the web-application-firewall fault.
    pub waf_blocked: AtomicU64,
    /// Requests answered with a 5xx because the listener was down (the outage fault).
    pub outage_answers: AtomicU64,
    /// Times the listener closed its socket (the outage fault, connections refused; the kernel
    /// refuses them, so they are not counted one by one).
    pub outages: AtomicU64,
    limiter: Mutex<Limiter>,
}

#[derive(Default)]
struct Limiter {
    /// Start of the current weight window and the weight used in it.
    window: Option<(Instant, u32)>,
    /// No request is welcome before this (the last `Retry-After` given).
    retry_at: Option<Instant>,
    /// Banned until this: every request gets 418.
    ban_until: Option<Instant>,
}

impl RestStats {
    pub(crate) fn ban(&self, until: Instant) {
        let mut l = self.limiter.lock().unwrap_or_else(|e| e.into_inner());
        l.ban_until = Some(until);
        l.retry_at = None;
    }

    /// Counts `cost` against the window: `Ok(weight used)`, or `Err((status, weight used,
    /// Retry-After seconds))`. Past the limit 429 with `Retry-After` (seconds to the window's
    /// end); a request before a given `Retry-After` has passed gets a 418 ban of two windows.
    pub(crate) fn charge(&self, cost: u32, limit: u32, window: Duration) -> Result<u32, (u16, u32, u64)> {
        let mut l = self.limiter.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if l.retry_at.is_some_and(|t| now < t) {
            self.early.fetch_add(1, Ordering::Relaxed);
            l.ban_until = Some(now + 2 * window);
            l.retry_at = None;
        }
        let (start, used) = l.window.get_or_insert((now, 0));
        if now.duration_since(*start) >= window {
            *start = now;
            *used = 0;
        }
        *used = used.saturating_add(cost);
        let (used, window_end) = (*used, *start + window);
        if let Some(until) = l.ban_until.filter(|t| now < *t) {
            self.banned.fetch_add(1, Ordering::Relaxed);
            // The ban itself is the retry time: coming back earlier is another violation.
            let secs = secs_until(now, until);
            l.retry_at = Some(now + Duration::from_secs(secs));
            return Err((418, used, secs));
        }
        if used > limit {
            self.throttled.fetch_add(1, Ordering::Relaxed);
            let secs = secs_until(now, window_end).max(1);
            l.retry_at = Some(now + Duration::from_secs(secs));
            return Err((429, used, secs));
        }
        Ok(used)
    }
}

/// Whole seconds from `now` to `t`, rounded up, as `Retry-After` states them.
fn secs_until(now: Instant, t: Instant) -> u64 {
    let d = t.saturating_duration_since(now);
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// `GET /api/v3/depth`'s weight by `limit` (README §4: 1-100: 5, 101-500: 25, 501-1000: 50,
/// 1001-5000: 250).
pub(crate) fn depth_weight(limit: usize) -> u32 {
    match limit {
        0..=100 => 5,
        101..=500 => 25,
        501..=1000 => 50,
        _ => 250,
    }
}
