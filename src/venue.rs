//! The seam between the generic engine and a venue: what a connection, the event loop and the
//! records need to know of an exchange, as data. A venue (`binance/`) fills in one [`Venue`];
//! `main.rs` hands it to the engine, which never names the venue itself. Plain data and `fn`
//! pointers called per connection or per request, never per message, so the hot path stays
//! monomorphic.

use std::time::Duration;

/// What the venue allows a client; the engine keeps below each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Messages a connection may send per second (pongs and control requests together).
    pub messages_per_second: usize,
    /// Connection attempts per [`Limits::attempt_window`], for all connections of the process.
    pub attempts: usize,
    pub attempt_window: Duration,
    /// Streams one SUBSCRIBE request names.
    pub streams_per_subscribe: usize,
    /// Stream-name bytes put in the connect URL; the rest are subscribed once open.
    pub url_stream_bytes: usize,
}

/// One venue's market-data endpoint, as data.
#[derive(Clone, Copy, Debug)]
pub struct Venue {
    /// The `exchange` field of every record and gap marker.
    pub exchange: &'static str,
    pub limits: Limits,
    /// The request path of a connection subscribed to `streams` from the start (`base` is the
    /// configured path prefix).
    pub stream_path: fn(base: &str, streams: &[&str]) -> String,
    /// The text of a request subscribing to `streams`, answered with the same `id`.
    pub subscribe: fn(id: i64, streams: &[&str]) -> String,
}
