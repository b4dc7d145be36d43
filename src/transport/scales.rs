//! Keeping the decimal scales of the binary transport current: every symbol's price and
//! quantity scale (Binance: `exchangeInfo`'s tickSize and stepSize) is fetched at start, then
//! again on a thread of its own, so that the event loop never waits on REST: every
//! `SBE_SCALES_REFRESH_SECS`, soon after the event loop saw a trade whose decimals did not fit
//! (`sbe_inexact_decimal`: the venue changed a symbol's tick), and every [`RETRY_MISSING`] while
//! no scales are known (a REST failure at start: the lane streams text until they come).
//!
//! Bounded: one request at a time; the event loop's asks bring the next fetch to [`MIN_GAP`]
//! after the last, however often they come; one result waits at most (the event loop takes
//! them each housekeeping turn).

use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use tracing::{info, warn};

use crate::log_limit::LogLimiter;
use crate::shutdown::Shutdown;
use crate::venue::rest::Call;
use crate::venue::{Binary, Scale};

/// How soon the scales are asked for again while none are known.
pub const RETRY_MISSING: Duration = Duration::from_secs(30);
/// The least time between two fetches (an event loop asking on every inexact trade costs one
/// request a minute, a few weight units of the 6000 a minute).
pub const MIN_GAP: Duration = Duration::from_secs(60);
/// How late shutdown is noticed.
const SLICE: Duration = Duration::from_millis(200);

/// The event loop's end: scales as they come, and a way to ask for them sooner.
pub struct Handle {
    pub fresh: Receiver<Vec<Scale>>,
    ask: Sender<()>,
}

impl Handle {
    /// Asks for the scales soon (never blocks; an ask already waiting is enough).
    pub fn ask(&self) {
        let _ = self.ask.try_send(());
    }
}

/// When the next fetch is due.
#[derive(Debug)]
pub struct Schedule {
    every: Duration,
    last: Instant,
    /// Scales are known (fetched once at least).
    known: bool,
    asked: bool,
}

impl Schedule {
    /// `known`: the scales fetched at start (at `now`) are there.
    pub fn new(every: Duration, known: bool, now: Instant) -> Schedule {
        Schedule { every, last: now, known, asked: false }
    }

    pub fn ask(&mut self) {
        self.asked = true;
    }

    pub fn due(&self) -> Instant {
        let regular = if self.known { self.every } else { RETRY_MISSING.min(self.every) };
        self.last + if self.asked { regular.min(MIN_GAP) } else { regular }
    }

    pub fn fetched(&mut self, now: Instant, ok: bool) {
        (self.last, self.known, self.asked) = (now, ok || self.known, false);
    }
}

/// The refresher's end of the channels, and the event loop's.
pub fn channels() -> (Handle, Sender<Vec<Scale>>, Receiver<()>) {
    let (fresh_tx, fresh) = crossbeam_channel::bounded(1);
    let (ask, asks) = crossbeam_channel::bounded(1);
    (Handle { fresh, ask }, fresh_tx, asks)
}

/// Runs until shutdown: fetches the scales of `symbols` when [`Schedule`] says, hands those that
/// parse to the event loop. `fetch` is one REST GET (the backfill's client, with its weights and
/// fallback host).
#[allow(clippy::too_many_arguments)]
pub fn run(
    binary: &Binary,
    symbols: &[String],
    mut schedule: Schedule,
    mut fetch: impl FnMut(&Call) -> Result<String, String>,
    fresh: Sender<Vec<Scale>>,
    asks: Receiver<()>,
    shutdown: &Shutdown,
) {
    let log = LogLimiter::new(Duration::from_secs(60));
    let call = (binary.scales_call)(symbols);
    while !shutdown.is_triggered() {
        let now = Instant::now();
        let due = schedule.due();
        if now < due {
            match asks.recv_timeout(due.saturating_duration_since(now).min(SLICE)) {
                Ok(()) => schedule.ask(),
                Err(RecvTimeoutError::Timeout) => {}
                // The event loop is gone: shutdown is on its way.
                Err(RecvTimeoutError::Disconnected) => std::thread::sleep(SLICE),
            }
            continue;
        }
        let got = fetch(&call).and_then(|body| (binary.parse_scales)(&body, symbols));
        schedule.fetched(Instant::now(), got.is_ok());
        match got {
            Ok(scales) => match fresh.try_send(scales) {
                Ok(()) | Err(TrySendError::Disconnected(_)) => {}
                Err(TrySendError::Full(_)) => info!("scales fetched while the last ones wait: dropped"),
            },
            Err(e) => {
                if let Some(suppressed) = log.check("scales") {
                    warn!(suppressed, "{} scales not refreshed: {e}", binary.name);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn refreshes_every_period_sooner_when_asked_or_missing_never_twice_within_the_gap() {
        let t0 = Instant::now();
        let mut s = Schedule::new(3600 * S, true, t0);
        assert_eq!(s.due(), t0 + 3600 * S);
        s.ask();
        assert_eq!(s.due(), t0 + MIN_GAP, "an inexact decimal: soon, not at once");
        s.fetched(t0 + MIN_GAP, false);
        // A failed refresh keeps the scales known: the next is a period away.
        assert_eq!(s.due(), t0 + MIN_GAP + 3600 * S);

        let mut s = Schedule::new(3600 * S, false, t0);
        assert_eq!(s.due(), t0 + RETRY_MISSING, "missing at start");
        s.fetched(t0 + RETRY_MISSING, true);
        assert_eq!(s.due(), t0 + RETRY_MISSING + 3600 * S);
        // A period shorter than both (tests) is the period.
        let mut s = Schedule::new(S, false, t0);
        s.ask();
        assert_eq!(s.due(), t0 + S);
    }

    #[test]
    fn the_thread_hands_fresh_scales_over_and_stops_on_shutdown() {
        let binary = crate::binance::venue::VENUE.binary.unwrap();
        let (handle, fresh_tx, asks) = channels();
        let shutdown = Shutdown::new();
        let (stop, symbols) = (shutdown.clone(), vec!["btcusdt".to_string()]);
        let mut bodies = vec![
            Ok(r#"{"symbols":[{"symbol":"BTCUSDT","filters":[{"filterType":"PRICE_FILTER","tickSize":"0.001"},{"filterType":"LOT_SIZE","stepSize":"0.01"}]}]}"#.to_string()),
            Err("HTTP 503".to_string()),
        ];
        let t = std::thread::spawn(move || {
            let schedule = Schedule::new(S, false, Instant::now() - S);
            run(binary, &symbols, schedule, |_| bodies.pop().unwrap_or(Err("done".into())), fresh_tx, asks, &stop);
        });
        // The first fetch fails (503), the second, a second later, parses.
        let got = handle.fresh.recv_timeout(60 * S).expect("scales");
        assert_eq!(got, vec![Scale { price: 3, qty: 2 }]);
        handle.ask();
        shutdown.trigger();
        t.join().unwrap();
    }
}
