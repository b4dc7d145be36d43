//! One client connection, as a task on the server's runtime: hyper's HTTP/1 state machine over a
//! socket whose writes time out, ended early if the slot table evicts it. How it ended is counted
//! by [`Reason`].

use std::convert::Infallible;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_io_timeout::TimeoutStream;

use super::routes::{plain, Reply};
use super::slots::Admitted;
use super::{Counters, Handler, Limits, Reason};

/// Serves one connection until the client closes it, a limit cuts it, or it is evicted.
pub async fn serve(stream: TcpStream, admitted: Admitted, http: http1::Builder, limits: Limits, ctx: Arc<Ctx>) {
    let Admitted { slot, mut evicted, .. } = admitted;
    // Responses are small and written whole; Nagle would only delay the probe's answer.
    let _ = stream.set_nodelay(true);
    let mut io = TimeoutStream::new(stream);
    // The clock runs only while a write is blocked: a client that stops reading its responses
    // (e.g. pipelined requests never read) is cut after `write_timeout` without progress.
    io.set_write_timeout(Some(limits.write_timeout));
    // hyper needs `Unpin` I/O; the timeout wrapper holds timers and is not.
    let io = TokioIo::new(Box::pin(io));

    let activity = slot.activity.clone();
    let svc_ctx = ctx.clone();
    let svc = service_fn(move |req: Request<Incoming>| {
        activity.request();
        std::future::ready(Ok::<Reply, Infallible>(svc_ctx.answer(&req)))
    });
    let conn = http.serve_connection(io, svc);
    let result = tokio::select! {
        r = conn => r,
        // The accept loop counted the eviction; dropping `conn` closes the socket.
        _ = &mut evicted => return,
    };
    let Err(e) = result else { return };
    let reason = classify(&e, slot.activity.requests());
    match reason {
        Some(r) => ctx.counters.cut(r, &e),
        None => tracing::debug!(error = %e, "metrics server: connection ended"),
    }
}

/// What every connection shares: the request handler and the counters.
pub struct Ctx {
    pub handler: Handler,
    pub counters: Counters,
}

impl Ctx {
    /// One request's answer. A panic costs this request only (500) and is counted: the
    /// connection, the other connections and the server go on.
    fn answer(&self, req: &Request<Incoming>) -> Reply {
        let uri = req.uri();
        let target = uri.path_and_query().map_or(uri.path(), |pq| pq.as_str());
        match catch_unwind(AssertUnwindSafe(|| (self.handler)(req.method(), target))) {
            Ok(r) => r,
            Err(_) => {
                self.counters.count(Reason::HandlerPanic, "a request handler panicked: answered 500");
                plain(500, "internal error\n")
            }
        }
    }
}

/// Which limit ended the connection; `None` when the client itself went away (a reset, a close
/// mid-request), which is not ours to count.
fn classify(e: &hyper::Error, requests: u64) -> Option<Reason> {
    if io_timed_out(e) {
        Some(Reason::WriteTimeout)
    } else if e.is_parse_too_large() {
        // hyper has already answered 431 (414 for an over-long URI) and closed.
        Some(Reason::HeaderTooLarge)
    } else if e.is_timeout() {
        // hyper's header read timeout runs while it waits for a request head, idle or partial.
        Some(if requests == 0 { Reason::ReadTimeout } else { Reason::IdleTimeout })
    } else if e.is_parse() {
        Some(Reason::BadRequest)
    } else {
        None
    }
}

/// The write deadline of [`TimeoutStream`] surfaces as an `io::Error` of kind `TimedOut`.
fn io_timed_out(e: &hyper::Error) -> bool {
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        if c.downcast_ref::<io::Error>().is_some_and(|io| io.kind() == io::ErrorKind::TimedOut) {
            return true;
        }
        cause = c.source();
    }
    false
}
