//! Everything specific to Binance: stream names, the wire formats of its payloads.
pub mod stream;
pub mod wire;
