//! A connection's attempts over time: the deadlines the event loop waits for, what each timer
//! does (start after backoff, handshake timeout, staleness, age limit, SUBSCRIBE pacing), and
//! what a failed attempt or a lost connection costs (backoff, counters, a rate-limited line).

use std::time::{Duration, Instant};

use mio::Registry;
use tracing::{info, warn};

use super::dial::HANDSHAKE_TIMEOUT;
use super::limits::backoff;
use super::{AttemptBudget, ConnectError, Connection, Dialer, Lost, Retry, State};
use crate::metrics::Metrics;

impl Connection {
    /// The next instant at which `on_timer` has work to do (`now` or earlier: at once).
    pub fn deadline(&self, dialer: &Dialer, now: Instant) -> Option<Instant> {
        match &self.state {
            State::Backoff { until } => Some(*until),
            State::Connecting { since, .. } | State::Handshaking { since, .. } => Some(*since + HANDSHAKE_TIMEOUT),
            State::Open { .. } => {
                let mut d = self.last_rx + self.silence_allowed(dialer.stale_after);
                if self.next_batch < self.overflow.len() || self.resub.has_work() {
                    d = d.min(self.outgoing.control_at(now));
                }
                if !self.rotate {
                    d = d.min(self.opened_at + dialer.max_age);
                }
                Some(d)
            }
            State::Closed => None,
        }
    }

    /// Handles timers: start a connection after backoff, time out slow handshakes, pace SUBSCRIBE.
    pub fn on_timer(
        &mut self,
        now: Instant,
        dialer: &Dialer,
        registry: &Registry,
        metrics: &Metrics,
        budget: &mut AttemptBudget,
    ) {
        match &self.state {
            State::Backoff { until } if now >= *until => match budget.take(now) {
                Ok(()) => self.start_connect(dialer, registry, metrics),
                Err(free_at) => {
                    if let Some(suppressed) = self.log.check("budget_exhausted") {
                        warn!(conn = self.id, suppressed, "connection attempt budget exhausted: waiting");
                    }
                    self.set_state(State::Backoff { until: free_at }, metrics);
                }
            },
            State::Open { .. } if now >= self.last_rx + self.silence_allowed(dialer.stale_after) => {
                metrics.ws_stale.inc();
                let silent = now.duration_since(self.last_rx).as_millis() as u64;
                self.lost(Lost::Stale(silent), metrics);
            }
            State::Open { .. } if !self.rotate && now >= self.opened_at + dialer.max_age => {
                info!(conn = self.id, "connection reached its age limit: rotating");
                self.rotate = true;
            }
            State::Connecting { since, .. } | State::Handshaking { since, .. } if now >= *since + HANDSHAKE_TIMEOUT => {
                self.fail(ConnectError::Timeout, metrics)
            }
            State::Open { .. } => self.send_subscriptions(metrics),
            _ => {}
        }
    }

    /// Gives up on a connection attempt and schedules the next one.
    pub(super) fn fail(&mut self, why: ConnectError, metrics: &Metrics) {
        let floor = match why.retry() {
            Retry::Backoff => Duration::ZERO,
            Retry::NotBefore(d) => d,
        };
        let delay = self.schedule_reconnect(metrics, why.label(), floor);
        if let Some(suppressed) = self.log.check("connection_failed") {
            let delay_ms = delay.as_millis() as u64;
            warn!(conn = self.id, attempt = self.attempt, delay_ms, suppressed, "connection failed: {why}");
        }
    }

    /// Counts the attempt's `result` and waits with capped exponential backoff and jitter (see
    /// [`backoff`]), and at least `floor`, before the next one.
    fn schedule_reconnect(&mut self, metrics: &Metrics, result: &'static str, floor: Duration) -> Duration {
        metrics.ws_connect_attempts.with_label_values(&[result]).inc();
        let delay = backoff(self.attempt).max(floor);
        self.attempt = self.attempt.saturating_add(1);
        self.reset_subscriptions();
        self.set_state(State::Backoff { until: Instant::now() + delay }, metrics);
        delay
    }

    /// A connection that was streaming went away: count a reconnect for every symbol it carried.
    /// A retiring connection is not reconnected: its replacement already carries its streams.
    pub(super) fn lost(&mut self, why: Lost, metrics: &Metrics) {
        if self.retiring {
            if why.is_peer_fault() {
                // A peer we dropped is counted even when a replacement already took over.
                metrics.ws_connect_attempts.with_label_values(&[why.label()]).inc();
            }
            if let Some(suppressed) = self.log.check("retiring_closed") {
                info!(conn = self.id, suppressed, "retiring connection closed: {why}");
            }
            self.set_state(State::Closed, metrics);
            return;
        }
        for &s in &self.symbols {
            metrics.ws_reconnects[s as usize].inc();
        }
        let stable = self.is_stable();
        if stable {
            self.attempt = 0;
        }
        let delay = self.schedule_reconnect(metrics, why.label(), Duration::ZERO);
        if let Some(suppressed) = self.log.check("connection_lost") {
            let delay_ms = delay.as_millis() as u64;
            let streams = self.streams.len();
            warn!(conn = self.id, streams, stable, delay_ms, suppressed, "connection lost: {why}; reconnecting");
        }
    }

    fn reset_subscriptions(&mut self) {
        self.next_batch = 0;
        self.pending.clear();
        self.resub.clear();
    }
}
