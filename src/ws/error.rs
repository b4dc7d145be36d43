//! Why a connection attempt failed or an open connection went, typed: each says which
//! `ws_connect_attempts_total{result}` it counts as ([`label`](ConnectError::label), a bounded
//! set), and how the reconnect logic treats it.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

/// How long a firewall block (HTTP 403 on the upgrade) keeps us away. Binance's web-application
/// firewall answers 403 to an IP it blocks (REST API "LIMITS", 2025-12-09); such blocks last
/// minutes, and the usual backoff (30 s at most) would knock on it ten times as often.
pub const BLOCKED_WAIT: Duration = Duration::from_secs(300);

/// The `ws_connect_attempts_total{result}` of an upgrade whose API key was refused (HTTP 401):
/// what the event loop watches to leave the binary transport at once.
pub const KEY_REFUSED: &str = "key_refused";

/// How the next attempt waits after a failed one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// The usual capped exponential backoff: outages, DNS hiccups and slow peers heal.
    Backoff,
    /// At least this long: the peer told us to stay away (a firewall block).
    NotBefore(Duration),
}

/// A connection attempt that did not reach an open WebSocket. Every one is retried ([`Retry`]):
/// a venue's outage, a DNS hiccup, a slow peer and even a firewall block all heal, and what the
/// configuration decides (the URL, the TLS server name) was validated before the first attempt.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{0} not resolved yet")]
    NotResolved(String),
    #[error("{0}")]
    Resolve(String),
    #[error("register: {0}")]
    Register(io::Error),
    #[error("connect {0}: {1}")]
    Connect(SocketAddr, io::Error),
    #[error("connect: {0}")]
    Refused(io::Error),
    #[error("{0}")]
    Tls(String),
    #[error("bad request URL: {0}")]
    Request(tungstenite::Error),
    #[error("handshake: {0}")]
    Handshake(tungstenite::Error),
    #[error("handshake timed out")]
    Timeout,
    /// The upgrade was answered `403 Forbidden`: the venue's firewall blocks this IP.
    #[error("upgrade refused with HTTP 403: the venue's firewall blocks this IP")]
    Blocked,
    /// The upgrade was answered `401 Unauthorized` (Binance: code -2015, "Invalid API-key, IP, or
    /// permissions for action"): the API key is refused. Retrying at the usual pace would only
    /// spend the 300-attempts-per-5-minutes budget on an answer that will not change; the lane
    /// streams JSON instead (`event_loop/transport.rs`).
    #[error("upgrade refused with HTTP 401: API key refused{0}")]
    KeyRefused(&'static str),
}

impl ConnectError {
    /// The `result` label of `ws_connect_attempts_total`.
    pub fn label(&self) -> &'static str {
        match self {
            ConnectError::NotResolved(_) | ConnectError::Resolve(_) => "resolve",
            ConnectError::Register(_) => "io",
            ConnectError::Connect(..) | ConnectError::Refused(_) => "connect",
            ConnectError::Tls(_) => "tls",
            ConnectError::Request(_) => "request",
            ConnectError::Handshake(_) => "handshake",
            ConnectError::Timeout => "timeout",
            ConnectError::Blocked => "blocked",
            ConnectError::KeyRefused(_) => KEY_REFUSED,
        }
    }

    /// A failed handshake, classified: a 403 answer is a firewall block, a 401 a refused API
    /// key, not a broken peer. Only Binance's code is quoted from the body (it is the peer's text).
    pub fn handshake(e: tungstenite::Error) -> ConnectError {
        match &e {
            tungstenite::Error::Http(resp) if resp.status() == 403 => ConnectError::Blocked,
            tungstenite::Error::Http(resp) if resp.status() == 401 => {
                let body = resp.body().as_deref().unwrap_or_default();
                let needle = br#""code":-2015"#;
                let binance = body.windows(needle.len()).any(|w| w == needle);
                ConnectError::KeyRefused(if binance { " (code -2015)" } else { "" })
            }
            _ => ConnectError::Handshake(e),
        }
    }

    /// How the next attempt waits.
    pub fn retry(&self) -> Retry {
        match self {
            ConnectError::Blocked | ConnectError::KeyRefused(_) => Retry::NotBefore(BLOCKED_WAIT),
            _ => Retry::Backoff,
        }
    }

    /// The address may have moved: look the host up again before the next attempt.
    pub fn wants_fresh_dns(&self) -> bool {
        matches!(self, ConnectError::Resolve(_) | ConnectError::Connect(..))
    }
}

/// Why an open connection went.
#[derive(Debug, thiserror::Error)]
pub enum Lost {
    /// The peer closed, the socket failed, or the WebSocket broke.
    #[error("{0}")]
    Peer(String),
    /// Neither data nor a ping for longer than the stale limit.
    #[error("stale: no data and no ping for {0} ms")]
    Stale(u64),
    /// We dropped the peer: it pinged faster than any real venue.
    #[error("ping flood: more than {0} pings within a second")]
    PingFlood(u32),
    /// We dropped the peer: our write backlog reached its bound.
    #[error("write buffer full: {0} bytes unsent, the peer is not reading")]
    WriteBufferFull(usize),
    /// We dropped the peer: a SUBSCRIBE did not fit in the write buffer.
    #[error("write buffer full ({0} bytes unsent): SUBSCRIBE refused")]
    SubscribeRefused(usize),
}

impl Lost {
    /// The `result` label of `ws_connect_attempts_total`.
    pub fn label(&self) -> &'static str {
        match self {
            Lost::Peer(_) | Lost::Stale(_) => "lost",
            Lost::PingFlood(_) => "ping_flood",
            Lost::WriteBufferFull(_) | Lost::SubscribeRefused(_) => "write_buffer_full",
        }
    }

    /// We dropped the peer for misbehaving (rather than lost it): counted even when a
    /// replacement has already taken over.
    pub fn is_peer_fault(&self) -> bool {
        !matches!(self, Lost::Peer(_) | Lost::Stale(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_the_metric_s_results() {
        assert_eq!(ConnectError::Timeout.label(), "timeout");
        assert_eq!(ConnectError::Timeout.to_string(), "handshake timed out");
        assert_eq!(ConnectError::NotResolved("h".into()).label(), "resolve");
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert!(ConnectError::Connect("127.0.0.1:1".parse().unwrap(), refused).wants_fresh_dns());
        assert!(!ConnectError::Timeout.wants_fresh_dns());
        assert_eq!(Lost::Stale(5).label(), "lost");
        assert!(!Lost::Stale(5).is_peer_fault());
        assert_eq!(Lost::PingFlood(10).label(), "ping_flood");
        assert!(Lost::WriteBufferFull(1).is_peer_fault() && Lost::SubscribeRefused(1).is_peer_fault());
    }

    #[test]
    fn a_403_upgrade_is_a_firewall_block_waited_out_for_minutes() {
        let answer = |code: u16| {
            let resp = tungstenite::http::Response::builder().status(code).body(None).unwrap();
            ConnectError::handshake(tungstenite::Error::Http(Box::new(resp)))
        };
        let blocked = answer(403);
        assert_eq!((blocked.label(), blocked.retry()), ("blocked", Retry::NotBefore(BLOCKED_WAIT)));
        assert!(BLOCKED_WAIT >= Duration::from_secs(60));
        for code in [400, 404, 429, 503] {
            let e = answer(code);
            assert_eq!((e.label(), e.retry()), ("handshake", Retry::Backoff), "{code}");
        }
        assert_eq!(ConnectError::Timeout.retry(), Retry::Backoff);
    }

    #[test]
    fn a_401_upgrade_is_a_refused_api_key_not_retried_at_the_usual_pace() {
        let answer = |body: Option<&str>| {
            let resp = tungstenite::http::Response::builder().status(401).body(body.map(|b| b.as_bytes().to_vec()));
            ConnectError::handshake(tungstenite::Error::Http(Box::new(resp.unwrap())))
        };
        let binance = answer(Some(r#"{"code":-2015,"msg":"Invalid API-key, IP, or permissions for action."}"#));
        assert_eq!((binance.label(), binance.retry()), (KEY_REFUSED, Retry::NotBefore(BLOCKED_WAIT)));
        assert_eq!(binance.to_string(), "upgrade refused with HTTP 401: API key refused (code -2015)");
        let bare = answer(None);
        assert_eq!(
            (bare.label(), bare.to_string().as_str()),
            (KEY_REFUSED, "upgrade refused with HTTP 401: API key refused")
        );
    }
}
