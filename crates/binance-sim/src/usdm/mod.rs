//! A Binance USD-M futures market beside the spot one (README §6, §9): its own WebSocket
//! listener (`fstream.binance.com`) and REST listener (`fapi.binance.com`), asked for with
//! [`SimConfig::usdm`] and reached through [`SimHandle::usdm`](crate::SimHandle::usdm).
//!
//! - Routed paths (`streams.rs`): `/public/ws/<stream>`, `/public/stream?streams=` for
//!   `@depth`, `@depth@100ms`, `@depth@500ms`, `@bookTicker`; `/market/...` for `@aggTrade`,
//!   `@markPrice`, `@markPrice@1s`, `@kline_<interval>` (no `1s`), `@forceOrder`. A stream asked
//!   for on the other path, or a `/market` one on the retired root path (`/ws/`, `/stream?`), is
//!   acknowledged and listed but never delivered, as Binance does; the root still delivers the
//!   public streams, and pings flow everywhere.
//! - Payloads (`render.rs`) as documented: aggTrade without `M`, `f..l` sometimes skipping trade
//!   ids while `a` stays dense; depthUpdate with `T` and `pu` (the previous event's `u`; `U` is
//!   mostly not `pu + 1`); bookTicker with `e`, `E`, `T`; markPriceUpdate (`T` = next funding
//!   time); forceOrder, at most one a symbol a second; klines as spot. Book prices and
//!   quantities in futures text (`"20000.01"`, `"1.50000"`).
//! - The order book is spot's (`book.rs`), with futures ids: [`Market::book_at`] and
//!   `/fapi/v1/depth` agree with the stream.
//! - REST (`rest.rs`): `/fapi/v1/aggTrades`, `/fapi/v1/klines`, `/fapi/v1/depth`,
//!   `/fapi/v1/exchangeInfo`, with futures weights and limits.
//!
//! The section is a [`SimConfig`] of its own (start from [`SimConfig::usdm_market`]), read as
//! the spot market's is, except: `trade_rate` (and `cadences`) pace the aggregate trades (USD-M
//! has no trade stream), and `stream_skip` / `rest_missing` leave aggregate trades out of the
//! stream / of REST too; `aux_rate` paces depth, bookTicker and klines; mark prices come every
//! 1 s and 3 s and liquidations 1-3 s apart whatever the rates (Binance's cadences); `tls` is the
//! spot section's (one certificate serves both), and `usdm` inside it is ignored.

pub(crate) mod market;
mod render;
pub(crate) mod rest;
pub(crate) mod streams;

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::config::{RestDown, SimConfig, WafScope};
use crate::market::Market;
use crate::rest::{Host, RestListener, RestStats};

impl SimConfig {
    /// A USD-M market with Binance's futures limits (README §6): 10 incoming messages a second
    /// per connection, 1024 streams, a ping every 3 minutes with the pong due within 10, and
    /// 2400 REST weight a minute. The spot defaults otherwise.
    pub fn usdm_market() -> SimConfig {
        SimConfig {
            ping_interval: Duration::from_secs(180),
            pong_timeout: Duration::from_secs(600),
            max_incoming_per_sec: 10,
            max_streams: 1024,
            rest_weight_limit: 2400,
            ..SimConfig::default()
        }
    }
}

/// A running USD-M market: its listeners and its history.
pub struct UsdmHandle {
    /// The WebSocket listener (standing for `fstream.binance.com`).
    pub addr: SocketAddr,
    /// The REST listener (standing for `fapi.binance.com`).
    pub rest_addr: SocketAddr,
    pub rest_stats: Arc<RestStats>,
    pub market: Arc<Market>,
    tls: bool,
}

impl UsdmHandle {
    /// `ws://` or `wss://` base URL: append `/public/...`, `/market/...` or the retired root.
    pub fn ws_url(&self) -> String {
        format!("{}://{}", if self.tls { "wss" } else { "ws" }, self.addr)
    }

    /// `http://` base URL of the `/fapi/v1/` endpoints.
    pub fn rest_url(&self) -> String {
        format!("http://{}", self.rest_addr)
    }

    /// Every open USD-M connection drops at once, without a close frame.
    pub fn drop_connections(&self) {
        self.market.drop_generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Every open USD-M connection announces `serverShutdown`, then closes a few seconds later.
    pub fn announce_shutdown(&self) {
        self.market.shutdown_generation.fetch_add(1, Ordering::SeqCst);
    }

    /// `/fapi/` answers 418 with `Retry-After` for the next `d`.
    pub fn ban_rest(&self, d: Duration) {
        self.rest_stats.ban(Instant::now() + d);
    }

    /// The firewall answers 403 on `fapi` (`scope.rest`) and/or the USD-M WebSocket upgrade
    /// (`scope.ws`) for the next `d`.
    pub fn block_waf(&self, scope: WafScope, d: Duration) {
        let now = Instant::now();
        self.market.faults.block(scope, now, now + d);
    }

    /// The `/fapi/` listener is down, as `how` says, for the next `d`.
    pub fn take_rest_down(&self, how: RestDown, d: Duration) {
        let now = Instant::now();
        self.market.faults.take_down(how, now, now + d);
    }
}

/// Starts a USD-M market on free ports of `ip`: its threads join `threads`, and `stop` ends them
/// (the caller wakes the WebSocket accept by connecting to [`UsdmHandle::addr`]).
pub(crate) fn spawn(
    cfg: SimConfig,
    ip: std::net::IpAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
    stop: &Arc<AtomicBool>,
    threads: &mut Vec<JoinHandle<()>>,
) -> io::Result<UsdmHandle> {
    let listener = TcpListener::bind(SocketAddr::new(ip, 0))?;
    let addr = listener.local_addr()?;
    let rest = RestListener::bind(SocketAddr::new(ip, 0))?;
    let rest_addr = rest.addr();
    let market = Arc::new(Market::usdm(SimConfig { usdm: None, ..cfg }));
    let rest_stats = Arc::new(RestStats::default());
    let is_tls = tls.is_some();
    threads.push(crate::accept_connections(listener, tls, market.clone(), stop.clone(), "sim-usdm", false)?);
    let (m, stats, stop) = (market.clone(), rest_stats.clone(), stop.clone());
    threads.push(
        std::thread::Builder::new().name("sim-fapi".into()).spawn(move || rest.serve(m, stats, stop, Host::Fapi))?,
    );
    tracing::info!(%addr, %rest_addr, "binance simulator: USD-M futures listening");
    Ok(UsdmHandle { addr, rest_addr, rest_stats, market, tls: is_tls })
}
