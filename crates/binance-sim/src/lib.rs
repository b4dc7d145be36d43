//! A Binance simulator that speaks the real protocol on loopback, for tests, benchmarks and the
//! local demo (Binance itself is out of reach from CI).
//!
//! - `/stream?streams=a/b` (combined, wrapped as `{"stream":..,"data":..}`) and `/ws/<stream>`
//!   (raw); stream names raw or percent-encoded in the URL and in `SUBSCRIBE`, UTF-8 symbols
//!   such as `币安人生usdt` included (lower case in names, upper case in payloads).
//! - `timeUnit=MICROSECOND` (or `microsecond`) in the URL writes every time field in
//!   microseconds (`E`, `T`, a kline's `t`/`T`); REST does the same for `X-MBX-TIME-UNIT`.
//! - `SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`/`GET_PROPERTY combined`, and
//!   Binance's error replies for malformed requests; more than 5 incoming messages a second closes
//!   the connection with 1008, as Binance does.
//! - Server pings every `ping_interval`; no pong within `pong_timeout` closes the connection.
//! - Payloads shaped exactly like the documented examples (same keys, order and JSON types).
//! - A true L2 order book per symbol (`book.rs`): the diff-depth streams change it (dense
//!   `U`/`u`, absolute quantities, deletions), REST's `/api/v3/depth` serves it as of the latest
//!   event, `bookTicker` shows its best levels, and [`Market::book_at`] gives it after any update id.
//! - Binance's SBE endpoint on a listener of its own (`sbe.rs`, [`SimHandle::sbe_url`]): trades
//!   as SBE binary frames from the same history, an `X-MBX-APIKEY` required (401 without).
//! - Two REST listeners (`rest/`): the main one (`api.binance.com`) and `data-api.binance.vision`
//!   (market data only, no `historicalTrades`), each with its own weights, 429s and stats.
//! - Per-symbol trade cadences ([`Cadence`]): an illiquid listing that trades every 30-120 s
//!   beside busy ones.
//! - A USD-M futures market beside spot ([`SimConfig::usdm`], `usdm/`): its own WebSocket and
//!   REST listeners ([`UsdmHandle`]), Binance's 2026 routed paths (`/public`, `/market`, and the
//!   retired root that acknowledges `/market` subscriptions and then sends nothing), futures
//!   payloads (depth chained by `pu`, mark prices, liquidations), `/fapi/v1/` REST and limits.
//!
//! Faults on demand ([`SimConfig`], the `binance-sim` flags, [`SimHandle`]'s methods):
//! - a short connection lifetime, `serverShutdown` (combined name `!serverShutdown`), abrupt drops;
//! - trades, candles or diff-depth events left out of the stream (`stream_skip`, `kline_skip`,
//!   `depth_skip`), trades missing from REST too (`rest_missing`);
//! - connections that go silent with their TCP connection open (`silence`);
//! - one stream muted on a connection while pings, replies and other streams go on, until a
//!   resubscription or until a new connection (`mutes`);
//! - 418 bans and 429s from the weight limiter, a web-application-firewall 403 on REST and/or the
//!   WebSocket upgrade (`waf`), the main REST listener down, refusing connections or answering
//!   5xx (`rest_outage`).
//!
//! The market is a pure function of (symbol, sequence number, start time): trade `k` of a symbol
//! has id `trade_id_base(symbol) + k` and deterministic price, quantity and side, and the clock
//! starts at the first subscription. Every connection therefore sees the same trades, and a test
//! can recompute exactly what was sent ([`Market::expected_trade`], [`Market::book_at`]; on
//! USD-M [`Market::expected_agg_trade`], [`Market::expected_mark_price`],
//! [`Market::expected_liquidation`], [`Market::candle`]).
//!
//! Its own crate, sharing no code with the ingester: stream names ([`StreamKind`]), payloads and
//! clock are written here from Binance's documentation, so that the ingester is checked against
//! an independent reading of it. `binance-sim` (src/main.rs) runs it as a process.
//!
//! Layout: `config` (what to simulate), `market` (the deterministic history, ids and clock,
//! with `clock` and `book`), `render` (payloads), `session` and `stream` (a WebSocket
//! connection), `rest/` (the REST listeners), `faults` (faults that come and go), `tls`, and
//! `usdm/` (the USD-M market's names, routes, payloads, ids and REST).

mod arrival;
mod book;
mod clock;
mod config;
mod faults;
mod hash;
mod kind;
pub mod market;
mod render;
pub mod rest;
mod sbe;
mod session;
mod stream;
pub mod tls;
mod usdm;

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, info};

pub use arrival::{Arrival, Process};
pub use book::Book;
pub use clock::TimeUnit;
pub use config::{
    Cadence, Mute, MuteUntil, RestDown, RestOutage, Silence, SimConfig, Waf, WafScope, DEFAULT_DEPTH_LEVELS,
    MAX_DEPTH_LEVELS,
};
pub use kind::{interval_index, interval_ms, StreamKind, KLINE_INTERVALS};
pub use market::{ExpectedCandle, ExpectedTrade, Market, Venue};
pub use rest::RestStats;
pub use usdm::market::{ExpectedAggTrade, ExpectedLiquidation, ExpectedMarkPrice};
pub use usdm::streams::usdm_kinds;
pub use usdm::UsdmHandle;

use rest::{Host, RestListener};

/// Unix time in milliseconds.
pub(crate) fn now_ms() -> i64 {
    now_us().div_euclid(1000)
}

/// Unix time in microseconds: the event times the market stamps.
pub(crate) fn now_us() -> i64 {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since_epoch.as_micros()).unwrap_or(i64::MAX)
}

/// A running simulator.
pub struct SimHandle {
    pub addr: SocketAddr,
    /// The SBE endpoint (standing for `stream-sbe.binance.com`): same market, binary frames, an
    /// API key required (`X-MBX-APIKEY`).
    pub sbe_addr: SocketAddr,
    /// The main REST listener (`http://`, standing for `api.binance.com`), serving the history
    /// the streams sent.
    pub rest_addr: SocketAddr,
    pub rest_stats: Arc<RestStats>,
    /// The market-data-only REST listener (standing for `data-api.binance.vision`).
    pub data_api_addr: SocketAddr,
    pub data_api_stats: Arc<RestStats>,
    /// PEM of the self-signed certificate when serving TLS (trust it with `TLS_CA_FILE`).
    pub cert_pem: Option<String>,
    pub market: Arc<Market>,
    /// The USD-M futures market, when [`SimConfig::usdm`] asks for one.
    pub usdm: Option<UsdmHandle>,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl SimHandle {
    /// `ws://` or `wss://` base URL of this simulator.
    pub fn ws_url(&self) -> String {
        format!("{}://{}", if self.cert_pem.is_some() { "wss" } else { "ws" }, self.addr)
    }

    /// `ws://` or `wss://` base URL of the SBE endpoint.
    pub fn sbe_url(&self) -> String {
        format!("{}://{}", if self.cert_pem.is_some() { "wss" } else { "ws" }, self.sbe_addr)
    }

    /// `http://` base URL of the main REST endpoints.
    pub fn rest_url(&self) -> String {
        format!("http://{}", self.rest_addr)
    }

    /// `http://` base URL of the data-api endpoints.
    pub fn data_api_url(&self) -> String {
        format!("http://{}", self.data_api_addr)
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

    /// The web application firewall answers 403 on what `scope` names for the next `d`
    /// (replacing any block set before).
    pub fn block_waf(&self, scope: WafScope, d: Duration) {
        let now = Instant::now();
        self.market.faults.block(scope, now, now + d);
    }

    /// The main REST listener is down, as `how` says, for the next `d` (replacing any outage
    /// set before); data-api stays up.
    pub fn take_rest_down(&self, how: RestDown, d: Duration) {
        let now = Instant::now();
        self.market.faults.take_down(how, now, now + d);
    }

    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Unblock accept().
        let _ = TcpStream::connect(self.addr);
        let _ = TcpStream::connect(self.sbe_addr);
        if let Some(u) = &self.usdm {
            let _ = TcpStream::connect(u.addr);
        }
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

/// Starts a simulator: WebSocket on `listen` (port 0 = ephemeral), the two REST listeners on
/// other ephemeral ports of the same address, and the USD-M market's two if configured.
pub fn spawn(cfg: SimConfig, listen: &str) -> io::Result<SimHandle> {
    let listener = TcpListener::bind(listen)?;
    let addr = listener.local_addr()?;
    let rest = RestListener::bind(SocketAddr::new(addr.ip(), 0))?;
    let data_api = RestListener::bind(SocketAddr::new(addr.ip(), 0))?;
    let (rest_addr, data_api_addr) = (rest.addr(), data_api.addr());
    let (cert_pem, tls) = if cfg.tls {
        let (pem, sc) = tls::self_signed_server()?;
        (Some(pem), Some(sc))
    } else {
        (None, None)
    };
    let usdm_cfg = cfg.usdm.clone();
    let market = Arc::new(Market::new(cfg));
    let stop = Arc::new(AtomicBool::new(false));
    let (rest_stats, data_api_stats) = (Arc::new(RestStats::default()), Arc::new(RestStats::default()));
    let sbe_listener = TcpListener::bind(SocketAddr::new(addr.ip(), 0))?;
    let sbe_addr = sbe_listener.local_addr()?;
    let mut threads = vec![
        accept_connections(listener, tls.clone(), market.clone(), stop.clone(), "sim", false)?,
        accept_connections(sbe_listener, tls.clone(), market.clone(), stop.clone(), "sim-sbe", true)?,
    ];
    let usdm = match usdm_cfg {
        Some(u) => Some(usdm::spawn(*u, addr.ip(), tls, &stop, &mut threads)?),
        None => None,
    };
    for (listener, stats, host, name) in
        [(rest, &rest_stats, Host::Api, "sim-rest"), (data_api, &data_api_stats, Host::DataApi, "sim-data-api")]
    {
        let (market, stats, stop) = (market.clone(), stats.clone(), stop.clone());
        threads.push(
            std::thread::Builder::new().name(name.into()).spawn(move || listener.serve(market, stats, stop, host))?,
        );
    }
    info!(%addr, %sbe_addr, %rest_addr, %data_api_addr, tls = cert_pem.is_some(), "binance simulator listening");
    Ok(SimHandle {
        addr,
        sbe_addr,
        rest_addr,
        rest_stats,
        data_api_addr,
        data_api_stats,
        cert_pem,
        market,
        usdm,
        stop,
        threads,
    })
}

/// Accepts WebSocket connections for `market` on `listener` until `stop`, a thread each
/// (`<name>-conn-<n>`); `sbe`: Binance's SBE endpoint (`sbe.rs`).
pub(crate) fn accept_connections(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    market: Arc<Market>,
    stop: Arc<AtomicBool>,
    name: &'static str,
    sbe: bool,
) -> io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name(format!("{name}-accept")).spawn(move || {
        let mut next_id = 0u64;
        for conn in listener.incoming() {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            let Ok(tcp) = conn else { continue };
            next_id += 1;
            let (market, stop, tls) = (market.clone(), stop.clone(), tls.clone());
            let _ = std::thread::Builder::new().name(format!("{name}-conn-{next_id}")).spawn(move || {
                let peer = tcp.peer_addr().ok();
                if let Err(e) = stream::serve_connection(tcp, tls, &market, &stop, next_id, sbe) {
                    debug!(conn = next_id, ?peer, "sim connection ended: {e}");
                }
            });
        }
    })
}
