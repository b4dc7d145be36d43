//! Everything specific to Binance: stream names, symbols, the wire formats of its payloads, the
//! endpoint's URL shape, requests and limits ([`venue::VENUE`]), its REST endpoints, weights and
//! bodies ([`rest`]), its SBE binary streams as the spot endpoint's binary transport ([`sbe`]).
//! USD-M futures, a market of its own, live in [`usdm`].
pub mod rest;
pub mod sbe;
pub mod stream;
pub mod symbol;
pub mod usdm;
pub mod venue;
pub mod wire;

/// The `exchange` field of every record from this venue.
pub const EXCHANGE: &str = "binance";
