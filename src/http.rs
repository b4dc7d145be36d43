//! The metrics thread: tiny_http serving `/metrics` (Prometheus text), `/healthz` (alive and the
//! event loop turning) and `/readyz` (subscribed and the sink reachable). Nothing sensitive is
//! served: configuration and credentials never appear here.

use std::sync::Arc;
use std::time::Duration;

use tiny_http::{Header, Method, Response, Server};
use tracing::{info, warn};

use crate::metrics::{Metrics, Stage};
use crate::shutdown::Shutdown;

/// The event loop beats every 100 ms; this much silence means it is stuck.
const LIVENESS_MAX_AGE: Duration = Duration::from_secs(5);

/// Binds the server; the returned address is the real one (port 0 picks a free port).
pub fn bind(addr: &str) -> Result<(Server, std::net::SocketAddr), String> {
    let server = Server::http(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = server.server_addr().to_ip().ok_or("not an IP listener")?;
    Ok((server, local))
}

/// Serves until shutdown.
pub fn serve(server: Server, metrics: Arc<Metrics>, shutdown: Shutdown) {
    let text = Header::from_bytes(&b"Content-Type"[..], &b"text/plain; version=0.0.4; charset=utf-8"[..]).unwrap();
    while !shutdown.is_triggered() {
        let req = match server.recv_timeout(Duration::from_millis(200)) {
            Ok(Some(r)) => r,
            Ok(None) => continue,
            Err(e) => {
                warn!("metrics server: {e}");
                continue;
            }
        };
        let path = req.url().split('?').next().unwrap_or("").to_string();
        let resp = match (req.method(), path.as_str()) {
            (Method::Get, "/metrics") => Response::from_string(metrics.render()).with_header(text.clone()),
            (Method::Get, "/healthz") => {
                if metrics.health.live(crate::clock::now_ns(), LIVENESS_MAX_AGE) {
                    Response::from_string("ok\n")
                } else {
                    Response::from_string("event loop stalled\n").with_status_code(503)
                }
            }
            (Method::Get, "/readyz") => {
                let h = &metrics.health;
                let subscribed = h.subscribed.load(std::sync::atomic::Ordering::Relaxed);
                let sink = h.sink_ready.load(std::sync::atomic::Ordering::Relaxed);
                let mut body = format!("subscribed={subscribed} sink={sink}\n");
                if let Some(f) = h.failed() {
                    // The thread's name only: its reason may quote hostile input.
                    body.push_str(&format!("failed_thread={}\n", f.thread));
                }
                Response::from_string(body).with_status_code(if h.ready() { 200 } else { 503 })
            }
            (Method::Get, p) if p.starts_with("/latency/") => {
                match Stage::ALL.iter().find(|s| s.as_str() == &p["/latency/".len()..]) {
                    Some(s) => Response::from_string(metrics.latency.percentile_distribution(*s)),
                    None => Response::from_string("stages: exchange_to_receive receive_to_enqueue enqueue_to_ack\n")
                        .with_status_code(404),
                }
            }
            (Method::Get, _) => Response::from_string("not found\n").with_status_code(404),
            _ => Response::from_string("method not allowed\n").with_status_code(405),
        };
        let _ = req.respond(resp);
    }
    info!("metrics server stopped");
}
