//! The endpoints: `/metrics` (Prometheus text), `/healthz` (alive and the event loop turning),
//! `/readyz` (subscribed and the sink reachable) and `/latency/<stage>` (the full HdrHistogram
//! distribution). Nothing sensitive is served: configuration and credentials never appear here.
//! Paths, bodies and status codes are the ones the seed's tiny_http server answered.

use std::sync::atomic::Ordering;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Response, StatusCode};

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

/// Answers one request from its method and path (the query is ignored).
pub fn respond(metrics: &Metrics, method: &Method, path: &str) -> Reply {
    if method != Method::GET {
        return plain(405, "method not allowed\n");
    }
    match path {
        "/metrics" => text(200, PROMETHEUS_TEXT, metrics.render()),
        "/healthz" => {
            if metrics.health.live(crate::clock::now_ns(), LIVENESS_MAX_AGE) {
                plain(200, "ok\n")
            } else {
                plain(503, "event loop stalled\n")
            }
        }
        "/readyz" => {
            let h = &metrics.health;
            let subscribed = h.subscribed.load(Ordering::Relaxed);
            let sink = h.sink_ready.load(Ordering::Relaxed);
            let mut body = format!("subscribed={subscribed} sink={sink}\n");
            if let Some(f) = h.failed() {
                // The thread's name only: its reason may quote hostile input.
                body.push_str(&format!("failed_thread={}\n", f.thread));
            }
            plain(if h.ready() { 200 } else { 503 }, body)
        }
        p if p.starts_with("/latency/") => match Stage::ALL.iter().find(|s| s.as_str() == &p["/latency/".len()..]) {
            Some(s) => plain(200, metrics.latency.percentile_distribution(*s)),
            None => plain(404, "stages: exchange_to_receive receive_to_enqueue enqueue_to_ack\n"),
        },
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
        let get = |p: &str| respond(&m, &Method::GET, p);

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
        let r = respond(&m, &Method::POST, "/metrics");
        assert_eq!((r.status().as_u16(), body(r)), (405, "method not allowed\n".to_string()));
    }
}
