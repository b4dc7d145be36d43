//! The event loop's side of per-stream liveness ([`crate::liveness`]): which connection carries
//! each stream and since when it is subscribed there, the watch's look every housekeeping turn,
//! and its decisions carried out: a resubscription or a replacement on that connection, a `stale`
//! record in the stream's topic, the counters, a log line, and the per-stream age gauges.

use std::time::{Duration, Instant};

use prometheus::Gauge;
use tracing::{info, warn};

use crate::config::Config;
use crate::liveness::{Action, Bounds, Event, Watch};
use crate::log_limit::LogLimiter;
use crate::metrics::Metrics;
use crate::pipeline::Pipeline;
use crate::stream::StreamKind;
use crate::venue::Venue;
use crate::ws::Connection;

/// The age gauges change slowly; setting them once a second is enough for any scrape.
const GAUGES_EVERY: Duration = Duration::from_secs(1);
/// No connection: the stream is not carried right now.
const NONE: usize = usize::MAX;

pub struct StreamWatch {
    watch: Watch,
    /// Per slot: when its carrier finished subscribing (`None`: not carried by a ready
    /// connection this turn), and which connection that is. Rebuilt every look.
    carried: Vec<Option<Instant>>,
    carrier: Vec<usize>,
    decisions: Vec<Event>,
    /// Per slot: the venue's name of its kind (the `stream` label and record field), its gauge.
    names: Vec<String>,
    ages: Vec<Gauge>,
    next_gauges: Instant,
    log: LogLimiter,
}

impl StreamWatch {
    /// Watches every configured stream: the pipeline keeps their last messages from now on.
    pub fn new(cfg: &Config, venue: &Venue, pipeline: &mut Pipeline, metrics: &Metrics) -> StreamWatch {
        pipeline.track_streams(&cfg.streams);
        let slots = pipeline.streams();
        let (mut names, mut ages) = (Vec::with_capacity(slots.len()), Vec::with_capacity(slots.len()));
        for s in 0..slots.len() {
            let (sym, kind) = slots.stream(s);
            let name = (venue.kind_name)(kind);
            ages.push(metrics.stream_age.with_label_values(&[metrics.symbols[sym as usize].as_str(), name.as_str()]));
            names.push(name);
        }
        let now = Instant::now();
        let bounds = Bounds { floor: cfg.stream_stale_min, cap: cfg.stream_stale_max };
        StreamWatch {
            watch: Watch::new(slots, bounds, now),
            carried: vec![None; slots.len()],
            carrier: vec![NONE; slots.len()],
            decisions: Vec::new(),
            names,
            ages,
            next_gauges: now,
            log: LogLimiter::with_burst(Duration::from_secs(10), 10),
        }
    }

    /// Whether `stream` is silent now (a replacement need not wait to catch up on it: the old
    /// connection will not deliver it).
    pub fn is_silent(&self, pipeline: &Pipeline, stream: (u16, StreamKind)) -> bool {
        pipeline.streams().index(stream.0, stream.1).is_some_and(|s| self.watch.is_silent(s))
    }

    /// One look at every stream; `busy` are the connections with frames still unread (their
    /// streams are not judged this turn: what looks like silence may be waiting in the socket).
    pub fn check(
        &mut self,
        now: Instant,
        conns: &mut [Connection],
        pipeline: &mut Pipeline,
        metrics: &Metrics,
        busy: &[usize],
    ) {
        self.carried.fill(None);
        self.carrier.fill(NONE);
        let slots = pipeline.streams();
        // A retiring connection's streams count through its replacement.
        for (i, c) in conns.iter().enumerate().filter(|(_, c)| !c.is_closed() && !c.is_retiring()) {
            let since = if busy.contains(&i) { None } else { c.subscribed_since() };
            for &(sym, kind) in &c.streams {
                if let Some(s) = slots.index(sym, kind) {
                    self.carried[s] = since;
                    self.carrier[s] = i;
                }
            }
        }
        self.watch.check(now, crate::clock::now_ns(), slots.last_ns(), &self.carried, &mut self.decisions);
        // Before the counters move: a scrape that sees a `recovered` sees the gauge without it.
        metrics.streams_stale.set(self.watch.silent_count() as i64);
        for ev in std::mem::take(&mut self.decisions) {
            self.carry_out(&ev, conns, pipeline, metrics);
        }
        if now >= self.next_gauges {
            self.next_gauges = now + GAUGES_EVERY;
            for (s, g) in self.ages.iter().enumerate() {
                g.set(self.watch.age(s, now).as_secs_f64());
            }
        }
    }

    fn carry_out(&mut self, ev: &Event, conns: &mut [Connection], pipeline: &mut Pipeline, metrics: &Metrics) {
        let (sym, kind) = pipeline.streams().stream(ev.slot);
        let conn = conns.get_mut(self.carrier[ev.slot]);
        let done = match (ev.action, conn) {
            (Action::Resubscribe, Some(c)) => c.resubscribe((sym, kind), metrics),
            (Action::ReplaceConnection, Some(c)) => c.replace_for_silence(),
            (Action::Recovered, _) => true,
            (_, None) => false,
        };
        metrics.stream_stale.with_label_values(&[ev.action.as_str()]).inc();
        let stream = self.names[ev.slot].as_str();
        let published = pipeline.publish_stale(sym, kind, stream, ev);
        let action = ev.action.as_str();
        if let Some(suppressed) = self.log.check(action) {
            let symbol = metrics.symbols[sym as usize].as_str();
            let (silent_ms, bound_ms) = (ev.silent.as_millis() as u64, ev.bound.as_millis() as u64);
            let conn = self.carrier[ev.slot];
            if ev.action == Action::Recovered {
                info!(symbol, stream, silent_ms, suppressed, "stream delivers again");
            } else {
                warn!(symbol, stream, action, silent_ms, bound_ms, conn, done, published, suppressed, "stream silent");
            }
        }
    }
}
