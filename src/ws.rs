//! One WebSocket connection to Binance's combined-stream endpoint, as a state machine driven by
//! mio readiness: backoff -> TCP connect -> (TLS +) WebSocket upgrade -> streaming.
//!
//! Every socket is registered once, edge-triggered, for both readable and writable; after any
//! event the connection reads until `WouldBlock` and retries its pending writes, so no interest
//! bookkeeping is needed. Non-blocking handshakes follow tungstenite's contract: a handshake
//! that would block hands itself back (`HandshakeError::Interrupted`) and is resumed on the next
//! event.
//!
//! # What a peer can cost us
//!
//! Memory, per connection, whatever the peer sends: the read buffer (16 KiB); one frame of at
//! most 8 MiB ([`MAX_FRAME`]) and a message assembled from fragments of at most 8 MiB
//! ([`MAX_MESSAGE`]), together at most 16 MiB and only while a peer sends something that large;
//! the write buffer, at most 64 KiB ([`WRITE_BUFFER_MAX`]): past it the connection is dropped
//! (`ws_connect_attempts_total{result="write_buffer_full"}`) and reconnected; with TLS, rustls
//! adds at most 64 KiB outgoing and 16 KiB of decrypted input (its defaults). About 16.2 MiB in
//! all, 150 KiB of it outside an oversized message.
//!
//! Time: every frame, control frames included, counts against [`READ_BUDGET`], so a flood
//! yields to the other connections, the heartbeat and shutdown. A peer pinging more than
//! [`PING_FLOOD_LIMIT`] times in a second is not Binance and is dropped
//! (`result="ping_flood"`).
//!
//! Connection attempts: the backoff keeps growing across a peer that accepts and then fails; it
//! starts over only after a connection streamed data for [`STABLE_AFTER`]. A rotation's
//! replacement inherits it, so a peer announcing `serverShutdown` at once cannot make us
//! reconnect in a loop either.
//!
//! Logs: every line a peer can cause per frame or per attempt goes through a [`LogLimiter`].

mod dial;
mod error;
mod handover;
mod limits;
mod resubscribe;
mod transport;

pub use dial::{ws_config, Dialer, MAX_FRAME, MAX_MESSAGE, WRITE_BUFFER_MAX};
pub use error::{ConnectError, Lost, Retry, KEY_REFUSED};
pub use limits::{AttemptBudget, PING_FLOOD_LIMIT, STABLE_AFTER};
pub use transport::Transport;

use std::io;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Registry, Token};
use tracing::{info, warn};
use tungstenite::handshake::client::ClientHandshake;
use tungstenite::handshake::MidHandshake;
use tungstenite::{Message, WebSocket};

use crate::log_limit::LogLimiter;
use crate::metrics::Metrics;
use crate::pipeline::{Admission, Outcome, Pipeline};
use crate::sequence::Dense;
use crate::stream::StreamKind;
use crate::symbols::Symbols;
use crate::time_unit::TimeUnit;
use crate::venue::Venue;
use dial::{write_buffer_full, HANDSHAKE_TIMEOUT};
use limits::{backoff, OutgoingBudget, PingRate};
use resubscribe::Resubscriptions;

/// Frames of any kind handled per connection per loop turn, so one busy connection (or one
/// flooding us with control frames) cannot starve the others, the heartbeat or shutdown.
pub const READ_BUDGET: usize = 4096;
/// How often a connection may log each kind of line a peer can provoke at will.
const LOG_EVERY: Duration = Duration::from_secs(10);

enum State {
    /// Waiting to (re)connect.
    Backoff {
        until: Instant,
    },
    Connecting {
        tcp: TcpStream,
        since: Instant,
    },
    Handshaking {
        mid: Box<MidHandshake<ClientHandshake<Transport>>>,
        since: Instant,
    },
    Open {
        ws: Box<WebSocket<Transport>>,
    },
    /// Shut down for good.
    Closed,
}

/// What the event loop should know after handling an event.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// The read budget ran out before `WouldBlock`: call `on_ready` again without waiting for an
    /// event (edge-triggered readiness will not fire again for bytes already there).
    pub more: bool,
}

pub struct Connection {
    pub id: usize,
    token: Token,
    /// Every stream this connection carries, as (symbol index, kind); resubscribed as a whole
    /// after a reconnect.
    pub streams: Vec<(u16, StreamKind)>,
    /// Indices of the symbols these streams belong to (for per-symbol reconnect counts).
    pub symbols: Vec<u16>,
    /// The venue: URL shape, SUBSCRIBE requests, limits.
    venue: &'static Venue,
    /// Request path with the streams that fit in the URL.
    path: String,
    /// Names of the streams that did not fit in the URL (built once): sent as SUBSCRIBE batches
    /// once open.
    overflow: Vec<String>,
    state: State,
    /// Index into `overflow` of the next batch to send.
    next_batch: usize,
    /// SUBSCRIBE ids not yet acknowledged.
    pending: Vec<i64>,
    /// When the last of those was acknowledged (or the WebSocket opened, with every stream in
    /// the URL): since then every stream should deliver.
    subscribed_at: Instant,
    /// Silent streams to subscribe again (see `resubscribe.rs`).
    resub: Resubscriptions,
    next_id: i64,
    /// Pongs and control requests sent in the last second.
    outgoing: OutgoingBudget,
    /// Pings received lately: past a Binance-like rate the peer is dropped.
    pings: PingRate,
    /// Attempts since the last stable connection: the backoff's exponent. Not reset by a mere
    /// successful open, so a peer that accepts and then fails sees the backoff keep growing.
    attempt: u32,
    /// A record arrived since the WebSocket opened (one of the two marks of a stable connection).
    streamed: bool,
    /// Lines a peer can provoke at will (failures, losses, opens) are logged at a bounded rate.
    log: LogLimiter,
    addr_rr: usize,
    last_state: &'static str,
    /// When the WebSocket opened (for the age limit).
    opened_at: Instant,
    /// Last frame of any kind (data, control, ping): silence beyond `stale_after` means stale.
    last_rx: Instant,
    /// The least silence allowed whatever `stale_after` says ([`limits::quiet_floor`]).
    quiet_floor: Duration,
    /// Asked for a replacement (age limit or serverShutdown).
    rotate: bool,
    /// The rotation was asked for by the peer (serverShutdown), not by our own age limit: only
    /// such a rotation can be a flapping peer's doing.
    rotate_by_peer: bool,
    /// A replacement exists: when this one goes, it is not reconnected.
    retiring: bool,
    /// Set on a rotation's replacement: the dense sequences `(symbol, kind)` it has not yet
    /// joined, and since when (see `pipeline::Admission::CatchUp`).
    catch_up: Option<(Instant, Vec<(u16, Dense)>)>,
}

impl Connection {
    /// A connection carrying `streams` of the symbols in `names`, to `venue`'s endpoint under
    /// `base_path`, its times in `unit`.
    pub fn new(
        id: usize,
        streams: Vec<(u16, StreamKind)>,
        names: &Symbols,
        venue: &'static Venue,
        base_path: &str,
        unit: TimeUnit,
    ) -> Connection {
        let mut in_url = Vec::new();
        let mut used = 0;
        let mut overflow = Vec::new();
        let all: Vec<String> =
            streams.iter().map(|&(sym, kind)| (venue.stream_name)(&names[sym as usize], kind)).collect();
        for s in all.iter().cloned() {
            // A URL carries a UTF-8 name's non-ASCII bytes percent-encoded, three bytes each.
            let url_len = s.len() + 2 * s.bytes().filter(|b| !b.is_ascii()).count();
            if used + url_len < venue.limits.url_stream_bytes || in_url.is_empty() {
                used += url_len + 1;
                in_url.push(s);
            } else {
                overflow.push(s);
            }
        }
        let in_url: Vec<&str> = in_url.iter().map(String::as_str).collect();
        let path = dial::request_path(venue, base_path, &streams, &in_url, unit);
        let quiet_floor = limits::quiet_floor(streams.iter().map(|s| s.1), venue.limits.server_ping_interval);
        let mut symbols: Vec<u16> = streams.iter().map(|(s, _)| *s).collect();
        symbols.dedup();
        Connection {
            id,
            token: Token(id),
            streams,
            symbols,
            venue,
            path,
            overflow,
            state: State::Backoff { until: Instant::now() },
            next_batch: 0,
            pending: Vec::new(),
            subscribed_at: Instant::now(),
            resub: Resubscriptions::new(all),
            next_id: 1,
            outgoing: OutgoingBudget::new(venue.limits.messages_per_second),
            pings: PingRate::new(Instant::now()),
            attempt: 0,
            streamed: false,
            log: LogLimiter::new(LOG_EVERY),
            addr_rr: 0,
            last_state: "backoff",
            opened_at: Instant::now(),
            last_rx: Instant::now(),
            quiet_floor,
            rotate: false,
            rotate_by_peer: false,
            retiring: false,
            catch_up: None,
        }
    }

    /// How long the connection may hear nothing before it is stale (`configured`: `WS_STALE_MS`).
    pub fn silence_allowed(&self, configured: Duration) -> Duration {
        configured.max(self.quiet_floor)
    }

    /// The request path: route, streams in the URL, time unit.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Open, and every stream acknowledged.
    pub fn is_subscribed(&self) -> bool {
        matches!(self.state, State::Open { .. }) && self.pending.is_empty() && self.next_batch >= self.overflow.len()
    }

    /// Wants a replacement opened beside it (and has none yet).
    pub fn wants_rotation(&self) -> bool {
        self.rotate && !self.retiring && matches!(self.state, State::Open { .. })
    }

    /// A replacement is on its way: this connection closes once the replacement streams.
    pub fn mark_retiring(&mut self) {
        self.retiring = true;
    }

    /// Makes this connection a replacement that must join each of `pending` before it counts
    /// as caught up.
    pub fn begin_catch_up(&mut self, pending: Vec<(u16, Dense)>) {
        self.catch_up = (!pending.is_empty()).then(|| (Instant::now(), pending));
    }

    /// Makes this connection the replacement of `old`, which asked for one. After a stable
    /// connection, or at our own age limit, it connects at once (make-before-break, as
    /// Binance's `serverShutdown` asks); after a short-lived one the peer told to go, it waits
    /// out `old`'s backoff, so a peer announcing shutdown right after every open is reconnected
    /// to at a falling rate, like any other flapping peer.
    pub fn succeed(&mut self, old: &Connection) {
        if old.is_stable() || !old.rotate_by_peer {
            return;
        }
        self.attempt = old.attempt.saturating_add(1);
        self.state = State::Backoff { until: Instant::now() + backoff(old.attempt) };
    }

    /// Open, and has streamed data for [`STABLE_AFTER`].
    fn is_stable(&self) -> bool {
        self.streamed && matches!(self.state, State::Open { .. }) && self.opened_at.elapsed() >= STABLE_AFTER
    }

    /// Has joined every dense sequence it carries (or never had to).
    pub fn caught_up(&self) -> bool {
        self.catch_up.is_none()
    }

    /// Takes records normally from now on (the old connection is gone, or waited on too long).
    pub fn end_catch_up(&mut self) {
        self.catch_up = None;
    }

    /// How long the WebSocket has been open (zero when it is not).
    pub fn open_for(&self) -> Duration {
        if matches!(self.state, State::Open { .. }) {
            self.opened_at.elapsed()
        } else {
            Duration::ZERO
        }
    }

    pub fn is_retiring(&self) -> bool {
        self.retiring
    }

    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    pub fn state_name(&self) -> &'static str {
        match self.state {
            State::Backoff { .. } => "backoff",
            State::Connecting { .. } | State::Handshaking { .. } => "connecting",
            State::Open { .. } => "open",
            State::Closed => "closed",
        }
    }

    fn set_state(&mut self, s: State, metrics: &Metrics) {
        self.state = s;
        let name = self.state_name();
        if name != self.last_state {
            if self.last_state != "closed" {
                metrics.ws_connections.with_label_values(&[self.last_state]).dec();
            }
            if name != "closed" {
                metrics.ws_connections.with_label_values(&[name]).inc();
            }
            self.last_state = name;
        }
    }

    /// Registers the initial state in the gauges.
    pub fn init_metrics(&self, metrics: &Metrics) {
        metrics.ws_connections.with_label_values(&[self.last_state]).inc();
    }

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
    fn fail(&mut self, why: ConnectError, metrics: &Metrics) {
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
    fn lost(&mut self, why: Lost, metrics: &Metrics) {
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

    /// Handles readiness for this connection's socket.
    pub fn on_ready(&mut self, dialer: &Dialer, pipeline: &mut Pipeline, metrics: &Metrics) -> Progress {
        loop {
            match std::mem::replace(&mut self.state, State::Closed) {
                State::Connecting { tcp, since } => {
                    if let Some(p) = self.on_connecting(tcp, since, dialer, metrics) {
                        return p;
                    }
                }
                State::Handshaking { mid, since } => {
                    let r = mid.handshake();
                    if let Some(p) = self.after_handshake(r, since, metrics) {
                        return p;
                    }
                }
                State::Open { ws } => {
                    self.state = State::Open { ws };
                    return self.stream(pipeline, metrics);
                }
                other => {
                    self.state = other;
                    return Progress::default();
                }
            }
        }
    }

    /// Reads frames until `WouldBlock` or the read budget, handing text frames to the pipeline.
    fn stream(&mut self, pipeline: &mut Pipeline, metrics: &Metrics) -> Progress {
        let State::Open { ws } = &mut self.state else {
            return Progress::default();
        };
        let mut handled = 0;
        let mut got_any = false;
        // Why the connection goes, and the `ws_connect_attempts_total` result that says so.
        let mut lost: Option<Lost> = None;
        while handled < READ_BUDGET {
            let msg = ws.read();
            // Every frame counts, control frames too: a peer flooding pings or pongs must not
            // keep the loop here.
            handled += 1;
            let admission = if self.catch_up.is_some() { Admission::CatchUp } else { Admission::Normal };
            // Binary frames are the venue's binary transport (SBE), refused on a text one. Handed
            // over here, while `ws` is borrowed for the receive time; what they meant is read in
            // the text and binary arm below.
            let data = match &msg {
                Ok(Message::Text(t)) => Some(pipeline.on_text(t.as_str(), ws.get_ref().recv_ns(), admission)),
                Ok(Message::Binary(b)) => Some(pipeline.on_binary(b, ws.get_ref().recv_ns(), admission)),
                _ => None,
            };
            match msg {
                Ok(Message::Text(_) | Message::Binary(_)) => {
                    got_any = true;
                    match data.unwrap_or(Outcome::Rejected) {
                        // Market data, whatever became of it: the peer is streaming.
                        Outcome::Record | Outcome::Duplicate | Outcome::Held | Outcome::Overflowed => {
                            self.streamed = true
                        }
                        Outcome::Joined { symbol_idx, kind } => {
                            self.streamed = true;
                            if let Some((_, pending)) = &mut self.catch_up {
                                pending.retain(|p| *p != (symbol_idx, kind));
                                if pending.is_empty() {
                                    info!(conn = self.id, "replacement caught up with every sequence");
                                    self.catch_up = None;
                                }
                            }
                        }
                        Outcome::ControlReply { id: Some(id) } if self.resub.answered(id) => {
                            info!(conn = self.id, id, "resubscription acknowledged")
                        }
                        Outcome::ControlReply { id } => match id.filter(|id| self.pending.contains(id)) {
                            Some(id) => {
                                self.pending.retain(|p| *p != id);
                                info!(conn = self.id, id, pending = self.pending.len(), "control reply");
                                if self.pending.is_empty() && self.next_batch >= self.overflow.len() {
                                    self.subscribed_at = Instant::now();
                                }
                            }
                            // Not an answer to us: a peer can send these without end.
                            None => {
                                if let Some(suppressed) = self.log.check("unsolicited_reply") {
                                    info!(conn = self.id, ?id, suppressed, "unsolicited reply ignored");
                                }
                            }
                        },
                        // Make-before-break: keep streaming until the replacement takes over.
                        Outcome::ServerShutdown => {
                            self.rotate = true;
                            self.rotate_by_peer = true;
                        }
                        _ => {}
                    }
                }
                // tungstenite queues the pong, with the ping's payload, and flushes it below.
                Ok(Message::Ping(_)) => {
                    got_any = true;
                    metrics.ws_pings.inc();
                    let now = Instant::now();
                    self.outgoing.record_pong(now);
                    if !self.pings.allow(now) {
                        lost = Some(Lost::PingFlood(PING_FLOOD_LIMIT));
                        break;
                    }
                }
                Ok(Message::Pong(_)) | Ok(Message::Frame(_)) => got_any = true,
                Ok(Message::Close(c)) => {
                    lost = Some(Lost::Peer(format!("server closed: {c:?}")));
                    break;
                }
                Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    // A hostile or broken peer costs this connection, never the process.
                    let reason = match &e {
                        tungstenite::Error::Capacity(_) => Some("frame_too_large"),
                        tungstenite::Error::Protocol(_) => Some("ws_protocol"),
                        tungstenite::Error::Utf8(_) => Some("invalid_utf8"),
                        _ => None,
                    };
                    if let Some(r) = reason {
                        metrics.rejected.with_label_values(&[r]).inc();
                    }
                    lost = Some(Lost::Peer(e.to_string()));
                    break;
                }
            }
        }
        if got_any {
            self.last_rx = Instant::now();
        }
        pipeline.flush_batch();
        // Pongs and anything else queued go out now; WouldBlock leaves them for the writable edge,
        // unless the backlog reached the write buffer's bound: the peer is not reading.
        match ws.flush() {
            Ok(()) => {}
            Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                let unsent = ws.get_ref().unsent();
                if lost.is_none() && write_buffer_full(unsent) {
                    lost = Some(Lost::WriteBufferFull(unsent));
                }
            }
            Err(e) if lost.is_none() => lost = Some(Lost::Peer(e.to_string())),
            Err(_) => {}
        }
        if let Some(why) = lost {
            self.lost(why, metrics);
            return Progress::default();
        }
        Progress { more: handled >= READ_BUDGET }
    }

    /// Sends a close frame (best effort) and stops for good.
    pub fn close(&mut self, metrics: &Metrics) {
        if let State::Open { ws } = &mut self.state {
            let _ = ws.close(None);
            let _ = ws.flush();
        }
        self.set_state(State::Closed, metrics);
    }
}

#[cfg(test)]
mod tests;
