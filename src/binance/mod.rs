//! Everything specific to Binance: stream names, symbols, the wire formats of its payloads, the
//! endpoint's URL shape, requests and limits ([`venue::VENUE`]).
pub mod stream;
pub mod symbol;
pub mod venue;
pub mod wire;

/// The `exchange` field of every record from this venue.
pub const EXCHANGE: &str = "binance";
