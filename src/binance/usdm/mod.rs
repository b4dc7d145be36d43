//! Binance USD-M futures (README §6, §9): its REST API ([`rest`]).
pub mod rest;

/// The `exchange` field of every USD-M record and gap marker.
pub const EXCHANGE: &str = "binance-usdm";
