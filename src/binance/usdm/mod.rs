//! Binance USD-M futures market data (`wss://fstream.binance.com`): its stream kinds and their
//! routes ([`stream`]), the wire formats of its payloads ([`wire`]) and the endpoint as a
//! [`crate::venue::Venue`] ([`venue::VENUE`]); its REST API for the backfill ([`rest::API`]).
//!
//! Facts from developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams
//! (shared README §6, §9). Since Binance's 2026 routing change every connection names a route:
//! `/public` for the order book (`@depth*`, `@bookTicker`), `/market` for the rest (`@aggTrade`,
//! `@markPrice*`, `@kline_*`, `@forceOrder`). The retired root path acknowledges a `/market`
//! subscription and then delivers nothing, so no connection is ever planned on it.

pub mod endpoint;
pub mod rest;
pub mod stream;
pub mod venue;
pub mod wire;

use std::time::Duration;

/// The `exchange` field of every USD-M record and gap marker.
pub const EXCHANGE: &str = "binance-usdm";

/// "WebSocket connections have a limit of 10 incoming messages per second" (incoming to
/// Binance: our pongs and requests), twice spot's 5.
pub const MESSAGES_PER_SECOND: usize = 10;
/// "A single connection can listen to a maximum of 1024 streams" (the current page; older
/// mirrors say 200).
pub const MAX_STREAMS_PER_CONNECTION: usize = 1024;
/// "The websocket server will send a ping frame every 3 minutes" (spot: every 20 s).
pub const SERVER_PING_INTERVAL: Duration = Duration::from_secs(180);
/// "If the websocket server does not receive a pong frame back from the connection within a 10
/// minute period, the connection will be disconnected."
pub const PONG_DEADLINE: Duration = Duration::from_secs(600);
