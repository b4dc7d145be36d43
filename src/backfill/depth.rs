//! REST snapshots for the producer's order books (`/api/v3/depth`), fetched here because this
//! thread owns the REST client, its weight accounting and its waits. Nothing is published from
//! here: the snapshot goes to the producer thread ([`crate::handoff::depth`]), which puts it in
//! the topic at the right place.
//!
//! Throttled across symbols: snapshots spend at most [`DEPTH_WEIGHT_PER_MINUTE`] of REST weight a
//! minute (a token bucket that starts full, so the first books of a start come at once), and
//! the symbols asking are served in turn. At `DEPTH_LEVELS=5000` (weight 250) that is about ten
//! snapshots a minute after the first ten, whatever a hostile stream does to force resyncs; the
//! rest of the budget stays for gap backfill.

use std::cell::Cell;
use std::time::{Duration, Instant};

use crossbeam_channel::{SendTimeoutError, Sender};
use tracing::{debug, warn};

use super::client::FetchError;
use super::{Backfiller, SLICE};
use crate::binance::rest::{self, RestDepth, WEIGHT_BUDGET};
use crate::handoff::depth::DepthSeed;

/// REST weight a minute that order-book snapshots may use: half of our budget.
pub const DEPTH_WEIGHT_PER_MINUTE: u32 = WEIGHT_BUDGET / 2;
/// Attempts at one snapshot before leaving it to the book to ask again.
const ATTEMPTS: u32 = 4;

/// What the backfill thread needs to serve the books.
pub struct Seeds {
    tx: Sender<DepthSeed>,
    /// Levels a side asked for (`DEPTH_LEVELS`).
    limit: usize,
    /// Weight available now, and when it was last topped up.
    tokens: Cell<(f64, Instant)>,
    /// Where the next look for a symbol asking starts.
    cursor: Cell<usize>,
}

impl Seeds {
    pub fn new(tx: Sender<DepthSeed>, limit: usize) -> Seeds {
        Seeds {
            tx,
            limit: limit.clamp(1, rest::MAX_DEPTH_LIMIT),
            tokens: Cell::new((f64::from(DEPTH_WEIGHT_PER_MINUTE), Instant::now())),
            cursor: Cell::new(0),
        }
    }

    /// How long until `weight` is available (zero: now); tops the bucket up first.
    fn wait_for(&self, weight: u32) -> Duration {
        let (tokens, at) = self.tokens.get();
        let cap = f64::from(DEPTH_WEIGHT_PER_MINUTE);
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
        let call = rest::depth(sym, seeds.limit);
        let weight = call.endpoint.weight();
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
                serde_json::from_str::<RestDepth>(&b).map_err(|e| FetchError::Permanent(format!("bad depth body: {e}")))
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
        let s = Seeds::new(tx, 5_000);
        let w = rest::Endpoint::Depth { limit: 5_000 }.weight();
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
