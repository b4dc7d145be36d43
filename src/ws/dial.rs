//! Reaching the peer: the WebSocket limits, the shared dialing inputs, and a connection's steps
//! from TCP connect through the TLS + WebSocket handshake to open and subscribed.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Interest, Registry};
use rustls::pki_types::ServerName;
use tracing::{debug, info};
use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::client::ClientHandshake;
use tungstenite::handshake::HandshakeError;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

use super::error::{ConnectError, Lost};
use super::limits::PingRate;
use super::{Connection, Progress, State, Transport};
use crate::config::{Endpoint, Secret};
use crate::metrics::Metrics;
use crate::stream::StreamKind;
use crate::time_unit::TimeUnit;
use crate::venue::Venue;

/// How long a TCP connect or a TLS + WebSocket handshake may take.
pub(super) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest frame accepted (Binance's largest, a depth update, is tens of KiB).
pub const MAX_FRAME: usize = 8 << 20;
/// Largest message accepted, fragments assembled.
pub const MAX_MESSAGE: usize = 8 << 20;
/// Largest write buffer. We write little: pongs and SUBSCRIBE batches of at most 200 stream
/// names (under 8 KiB), a handful a second at most, so a backlog this size means the peer
/// stopped reading.
pub const WRITE_BUFFER_MAX: usize = 64 << 10;
/// Largest control frame a client sends: 2 header bytes, a 4-byte mask, 125 bytes of payload.
const MAX_CONTROL_FRAME: usize = 2 + 4 + 125;

/// The WebSocket limits of every connection.
pub fn ws_config() -> WebSocketConfig {
    // A small read buffer: tungstenite zero-fills it before every socket read, and a 128 KiB
    // default made that memset cost more than parsing (tuning.md section 5; tungstenite PR #485).
    // Writes go to the socket at once (`write_buffer_size` 0): we flush after every batch anyway,
    // and the backlog then shows in `Transport::unsent`. The write buffer's default bound is
    // none: a peer pinging without reading our pongs grew it by gigabytes.
    WebSocketConfig::default()
        .read_buffer_size(16 * 1024)
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_FRAME))
        .write_buffer_size(0)
        .max_write_buffer_size(WRITE_BUFFER_MAX)
}

/// The write backlog `unsent` leaves no room for one more control frame (a pong): tungstenite
/// would now hold pongs back for good, and Binance cuts a connection whose pongs stop.
pub(super) fn write_buffer_full(unsent: usize) -> bool {
    unsent + MAX_CONTROL_FRAME > WRITE_BUFFER_MAX
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
    /// A header every upgrade request carries (the venue's API-key header and the key, checked
    /// at configuration to be a valid header value), marked sensitive.
    pub api_key: Option<(&'static str, Secret)>,
}

impl Dialer {
    pub fn new(
        endpoint: Endpoint,
        tls: Option<Arc<rustls::ClientConfig>>,
        stale_after: Duration,
        max_age: Duration,
    ) -> Dialer {
        let ws_config = ws_config();
        // Binance's stream hosts sit behind DNS-balanced addresses: look again every minute.
        let resolver = crate::resolver::Resolver::spawn(&endpoint.host, endpoint.port, Duration::from_secs(60));
        Dialer { endpoint, tls, ws_config, stale_after, max_age, resolver, api_key: None }
    }

    /// Every upgrade request carries `header: key`.
    pub fn with_api_key(mut self, header: &'static str, key: Secret) -> Dialer {
        self.api_key = Some((header, key));
        self
    }
}

impl Connection {
    pub(super) fn start_connect(&mut self, dialer: &Dialer, registry: &Registry, metrics: &Metrics) {
        let ep = &dialer.endpoint;
        // The cached answer of the resolver thread: a slow DNS server never stalls the loop.
        let addrs: Vec<SocketAddr> = match dialer.resolver.addrs() {
            Ok(a) if !a.is_empty() => a,
            Ok(_) => return self.fail(ConnectError::NotResolved(ep.host.clone()), metrics),
            Err(e) => return self.fail_dialing(ConnectError::Resolve(e), dialer, metrics),
        };
        let addr = addrs[self.addr_rr % addrs.len()];
        self.addr_rr += 1;
        match TcpStream::connect(addr) {
            Ok(mut tcp) => {
                if let Err(e) = registry.register(&mut tcp, self.token, Interest::READABLE | Interest::WRITABLE) {
                    return self.fail(ConnectError::Register(e), metrics);
                }
                debug!(conn = self.id, %addr, "connecting");
                self.set_state(State::Connecting { tcp, since: Instant::now() }, metrics);
            }
            Err(e) => self.fail_dialing(ConnectError::Connect(addr, e), dialer, metrics),
        }
    }

    /// [`Connection::fail`], after asking the resolver to look again where the failure says the
    /// address may have moved.
    fn fail_dialing(&mut self, e: ConnectError, dialer: &Dialer, metrics: &Metrics) {
        if e.wants_fresh_dns() {
            dialer.resolver.refresh();
        }
        self.fail(e, metrics)
    }

    /// The socket turned writable while connecting: connected (start the TLS + WebSocket
    /// handshake) or failed. `None`: the WebSocket is open, stream at once.
    pub(super) fn on_connecting(
        &mut self,
        tcp: TcpStream,
        since: Instant,
        dialer: &Dialer,
        metrics: &Metrics,
    ) -> Option<Progress> {
        // Writable means connected or failed; take_error/peer_addr tell which.
        if let Ok(Some(e)) | Err(e) = tcp.take_error() {
            self.state = State::Connecting { tcp, since };
            self.fail(ConnectError::Refused(e), metrics);
            return Some(Progress::default());
        }
        match tcp.peer_addr() {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                self.state = State::Connecting { tcp, since };
                return Some(Progress::default());
            }
            Err(e) => {
                self.state = State::Connecting { tcp, since };
                self.fail(ConnectError::Refused(e), metrics);
                return Some(Progress::default());
            }
        }
        let _ = tcp.set_nodelay(true);
        let transport = match self.wrap(tcp, dialer) {
            Ok(t) => t,
            Err(e) => {
                self.fail(e, metrics);
                return Some(Progress::default());
            }
        };
        let url = format!(
            "{}://{}{}",
            if dialer.endpoint.tls { "wss" } else { "ws" },
            dialer.endpoint.authority(),
            self.path
        );
        let request = match url.into_client_request() {
            Ok(mut r) => {
                if let Some((name, key)) = &dialer.api_key {
                    if let Ok(mut v) = tungstenite::http::HeaderValue::from_str(key.expose()) {
                        v.set_sensitive(true);
                        r.headers_mut().insert(*name, v);
                    }
                }
                r
            }
            Err(e) => {
                self.fail(ConnectError::Request(e), metrics);
                return Some(Progress::default());
            }
        };
        let r = tungstenite::client::client_with_config(request, transport, Some(dialer.ws_config));
        self.after_handshake(r, since, metrics)
    }

    fn wrap(&self, tcp: TcpStream, dialer: &Dialer) -> Result<Transport, ConnectError> {
        match &dialer.tls {
            None => Ok(Transport::plain(tcp)),
            Some(cfg) => {
                let name = ServerName::try_from(dialer.endpoint.host.clone())
                    .map_err(|e| ConnectError::Tls(format!("invalid TLS server name {}: {e}", dialer.endpoint.host)))?;
                let conn = rustls::ClientConnection::new(cfg.clone(), name)
                    .map_err(|e| ConnectError::Tls(format!("tls: {e}")))?;
                Ok(Transport::tls(conn, tcp))
            }
        }
    }

    /// Moves on from a handshake step. `None` means the state changed to Open and the caller
    /// should loop to start streaming at once (bytes may already be buffered).
    pub(super) fn after_handshake(
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
                if let Some(suppressed) = self.log.check("open") {
                    let (status, streams) = (resp.status().as_u16(), self.streams.len());
                    info!(conn = self.id, status, streams, attempt = self.attempt, suppressed, "websocket open");
                }
                self.opened_at = Instant::now();
                self.subscribed_at = self.opened_at;
                self.last_rx = self.opened_at;
                self.streamed = false;
                self.pings = PingRate::new(self.opened_at);
                self.rotate = false;
                self.rotate_by_peer = false;
                self.set_state(State::Open { ws: Box::new(ws) }, metrics);
                self.send_subscriptions(metrics);
                None
            }
            Err(HandshakeError::Interrupted(mid)) => {
                self.set_state(State::Handshaking { mid: Box::new(mid), since }, metrics);
                Some(Progress::default())
            }
            Err(HandshakeError::Failure(e)) => {
                self.fail(ConnectError::handshake(e), metrics);
                Some(Progress::default())
            }
        }
    }

    /// Sends SUBSCRIBE batches for streams that did not fit in the URL, then the resubscriptions
    /// of silent streams, within the message budget. A request the connection cannot take costs
    /// the connection (it would never subscribe).
    pub(super) fn send_subscriptions(&mut self, metrics: &Metrics) {
        if let Err(why) = self.try_send_subscriptions() {
            self.lost(why, metrics);
        }
    }

    fn try_send_subscriptions(&mut self) -> Result<(), Lost> {
        let now = Instant::now();
        let State::Open { ws } = &mut self.state else {
            return Ok(());
        };
        while self.next_batch < self.overflow.len() && self.outgoing.allows_control(now) {
            let end = (self.next_batch + self.venue.limits.streams_per_subscribe.max(1)).min(self.overflow.len());
            let id = self.next_id;
            self.next_id += 1;
            let batch: Vec<&str> = self.overflow[self.next_batch..end].iter().map(String::as_str).collect();
            let msg = (self.venue.subscribe)(id, &batch);
            match ws.write(Message::text(msg)) {
                Ok(()) => {}
                // Queued: it goes out with the next flush.
                Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(tungstenite::Error::WriteBufferFull(_)) => {
                    let unsent = ws.get_ref().unsent();
                    return Err(Lost::SubscribeRefused(unsent));
                }
                Err(e) => return Err(Lost::Peer(format!("SUBSCRIBE failed: {e}"))),
            }
            let _ = ws.flush();
            debug!(conn = self.id, id, streams = end - self.next_batch, "SUBSCRIBE sent");
            self.pending.push(id);
            self.next_batch = end;
            self.outgoing.record_control(now);
        }
        self.try_send_resubscriptions(now)
    }
}

/// The request path of a connection carrying `streams` (`in_url`: the names that fit in the URL):
/// `<base_path><route>/stream?streams=...`. The planner (`event_loop::plan_connections`) gives
/// a connection streams of one route only: a stream asked for on another route is acknowledged
/// and never delivered.
pub(super) fn request_path(
    venue: &Venue,
    base_path: &str,
    streams: &[(u16, StreamKind)],
    in_url: &[&str],
    unit: TimeUnit,
) -> String {
    let route = streams.first().map_or("", |&(_, k)| (venue.route)(k));
    debug_assert!(streams.iter().all(|&(_, k)| (venue.route)(k) == route), "streams of two routes on one connection");
    (venue.stream_path)(&format!("{base_path}{route}"), in_url, unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_write_buffer_is_full_when_a_pong_no_longer_fits() {
        assert!(!write_buffer_full(0));
        assert!(!write_buffer_full(WRITE_BUFFER_MAX - MAX_CONTROL_FRAME));
        assert!(write_buffer_full(WRITE_BUFFER_MAX - MAX_CONTROL_FRAME + 1));
        assert!(write_buffer_full(WRITE_BUFFER_MAX));
    }
}
