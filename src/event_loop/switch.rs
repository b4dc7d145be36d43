//! A lane that may stream its venue's binary transport (Binance's SBE) switches its
//! connections between it and the text streams as `transport::Policy` decides: to text after
//! repeated failures or a refused key, to binary when the scales arrive or a retry is due.
//!
//! How each connection moves, so that no trade is lost:
//! - to text: a binary connection that is not open (failing, in backoff) is replaced in its slot
//!   by a text one, which connects at once; the trades missed meanwhile are a gap like any
//!   reconnect's (backfilled from REST, or named in a gap record). A binary connection that
//!   still streams is left streaming: it works; should it drop, it comes back as text. A
//!   binary replacement still dialing beside an open text connection (a retry) is given up,
//!   and the text connection streams on: nothing was missed.
//! - to binary: an open text connection rotates make-before-break (its binary replacement
//!   catches up and the overlap is deduplicated by trade id), one not open is replaced at once.
//!
//! What is watched each housekeeping turn: every binary connection's failures in a row, the
//! `ws_connect_attempts_total{result="key_refused"}` counter, the venue's rejection counter of a
//! decimal beyond its scale (the scales are then fetched again soon), and fresh scales from
//! the refresher thread (`transport/scales.rs`).

use std::time::{Duration, Instant};

use prometheus::IntCounter;
use tracing::{info, warn};

use super::EventLoop;
use crate::log_limit::LogLimiter;
use crate::time_unit::TimeUnit;
use crate::transport::{scales, Mode, Policy, Seen, Status, Switch};
use crate::venue::{Binary, BinaryCtx, Scale};
use crate::ws::{Connection, Dialer, KEY_REFUSED};

/// Where a lane's connections of one transport go: the dialer (endpoint, TLS, API key), and
/// what their URLs are built with.
pub struct Route {
    pub dialer: Dialer,
    pub base_path: String,
    /// The unit the venue is asked to send times in, in the URL.
    pub unit: TimeUnit,
}

/// What a lane that may stream its venue's binary transport gives its event loop.
pub struct BinaryLane {
    pub route: Route,
    pub binary: &'static Binary,
    /// Every symbol's scale, when known at start.
    pub scales: Option<Vec<Scale>>,
    /// The unit records carry times in (`TIME_UNIT`).
    pub record_unit: TimeUnit,
    pub policy: Policy,
    pub status: Status,
    pub refresher: scales::Handle,
}

pub(super) struct Switcher {
    lane: BinaryLane,
    /// Each connection slot's transport (index: the slot).
    slots: Vec<Mode>,
    key_refused: IntCounter,
    refused_seen: u64,
    inexact: IntCounter,
    inexact_seen: u64,
    log: LogLimiter,
}

impl Switcher {
    /// The dialer of the connection in `slot`.
    pub(super) fn dialer<'a>(switch: &'a Option<Switcher>, text: &'a Dialer, slot: usize) -> &'a Dialer {
        match switch {
            Some(s) if s.slots.get(slot) == Some(&Mode::Binary) => &s.lane.route.dialer,
            _ => text,
        }
    }

    /// The base path and URL time unit of a new connection, and its transport: the lane's of
    /// the moment.
    pub(super) fn route_of_new<'a>(
        switch: &'a Option<Switcher>,
        text: (&'a str, TimeUnit),
    ) -> (&'a str, TimeUnit, Mode) {
        match switch {
            Some(s) if s.lane.policy.mode() == Mode::Binary => {
                (&s.lane.route.base_path, s.lane.route.unit, Mode::Binary)
            }
            _ => (text.0, text.1, Mode::Text),
        }
    }

    /// Records the transport of the connection now in `slot`.
    pub(super) fn placed(switch: &mut Option<Switcher>, slot: usize, mode: Mode) {
        if let Some(s) = switch {
            if s.slots.len() <= slot {
                s.slots.resize(slot + 1, Mode::Text);
            }
            s.slots[slot] = mode;
        }
    }
}

impl EventLoop {
    /// Lets the lane stream `lane`'s binary transport as its policy decides (from the start
    /// when the scales are known).
    pub fn with_binary(mut self, lane: BinaryLane) -> EventLoop {
        let metrics = &self.metrics;
        // Counted from 0 so that an alert on its increase fires at the first refusal.
        let key_refused = metrics.ws_connect_attempts.with_label_values(&[KEY_REFUSED]);
        let inexact = metrics.rejected.with_label_values(&[lane.binary.rescale_reason]);
        if let Some(scales) = &lane.scales {
            let ctx = BinaryCtx { symbols: metrics.symbols.clone(), scales: scales.clone(), unit: lane.record_unit };
            self.pipeline.set_binary(ctx);
        }
        if lane.policy.mode() == Mode::Binary && !lane.route.dialer.resolver.wait_first(Duration::from_secs(10)) {
            warn!(host = %lane.route.dialer.endpoint.host, "no DNS answer yet: connecting once it comes");
        }
        self.switch = Some(Switcher {
            slots: vec![Mode::Text; self.connections.len()],
            refused_seen: key_refused.get(),
            key_refused,
            inexact_seen: inexact.get(),
            inexact,
            log: LogLimiter::new(Duration::from_secs(60)),
            lane,
        });
        self.reconcile_transport();
        self
    }

    /// One housekeeping look: fresh scales, a decimal beyond its scale, the policy's decision,
    /// and each connection moved to the lane's transport.
    pub(super) fn transport_turn(&mut self, now: Instant) {
        let Some(sw) = &mut self.switch else { return };
        while let Ok(scales) = sw.lane.refresher.fresh.try_recv() {
            if sw.lane.scales.as_ref() != Some(&scales) {
                info!(transport = sw.lane.binary.name, ?scales, "decimal scales updated");
                let unit = sw.lane.record_unit;
                let ctx = BinaryCtx { symbols: self.metrics.symbols.clone(), scales: scales.clone(), unit };
                self.pipeline.set_binary(ctx);
                sw.lane.scales = Some(scales);
            }
        }
        let inexact = sw.inexact.get();
        if inexact > sw.inexact_seen {
            sw.inexact_seen = inexact;
            sw.lane.refresher.ask();
        }
        let refused = sw.key_refused.get();
        let failures = (self.connections.iter().zip(&sw.slots))
            .filter(|(c, m)| **m == Mode::Binary && !c.is_closed())
            .map(|(c, _)| c.failures())
            .max()
            .unwrap_or(0);
        let seen = Seen { failures, key_refused: refused > sw.refused_seen, scales: sw.lane.scales.is_some() };
        sw.refused_seen = refused;
        let name = sw.lane.binary.name;
        match sw.lane.policy.turn(now, seen) {
            Some(Switch::ToText(why)) => {
                if let Some(suppressed) = sw.log.check("to_text") {
                    let reason = why.as_str();
                    warn!(transport = name, reason, failures, suppressed, "{name} failing ({reason}): streaming JSON");
                }
                sw.lane.status.report("json", Some(why));
            }
            Some(Switch::ToBinary) => {
                if let Some(suppressed) = sw.log.check("to_binary") {
                    info!(transport = name, suppressed, "trying {name} again (make-before-break)");
                }
                sw.lane.status.report(name, None);
            }
            None => {}
        }
        self.reconcile_transport();
    }

    /// Moves every connection that is not on the lane's transport (see the module's text).
    fn reconcile_transport(&mut self) {
        let Some(sw) = &mut self.switch else { return };
        let mode = sw.lane.policy.mode();
        for i in 0..self.connections.len() {
            if sw.slots.get(i).is_none_or(|m| *m == mode) || self.connections[i].is_closed() {
                continue;
            }
            if self.connections[i].is_open() {
                if mode == Mode::Binary {
                    self.connections[i].ask_rotation();
                }
                continue;
            }
            if let Some(k) = self.successors.iter().position(|&(_, new)| new == i) {
                let (old, _) = self.successors.remove(k);
                info!(old, new = i, "replacement on the failing transport given up");
                self.connections[old].abandon_rotation();
                self.connections[i].close(&self.metrics);
                continue;
            }
            let (path, unit) = match mode {
                Mode::Binary => (sw.lane.route.base_path.as_str(), sw.lane.route.unit),
                Mode::Text => (self.base_path.as_str(), self.time_unit),
            };
            let old = &mut self.connections[i];
            old.close(&self.metrics);
            let new = Connection::new(i, old.streams.clone(), &self.metrics.symbols, self.venue, path, unit);
            new.init_metrics(&self.metrics);
            self.connections[i] = new;
            sw.slots[i] = mode;
        }
    }
}
