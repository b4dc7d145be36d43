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
//! Only connections whose every stream the binary transport carries move: with `TRANSPORT=sbe`,
//! the kinds SBE has no stream for are planned on text connections of their own
//! (`plan_connections`), which no switch, retry or rotation ever moves off text.
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
use crate::stream::StreamKind;
use crate::time_unit::TimeUnit;
use crate::transport::{scales, Mode, Policy, Seen, Status, Switch};
use crate::venue::{Binary, BinaryCtx, Scale, Venue};
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

    /// The base path and URL time unit of a new connection carrying `streams`, and its
    /// transport: the lane's of the moment, or text for streams the binary transport lacks.
    pub(super) fn route_of_new<'a>(
        switch: &'a Option<Switcher>,
        text: (&'a str, TimeUnit, &'static Venue),
        streams: &[(u16, StreamKind)],
    ) -> (&'a str, TimeUnit, &'static Venue, Mode) {
        match switch {
            Some(s) if s.lane.policy.mode() == Mode::Binary && s.movable(streams) => {
                (&s.lane.route.base_path, s.lane.route.unit, s.lane.binary.venue, Mode::Binary)
            }
            _ => (text.0, text.1, text.2, Mode::Text),
        }
    }

    /// Whether a connection carrying `streams` may stream the binary transport: it carries
    /// every one of them.
    fn movable(&self, streams: &[(u16, StreamKind)]) -> bool {
        streams.iter().all(|&(_, k)| (self.lane.binary.carried)(k).is_some())
    }

    /// Streams on connections of each transport now, (binary, text): a retiring connection's
    /// count through its replacement.
    fn streams_by_mode(&self, conns: &[Connection]) -> (usize, usize) {
        let mut by = (0, 0);
        for (c, m) in conns.iter().zip(&self.slots).filter(|(c, _)| !c.is_closed() && !c.is_retiring()) {
            match m {
                Mode::Binary => by.0 += c.streams.len(),
                Mode::Text => by.1 += c.streams.len(),
            }
        }
        by
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
            let ctx = BinaryCtx::new(metrics.symbols.clone(), scales.clone(), lane.record_unit);
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
                let ctx = BinaryCtx::new(self.metrics.symbols.clone(), scales.clone(), unit);
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
            if sw.slots.get(i).is_none_or(|m| *m == mode)
                || self.connections[i].is_closed()
                || !sw.movable(&self.connections[i].streams)
            {
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
            let (path, unit, venue) = match mode {
                Mode::Binary => (sw.lane.route.base_path.as_str(), sw.lane.route.unit, sw.lane.binary.venue),
                Mode::Text => (self.base_path.as_str(), self.time_unit, self.venue),
            };
            let old = &mut self.connections[i];
            old.close(&self.metrics);
            let new = Connection::new(i, old.streams.clone(), &self.metrics.symbols, venue, path, unit);
            new.init_metrics(&self.metrics);
            self.connections[i] = new;
            sw.slots[i] = mode;
        }
        let (binary, text) = sw.streams_by_mode(&self.connections);
        sw.lane.status.streams(binary, text);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::binance::venue::VENUE;
    use crate::config::{RawConfig, Secret, Transport};
    use crate::metrics::Metrics;
    use crate::pipeline::Pipeline;
    use crate::shutdown::Shutdown;
    use crate::transport::Fallback;

    type Lane = (EventLoop, Arc<Metrics>, crossbeam_channel::Sender<Vec<Scale>>, crossbeam_channel::Receiver<()>);

    /// An event loop of one spot lane (TIME_UNIT=us) that may stream SBE, its scales missing at
    /// start; nothing listens on either loopback endpoint and no connection is ever dialed (the
    /// loop does not run: only its housekeeping turn is called).
    fn lane() -> Lane {
        lane_of("trade")
    }

    /// [`lane`] streaming `streams`.
    fn lane_of(streams: &str) -> Lane {
        let pairs =
            [("SYMBOLS", "btcusdt"), ("STREAMS", streams), ("TIME_UNIT", "us"), ("BINANCE_WS_URL", "ws://127.0.0.1:9")];
        let mut cfg = RawConfig::from_pairs(&pairs).validate_with_memory_limit(None).unwrap();
        cfg.transport = Transport::Sbe;
        cfg.sbe_api_key = Secret::new("k");
        let metrics = Metrics::new(&cfg.symbols);
        let decision = crate::transport::choose(&cfg, &VENUE, &metrics, |_| Err("HTTP 503".into()));
        let (writer, _reader) = crate::ring::ring(1 << 16);
        let pipeline = Pipeline::new(&VENUE, writer, metrics.clone(), None);
        let ev = EventLoop::new(&cfg, &VENUE, None, pipeline, metrics.clone(), Shutdown::new()).unwrap();
        let (refresher, fresh, asks) = scales::channels();
        let sbe = crate::config::Endpoint { host: "127.0.0.1".into(), port: 10, ..cfg.ws.clone() };
        let dialer = Dialer::new(sbe, None, cfg.ws_stale_after, cfg.ws_max_age);
        let lane = BinaryLane {
            route: Route { dialer, base_path: String::new(), unit: TimeUnit::Millis },
            binary: VENUE.binary.unwrap(),
            scales: decision.scales,
            record_unit: cfg.time_unit,
            policy: Policy::new(3, None, false, Instant::now()),
            status: decision.status,
            refresher,
        };
        (ev.with_binary(lane), metrics, fresh, asks)
    }

    fn paths(ev: &EventLoop) -> Vec<&str> {
        ev.connections.iter().filter(|c| !c.is_closed()).map(Connection::path).collect()
    }

    fn gauge(m: &Metrics) -> String {
        m.render().lines().filter(|l| l.contains("transport_info{")).collect::<Vec<_>>().join("\n")
    }

    #[test]
    fn scales_that_arrive_move_the_lane_to_sbe_and_a_refused_key_moves_it_back() {
        let (mut ev, m, fresh, asks) = lane();
        let text_path = "/stream?streams=btcusdt@trade&timeUnit=MICROSECOND";
        assert_eq!(paths(&ev), [text_path], "no scales: JSON, in the unit asked for");
        assert!(gauge(&m).ends_with(r#"{reason="no_scales",requested="sbe",used="json"} 1"#), "{}", gauge(&m));

        // A decimal beyond its scale asks the refresher for the scales; the turn never blocks.
        m.rejected.with_label_values(&["sbe_inexact_decimal"]).inc();
        ev.transport_turn(Instant::now());
        assert_eq!(asks.try_recv(), Ok(()));
        ev.transport_turn(Instant::now());
        assert!(asks.try_recv().is_err(), "asked once per new rejection");

        // Scales come: the connection (not open) is replaced by an SBE one, said everywhere.
        fresh.send(vec![Scale { price: 2, qty: 8 }]).unwrap();
        ev.transport_turn(Instant::now());
        assert_eq!(paths(&ev), ["/stream?streams=btcusdt@trade"], "SBE: no timeUnit in the URL");
        assert_eq!(ev.switch.as_ref().unwrap().slots, [Mode::Binary]);
        assert!(gauge(&m).ends_with(r#"{reason="",requested="sbe",used="sbe"} 1"#), "{}", gauge(&m));
        assert_eq!(m.health.transport.get().as_deref(), Some("sbe"));
        let dialer = Switcher::dialer(&ev.switch, &ev.dialer, 0);
        assert!(dialer.api_key.is_none() && dialer.endpoint.port == 10, "the SBE route's dialer");

        // A refused key: back to JSON at once, one series of the gauge.
        m.ws_connect_attempts.with_label_values(&[KEY_REFUSED]).inc();
        ev.transport_turn(Instant::now());
        assert_eq!(paths(&ev), [text_path]);
        assert_eq!(Switcher::dialer(&ev.switch, &ev.dialer, 0).endpoint.port, 9);
        assert_eq!(gauge(&m).lines().count(), 1, "{}", gauge(&m));
        assert!(gauge(&m).ends_with(r#"{reason="key_refused",requested="sbe",used="json"} 1"#));
        let note = format!("json (sbe unavailable: {})", Fallback::KeyRefused.as_str());
        assert_eq!(m.health.transport.get(), Some(note));
        // Each move closed one connection and opened another: the state gauge counts one.
        assert!(m.render().contains(r#"ws_connections{state="backoff"} 1"#), "{}", m.render());
    }

    #[test]
    fn the_switch_moves_only_the_connections_of_kinds_sbe_carries() {
        let (mut ev, m, fresh, _asks) = lane_of("trade,aggTrade");
        let (trade, agg) = ("/stream?streams=btcusdt@trade", "/stream?streams=btcusdt@aggTrade&timeUnit=MICROSECOND");
        assert_eq!(paths(&ev), [&format!("{trade}&timeUnit=MICROSECOND"), agg], "one connection per transport");
        // A mark only the aggTrade connection built at start carries: a replacement would not.
        let dense = crate::stream::StreamKind::Trade.dense().unwrap();
        ev.connections[1].begin_catch_up(vec![(0, dense)]);

        fresh.send(vec![Scale { price: 2, qty: 8 }]).unwrap();
        ev.transport_turn(Instant::now());
        assert_eq!(paths(&ev), [trade, agg], "trade over SBE, aggTrade still over JSON");
        assert_eq!(ev.switch.as_ref().unwrap().slots, [Mode::Binary, Mode::Text]);
        assert!(!ev.connections[1].caught_up(), "the aggTrade connection was replaced");
        assert_eq!(Switcher::dialer(&ev.switch, &ev.dialer, 1).endpoint.port, 9, "JSON's dialer");
        assert!(gauge(&m).ends_with(r#"{reason="",requested="sbe",used="sbe"} 1"#), "{}", gauge(&m));
        assert_eq!(m.health.transport.get().as_deref(), Some("sbe (aggTrade on json: no sbe stream)"));
        let r = m.render();
        assert!(
            r.contains(r#"transport_streams{transport="sbe"} 1"#)
                && r.contains(r#"transport_streams{transport="json"} 1"#)
        );
        // A rotation (age limit, serverShutdown) of the aggTrade connection stays on JSON.
        let text = (ev.base_path.as_str(), ev.time_unit, ev.venue);
        assert_eq!(Switcher::route_of_new(&ev.switch, text, &ev.connections[1].streams).3, Mode::Text);
        assert_eq!(Switcher::route_of_new(&ev.switch, text, &ev.connections[0].streams).3, Mode::Binary);

        // A refused key: the trade connection goes back to JSON; the aggTrade one is left alone.
        m.ws_connect_attempts.with_label_values(&[KEY_REFUSED]).inc();
        ev.transport_turn(Instant::now());
        assert_eq!(paths(&ev), [&format!("{trade}&timeUnit=MICROSECOND"), agg]);
        assert!(!ev.connections[1].caught_up(), "the aggTrade connection was replaced");
        assert_eq!(m.health.transport.get().as_deref(), Some("json (sbe unavailable: key_refused)"));
        assert!(m.render().contains(r#"transport_streams{transport="json"} 2"#), "{}", m.render());
    }
}
