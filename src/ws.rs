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
mod lifecycle;
mod limits;
mod read;
mod resubscribe;
mod transport;

pub use dial::{ws_config, Dialer, MAX_FRAME, MAX_MESSAGE, WRITE_BUFFER_MAX};
pub use error::{ConnectError, Lost, Retry, KEY_REFUSED};
pub use limits::{AttemptBudget, PING_FLOOD_LIMIT, STABLE_AFTER};
pub use transport::Transport;

use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::Token;
use tungstenite::handshake::client::ClientHandshake;
use tungstenite::handshake::MidHandshake;
use tungstenite::WebSocket;

use crate::log_limit::LogLimiter;
use crate::metrics::Metrics;
use crate::sequence::Dense;
use crate::stream::StreamKind;
use crate::symbols::Symbols;
use crate::time_unit::TimeUnit;
use crate::venue::Venue;
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
