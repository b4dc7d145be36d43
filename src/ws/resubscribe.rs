//! Remedies for one silent stream on an open connection (see [`crate::liveness`]): unsubscribe
//! and subscribe it again, through the same outgoing budget as pongs and the first SUBSCRIBE
//! batches; or, if that does not help, a replacement connection (make-before-break, as
//! rotations do).
//!
//! Why both requests: a `SUBSCRIBE` naming a stream the connection already has may be a no-op
//! (Binance documents no answer but `{"result":null}`), so the stream is dropped first. The two
//! go out in that order on the one connection, which the venue reads in order; the trades missed
//! in between (and during the silence) show as a sequence gap once the stream is back, and are
//! fetched from REST like any other.

use std::io;
use std::time::Instant;

use tracing::info;
use tungstenite::{Message, WebSocket};

use super::{Connection, Lost, State, Transport};
use crate::metrics::Metrics;
use crate::stream::StreamKind;

/// Request ids awaiting an answer that are remembered, at most (a peer that never answers must
/// not grow the list).
const MAX_PENDING: usize = 64;

/// The resubscriptions a connection owes. Each list holds a stream (an index into the
/// connection's streams) at most once, so it is bounded by the streams the connection carries.
#[derive(Debug, Default)]
pub(super) struct Resubscriptions {
    /// Every stream's name, in the order of the connection's streams.
    names: Vec<String>,
    /// Streams to unsubscribe, then subscribe again.
    to_unsubscribe: Vec<usize>,
    /// Streams unsubscribed, to subscribe again.
    to_subscribe: Vec<usize>,
    /// Ids of those requests not answered yet.
    pending: Vec<i64>,
}

impl Resubscriptions {
    pub(super) fn new(names: Vec<String>) -> Resubscriptions {
        Resubscriptions { names, ..Default::default() }
    }

    /// Requests are waiting to go out.
    pub(super) fn has_work(&self) -> bool {
        !self.to_unsubscribe.is_empty() || !self.to_subscribe.is_empty()
    }

    /// Forgets what was owed: a new WebSocket subscribes every stream afresh.
    pub(super) fn clear(&mut self) {
        self.to_unsubscribe.clear();
        self.to_subscribe.clear();
        self.pending.clear();
    }

    /// `id` answers one of these requests (and is no longer awaited).
    pub(super) fn answered(&mut self, id: i64) -> bool {
        let before = self.pending.len();
        self.pending.retain(|p| *p != id);
        self.pending.len() < before
    }
}

/// Writes one control request; `Ok` when it went out or is queued for the next flush.
fn send(ws: &mut WebSocket<Transport>, msg: String) -> Result<(), Lost> {
    match ws.write(Message::text(msg)) {
        Ok(()) => {}
        Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
        Err(tungstenite::Error::WriteBufferFull(_)) => return Err(Lost::SubscribeRefused(ws.get_ref().unsent())),
        Err(e) => return Err(Lost::Peer(format!("control request failed: {e}"))),
    }
    let _ = ws.flush();
    Ok(())
}

impl Connection {
    /// When this connection finished subscribing all its streams, while it still has them all.
    pub fn subscribed_since(&self) -> Option<Instant> {
        self.is_subscribed().then_some(self.subscribed_at)
    }

    /// Resubscribes `stream` (unsubscribe, then subscribe), within the outgoing budget; false
    /// when this connection does not carry it or is not open.
    pub fn resubscribe(&mut self, stream: (u16, StreamKind), metrics: &Metrics) -> bool {
        let Some(i) = self.streams.iter().position(|s| *s == stream) else { return false };
        if !matches!(self.state, State::Open { .. }) {
            return false;
        }
        let r = &mut self.resub;
        if !r.to_unsubscribe.contains(&i) && !r.to_subscribe.contains(&i) {
            r.to_unsubscribe.push(i);
        }
        self.send_subscriptions(metrics);
        true
    }

    /// Asks for a replacement connection beside this one (make-before-break), connected at once;
    /// false when it is not open or already on its way out.
    pub fn replace_for_silence(&mut self) -> bool {
        if !matches!(self.state, State::Open { .. }) || self.retiring {
            return false;
        }
        self.rotate = true;
        true
    }

    /// Sends the resubscriptions owed, as many as the outgoing budget allows now (the first
    /// SUBSCRIBE batches go first); each request names up to the venue's streams per request.
    pub(super) fn try_send_resubscriptions(&mut self, now: Instant) -> Result<(), Lost> {
        if self.next_batch < self.overflow.len() {
            return Ok(());
        }
        let State::Open { ws } = &mut self.state else {
            return Ok(());
        };
        let per_request = self.venue.limits.streams_per_subscribe.max(1);
        let r = &mut self.resub;
        while r.has_work() && self.outgoing.allows_control(now) {
            // Subscribe what was unsubscribed before unsubscribing more.
            let subscribe = !r.to_subscribe.is_empty();
            let list = if subscribe { &mut r.to_subscribe } else { &mut r.to_unsubscribe };
            let batch: Vec<usize> = list.drain(..list.len().min(per_request)).collect();
            let names: Vec<&str> = batch.iter().map(|&i| r.names[i].as_str()).collect();
            let id = self.next_id;
            self.next_id += 1;
            let (method, msg) = if subscribe {
                ("SUBSCRIBE", (self.venue.subscribe)(id, &names))
            } else {
                ("UNSUBSCRIBE", (self.venue.unsubscribe)(id, &names))
            };
            send(ws, msg)?;
            self.outgoing.record_control(now);
            info!(conn = self.id, id, method, streams = names.len(), first = names[0], "resubscribing silent streams");
            if r.pending.len() >= MAX_PENDING {
                r.pending.remove(0);
            }
            r.pending.push(id);
            if !subscribe {
                r.to_subscribe.extend(batch);
            }
        }
        Ok(())
    }
}
