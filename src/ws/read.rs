//! Reading an open connection: frames until `WouldBlock` or the read budget, each handed to the
//! pipeline and its outcome acted on (streaming marks, catch-up, control replies, rotation on
//! `serverShutdown`), pings answered and a flooding peer dropped, queued writes flushed.

use std::io;
use std::time::Instant;

use tracing::info;
use tungstenite::Message;

use super::dial::write_buffer_full;
use super::{Connection, Dialer, Lost, Progress, State, PING_FLOOD_LIMIT, READ_BUDGET};
use crate::metrics::Metrics;
use crate::pipeline::{Admission, Outcome, Pipeline};

impl Connection {
    /// Handles readiness for this connection's socket.
    pub fn on_ready(&mut self, dialer: &Dialer, pipeline: &mut Pipeline, metrics: &Metrics) -> Progress {
        loop {
            match std::mem::replace(&mut self.state, State::Closed) {
                State::Connecting { tcp, since } => {
                    if let Some(p) = self.on_connecting(tcp, since, dialer, metrics) {
                        return p;
                    }
                }
                State::Handshaking { mid, since } => {
                    let r = mid.handshake();
                    if let Some(p) = self.after_handshake(r, since, metrics) {
                        return p;
                    }
                }
                State::Open { ws } => {
                    self.state = State::Open { ws };
                    return self.stream(pipeline, metrics);
                }
                other => {
                    self.state = other;
                    return Progress::default();
                }
            }
        }
    }

    /// Reads frames until `WouldBlock` or the read budget, handing text frames to the pipeline.
    fn stream(&mut self, pipeline: &mut Pipeline, metrics: &Metrics) -> Progress {
        let State::Open { ws } = &mut self.state else {
            return Progress::default();
        };
        let mut handled = 0;
        let mut got_any = false;
        // Why the connection goes, and the `ws_connect_attempts_total` result that says so.
        let mut lost: Option<Lost> = None;
        while handled < READ_BUDGET {
            let msg = ws.read();
            // Every frame counts, control frames too: a peer flooding pings or pongs must not
            // keep the loop here.
            handled += 1;
            let admission = if self.catch_up.is_some() { Admission::CatchUp } else { Admission::Normal };
            // Binary frames are the venue's binary transport (SBE), refused on a text one. Handed
            // over here, while `ws` is borrowed for the receive time; what they meant is read in
            // the text and binary arm below.
            let data = match &msg {
                Ok(Message::Text(t)) => Some(pipeline.on_text(t.as_str(), ws.get_ref().recv_ns(), admission)),
                Ok(Message::Binary(b)) => Some(pipeline.on_binary(b, ws.get_ref().recv_ns(), admission)),
                _ => None,
            };
            match msg {
                Ok(Message::Text(_) | Message::Binary(_)) => {
                    got_any = true;
                    match data.unwrap_or(Outcome::Rejected) {
                        // Market data, whatever became of it: the peer is streaming.
                        Outcome::Record | Outcome::Duplicate | Outcome::Held | Outcome::Overflowed => {
                            self.streamed = true
                        }
                        Outcome::Joined { symbol_idx, kind } => {
                            self.streamed = true;
                            if let Some((_, pending)) = &mut self.catch_up {
                                pending.retain(|p| *p != (symbol_idx, kind));
                                if pending.is_empty() {
                                    info!(conn = self.id, "replacement caught up with every sequence");
                                    self.catch_up = None;
                                }
                            }
                        }
                        Outcome::ControlReply { id: Some(id) } if self.resub.answered(id) => {
                            info!(conn = self.id, id, "resubscription acknowledged")
                        }
                        Outcome::ControlReply { id } => match id.filter(|id| self.pending.contains(id)) {
                            Some(id) => {
                                self.pending.retain(|p| *p != id);
                                info!(conn = self.id, id, pending = self.pending.len(), "control reply");
                                if self.pending.is_empty() && self.next_batch >= self.overflow.len() {
                                    self.subscribed_at = Instant::now();
                                }
                            }
                            // Not an answer to us: a peer can send these without end.
                            None => {
                                if let Some(suppressed) = self.log.check("unsolicited_reply") {
                                    info!(conn = self.id, ?id, suppressed, "unsolicited reply ignored");
                                }
                            }
                        },
                        // Make-before-break: keep streaming until the replacement takes over.
                        Outcome::ServerShutdown => {
                            self.rotate = true;
                            self.rotate_by_peer = true;
                        }
                        _ => {}
                    }
                }
                // tungstenite queues the pong, with the ping's payload, and flushes it below.
                Ok(Message::Ping(_)) => {
                    got_any = true;
                    metrics.ws_pings.inc();
                    let now = Instant::now();
                    self.outgoing.record_pong(now);
                    if !self.pings.allow(now) {
                        lost = Some(Lost::PingFlood(PING_FLOOD_LIMIT));
                        break;
                    }
                }
                Ok(Message::Pong(_)) | Ok(Message::Frame(_)) => got_any = true,
                Ok(Message::Close(c)) => {
                    lost = Some(Lost::Peer(format!("server closed: {c:?}")));
                    break;
                }
                Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    // A hostile or broken peer costs this connection, never the process.
                    let reason = match &e {
                        tungstenite::Error::Capacity(_) => Some("frame_too_large"),
                        tungstenite::Error::Protocol(_) => Some("ws_protocol"),
                        tungstenite::Error::Utf8(_) => Some("invalid_utf8"),
                        _ => None,
                    };
                    if let Some(r) = reason {
                        metrics.rejected.with_label_values(&[r]).inc();
                    }
                    lost = Some(Lost::Peer(e.to_string()));
                    break;
                }
            }
        }
        if got_any {
            self.last_rx = Instant::now();
        }
        pipeline.flush_batch();
        // Pongs and anything else queued go out now; WouldBlock leaves them for the writable edge,
        // unless the backlog reached the write buffer's bound: the peer is not reading.
        match ws.flush() {
            Ok(()) => {}
            Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                let unsent = ws.get_ref().unsent();
                if lost.is_none() && write_buffer_full(unsent) {
                    lost = Some(Lost::WriteBufferFull(unsent));
                }
            }
            Err(e) if lost.is_none() => lost = Some(Lost::Peer(e.to_string())),
            Err(_) => {}
        }
        if let Some(why) = lost {
            self.lost(why, metrics);
            return Progress::default();
        }
        Progress { more: handled >= READ_BUDGET }
    }
}
