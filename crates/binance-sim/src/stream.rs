//! The WebSocket side of the simulator: one thread per connection, Binance's protocol.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{info, warn};
use tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tungstenite::{Message, WebSocket};

use crate::faults::Listener;
use crate::market::Market;
use crate::render::server_shutdown;
use crate::session::{parse_target, Session};

/// How long a connection keeps streaming after announcing serverShutdown on request.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// The server side of a connection: plain or TLS.
enum ServerStream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ServerConnection, TcpStream>>),
}

impl ServerStream {
    fn tcp(&self) -> &TcpStream {
        match self {
            ServerStream::Plain(t) => t,
            ServerStream::Tls(s) => &s.sock,
        }
    }
}

impl Read for ServerStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            ServerStream::Plain(t) => t.read(buf),
            ServerStream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for ServerStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            ServerStream::Plain(t) => t.write(buf),
            ServerStream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            ServerStream::Plain(t) => t.flush(),
            ServerStream::Tls(s) => s.flush(),
        }
    }
}

pub(crate) fn serve_connection(
    tcp: TcpStream,
    tls: Option<Arc<rustls::ServerConfig>>,
    market: &Market,
    stop: &AtomicBool,
    conn_id: u64,
    sbe: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    tcp.set_nodelay(true)?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let stream = match tls {
        Some(cfg) => ServerStream::Tls(Box::new(rustls::StreamOwned::new(rustls::ServerConnection::new(cfg)?, tcp))),
        None => ServerStream::Plain(tcp),
    };
    // The handshake callback reads the URL; what it found comes out through this cell.
    let target = std::rc::Rc::new(std::cell::RefCell::new(None));
    let seen = target.clone();
    // tungstenite fixes this callback's signature, large error type included.
    #[allow(clippy::result_large_err)]
    let callback = move |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        let uri = req.uri().to_string();
        let refuse = |status: u16, why: String| {
            let mut e = ErrorResponse::new(Some(why));
            *e.status_mut() = tungstenite::http::StatusCode::from_u16(status).unwrap_or_default();
            e
        };
        if market.faults.blocked(Listener::Ws) {
            // Binance's web-application firewall answers before the WebSocket server sees anything.
            market.ws_refused.fetch_add(1, Ordering::Relaxed);
            return Err(refuse(403, "blocked by the web application firewall (fault)".into()));
        }
        if sbe && !crate::sbe::key_accepted(market, req.headers().get("X-MBX-APIKEY").map(|v| v.as_bytes())) {
            market.sbe_key_refused.fetch_add(1, Ordering::Relaxed);
            return Err(refuse(401, crate::sbe::KEY_REFUSED.into()));
        }
        let mut t = parse_target(&uri, market.venue()).map_err(|(status, why)| refuse(status, why))?;
        t.sbe = sbe;
        if t.streams.len() > market.cfg.max_streams {
            let why =
                format!("{} streams; a connection can listen to at most {}", t.streams.len(), market.cfg.max_streams);
            return Err(refuse(400, why));
        }
        *seen.borrow_mut() = Some((uri, t));
        Ok(resp)
    };
    let cfg = WebSocketConfig::default().write_buffer_size(64 * 1024);
    let mut ws: WebSocket<ServerStream> =
        tungstenite::accept_hdr_with_config(stream, callback, Some(cfg)).map_err(|e| format!("handshake: {e}"))?;
    let (path, target) = target.borrow_mut().take().ok_or("handshake without a target")?;
    let opened = Instant::now();
    let mut session = Session::new(market, conn_id, opened, target);
    market.connections.fetch_add(1, Ordering::Relaxed);
    info!(conn = conn_id, path = %path.chars().take(120).collect::<String>(), streams = session.subs.len(), unit = ?session.unit, "sim client connected");

    let drop_gen = market.drop_generation.load(Ordering::SeqCst);
    let shutdown_gen = market.shutdown_generation.load(Ordering::SeqCst);
    // When to announce serverShutdown, and when to close.
    let mut notice_at = match (market.cfg.connection_lifetime, market.cfg.shutdown_notice) {
        (Some(l), Some(n)) => Some(opened + l.saturating_sub(n)),
        _ => None,
    };
    let mut close_at = market.cfg.connection_lifetime.map(|l| opened + l);
    let silence = market.cfg.silence.filter(|s| s.connection.is_none_or(|n| n == conn_id));
    let silent_at = silence.map(|s| opened + s.after);
    let mut next_ping = Instant::now() + market.cfg.ping_interval;
    let mut awaiting_pong: Option<(Vec<u8>, Instant)> = None;
    // Arrival times of the client's messages in the last second: a sliding window, the strictest
    // reading of Binance's "5 incoming messages per second".
    let mut window: std::collections::VecDeque<Instant> = std::collections::VecDeque::new();
    let mut buf = String::with_capacity(512);
    let (mut rows, mut bin) = (crate::sbe::Rows::default(), Vec::new());
    const BATCH: u64 = 20_000;
    // The pacing tick: about one event's interval at this connection's rate, within these bounds
    // (a fixed 20 us tick cost every idle test connection a fifth of a core).
    const TICK_MIN: Duration = Duration::from_micros(20);
    const TICK_MAX: Duration = Duration::from_millis(1);
    let mut tick = TICK_MAX;
    let mut tick_for_subs = usize::MAX;
    // Linux stretches every sleep by the thread's timer slack (50 us by default), which would
    // turn the tick into 70 us and the feed into bursts of that length.
    // SAFETY: prctl(PR_SET_TIMERSLACK) takes an integer and changes only this thread.
    #[cfg(target_os = "linux")]
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong);
    }
    loop {
        if stop.load(Ordering::Relaxed) {
            let _ = ws.close(Some(CloseFrame { code: CloseCode::Away, reason: "simulator stopping".into() }));
            let _ = ws.flush();
            return Ok(());
        }
        let now = Instant::now();
        if market.drop_generation.load(Ordering::Relaxed) != drop_gen {
            // An abrupt loss: no close frame, the TCP connection just goes.
            info!(conn = conn_id, "dropping connection (test control)");
            let _ = ws.get_ref().tcp().shutdown(std::net::Shutdown::Both);
            return Ok(());
        }
        if let (Some(fault), Some(at)) = (silence, silent_at) {
            if now >= at {
                info!(conn = conn_id, read = fault.read, "going silent with the TCP connection open (fault)");
                market.silenced.fetch_add(1, Ordering::Relaxed);
                return stay_silent(ws, fault.read, market, stop, drop_gen);
            }
        }
        if market.shutdown_generation.load(Ordering::Relaxed) != shutdown_gen
            && close_at.is_none_or(|c| c > now + SHUTDOWN_GRACE)
        {
            notice_at = Some(now);
            close_at = Some(now + SHUTDOWN_GRACE);
        }
        if notice_at.is_some_and(|t| now >= t) {
            notice_at = None;
            let text = server_shutdown(session.combined, session.unit.from_us(crate::now_us()));
            info!(conn = conn_id, "announcing serverShutdown");
            ws.write(Message::text(text))?;
        }
        if close_at.is_some_and(|t| now >= t) {
            info!(conn = conn_id, "connection lifetime reached: closing");
            let _ = ws.close(Some(CloseFrame { code: CloseCode::Away, reason: "connection lifetime".into() }));
            let _ = ws.flush();
            return Ok(());
        }
        if tick_for_subs != session.subs.len() {
            tick_for_subs = session.subs.len();
            let rate: f64 = session.subs.iter().filter_map(|s| s.source).map(|(k, sym)| market.rate_for(k, sym)).sum();
            tick = if rate > 0.0 { Duration::from_secs_f64(1.0 / rate).clamp(TICK_MIN, TICK_MAX) } else { TICK_MAX };
        }
        let mut sent = 0u64;
        session.mute_due(now);
        for i in 0..session.subs.len() {
            let muted = session.muted(&session.subs[i].name);
            let sub = &mut session.subs[i];
            let Some((kind, sym)) = sub.source else {
                continue;
            };
            if muted {
                // Nothing is sent; a resubscription that lifts the mute moves the cursor to the
                // live edge (session.rs), so what fell due meanwhile is never sent.
                continue;
            }
            let avail = market.available(kind, sym, now).min(sub.cursor + BATCH);
            while sub.cursor < avail {
                if market.stream_omits(kind, sub.cursor) {
                    sub.cursor += 1;
                    continue;
                }
                if sbe {
                    // Binary frames of what SBE serves; the rest is skipped, as nothing is sent.
                    match crate::sbe::event(market, kind, sym, sub.cursor, avail, &mut rows, &mut bin) {
                        Some(next) => {
                            ws.write(Message::binary(bin.clone()))?;
                            sent += next - sub.cursor;
                            sub.cursor = next;
                        }
                        None => sub.cursor = avail,
                    }
                    continue;
                }
                buf.clear();
                if session.combined {
                    buf.push_str(r#"{"stream":""#);
                    buf.push_str(&sub.name);
                    buf.push_str(r#"","data":"#);
                }
                market.render_in(kind, sym, sub.cursor, session.unit, &mut buf);
                if session.combined {
                    buf.push('}');
                }
                ws.write(Message::text(buf.as_str()))?;
                sub.cursor += 1;
                sent += 1;
            }
        }
        if now >= next_ping {
            let payload = crate::now_ms().to_string().into_bytes();
            ws.write(Message::Ping(payload.clone().into()))?;
            if awaiting_pong.is_none() {
                awaiting_pong = Some((payload, now + market.cfg.pong_timeout));
            }
            next_ping = now + market.cfg.ping_interval;
        }
        if let Some((_, deadline)) = &awaiting_pong {
            if now >= *deadline {
                warn!(conn = conn_id, "no pong in time: closing");
                let _ = ws.close(Some(CloseFrame { code: CloseCode::Policy, reason: "pong timeout".into() }));
                let _ = ws.flush();
                return Ok(());
            }
        }
        ws.flush()?;
        if sent > 0 {
            market.sent.fetch_add(sent, Ordering::Relaxed);
            market.data_writes.fetch_add(1, Ordering::Relaxed);
        }
        // Reads do not wait (a socket read timeout of 1 ms really waited 4-12 ms, so the feed came
        // in bursts); writes block, so the socket is non-blocking only around each read.
        loop {
            ws.get_ref().tcp().set_nonblocking(true)?;
            let read = ws.read();
            ws.get_ref().tcp().set_nonblocking(false)?;
            match read {
                Ok(msg) => {
                    if !matches!(msg, Message::Close(_)) {
                        let now = Instant::now();
                        while window.front().is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1)) {
                            window.pop_front();
                        }
                        window.push_back(now);
                        if window.len() > market.cfg.max_incoming_per_sec as usize {
                            warn!(conn = conn_id, "client exceeded the incoming message limit: closing");
                            let _ = ws.close(Some(CloseFrame {
                                code: CloseCode::Policy,
                                reason: "Too many requests".into(),
                            }));
                            let _ = ws.flush();
                            return Ok(());
                        }
                    }
                    match msg {
                        Message::Text(t) => {
                            let reply = session.control(t.as_str());
                            ws.write(Message::text(reply))?;
                            ws.flush()?;
                        }
                        Message::Pong(p)
                            if awaiting_pong.as_ref().is_some_and(|(want, _)| p.as_ref() == want.as_slice()) =>
                        {
                            awaiting_pong = None;
                        }
                        Message::Close(_) => return Ok(()),
                        _ => {}
                    }
                }
                Err(tungstenite::Error::Io(e))
                    if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) =>
                {
                    break
                }
                Err(e) => return Err(e.into()),
            }
        }
        // Binance sends each event as it happens; the simulator sends what fell due in the last
        // tick (two or three trades per write at 100k/s) rather than burning a core to time each
        // one. A full batch means more is due: no sleep.
        if sent < BATCH {
            match market.cfg.arrival {
                // An arrival process times each segment: sleep until the next one is due (or a
                // tick, for pings and control messages), so that each goes out in a write of its own.
                Some(_) => {
                    let now = Instant::now();
                    let next = next_due(&session, market).unwrap_or(now + TICK_MAX).min(now + TICK_MAX);
                    std::thread::sleep(next.saturating_duration_since(now));
                }
                None => std::thread::sleep(tick),
            }
        }
    }
}

/// When the next event of any stream this connection sends falls due.
fn next_due(session: &Session, market: &Market) -> Option<Instant> {
    session
        .subs
        .iter()
        .filter(|s| !session.muted(&s.name))
        .filter_map(|s| s.source.map(|(kind, sym)| market.due_at(kind, sym, s.cursor)))
        .min()
}

/// The rest of a connection that went silent: nothing is written again (no data, no ping, no
/// pong, no close frame) while the TCP connection stays open. Ends when the client closes
/// (seen only while reading: unread bytes hide a later end of stream), on a drop, or when the
/// simulator stops.
fn stay_silent(
    mut ws: WebSocket<ServerStream>,
    read: bool,
    market: &Market,
    stop: &AtomicBool,
    drop_gen: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    // Raw reads below tungstenite: its own read would answer the client's pings.
    ws.get_ref().tcp().set_nonblocking(true)?;
    let mut sink = [0u8; 4096];
    loop {
        if stop.load(Ordering::Relaxed) || market.drop_generation.load(Ordering::Relaxed) != drop_gen {
            let _ = ws.get_ref().tcp().shutdown(std::net::Shutdown::Both);
            return Ok(());
        }
        if read {
            loop {
                match ws.get_mut().read(&mut sink) {
                    Ok(0) => return Ok(()),
                    Ok(_) => {}
                    Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => break,
                    Err(e) => return Err(e.into()),
                }
            }
        } else if let Ok(0) = ws.get_ref().tcp().peek(&mut sink[..1]) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
