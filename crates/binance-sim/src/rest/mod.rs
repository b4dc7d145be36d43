//! The REST side of the simulator: the endpoints the ingester backfills and resyncs from,
//! served from the same deterministic history the streams sent, with Binance's weight header,
//! 429s and 418s, on two listeners: `api.binance.com` and `data-api.binance.vision` (market data
//! only: no `historicalTrades`, README §4), each with its own limiter and [`RestStats`].
//!
//! - `GET /api/v3/historicalTrades?symbol=&fromId=&limit=` (weight 25; not on data-api)
//! - `GET /api/v3/aggTrades?symbol=&fromId=&limit=` (weight 4)
//! - `GET /api/v3/klines?symbol=&interval=&startTime=&endTime=&limit=` (weight 2)
//! - `GET /api/v3/depth?symbol=&limit=` (limit 1..=5000, default 100; weight 5, 25, 50 or 250)
//! - `GET /api/v3/exchangeInfo` (weight 20), `GET /api/v3/ping`
//!
//! `X-MBX-TIME-UNIT: MICROSECOND` writes every time in microseconds; `symbol=` may be a
//! percent-encoded UTF-8 symbol. Faults: a WAF block answers 403 before anything else; the main
//! listener can be down (its socket closed, or every request a 5xx).

mod endpoints;
mod limiter;

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tiny_http::{Header, Request, Response, Server};
use tracing::{info, warn};

use crate::clock::TimeUnit;
use crate::config::RestDown;
use crate::faults::Listener;
use crate::kind::interval_index;
use crate::market::Market;
use endpoints::Query;
pub use limiter::RestStats;

/// Which REST host a listener stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Host {
    /// `api.binance.com`: every endpoint; the outage fault takes it down.
    Api,
    /// `data-api.binance.vision`: market data only, never down.
    DataApi,
}

type Answer = Response<std::io::Cursor<Vec<u8>>>;

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).unwrap_or_else(|()| {
        Header::from_bytes(&b"X-Invalid-Header"[..], &b"1"[..]).expect("a constant header is valid")
    })
}

fn json(body: String, weight: u32, status: u16) -> Answer {
    Response::from_string(body)
        .with_status_code(status)
        .with_header(header("Content-Type", "application/json"))
        .with_header(header("X-MBX-USED-WEIGHT-1M", &weight.to_string()))
}

fn error(code: i32, msg: &str, status: u16, weight: u32) -> Answer {
    json(format!(r#"{{"code":{code},"msg":"{msg}"}}"#), weight, status)
}

/// A listener's server, and the ones it replaced after outages: their keep-alive connections
/// still bring requests, which are answered too (a few, bounded).
struct Servers {
    addr: SocketAddr,
    /// A handle on the current server's listening socket, to close it for an outage.
    socket: Option<TcpListener>,
    current: Option<Server>,
    retired: Vec<Server>,
    reopen_failures: u32,
}

const RETIRED_KEPT: usize = 4;

impl Servers {
    fn open(&mut self, listener: TcpListener) -> std::io::Result<()> {
        self.socket = Some(listener.try_clone()?);
        self.current = Some(Server::from_listener(listener, None).map_err(|e| std::io::Error::other(e.to_string()))?);
        Ok(())
    }

    /// Closes the listening socket: new connections are refused from now on.
    fn close(&mut self) {
        if let Some(socket) = self.socket.take() {
            // A listening socket shut down stops listening (new connections get a reset) and
            // wakes tiny_http's accept thread, which then ends.
            let _ = socket2::SockRef::from(&socket).shutdown(std::net::Shutdown::Both);
        }
        if let Some(old) = self.current.take() {
            if self.retired.len() >= RETIRED_KEPT {
                self.retired.remove(0);
            }
            self.retired.push(old);
        }
    }

    /// Listens again on the same address (`false` if it cannot yet: tried again next time,
    /// logged at the 1st, 2nd, 4th, 8th... failure).
    fn reopen(&mut self) -> bool {
        match TcpListener::bind(self.addr).and_then(|l| self.open(l)) {
            Ok(()) => {
                self.reopen_failures = 0;
                true
            }
            Err(e) => {
                self.reopen_failures += 1;
                if self.reopen_failures.is_power_of_two() {
                    warn!(addr = %self.addr, failures = self.reopen_failures, "REST listener cannot listen again yet: {e}");
                }
                false
            }
        }
    }

    /// The next request from any server, waiting up to `wait`.
    fn next(&self, wait: Duration) -> Option<Request> {
        for old in &self.retired {
            if let Ok(Some(req)) = old.try_recv() {
                return Some(req);
            }
        }
        match &self.current {
            Some(s) => s.recv_timeout(wait).ok().flatten(),
            None => {
                std::thread::sleep(wait.min(Duration::from_millis(20)));
                None
            }
        }
    }
}

/// A bound REST listener, not yet serving.
pub(crate) struct RestListener(Servers);

impl RestListener {
    /// Listens on `addr` (port 0 = any free port).
    pub(crate) fn bind(addr: SocketAddr) -> std::io::Result<RestListener> {
        let listener = TcpListener::bind(addr)?;
        let mut servers = Servers {
            addr: listener.local_addr()?,
            socket: None,
            current: None,
            retired: Vec::new(),
            reopen_failures: 0,
        };
        servers.open(listener)?;
        Ok(RestListener(servers))
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.0.addr
    }

    /// Serves until `stop`.
    pub(crate) fn serve(self, market: Arc<Market>, stats: Arc<RestStats>, stop: Arc<AtomicBool>, host: Host) {
        let mut servers = self.0;
        while !stop.load(Ordering::Relaxed) {
            let outage = if host == Host::Api { market.faults.outage() } else { None };
            match outage {
                Some(RestDown::Refused) if servers.current.is_some() => {
                    info!(addr = %servers.addr, "REST listener down: connections refused (fault)");
                    stats.outages.fetch_add(1, Ordering::Relaxed);
                    servers.close();
                }
                None if servers.current.is_none() && servers.reopen() => {
                    info!(addr = %servers.addr, "REST listener back");
                }
                _ => {}
            }
            let Some(req) = servers.next(Duration::from_millis(50)) else { continue };
            stats.requests.fetch_add(1, Ordering::Relaxed);
            // Asked again: the outage may have begun while waiting for this request.
            let outage = if host == Host::Api { market.faults.outage() } else { None };
            let resp = match outage {
                Some(how) => {
                    stats.outage_answers.fetch_add(1, Ordering::Relaxed);
                    let status = match how {
                        RestDown::Status(s) => s,
                        RestDown::Refused => 503,
                    };
                    error(-1001, "Internal error; unable to process your request. Please try again.", status, 0)
                }
                None => answer(&req, &market, &stats, host),
            };
            let _ = req.respond(resp);
        }
    }
}

/// The answer to one request.
fn answer(req: &Request, market: &Market, stats: &RestStats, host: Host) -> Answer {
    let listener = if host == Host::Api { Listener::Rest } else { Listener::DataApi };
    if market.faults.blocked(listener) {
        // The firewall answers before the API: no weight, and not Binance's JSON.
        stats.waf_blocked.fetch_add(1, Ordering::Relaxed);
        return Response::from_string("<html><body><h1>403 Forbidden</h1>Request blocked.</body></html>")
            .with_status_code(403)
            .with_header(header("Content-Type", "text/html"));
    }
    let url = req.url();
    let path = url.split('?').next().unwrap_or("");
    let q = Query::parse(url);
    let depth_limit = match q.get("limit") {
        None => Ok(100),
        // "If limit > 5000, only 5000 entries will be returned".
        Some(l) => l.parse::<u64>().map(|l| l.clamp(1, crate::config::MAX_DEPTH_LEVELS as u64) as usize),
    };
    let cost = match path {
        "/api/v3/historicalTrades" => 25,
        "/api/v3/aggTrades" => 4,
        "/api/v3/klines" => 2,
        "/api/v3/exchangeInfo" => 20,
        "/api/v3/depth" => limiter::depth_weight(*depth_limit.as_ref().unwrap_or(&100)),
        _ => 1,
    };
    let used = match stats.charge(cost, market.cfg.rest_weight_limit, market.cfg.rest_weight_window) {
        Ok(used) => used,
        Err((status, used, retry_after)) => {
            let msg = if status == 418 {
                "Way too many requests; IP banned until further notice."
            } else {
                "Too many requests; current limit is exceeded."
            };
            return error(-1003, msg, status, used).with_header(header("Retry-After", &retry_after.to_string()));
        }
    };
    let unit = match req.headers().iter().find(|h| h.field.equiv("X-MBX-TIME-UNIT")) {
        None => TimeUnit::Millisecond,
        Some(h) => match TimeUnit::parse(h.value.as_str()) {
            Some(u) => u,
            None => return error(-1100, "Invalid X-MBX-TIME-UNIT.", 400, used),
        },
    };
    let sym = q.get("symbol").map(str::to_lowercase).and_then(|s| market.symbol_index(&s));
    let limit = q.get("limit").and_then(|l| l.parse::<u64>().ok()).unwrap_or(500).clamp(1, 1000);
    match (path, sym) {
        ("/api/v3/ping", _) => json("{}".into(), used, 200),
        ("/api/v3/exchangeInfo", _) => json(endpoints::exchange_info(market, unit), used, 200),
        // data-api.binance.vision does not serve it (README §4, §9).
        ("/api/v3/historicalTrades", _) if host == Host::DataApi => error(-1, "Not found.", 404, used),
        ("/api/v3/historicalTrades", Some(s)) => {
            json(endpoints::historical_trades(market, s, &q, limit, unit), used, 200)
        }
        ("/api/v3/aggTrades", Some(s)) => json(endpoints::agg_trades(market, s, &q, limit, unit), used, 200),
        ("/api/v3/klines", Some(s)) => match q.get("interval").and_then(interval_index) {
            None => error(-1120, "Invalid interval.", 400, used),
            Some(iv) => json(endpoints::klines(market, s, iv, &q, limit, unit), used, 200),
        },
        ("/api/v3/depth", Some(s)) => match depth_limit {
            Ok(limit) => json(endpoints::depth(market, s, limit), used, 200),
            Err(_) => error(-1100, "Illegal characters found in parameter 'limit'.", 400, used),
        },
        (_, None) if path.starts_with("/api/v3/") => error(-1121, "Invalid symbol.", 400, used),
        _ => error(-1, "Not found.", 404, used),
    }
}
