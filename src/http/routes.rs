//! The endpoints: `/metrics` (Prometheus text), `/healthz` (alive and the event loop turning),
//! `/readyz` (subscribed and the sink reachable) and `/latency/<stage>` (the full HdrHistogram
//! distribution; `?symbol=<s>` for one symbol's, whatever `/metrics` aggregates). Nothing
//! sensitive is served: configuration and credentials never appear here.
//! Paths, bodies and status codes are the ones the seed's tiny_http server answered.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Response, StatusCode};

use prometheus::Registry;

use crate::metrics::{Metrics, Stage};

/// The event loop beats every 100 ms; this much silence means it is stuck.
const LIVENESS_MAX_AGE: Duration = Duration::from_secs(5);

/// Prometheus' text exposition format, version 0.0.4.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
/// What tiny_http sent for a string body; kept so that no client sees a change.
const PLAIN_TEXT: &str = "text/plain; charset=UTF-8";

pub type Reply = Response<Full<Bytes>>;

/// A text reply with a status and a content type.
pub fn text(status: u16, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// A plain-text reply.
pub fn plain(status: u16, body: impl Into<Bytes>) -> Reply {
    text(status, PLAIN_TEXT, body)
}

/// What the endpoints report on: each market's metrics and health (a process serves one market
/// or several, each its own lane).
pub struct Markets {
    markets: Vec<(&'static str, Arc<Metrics>)>,
}

impl Markets {
    /// `markets` by name (`spot`, `usdm`), in the order the endpoints list them; at least one.
    pub fn new(markets: Vec<(&'static str, Arc<Metrics>)>) -> Markets {
        assert!(!markets.is_empty(), "a process serves at least one market");
        Markets { markets }
    }

    /// Where the server counts what it refused: the first market's registry, as when the process
    /// had one market only (so those series keep their labels and `Metrics::render` has them).
    pub fn server(&self) -> &Registry {
        &self.markets[0].1.registry
    }

    /// Every series, each family once (see `exposition`).
    pub fn render(&self) -> String {
        let registries: Vec<&Registry> = self.markets.iter().map(|(_, m)| &m.registry).collect();
        super::exposition::render(&registries)
    }

    /// Alive: every market's event loop turns.
    fn stalled(&self) -> Vec<&'static str> {
        let now = crate::clock::now_ns();
        self.markets.iter().filter(|(_, m)| !m.health.live(now, LIVENESS_MAX_AGE)).map(|(n, _)| *n).collect()
    }

    /// `/readyz`: ready when every market is; the body says which is not, and why. With one
    /// market the body is the seed's (`subscribed=.. sink=..`).
    fn readiness(&self) -> (bool, String) {
        let mut body = String::new();
        let mut not_ready = Vec::new();
        let several = self.markets.len() > 1;
        for (name, m) in &self.markets {
            let h = &m.health;
            let (subscribed, sink) = (h.subscribed.load(Ordering::Relaxed), h.sink_ready.load(Ordering::Relaxed));
            let market = if several { format!("market={name} ") } else { String::new() };
            body.push_str(&format!("{market}subscribed={subscribed} sink={sink}\n"));
            if let Some(t) = h.transport.get() {
                body.push_str(&format!("{market}transport={t}\n"));
            }
            // A broker that stopped answering without a client error (`sink::StallWatch`).
            let stall_ms = h.sink_stall_ms.load(Ordering::Relaxed);
            if stall_ms > 0 {
                let secs = stall_ms as f64 / 1000.0;
                body.push_str(&format!("{market}kafka_stall=no acknowledgement for {secs:.1} s\n"));
            }
            if !h.ready() {
                not_ready.push(*name);
            }
        }
        // The supervisor records a dead thread in one market's health; it is the process's.
        if let Some(f) = self.markets.iter().find_map(|(_, m)| m.health.failed()) {
            // The thread's name only: its reason may quote hostile input.
            body.push_str(&format!("failed_thread={}\n", f.thread));
        }
        if several && !not_ready.is_empty() {
            body.push_str(&format!("not_ready={}\n", not_ready.join(",")));
        }
        (not_ready.is_empty(), body)
    }

    /// The full latency distribution of `stage` (of one symbol: `Some(symbol)`), each market's
    /// under a `# market=` line when there are several; `None` when no market has the symbol.
    fn latency(&self, stage: Stage, symbol: Option<&str>) -> Option<String> {
        let of = |m: &Metrics| match symbol {
            None => Some(m.latency.percentile_distribution(stage)),
            Some(s) => m.symbols.index_of_lower(s).map(|i| m.latency.percentile_distribution_of(stage, i as usize)),
        };
        if let [(_, m)] = self.markets.as_slice() {
            return of(m);
        }
        let mut out = String::new();
        for (name, m) in &self.markets {
            if let Some(text) = of(m) {
                out.push_str(&format!("# market={name}\n"));
                out.push_str(&text);
            }
        }
        (!out.is_empty()).then_some(out)
    }
}

/// The `symbol` of a query string, percent-decoded and in lower case as configured: `Ok(None)`
/// without one, `Err` when it is not UTF-8 text.
fn symbol_param(query: Option<&str>) -> Result<Option<String>, ()> {
    let Some(v) = query.into_iter().flat_map(|q| q.split('&')).find_map(|p| p.strip_prefix("symbol=")) else {
        return Ok(None);
    };
    let text = percent_encoding::percent_decode_str(v).decode_utf8().map_err(|_| ())?;
    Ok(Some(text.to_lowercase()))
}

/// Answers one request from its method and request target (path and query; only
/// `/latency/<stage>` reads the query).
pub fn respond(markets: &Markets, method: &Method, target: &str) -> Reply {
    if method != Method::GET {
        return plain(405, "method not allowed\n");
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    match path {
        "/metrics" => text(200, PROMETHEUS_TEXT, markets.render()),
        "/healthz" => match markets.stalled().as_slice() {
            [] => plain(200, "ok\n"),
            stalled if markets.markets.len() > 1 => plain(503, format!("event loop stalled: {}\n", stalled.join(","))),
            _ => plain(503, "event loop stalled\n"),
        },
        "/readyz" => {
            let (ready, body) = markets.readiness();
            plain(if ready { 200 } else { 503 }, body)
        }
        p if p.starts_with("/latency/") => {
            let Some(stage) = Stage::ALL.into_iter().find(|s| s.as_str() == &p["/latency/".len()..]) else {
                return plain(404, "stages: exchange_to_receive receive_to_enqueue enqueue_to_ack\n");
            };
            // The symbol is never quoted back: it is the client's text.
            match symbol_param(query) {
                Err(()) => plain(400, "symbol: not UTF-8 text\n"),
                Ok(symbol) => match markets.latency(stage, symbol.as_deref()) {
                    Some(text) => plain(200, text),
                    None => plain(404, "symbol: not configured\n"),
                },
            }
        }
        _ => plain(404, "not found\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn body(r: Reply) -> String {
        let bytes = block_on(r.into_body().collect()).unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    /// `Full` is ready at once; a current-thread runtime is the simplest executor to poll it.
    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
    }

    #[test]
    fn endpoints_keep_the_seed_paths_bodies_and_status_codes() {
        let m = Metrics::new(&["btcusdt".to_string()]);
        let markets = Markets::new(vec![("spot", m.clone())]);
        let get = |p: &str| respond(&markets, &Method::GET, p);

        // TC0: liveness while start-up work runs, then stalled with no heartbeat.
        m.health.starting.store(true, Ordering::Relaxed);
        let r = get("/healthz");
        assert_eq!((r.status().as_u16(), body(r)), (200, "ok\n".to_string()));
        m.health.starting.store(false, Ordering::Relaxed);
        let r = get("/healthz");
        assert_eq!((r.status().as_u16(), body(r)), (503, "event loop stalled\n".to_string()));
        // TC1: readiness names both halves.
        let r = get("/readyz");
        assert_eq!((r.status().as_u16(), body(r)), (503, "subscribed=false sink=false\n".to_string()));
        m.health.subscribed.store(true, Ordering::Relaxed);
        m.health.sink_ready.store(true, Ordering::Relaxed);
        let r = get("/readyz");
        assert_eq!((r.status().as_u16(), body(r)), (200, "subscribed=true sink=true\n".to_string()));
        // TC1b: a broker that stopped acknowledging, named with its age, until it acknowledges.
        m.health.sink_stall_ms.store(23_456, Ordering::Relaxed);
        let r = get("/readyz");
        assert_eq!(
            (r.status().as_u16(), body(r)),
            (503, "subscribed=true sink=true\nkafka_stall=no acknowledgement for 23.5 s\n".to_string())
        );
        m.health.sink_stall_ms.store(0, Ordering::Relaxed);
        assert_eq!(get("/readyz").status(), 200);
        // TC2: metrics in Prometheus text.
        let r = get("/metrics");
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()[CONTENT_TYPE], PROMETHEUS_TEXT);
        assert!(body(r).contains("marketflow_ingestor_messages_sent_total{symbol=\"btcusdt\"} 0"));
        // TC3: latency stages, known and unknown.
        assert_eq!(get("/latency/enqueue_to_ack").status(), 200);
        let r = get("/latency/nope");
        assert_eq!(
            (r.status().as_u16(), body(r)),
            (404, "stages: exchange_to_receive receive_to_enqueue enqueue_to_ack\n".to_string())
        );
        // TC4: unknown path, other method.
        let r = get("/nope");
        assert_eq!((r.status().as_u16(), body(r)), (404, "not found\n".to_string()));
        let r = respond(&markets, &Method::POST, "/metrics");
        assert_eq!((r.status().as_u16(), body(r)), (405, "method not allowed\n".to_string()));
    }

    #[test]
    fn latency_of_one_symbol_on_demand_whatever_metrics_aggregates() {
        use crate::metrics::Detail;
        let symbols = ["btcusdt".to_string(), "币安人生usdt".to_string()];
        let m = Metrics::build(&symbols, None, Detail::Aggregated);
        let mut r = m.latency.recorder();
        r.record(Stage::EnqueueToAck, 0, 1_000);
        for _ in 0..3 {
            r.record(Stage::EnqueueToAck, 1, 2_000_000);
        }
        r.publish();
        let markets = Markets::new(vec![("spot", m.clone())]);
        let get = |p: &str| {
            let r = respond(&markets, &Method::GET, p);
            (r.status().as_u16(), body(r))
        };
        let count = |text: &str| {
            text.lines().next_back().unwrap().split('=').next_back().unwrap().trim_end_matches(']').trim().to_string()
        };
        let (code, all) = get("/latency/enqueue_to_ack");
        assert_eq!((code, count(&all)), (200, "4".to_string()), "{all}");
        let (code, btc) = get("/latency/enqueue_to_ack?symbol=BTCUSDT");
        assert_eq!((code, count(&btc)), (200, "1".to_string()), "{btc}");
        // Percent-encoded UTF-8, among other parameters.
        let (code, bn) = get("/latency/enqueue_to_ack?x=1&symbol=%E5%B8%81%E5%AE%89%E4%BA%BA%E7%94%9Fusdt");
        assert_eq!((code, count(&bn)), (200, "3".to_string()), "{bn}");
        assert_eq!(get("/latency/enqueue_to_ack?symbol=nope"), (404, "symbol: not configured\n".to_string()));
        assert_eq!(get("/latency/enqueue_to_ack?symbol=%FF"), (400, "symbol: not UTF-8 text\n".to_string()));
        // The query does not change any other endpoint.
        assert_eq!(get("/metrics?symbol=btcusdt").0, 200);
        assert!(get("/metrics").1.contains("symbol=\"_all\""));
    }

    #[test]
    fn several_markets_are_ready_only_together_and_the_body_names_the_one_that_is_not() {
        let symbols = ["btcusdt".to_string()];
        let (spot, usdm) = (Metrics::new(&symbols), Metrics::for_market(&symbols, "usdm"));
        let markets = Markets::new(vec![("spot", spot.clone()), ("usdm", usdm.clone())]);
        let get = |p: &str| {
            let r = respond(&markets, &Method::GET, p);
            (r.status().as_u16(), body(r))
        };
        for h in [&spot.health, &usdm.health] {
            h.subscribed.store(true, Ordering::Relaxed);
            h.sink_ready.store(true, Ordering::Relaxed);
        }
        assert_eq!(
            get("/readyz"),
            (200, "market=spot subscribed=true sink=true\nmarket=usdm subscribed=true sink=true\n".to_string())
        );
        usdm.health.subscribed.store(false, Ordering::Relaxed);
        assert_eq!(
            get("/readyz"),
            (
                503,
                "market=spot subscribed=true sink=true\nmarket=usdm subscribed=false sink=true\nnot_ready=usdm\n"
                    .to_string()
            )
        );
        // A thread that died takes the whole process's readiness down.
        usdm.health.subscribed.store(true, Ordering::Relaxed);
        spot.health.fail("usdm-event-loop", "panicked");
        let (code, text) = get("/readyz");
        assert_eq!(code, 503);
        assert!(text.ends_with("failed_thread=usdm-event-loop\nnot_ready=spot\n"), "{text}");

        // Alive only while every market's event loop turns.
        spot.health.beat(crate::clock::now_ns());
        assert_eq!(get("/healthz"), (503, "event loop stalled: usdm\n".to_string()));
        usdm.health.beat(crate::clock::now_ns());
        assert_eq!(get("/healthz").0, 200);

        let (_, metrics) = get("/metrics");
        assert_eq!(metrics.matches("# TYPE marketflow_ingestor_messages_sent_total ").count(), 1);
        assert!(metrics.contains("marketflow_ingestor_messages_sent_total{symbol=\"btcusdt\",market=\"usdm\"} 0"));
        let (_, latency) = get("/latency/enqueue_to_ack");
        assert_eq!(latency.matches("# market=").count(), 2, "{latency}");
    }
}
