//! Everything specific to Binance: stream names, symbols, the wire formats of its payloads.
pub mod stream;
pub mod symbol;
pub mod wire;

/// The `exchange` field of every record from this venue.
pub const EXCHANGE: &str = "binance";
