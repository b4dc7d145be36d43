//! The event loop: one thread, one `mio::Poll`, every WebSocket connection.
//!
//! Tokens are connection indices; the waker has its own token. After a readiness event a
//! connection reads until `WouldBlock` (edge-triggered) or until its read budget runs out, in
//! which case it is revisited on the next turn without waiting. Timers (backoff, handshake
//! timeouts, SUBSCRIBE pacing) are deadlines scanned once per turn: a handful of connections does
//! not need a timer wheel.

mod coalesce;
mod streams;
mod switch;

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token, Waker};
use tracing::{info, warn};

use crate::config::{Config, LoopMode};
use crate::metrics::Metrics;
use crate::pipeline::Pipeline;
use crate::sequence::Dense;
use crate::shutdown::Shutdown;
use crate::stream::StreamKind;
use crate::time_unit::TimeUnit;
use crate::venue::Venue;
use crate::ws::{AttemptBudget, Connection, Dialer};
use coalesce::Coalescer;
use streams::StreamWatch;
use switch::Switcher;
pub use switch::{BinaryLane, Route};

const WAKER: Token = Token(usize::MAX);
/// Longest sleep in blocking mode: bounds how stale the heartbeat and gauges can get.
const MAX_SLEEP: Duration = Duration::from_millis(100);
const HOUSEKEEPING_EVERY: Duration = Duration::from_millis(100);
/// Longest overlap of a rotation when no duplicate proves the two connections met.
const ROTATION_OVERLAP_MAX: Duration = Duration::from_secs(10);

/// Spreads `(symbol index, kind)` streams, grouped by symbol, over as few connections as the
/// per-connection stream limit allows, keeping each symbol's streams together where they fit.
/// Streams of different `route`s never share a connection: the venue's routes (USD-M's
/// `/public` and `/market`: a stream asked for on another route's connection is acknowledged
/// and never delivered), and with `TRANSPORT=sbe` the transports ([`route_of`]). Routes keep
/// the order they first appear in.
pub fn plan_connections<R: PartialEq + Copy>(
    streams: &[(u16, StreamKind)],
    max_per_conn: usize,
    route: impl Fn(StreamKind) -> R,
) -> Vec<Vec<(u16, StreamKind)>> {
    let mut routes: Vec<R> = Vec::new();
    for &(_, kind) in streams {
        if !routes.contains(&route(kind)) {
            routes.push(route(kind));
        }
    }
    let mut plan = Vec::new();
    for r in routes {
        let on_route: Vec<(u16, StreamKind)> = streams.iter().copied().filter(|&(_, k)| route(k) == r).collect();
        plan.extend(on_route.chunks(max_per_conn.max(1)).map(<[_]>::to_vec));
    }
    plan
}

/// Where a stream of `kind` goes: its venue route, and whether the lane's binary transport can
/// carry it (`None` when the lane streams text only). With `TRANSPORT=sbe`, a kind Binance's SBE
/// endpoint has no stream for (aggTrade, kline_*, ...) goes over text connections beside the
/// binary ones: a connection never mixes transports, so the switch between SBE and JSON moves
/// only connections whose every stream SBE carries (`switch.rs`).
pub fn route_of(venue: &Venue, binary: bool, kind: StreamKind) -> (&'static str, Option<bool>) {
    let carried = venue.binary.filter(|_| binary).map(|b| (b.carried)(kind).is_some());
    ((venue.route)(kind), carried)
}

/// The dense sequences `(symbol, kind)` a set of streams carries.
fn dense_sequences(streams: &[(u16, StreamKind)]) -> Vec<(u16, Dense)> {
    streams.iter().filter_map(|&(sym, kind)| Some((sym, kind.dense()?))).collect()
}

pub struct EventLoop {
    poll: Poll,
    connections: Vec<Connection>,
    dialer: Dialer,
    pipeline: Pipeline,
    metrics: Arc<Metrics>,
    shutdown: Shutdown,
    mode: LoopMode,
    /// `LOOP_COALESCE_US` (blocking mode only).
    coalesce: Coalescer,
    shutdown_grace: Duration,
    budget: AttemptBudget,
    base_path: String,
    /// The unit the venue is asked to send times in (`TIME_UNIT`).
    time_unit: TimeUnit,
    venue: &'static Venue,
    /// (retiring connection, its replacement): the old one closes once the new one streams.
    successors: Vec<(usize, usize)>,
    /// Every stream's liveness, looked at each housekeeping turn.
    streams: StreamWatch,
    /// The lane's binary transport, when it may stream one (`dialer`, `base_path` and
    /// `time_unit` are then the text streams').
    switch: Option<Switcher>,
}

impl EventLoop {
    pub fn new(
        cfg: &Config,
        venue: &'static Venue,
        tls: Option<Arc<rustls::ClientConfig>>,
        mut pipeline: Pipeline,
        metrics: Arc<Metrics>,
        shutdown: Shutdown,
    ) -> io::Result<EventLoop> {
        let poll = Poll::new()?;
        // Shutdown keeps the waker (and so its registration) alive and wakes the loop with it.
        shutdown.add_waker(Arc::new(Waker::new(poll.registry(), WAKER)?));
        let mut pairs = Vec::new();
        for i in 0..metrics.symbols.len() {
            for k in &cfg.streams {
                pairs.push((i as u16, *k));
            }
        }
        let binary = cfg.transport == crate::config::Transport::Sbe;
        let route = |k| route_of(venue, binary, k);
        let connections: Vec<Connection> = plan_connections(&pairs, cfg.max_streams_per_connection, route)
            .into_iter()
            .enumerate()
            .map(|(id, streams)| Connection::new(id, streams, &metrics.symbols, venue, &cfg.ws.path, cfg.time_unit))
            .collect();
        for c in &connections {
            c.init_metrics(&metrics);
        }
        let streams = StreamWatch::new(cfg, venue, &mut pipeline, &metrics);
        let dialer = Dialer::new(cfg.ws.clone(), tls, cfg.ws_stale_after, cfg.ws_max_age);
        // Before the loop runs, waiting is free: the first connections then need no backoff.
        if !dialer.resolver.wait_first(Duration::from_secs(10)) {
            warn!(host = %cfg.ws.host, "no DNS answer yet: connecting once it comes");
        }
        info!(
            connections = connections.len(),
            streams = pairs.len(),
            endpoint = %cfg.ws.authority(),
            tls = cfg.ws.tls,
            "event loop ready"
        );
        Ok(EventLoop {
            poll,
            connections,
            dialer,
            budget: AttemptBudget::new(venue.limits.attempts, venue.limits.attempt_window),
            base_path: cfg.ws.path.clone(),
            time_unit: cfg.time_unit,
            venue,
            successors: Vec::new(),
            streams,
            switch: None,
            pipeline,
            metrics,
            shutdown,
            mode: cfg.loop_mode,
            coalesce: Coalescer::new(if cfg.loop_mode == LoopMode::Blocking {
                cfg.loop_coalesce
            } else {
                Duration::ZERO
            }),
            shutdown_grace: cfg.shutdown_timeout,
        })
    }

    /// Make-before-break: opens a replacement beside each connection that asked for one (age
    /// limit, serverShutdown), and closes the old one once the replacement streams. The overlap
    /// is deduplicated by exchange id in the pipeline. A replacement takes the slot (and so the
    /// mio token) of a connection already retired, so the list holds at most two connections
    /// per planned one however often a peer asks for rotations.
    fn rotate(&mut self) {
        // Retire first, so a slot freed here can take a replacement below.
        let metrics = &self.metrics;
        let conns = &mut self.connections;
        self.successors.retain(|&(old, new)| {
            if conns[old].is_closed() {
                conns[new].end_catch_up();
                return false;
            }
            // The old connection may go once the new one has caught up with every sequence it
            // carries. A quiet stream may never prove it; after a while backfill covers the rest.
            let caught_up = conns[new].caught_up();
            if conns[new].is_subscribed() && (caught_up || conns[new].open_for() >= ROTATION_OVERLAP_MAX) {
                info!(old, new, caught_up, "replacement streaming: closing the old connection");
                conns[new].end_catch_up();
                conns[old].close(metrics);
                return false;
            }
            true
        });
        for i in 0..self.connections.len() {
            // A replacement asked to rotate while its predecessor still streams waits until that
            // one is gone: a third connection would only stack up on a peer that keeps
            // announcing shutdowns.
            let predecessor_alive = self.successors.iter().any(|&(_, new)| new == i);
            if !self.connections[i].wants_rotation() || predecessor_alive {
                continue;
            }
            let id = self.free_slot().unwrap_or(self.connections.len());
            let old = &mut self.connections[i];
            old.mark_retiring();
            let text = (self.base_path.as_str(), self.time_unit, self.venue);
            let (path, unit, venue, mode) = Switcher::route_of_new(&self.switch, text, &old.streams);
            let mut new = Connection::new(id, old.streams.clone(), &self.metrics.symbols, venue, path, unit);
            new.succeed(old);
            // A silent stream is not caught up on: the old connection will not deliver it.
            let (watch, pipeline) = (&self.streams, &self.pipeline);
            let mut pending = dense_sequences(&new.streams);
            pending.retain(|&(sym, d)| {
                !new.streams.iter().any(|&(s, k)| s == sym && k.dense() == Some(d) && watch.is_silent(pipeline, (s, k)))
            });
            new.begin_catch_up(pending);
            info!(old = i, new = id, streams = new.streams.len(), "rotating connection (make-before-break)");
            new.init_metrics(&self.metrics);
            self.metrics.ws_rotations.inc();
            if id == self.connections.len() {
                self.connections.push(new);
            } else {
                // The retired connection's socket is gone, and with it its registration.
                self.connections[id] = new;
            }
            self.successors.push((i, id));
            Switcher::placed(&mut self.switch, id, mode);
        }
    }

    /// A retired connection's slot that no rotation refers to any more.
    fn free_slot(&self) -> Option<usize> {
        (0..self.connections.len()).find(|&j| {
            self.connections[j].is_closed() && !self.successors.iter().any(|&(old, new)| old == j || new == j)
        })
    }

    /// The earliest timer: a connection's (pings and pongs, handshake and stale timeouts, SUBSCRIBE
    /// pacing, backoff) or the housekeeping's.
    fn next_deadline(&self, now: Instant, next_housekeeping: Instant) -> Instant {
        self.connections
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.deadline(Switcher::dialer(&self.switch, &self.dialer, i), now))
            .chain(std::iter::once(next_housekeeping))
            .min()
            .unwrap_or(now + MAX_SLEEP)
    }

    /// Runs until shutdown, then closes every connection and hands the ring's end to the
    /// producer by dropping the pipeline.
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        let mut again: Vec<usize> = Vec::new();
        let mut next_housekeeping = Instant::now();
        // Set by a turn that read data while coalescing: how long to let messages gather.
        let mut nap = Duration::ZERO;
        if self.coalesce.enabled() {
            self.shutdown.add_thread(std::thread::current());
            info!(window_us = self.coalesce.window().as_micros(), "event loop coalesces wake-ups while data flows");
        }
        loop {
            if self.shutdown.is_triggered() {
                break;
            }
            let napped = !nap.is_zero();
            if napped && !coalesce::nap(std::mem::take(&mut nap), &self.shutdown) {
                break;
            }
            let now = Instant::now();
            // After a nap the next deadline was already waited for: look without waiting.
            let timeout = if self.mode == LoopMode::BusyPoll || !again.is_empty() || napped {
                Duration::ZERO
            } else {
                self.next_deadline(now, next_housekeeping).saturating_duration_since(now).min(MAX_SLEEP)
            };
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            // Only when coalescing: with it off a turn costs what it always did.
            let began = self.coalesce.enabled().then(Instant::now);
            let read = began.is_some() && (!again.is_empty() || events.iter().any(|e| e.token() != WAKER));
            if napped {
                self.coalesce.after_nap(read);
            }
            let revisit = std::mem::take(&mut again);
            for i in revisit {
                let dialer = Switcher::dialer(&self.switch, &self.dialer, i);
                if self.connections[i].on_ready(dialer, &mut self.pipeline, &self.metrics).more {
                    again.push(i);
                }
            }
            for ev in events.iter() {
                if ev.token() == WAKER {
                    continue;
                }
                let i = ev.token().0;
                let dialer = Switcher::dialer(&self.switch, &self.dialer, i);
                if i < self.connections.len()
                    && !again.contains(&i)
                    && self.connections[i].on_ready(dialer, &mut self.pipeline, &self.metrics).more
                {
                    again.push(i);
                }
            }
            let now = Instant::now();
            for (i, c) in self.connections.iter_mut().enumerate() {
                let dialer = Switcher::dialer(&self.switch, &self.dialer, i);
                if c.deadline(dialer, now).is_some_and(|d| d <= now) {
                    c.on_timer(now, dialer, self.poll.registry(), &self.metrics, &mut self.budget);
                }
            }
            if now >= next_housekeeping {
                next_housekeeping = now + HOUSEKEEPING_EVERY;
                self.pipeline.housekeeping();
                let h = &self.metrics.health;
                h.beat(crate::clock::now_ns());
                // Ready means every stream is carried by a subscribed connection: a rotation's pair
                // counts when either is, the replacement still connecting through the connection
                // it replaces (a retry of the binary transport may take a while, or fail), the
                // retiring one through its replacement.
                let conns = &self.connections;
                let carried = |i: usize| {
                    conns[i].is_subscribed()
                        || self.successors.iter().any(|&(old, new)| {
                            (new == i && conns[old].is_subscribed()) || (old == i && conns[new].is_subscribed())
                        })
                };
                let ready = (0..conns.len()).filter(|&i| !conns[i].is_closed()).all(carried);
                h.subscribed.store(ready, Ordering::Relaxed);
                self.streams.check(now, &mut self.connections, &mut self.pipeline, &self.metrics, &again);
                self.transport_turn(now);
                self.rotate();
            }
            if let Some(began) = began {
                let now = Instant::now();
                let deadline = self.next_deadline(now, next_housekeeping);
                nap = self.coalesce.after_turn(began, now, read, !again.is_empty(), deadline);
            }
        }
        info!("event loop stopping: closing connections");
        self.metrics.health.subscribed.store(false, Ordering::Relaxed);
        self.pipeline.begin_shutdown(self.shutdown_grace);
        for c in &mut self.connections {
            c.close(&self.metrics);
        }
        self.pipeline.finish();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_spread_within_the_per_connection_limit() {
        let kinds = [StreamKind::Trade, StreamKind::Depth];
        let pairs: Vec<(u16, StreamKind)> = (0..2500u16).map(|i| (i / 2, kinds[i as usize % 2])).collect();
        let spot = crate::binance::venue::VENUE.route;
        let plan = plan_connections(&pairs, 1024, spot);
        assert_eq!(plan.iter().map(Vec::len).collect::<Vec<_>>(), [1024, 1024, 452]);
        let all: Vec<&(u16, StreamKind)> = plan.iter().flatten().collect();
        assert_eq!(all.len(), 2500, "every stream exactly once");
        assert_eq!(dense_sequences(&plan[0]).len(), 1024);
        assert_eq!(plan_connections(&pairs[..3], 1024, spot).len(), 1);
    }

    #[test]
    fn with_sbe_the_kinds_sbe_lacks_get_json_connections_of_their_own() {
        use crate::binance::venue::VENUE;
        use StreamKind::{AggTrade, BookTicker, Depth, Trade};
        let kinds = [Trade, AggTrade, Depth, StreamKind::Kline(0), BookTicker];
        let pairs: Vec<(u16, StreamKind)> = (0..5u16).flat_map(|s| kinds.map(|k| (s, k))).collect();
        let sbe = |k: StreamKind| (VENUE.binary.unwrap().carried)(k).is_some();
        for max in [1024, 4, 1] {
            let plan = plan_connections(&pairs, max, |k| route_of(&VENUE, true, k));
            for c in &plan {
                assert!(c.len() <= max && !c.is_empty(), "{c:?}");
                assert!(c.iter().all(|&(_, k)| sbe(k)) || c.iter().all(|&(_, k)| !sbe(k)), "mixed: {c:?}");
            }
            let mut all: Vec<(u16, StreamKind)> = plan.iter().flatten().copied().collect();
            all.sort_by_key(|&(s, k)| (s, kinds.iter().position(|&x| x == k)));
            assert_eq!(all, pairs, "every stream exactly once");
        }
        let plan = plan_connections(&pairs, 1024, |k| route_of(&VENUE, true, k));
        assert_eq!(plan.iter().map(Vec::len).collect::<Vec<_>>(), [15, 10], "SBE's first, as they first appear");
        // JSON only (or a venue without a binary transport): one route, as before.
        assert_eq!(plan_connections(&pairs, 1024, |k| route_of(&VENUE, false, k)).len(), 1);
        let usdm = &crate::binance::usdm::venue::VENUE;
        assert_eq!(route_of(usdm, true, AggTrade), ("/market", None));
    }

    #[test]
    fn usd_m_streams_of_different_routes_never_share_a_connection() {
        use crate::binance::usdm::venue::VENUE;
        let kinds = [StreamKind::Depth, StreamKind::AggTrade, StreamKind::MarkPrice];
        let pairs: Vec<(u16, StreamKind)> = (0..3u16).flat_map(|s| kinds.map(|k| (s, k))).collect();
        let plan = plan_connections(&pairs, 1024, VENUE.route);
        let routes: Vec<Vec<&str>> = plan.iter().map(|c| c.iter().map(|&(_, k)| (VENUE.route)(k)).collect()).collect();
        assert_eq!(routes, [vec!["/public"; 3], vec!["/market"; 6]]);
        assert_eq!(plan.iter().map(Vec::len).sum::<usize>(), pairs.len(), "every stream exactly once");
        // Each route is split by the per-connection limit on its own.
        let plan = plan_connections(&pairs, 4, VENUE.route);
        assert_eq!(plan.iter().map(Vec::len).collect::<Vec<_>>(), [3, 4, 2]);
        // Each connection's URL names its route; none is on the bare root.
        let names = crate::symbols::Symbols::new(&["btcusdt".into(), "ethusdt".into(), "bnbusdt".into()]);
        let paths: Vec<String> = plan_connections(&pairs, 1024, VENUE.route)
            .into_iter()
            .enumerate()
            .map(|(id, s)| Connection::new(id, s, &names, &VENUE, "", TimeUnit::Millis).path().to_string())
            .collect();
        assert_eq!(
            paths,
            [
                "/public/stream?streams=btcusdt@depth/ethusdt@depth/bnbusdt@depth",
                "/market/stream?streams=btcusdt@aggTrade/btcusdt@markPrice/ethusdt@aggTrade/ethusdt@markPrice/bnbusdt@aggTrade/bnbusdt@markPrice",
            ]
        );
    }
}
