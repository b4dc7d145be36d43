//! REST snapshots for the producer's order books (the venue's depth, e.g. spot's `/api/v3/depth`,
//! USD-M's `/fapi/v1/depth`), fetched here because this
//! thread owns the REST client, its weight accounting and its waits. Nothing is published from
//! here: the snapshot goes to the producer thread ([`crate::handoff::depth`]), which puts it in
//! the topic at the right place.
//!
//! Throttled across symbols: snapshots spend at most half the venue's weight budget a minute
//! (spot: [`DEPTH_WEIGHT_PER_MINUTE`]; a token bucket that starts full, so the first books of a
//! start come at once), and the symbols asking are served in turn. On spot at
//! `DEPTH_LEVELS=5000` (weight 250) that is about ten snapshots a minute after the first ten
//! (USD-M: 960 a minute, 48 snapshots of 1000 levels at weight 20), whatever a hostile stream
//! does to force resyncs; the rest of the budget stays for gap backfill.

use std::cell::Cell;
use std::time::{Duration, Instant};

use crossbeam_channel::{SendTimeoutError, Sender};
use tracing::{debug, warn};

use super::client::FetchError;
use super::{Backfiller, SLICE};
use crate::handoff::depth::DepthSeed;

/// REST weight a minute that spot's order-book snapshots may use: half of its budget (every
/// venue's: half of [`crate::venue::rest::RestApi::weight_budget`]).
pub const DEPTH_WEIGHT_PER_MINUTE: u32 = super::WEIGHT_BUDGET / 2;
/// Attempts at one snapshot before leaving it to the book to ask again.
const ATTEMPTS: u32 = 4;

/// What the backfill thread needs to serve the books.
pub struct Seeds {
    tx: Sender<DepthSeed>,
    /// Levels a side asked for (`DEPTH_LEVELS`); the venue's depth call rounds them to what it
    /// serves.
    limit: usize,
    /// Weight a minute snapshots may use.
    per_minute: u32,
    /// Weight available now, and when it was last topped up.
    tokens: Cell<(f64, Instant)>,
    /// Where the next look for a symbol asking starts.
    cursor: Cell<usize>,
}

impl Seeds {
    /// Snapshots of `limit` levels a side, within half of `weight_budget` a minute.
    pub fn new(tx: Sender<DepthSeed>, limit: usize, weight_budget: u32) -> Seeds {
        let per_minute = weight_budget / 2;
        Seeds {
            tx,
            limit: limit.max(1),
            per_minute,
            tokens: Cell::new((f64::from(per_minute), Instant::now())),
            cursor: Cell::new(0),
        }
    }

    /// How long until `weight` is available (zero: now); tops the bucket up first.
    fn wait_for(&self, weight: u32) -> Duration {
        let (tokens, at) = self.tokens.get();
        let cap = f64::from(self.per_minute);
        let per_sec = cap / 60.0;
        let tokens = (tokens + at.elapsed().as_secs_f64() * per_sec).min(cap);
        self.tokens.set((tokens, Instant::now()));
        let short = f64::from(weight) - tokens;
        if short <= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(short / per_sec)
        }
    }

    fn spend(&self, weight: u32) {
        let (tokens, at) = self.tokens.get();
        self.tokens.set((tokens - f64::from(weight), at));
    }
}

impl Backfiller {
    /// Serves every book that asked for a snapshot, in turn.
    pub(super) fn depth_seeds(&self) {
        let Some(seeds) = &self.depth else {
            // No books to serve: the flags were raised by no one who waits for an answer.
            while self.jobs.take_resync(0).is_some() {}
            return;
        };
        while let Some(symbol_idx) = self.jobs.take_resync(seeds.cursor.get()) {
            seeds.cursor.set(symbol_idx as usize + 1);
            if self.shutdown.is_triggered() {
                return;
            }
            self.metrics.backfill_jobs.inc();
            self.depth_snapshot(seeds, symbol_idx);
        }
    }

    /// Fetches one snapshot and hands it to the producer; on failure the book asks again later.
    fn depth_snapshot(&self, seeds: &Seeds, symbol_idx: u16) {
        let sym = self.symbols.upper(symbol_idx);
        let call = (self.api.depth)(sym, seeds.limit);
        let weight = call.weight;
        for attempt in 0..ATTEMPTS {
            let wait = seeds.wait_for(weight);
            if !wait.is_zero() {
                debug!(symbol = %sym, wait_ms = wait.as_millis() as u64, "depth snapshot throttled");
                self.sleep(wait);
                continue;
            }
            if self.shutdown.is_triggered() {
                return;
            }
            seeds.spend(weight);
            let body = self.get(call.clone());
            let parsed = body.and_then(|b| {
                (self.api.parse_depth)(&b).map_err(|e| FetchError::Permanent(format!("bad depth body: {e}")))
            });
            match parsed {
                Ok(d) => {
                    let seed = DepthSeed { symbol_idx, last_update_id: d.last_update_id, bids: d.bids, asks: d.asks };
                    self.hand_seed(&seeds.tx, seed);
                    return;
                }
                Err(FetchError::Permanent(e)) => {
                    if let Some(suppressed) = self.limiter.check("depth_refused") {
                        warn!(symbol = %sym, suppressed, "depth snapshot refused: {e}");
                    }
                    return;
                }
                Err(FetchError::Retry(e)) => {
                    if let Some(suppressed) = self.limiter.check("depth_retry") {
                        warn!(symbol = %sym, attempt, suppressed, "depth snapshot failed, retrying: {e}");
                    }
                    self.metrics.backfill_retries.inc();
                    self.sleep(Duration::from_millis(500 << attempt));
                }
            }
        }
    }

    /// Hands a snapshot to the producer, waiting for room (taking jobs in meanwhile).
    fn hand_seed(&self, tx: &Sender<DepthSeed>, seed: DepthSeed) {
        let mut seed = seed;
        loop {
            match tx.send_timeout(seed, SLICE) {
                Ok(()) => return,
                Err(SendTimeoutError::Timeout(s)) => {
                    if self.shutdown.is_triggered() {
                        return;
                    }
                    seed = s;
                    self.absorb();
                }
                // The producer is gone: the process is failing, and says so elsewhere.
                Err(SendTimeoutError::Disconnected(_)) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_starts_full_then_paces_at_its_rate() {
        let (tx, _rx) = crossbeam_channel::bounded(1);
        let s = Seeds::new(tx, 5_000, crate::binance::rest::WEIGHT_BUDGET);
        let w = crate::binance::rest::Endpoint::Depth { limit: 5_000 }.weight();
        let mut at_once = 0;
        while s.wait_for(w).is_zero() {
            s.spend(w);
            at_once += 1;
        }
        assert_eq!(at_once, DEPTH_WEIGHT_PER_MINUTE / w, "a full bucket's worth at once");
        let wait = s.wait_for(w);
        let per_snapshot = Duration::from_secs_f64(60.0 * f64::from(w) / f64::from(DEPTH_WEIGHT_PER_MINUTE));
        assert!(wait > Duration::ZERO && wait <= per_snapshot, "{wait:?} vs {per_snapshot:?}");
    }
}
