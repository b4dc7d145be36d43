//! A Binance simulator that speaks the real protocol on loopback, for tests, benchmarks and the
//! local demo (Binance itself is out of reach from CI).
//!
//! - `/stream?streams=a/b` (combined, wrapped as `{"stream":..,"data":..}`) and `/ws/<stream>` (raw).
//! - `SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`/`GET_PROPERTY combined`, and
//!   Binance's error replies for malformed requests; more than 5 incoming messages a second closes
//!   the connection with 1008, as Binance does.
//! - Server pings every `ping_interval`; no pong within `pong_timeout` closes the connection.
//! - Payloads shaped exactly like the documented examples (same keys, order and JSON types).
//! - A REST listener (`rest.rs`) serving the same history for backfill, with weights and 429s.
//! - Faults on demand: a short connection lifetime, `serverShutdown`, abrupt drops, skipped ids,
//!   connections that go silent with their TCP connection open.
//!
//! The market is a pure function of (symbol, sequence number, start time): trade `k` of a symbol
//! has id `trade_id_base(symbol) + k` and deterministic price, quantity and side, and the clock
//! starts at the first subscription. Every connection therefore sees the same trades, and a test
//! can recompute exactly what was sent ([`Market::expected_trade`]).
//!
//! Its own crate, sharing no code with the ingester: stream names ([`StreamKind`]), payloads and
//! clock are written here from Binance's documentation, so that the ingester is checked against
//! an independent reading of it. `binance-sim` (src/main.rs) runs it as a process.

mod kind;
pub mod market;
pub mod rest;
mod stream;
pub mod tls;

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, info};

pub use kind::{interval_index, interval_ms, StreamKind, KLINE_INTERVALS};
pub use market::{ExpectedCandle, ExpectedTrade, Market};
pub use rest::RestStats;

/// Unix time in milliseconds: the event times the market stamps.
pub(crate) fn now_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Lower-case symbols the market trades.
    pub symbols: Vec<String>,
    /// Trades per second over all symbols.
    pub trade_rate: f64,
    /// Events per second per symbol for each other stream kind (aggTrade, kline, bookTicker, depth).
    pub aux_rate: f64,
    /// How long the market generates events after it starts; `None` = forever.
    pub duration: Option<Duration>,
    pub ping_interval: Duration,
    pub pong_timeout: Duration,
    /// Serve `wss://` with a generated self-signed certificate.
    pub tls: bool,
    /// Incoming messages per second allowed per connection before a 1008 close.
    pub max_incoming_per_sec: u32,
    /// Close every connection this long after it opened (Binance: 24 h).
    pub connection_lifetime: Option<Duration>,
    /// Announce `serverShutdown` this long before the lifetime ends.
    pub shutdown_notice: Option<Duration>,
    /// Trades left out of the stream but kept in REST: `(period, len)` drops the last `len` of
    /// every `period` trades of each symbol.
    pub stream_skip: Option<(u64, u64)>,
    /// Trades missing from REST as well (truly unrecoverable), in the same form; a subset of
    /// `stream_skip` makes a gap nobody can fill.
    pub rest_missing: Option<(u64, u64)>,
    /// Candles left out of the stream (every update of them) but kept in REST, in the same form,
    /// counted from the first candle of each kline stream.
    pub kline_skip: Option<(u64, u64)>,
    /// REST request weight allowed per window before 429 (Binance: 6000 per minute).
    pub rest_weight_limit: u32,
    /// The weight limiter's window (Binance: one minute); short in tests.
    pub rest_weight_window: Duration,
    /// Connections that go silent with their TCP connection open.
    pub silence: Option<Silence>,
}

/// A connection that stops sending anything (data, pings, replies, close) while its TCP
/// connection stays open: a half-dead peer or a middlebox that lost its state. Only the client's
/// own staleness check can notice it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Silence {
    /// Which connection: `Some(n)` the n-th TCP connection accepted (1 = the first), `None` every one.
    pub connection: Option<u64>,
    /// How long after the WebSocket opened the connection goes silent.
    pub after: Duration,
    /// Keep reading (and discarding) what the client sends, so its writes never block; `false`
    /// leaves it unread in the socket buffers. Either way nothing is answered.
    pub read: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            symbols: vec!["btcusdt".into(), "ethusdt".into(), "solusdt".into()],
            trade_rate: 300.0,
            aux_rate: 2.0,
            duration: None,
            ping_interval: Duration::from_secs(20),
            pong_timeout: Duration::from_secs(60),
            tls: false,
            max_incoming_per_sec: 5,
            connection_lifetime: None,
            shutdown_notice: None,
            stream_skip: None,
            rest_missing: None,
            kline_skip: None,
            rest_weight_limit: 6000,
            rest_weight_window: Duration::from_secs(60),
            silence: None,
        }
    }
}

/// A running simulator.
pub struct SimHandle {
    pub addr: SocketAddr,
    /// The REST listener (`http://`), serving the history the streams sent.
    pub rest_addr: SocketAddr,
    pub rest_stats: Arc<RestStats>,
    /// PEM of the self-signed certificate when serving TLS (trust it with `TLS_CA_FILE`).
    pub cert_pem: Option<String>,
    pub market: Arc<Market>,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl SimHandle {
    /// `ws://` or `wss://` base URL of this simulator.
    pub fn ws_url(&self) -> String {
        format!("{}://{}", if self.cert_pem.is_some() { "wss" } else { "ws" }, self.addr)
    }

    /// `http://` base URL of the REST endpoints.
    pub fn rest_url(&self) -> String {
        format!("http://{}", self.rest_addr)
    }

    /// Every open connection drops at once, without a close frame (a network loss).
    pub fn drop_connections(&self) {
        self.market.drop_generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Every open connection announces `serverShutdown`, then closes a few seconds later.
    pub fn announce_shutdown(&self) {
        self.market.shutdown_generation.fetch_add(1, Ordering::SeqCst);
    }

    /// REST answers 418 (Binance's IP ban) with `Retry-After` for the next `d`.
    pub fn ban_rest(&self, d: Duration) {
        self.rest_stats.ban(Instant::now() + d);
    }

    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Unblock accept().
        let _ = TcpStream::connect(self.addr);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts a simulator: WebSocket on `listen` (port 0 = ephemeral), REST on another ephemeral
/// port of the same address.
pub fn spawn(cfg: SimConfig, listen: &str) -> io::Result<SimHandle> {
    let listener = TcpListener::bind(listen)?;
    let addr = listener.local_addr()?;
    let rest_server =
        tiny_http::Server::http(SocketAddr::new(addr.ip(), 0)).map_err(|e| io::Error::other(e.to_string()))?;
    let rest_addr = rest_server.server_addr().to_ip().ok_or_else(|| io::Error::other("REST listener has no IP"))?;
    let (cert_pem, tls) = if cfg.tls {
        let (pem, sc) = tls::self_signed_server()?;
        (Some(pem), Some(sc))
    } else {
        (None, None)
    };
    let market = Arc::new(Market::new(cfg));
    let stop = Arc::new(AtomicBool::new(false));
    let rest_stats = Arc::new(RestStats::default());
    let accept = {
        let (market, stop) = (market.clone(), stop.clone());
        std::thread::Builder::new().name("sim-accept".into()).spawn(move || {
            let mut next_id = 0u64;
            for conn in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(tcp) = conn else { continue };
                next_id += 1;
                let (market, stop, tls) = (market.clone(), stop.clone(), tls.clone());
                let _ = std::thread::Builder::new().name(format!("sim-conn-{next_id}")).spawn(move || {
                    let peer = tcp.peer_addr().ok();
                    if let Err(e) = stream::serve_connection(tcp, tls, &market, &stop, next_id) {
                        debug!(conn = next_id, ?peer, "sim connection ended: {e}");
                    }
                });
            }
        })?
    };
    let rest = {
        let (market, stats, stop) = (market.clone(), rest_stats.clone(), stop.clone());
        std::thread::Builder::new()
            .name("sim-rest".into())
            .spawn(move || rest::serve(rest_server, market, stats, stop))?
    };
    info!(%addr, %rest_addr, tls = cert_pem.is_some(), "binance simulator listening");
    Ok(SimHandle { addr, rest_addr, rest_stats, cert_pem, market, stop, threads: vec![accept, rest] })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trade_ids_are_sequential_and_disjoint_per_symbol() {
        let m = Market::new(SimConfig::default());
        assert_eq!(m.expected_trade(0, 0).trade_id + 1, m.expected_trade(0, 1).trade_id);
        assert!(m.expected_trade(1, 0).trade_id > m.expected_trade(0, 10_000_000).trade_id);
    }
}
