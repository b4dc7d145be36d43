//! One WebSocket connection to Binance's combined-stream endpoint, as a state machine driven by
//! mio readiness: backoff -> TCP connect -> (TLS +) WebSocket upgrade -> streaming.
//!
//! Every socket is registered once, edge-triggered, for both readable and writable; after any
//! event the connection reads until `WouldBlock` and retries its pending writes, so no interest
//! bookkeeping is needed. Non-blocking handshakes follow tungstenite's contract: a handshake
//! that would block hands itself back (`HandshakeError::Interrupted`) and is resumed on the next
//! event.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use rand::RngExt;
use rustls::pki_types::ServerName;
use tracing::{debug, info, warn};
use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::client::ClientHandshake;
use tungstenite::handshake::{HandshakeError, MidHandshake};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

use crate::config::Endpoint;
use crate::metrics::Metrics;
use crate::pipeline::{Admission, Outcome, Pipeline};
use crate::sequence::Dense;

/// How long a TCP connect or a TLS + WebSocket handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Streams beyond this many URL bytes are added with SUBSCRIBE instead of in the connect URL.
const URL_STREAM_BYTES: usize = 2000;
/// Streams per SUBSCRIBE request (a long `params` list has been reported to fail silently).
const STREAMS_PER_SUBSCRIBE: usize = 200;
/// Frames handled per connection per loop turn, so one busy connection cannot starve others.
pub const READ_BUDGET: usize = 4096;
/// Binance closes a connection that sends more than this many messages (pongs and control
/// requests together) in a second.
const OUTGOING_LIMIT: usize = 5;
/// Our control requests count against the budget this much longer than a second: the server
/// counts a message when it reads it, a little later than we sent it, so at the edge of the
/// window its count can still hold a request ours has already let go.
const CONTROL_MARGIN: Duration = Duration::from_millis(250);

/// The last [`OUTGOING_LIMIT`] send times of one kind, oldest at `next`.
#[derive(Debug, Default)]
struct SendTimes {
    at: [Option<Instant>; OUTGOING_LIMIT],
    next: usize,
}

impl SendTimes {
    fn record(&mut self, now: Instant) {
        self.at[self.next] = Some(now);
        self.next = (self.next + 1) % OUTGOING_LIMIT;
    }

    /// When each send still counted at `now` stops counting, a `window` after it was sent.
    fn expiries(&self, now: Instant, window: Duration) -> impl Iterator<Item = Instant> + '_ {
        self.at.iter().flatten().map(move |t| *t + window).filter(move |e| *e > now)
    }
}

/// Binance's outgoing limit over a sliding second, so no second, however Binance aligns its count,
/// holds more than [`OUTGOING_LIMIT`]. Pongs cannot wait (tungstenite answers a ping as soon as it
/// is read), so control requests leave room for as many pongs as the last second saw, plus one,
/// and keep one more spare.
#[derive(Debug, Default)]
struct OutgoingBudget {
    control: SendTimes,
    pongs: SendTimes,
}

impl OutgoingBudget {
    /// Recent controls plus recent pongs may be at most this for another request to go:
    /// `controls + 1 + (pongs + 1) < OUTGOING_LIMIT`.
    const ROOM: usize = OUTGOING_LIMIT - 3;

    /// When a control request may go: now, or once enough sends have stopped counting.
    fn control_at(&self, now: Instant) -> Instant {
        let mut expiries: Vec<Instant> = self
            .control
            .expiries(now, Duration::from_secs(1) + CONTROL_MARGIN)
            .chain(self.pongs.expiries(now, Duration::from_secs(1)))
            .collect();
        match expiries.len().checked_sub(Self::ROOM) {
            None | Some(0) => now,
            Some(over) => {
                // Each send that stops counting lowers the sum by one.
                expiries.sort_unstable();
                expiries[over - 1]
            }
        }
    }

    fn allows_control(&self, now: Instant) -> bool {
        self.control_at(now) <= now
    }

    fn record_control(&mut self, now: Instant) {
        self.control.record(now);
    }

    fn record_pong(&mut self, now: Instant) {
        self.pongs.record(now);
    }
}

#[cfg(test)]
mod outgoing_tests {
    use super::*;

    #[test]
    fn control_requests_leave_room_for_the_pongs() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        // No pings (Binance pings every 20 s): three requests, then a pause of a second and the
        // margin, so the server's count (taken a little later) has let them go too.
        let mut b = OutgoingBudget::default();
        for _ in 0..3 {
            assert!(b.allows_control(t0));
            b.record_control(t0);
        }
        assert!(!b.allows_control(ms(1000)), "still inside the margin");
        assert_eq!(b.control_at(ms(10)), ms(1250));
        // Pings every 400 ms: at most three pongs in a second, so at most two requests.
        let mut b = OutgoingBudget::default();
        b.record_pong(ms(0));
        b.record_pong(ms(400));
        assert!(b.allows_control(ms(500)));
        b.record_control(ms(500));
        assert!(!b.allows_control(ms(500)), "2 pongs + 1 request + room for 2 more pongs");
        assert_eq!(b.control_at(ms(500)), ms(1000), "when the pong at 0 stops counting");
        b.record_pong(ms(800));
        assert_eq!(b.control_at(ms(900)), ms(1400));
    }
}

/// A TCP stream that remembers when it last delivered bytes: one clock read per socket read,
/// shared by every frame in that read.
pub struct TimedTcp {
    tcp: TcpStream,
    last_read_ns: u64,
}

impl Read for TimedTcp {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.tcp.read(buf)?;
        if n > 0 {
            self.last_read_ns = crate::clock::now_ns();
        }
        Ok(n)
    }
}

impl Write for TimedTcp {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tcp.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
    }
}

/// Plain TCP or rustls over TCP.
pub enum Transport {
    Plain(TimedTcp),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TimedTcp>>),
}

impl Transport {
    fn timed(&self) -> &TimedTcp {
        match self {
            Transport::Plain(t) => t,
            Transport::Tls(s) => &s.sock,
        }
    }
    /// Unix ns of the last socket read that returned data.
    pub fn recv_ns(&self) -> u64 {
        self.timed().last_read_ns
    }
}

impl Read for Transport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(t) => t.read(buf),
            Transport::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Transport {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(t) => t.write(buf),
            Transport::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Transport::Plain(t) => t.flush(),
            Transport::Tls(s) => s.flush(),
        }
    }
}

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

/// Shared, read-only inputs of every connection.
pub struct Dialer {
    pub endpoint: Endpoint,
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub ws_config: WebSocketConfig,
    /// Neither data nor a ping for this long: the connection is replaced.
    pub stale_after: Duration,
    /// Rotate (make-before-break) at this age.
    pub max_age: Duration,
    /// The endpoint's addresses, looked up off the event-loop thread.
    pub resolver: crate::resolver::Resolver,
}

/// Binance allows 300 connection attempts per 5 minutes per IP; one budget for all connections.
pub struct AttemptBudget {
    recent: std::collections::VecDeque<Instant>,
    max: usize,
    window: Duration,
}

impl AttemptBudget {
    pub fn binance() -> AttemptBudget {
        // 20 under the limit: other clients may share the IP, and a margin costs nothing.
        AttemptBudget { recent: Default::default(), max: 280, window: Duration::from_secs(300) }
    }

    /// Takes a slot now, or says when one frees up.
    pub fn take(&mut self, now: Instant) -> Result<(), Instant> {
        while self.recent.front().is_some_and(|t| now.duration_since(*t) >= self.window) {
            self.recent.pop_front();
        }
        if self.recent.len() >= self.max {
            return Err(self.recent[0] + self.window);
        }
        self.recent.push_back(now);
        Ok(())
    }
}

impl Dialer {
    pub fn new(
        endpoint: Endpoint,
        tls: Option<Arc<rustls::ClientConfig>>,
        stale_after: Duration,
        max_age: Duration,
    ) -> Dialer {
        // A small read buffer: tungstenite zero-fills it before every socket read, and a 128 KiB
        // default made that memset cost more than parsing (see perf-notes, tungstenite PR #485).
        let ws_config = WebSocketConfig::default()
            .read_buffer_size(16 * 1024)
            .max_message_size(Some(8 << 20))
            .max_frame_size(Some(8 << 20));
        // Binance's stream hosts sit behind DNS-balanced addresses: look again every minute.
        let resolver = crate::resolver::Resolver::spawn(&endpoint.host, endpoint.port, Duration::from_secs(60));
        Dialer { endpoint, tls, ws_config, stale_after, max_age, resolver }
    }
}

pub struct Connection {
    pub id: usize,
    token: Token,
    /// Every stream this connection carries; resubscribed as a whole after a reconnect.
    pub streams: Vec<String>,
    /// Indices of the symbols these streams belong to (for per-symbol reconnect counts).
    pub symbols: Vec<u16>,
    /// Request path with the streams that fit in the URL.
    path: String,
    /// Streams that did not fit in the URL: sent as SUBSCRIBE batches once open.
    overflow: Vec<String>,
    state: State,
    /// Index into `overflow` of the next batch to send.
    next_batch: usize,
    /// SUBSCRIBE ids not yet acknowledged.
    pending: Vec<i64>,
    next_id: i64,
    /// Pongs and control requests sent in the last second.
    outgoing: OutgoingBudget,
    attempt: u32,
    addr_rr: usize,
    ever_open: bool,
    last_state: &'static str,
    /// When the WebSocket opened (for the age limit).
    opened_at: Instant,
    /// Last frame of any kind (data, control, ping): silence beyond `stale_after` means stale.
    last_rx: Instant,
    /// Asked for a replacement (age limit or serverShutdown).
    rotate: bool,
    /// A replacement exists: when this one goes, it is not reconnected.
    retiring: bool,
    /// Set on a rotation's replacement: the dense sequences `(symbol, kind)` it has not yet
    /// joined, and since when (see `pipeline::Admission::CatchUp`).
    catch_up: Option<(Instant, Vec<(u16, Dense)>)>,
}

impl Connection {
    pub fn new(id: usize, streams: Vec<String>, symbols: Vec<u16>, base_path: &str) -> Connection {
        let mut in_url = Vec::new();
        let mut used = 0;
        let mut overflow = Vec::new();
        for s in &streams {
            if used + s.len() < URL_STREAM_BYTES || in_url.is_empty() {
                used += s.len() + 1;
                in_url.push(s.as_str());
            } else {
                overflow.push(s.clone());
            }
        }
        let path = format!("{base_path}/stream?streams={}", in_url.join("/"));
        Connection {
            id,
            token: Token(id),
            streams,
            symbols,
            path,
            overflow,
            state: State::Backoff { until: Instant::now() },
            next_batch: 0,
            pending: Vec::new(),
            next_id: 1,
            outgoing: OutgoingBudget::default(),
            attempt: 0,
            addr_rr: 0,
            ever_open: false,
            last_state: "backoff",
            opened_at: Instant::now(),
            last_rx: Instant::now(),
            rotate: false,
            retiring: false,
            catch_up: None,
        }
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
                let mut d = self.last_rx + dialer.stale_after;
                if self.next_batch < self.overflow.len() {
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
                    warn!(conn = self.id, "connection attempt budget exhausted: waiting");
                    self.set_state(State::Backoff { until: free_at }, metrics);
                }
            },
            State::Open { .. } if now >= self.last_rx + dialer.stale_after => {
                metrics.ws_stale.inc();
                let silent = now.duration_since(self.last_rx).as_millis() as u64;
                self.lost(&format!("stale: no data and no ping for {silent} ms"), metrics);
            }
            State::Open { .. } if !self.rotate && now >= self.opened_at + dialer.max_age => {
                info!(conn = self.id, "connection reached its age limit: rotating");
                self.rotate = true;
            }
            State::Connecting { since, .. } | State::Handshaking { since, .. } if now >= *since + HANDSHAKE_TIMEOUT => {
                self.fail("handshake timed out", metrics, "timeout")
            }
            State::Open { .. } => self.send_subscriptions(),
            _ => {}
        }
    }

    fn start_connect(&mut self, dialer: &Dialer, registry: &Registry, metrics: &Metrics) {
        let ep = &dialer.endpoint;
        // The cached answer of the resolver thread: a slow DNS server never stalls the loop.
        let addrs: Vec<SocketAddr> = match dialer.resolver.addrs() {
            Ok(a) if !a.is_empty() => a,
            Ok(_) => return self.fail(&format!("{} not resolved yet", ep.host), metrics, "resolve"),
            Err(e) => {
                dialer.resolver.refresh();
                return self.fail(&e, metrics, "resolve");
            }
        };
        let addr = addrs[self.addr_rr % addrs.len()];
        self.addr_rr += 1;
        match TcpStream::connect(addr) {
            Ok(mut tcp) => {
                if let Err(e) = registry.register(&mut tcp, self.token, Interest::READABLE | Interest::WRITABLE) {
                    return self.fail(&format!("register: {e}"), metrics, "io");
                }
                debug!(conn = self.id, %addr, "connecting");
                self.set_state(State::Connecting { tcp, since: Instant::now() }, metrics);
            }
            Err(e) => {
                // The address may have moved: look again before the next attempt.
                dialer.resolver.refresh();
                self.fail(&format!("connect {addr}: {e}"), metrics, "connect")
            }
        }
    }

    /// Gives up on the current socket and schedules a reconnect with capped exponential backoff
    /// and jitter (so a fleet does not reconnect in lockstep).
    fn fail(&mut self, why: &str, metrics: &Metrics, result: &'static str) {
        metrics.ws_connect_attempts.with_label_values(&[result]).inc();
        let base = Duration::from_millis(250).saturating_mul(1u32 << self.attempt.min(7));
        let capped = base.min(Duration::from_secs(30));
        let delay = capped.mul_f64(rand::rng().random_range(0.5..1.0));
        self.attempt = self.attempt.saturating_add(1);
        warn!(conn = self.id, attempt = self.attempt, delay_ms = delay.as_millis() as u64, "connection failed: {why}");
        self.reset_subscriptions();
        self.set_state(State::Backoff { until: Instant::now() + delay }, metrics);
    }

    /// A connection that was streaming went away: count a reconnect for every symbol it carried.
    /// A retiring connection is not reconnected: its replacement already carries its streams.
    fn lost(&mut self, why: &str, metrics: &Metrics) {
        if self.retiring {
            info!(conn = self.id, "retiring connection closed: {why}");
            self.set_state(State::Closed, metrics);
            return;
        }
        for &s in &self.symbols {
            metrics.ws_reconnects[s as usize].inc();
        }
        info!(conn = self.id, streams = self.streams.len(), "connection lost: {why}; reconnecting");
        self.attempt = 0;
        self.fail(why, metrics, "lost");
    }

    fn reset_subscriptions(&mut self) {
        self.next_batch = 0;
        self.pending.clear();
    }

    /// Handles readiness for this connection's socket.
    pub fn on_ready(&mut self, dialer: &Dialer, pipeline: &mut Pipeline, metrics: &Metrics) -> Progress {
        loop {
            match std::mem::replace(&mut self.state, State::Closed) {
                State::Connecting { tcp, since } => {
                    // Writable means connected or failed; take_error/peer_addr tell which.
                    if let Ok(Some(e)) | Err(e) = tcp.take_error() {
                        self.state = State::Connecting { tcp, since };
                        self.fail(&format!("connect: {e}"), metrics, "connect");
                        return Progress::default();
                    }
                    match tcp.peer_addr() {
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                            self.state = State::Connecting { tcp, since };
                            return Progress::default();
                        }
                        Err(e) => {
                            self.state = State::Connecting { tcp, since };
                            self.fail(&format!("connect: {e}"), metrics, "connect");
                            return Progress::default();
                        }
                    }
                    let _ = tcp.set_nodelay(true);
                    let transport = match self.wrap(tcp, dialer) {
                        Ok(t) => t,
                        Err(e) => {
                            self.fail(&e, metrics, "tls");
                            return Progress::default();
                        }
                    };
                    let url = format!(
                        "{}://{}{}",
                        if dialer.endpoint.tls { "wss" } else { "ws" },
                        dialer.endpoint.authority(),
                        self.path
                    );
                    let request = match url.into_client_request() {
                        Ok(r) => r,
                        Err(e) => {
                            self.fail(&format!("bad request URL: {e}"), metrics, "request");
                            return Progress::default();
                        }
                    };
                    let r = tungstenite::client::client_with_config(request, transport, Some(dialer.ws_config));
                    if let Some(p) = self.after_handshake(r, since, metrics) {
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

    fn wrap(&self, tcp: TcpStream, dialer: &Dialer) -> Result<Transport, String> {
        let timed = TimedTcp { tcp, last_read_ns: 0 };
        match &dialer.tls {
            None => Ok(Transport::Plain(timed)),
            Some(cfg) => {
                let name = ServerName::try_from(dialer.endpoint.host.clone())
                    .map_err(|e| format!("invalid TLS server name {}: {e}", dialer.endpoint.host))?;
                let conn = rustls::ClientConnection::new(cfg.clone(), name).map_err(|e| format!("tls: {e}"))?;
                Ok(Transport::Tls(Box::new(rustls::StreamOwned::new(conn, timed))))
            }
        }
    }

    /// Moves on from a handshake step. `None` means the state changed to Open and the caller
    /// should loop to start streaming at once (bytes may already be buffered).
    fn after_handshake(
        &mut self,
        r: Result<
            (WebSocket<Transport>, tungstenite::handshake::client::Response),
            HandshakeError<ClientHandshake<Transport>>,
        >,
        since: Instant,
        metrics: &Metrics,
    ) -> Option<Progress> {
        match r {
            Ok((ws, resp)) => {
                metrics.ws_connect_attempts.with_label_values(&["ok"]).inc();
                info!(conn = self.id, status = resp.status().as_u16(), streams = self.streams.len(), "websocket open");
                self.ever_open = true;
                self.opened_at = Instant::now();
                self.last_rx = self.opened_at;
                self.rotate = false;
                self.set_state(State::Open { ws: Box::new(ws) }, metrics);
                self.send_subscriptions();
                None
            }
            Err(HandshakeError::Interrupted(mid)) => {
                self.set_state(State::Handshaking { mid: Box::new(mid), since }, metrics);
                Some(Progress::default())
            }
            Err(HandshakeError::Failure(e)) => {
                self.fail(&format!("handshake: {e}"), metrics, "handshake");
                Some(Progress::default())
            }
        }
    }

    /// Sends SUBSCRIBE batches for streams that did not fit in the URL, within the message budget.
    fn send_subscriptions(&mut self) {
        let now = Instant::now();
        let State::Open { ws } = &mut self.state else {
            return;
        };
        while self.next_batch < self.overflow.len() && self.outgoing.allows_control(now) {
            let end = (self.next_batch + STREAMS_PER_SUBSCRIBE).min(self.overflow.len());
            let id = self.next_id;
            self.next_id += 1;
            let params: Vec<String> = self.overflow[self.next_batch..end].iter().map(|s| format!("\"{s}\"")).collect();
            let msg = format!("{{\"method\":\"SUBSCRIBE\",\"params\":[{}],\"id\":{id}}}", params.join(","));
            match ws.write(Message::text(msg)) {
                Ok(()) => {}
                Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => {
                    warn!(conn = self.id, "SUBSCRIBE failed: {e}");
                    return;
                }
            }
            let _ = ws.flush();
            debug!(conn = self.id, id, streams = end - self.next_batch, "SUBSCRIBE sent");
            self.pending.push(id);
            self.next_batch = end;
            self.outgoing.record_control(now);
        }
    }

    /// Reads frames until `WouldBlock` or the read budget, handing text frames to the pipeline.
    fn stream(&mut self, pipeline: &mut Pipeline, metrics: &Metrics) -> Progress {
        let State::Open { ws } = &mut self.state else {
            return Progress::default();
        };
        let mut handled = 0;
        let mut got_any = false;
        let mut lost: Option<String> = None;
        while handled < READ_BUDGET {
            match ws.read() {
                Ok(Message::Text(t)) => {
                    handled += 1;
                    got_any = true;
                    let recv_ns = ws.get_ref().recv_ns();
                    let admission = if self.catch_up.is_some() { Admission::CatchUp } else { Admission::Normal };
                    match pipeline.on_text(t.as_str(), recv_ns, admission) {
                        Outcome::Record => {
                            self.attempt = 0;
                        }
                        Outcome::Joined { symbol_idx, kind } => {
                            if let Some((_, pending)) = &mut self.catch_up {
                                pending.retain(|p| *p != (symbol_idx, kind));
                                if pending.is_empty() {
                                    info!(conn = self.id, "replacement caught up with every sequence");
                                    self.catch_up = None;
                                }
                            }
                        }
                        Outcome::ControlReply { id: Some(id) } => self.pending.retain(|p| *p != id),
                        // Make-before-break: keep streaming until the replacement takes over.
                        Outcome::ServerShutdown => self.rotate = true,
                        _ => {}
                    }
                }
                Ok(Message::Binary(b)) => {
                    handled += 1;
                    got_any = true;
                    metrics.rejected.with_label_values(&["binary_frame"]).inc();
                    debug!(conn = self.id, len = b.len(), "binary frame ignored");
                }
                // tungstenite queues the pong, with the ping's payload, and flushes it below.
                Ok(Message::Ping(_)) => {
                    got_any = true;
                    metrics.ws_pings.inc();
                    self.outgoing.record_pong(Instant::now());
                }
                Ok(Message::Pong(_)) | Ok(Message::Frame(_)) => got_any = true,
                Ok(Message::Close(c)) => {
                    lost = Some(format!("server closed: {c:?}"));
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
                    lost = Some(e.to_string());
                    break;
                }
            }
        }
        if got_any {
            self.last_rx = Instant::now();
        }
        pipeline.flush_batch();
        // Pongs and anything else queued go out now; WouldBlock leaves them for the writable edge.
        match ws.flush() {
            Ok(()) => {}
            Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if lost.is_none() => lost = Some(e.to_string()),
            Err(_) => {}
        }
        if let Some(why) = lost {
            self.lost(&why, metrics);
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
