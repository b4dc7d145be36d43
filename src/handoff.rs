//! What the engine's threads hand one another, so that no stage needs another's types: backfill
//! jobs ([`jobs`]), records built off the hot path ([`OwnedRecord`]), `gap` markers ([`marker`])
//! and order-book snapshots from REST ([`depth`]). The event loop and the producer send jobs and
//! gaps; the backfill thread sends owned records and snapshots; none of them imports another.

pub mod depth;
pub mod jobs;
pub mod marker;
pub mod readback;

use crate::ring::RecordMeta;
use jobs::Seq;
use marker::Reason;

/// A record built off the hot path (backfilled, a marker or a snapshot), for the producer thread.
#[derive(Clone, Debug)]
pub struct OwnedRecord {
    pub meta: RecordMeta,
    pub key: Vec<u8>,
    pub payload: Vec<u8>,
}

/// An owned `gap` record for `from..to` of `seq`, for a thread other than the event loop.
pub fn gap_record(exchange: &str, symbol: &str, seq: Seq, from: i64, to: i64, reason: Reason) -> OwnedRecord {
    let now = crate::clock::now_ns();
    let mut payload = Vec::with_capacity(256);
    marker::write(&mut payload, marker::Owner { exchange, symbol }, seq, from, to, reason, now);
    OwnedRecord { meta: marker::meta(seq, now), key: symbol.as_bytes().to_vec(), payload }
}
