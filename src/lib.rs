//! MarketFlow Ingestor: Binance market data over WebSocket, normalized, into Kafka, with
//! latency you can see on a dashboard.
//!
//! # Layout
//!
//! ```text
//! [Binance WS] -> event_loop (mio, pinned core): tls -> ws -> binance::wire -> record -> ring
//!              -> producer thread: ring -> sink (kafka | stdout | null) -> delivery reports
//!              http thread (hyper, one thread, bounded): /metrics (metrics), /healthz, /readyz
//! ```
//!
//! - [`config`]: every setting, from the environment or flags, validated at once.
//! - [`binance`]: stream names and the wire formats of Binance payloads.
//! - [`record`]: the normalized record model and its JSON encoding.
//! - [`sequence`]: per-symbol exchange ids: duplicates dropped, gaps detected.
//! - [`ring`]: the lock-free byte ring between the event loop and the producer thread.
//! - [`event_loop`]: the hand-rolled mio loop that owns every connection.
//! - [`ws`]: one WebSocket connection's state machine (TCP, TLS, upgrade, streaming).
//! - [`tls`]: the rustls client configuration.
//! - [`sink`]: where records go (Kafka, stdout, or a counter), and the producer thread.
//! - [`metrics`] and [`http`]: counters, HdrHistogram latencies, and the endpoints serving them.
//! - [`backfill`]: gaps fetched from REST off the event loop, gap markers for what REST lacks.
//! - [`recovery`]: where the last run stopped, read back from Kafka.
//! - [`resolver`]: DNS off the event-loop thread, the last good answer cached.
//! - [`shutdown`]: signals to an orderly drain.
//! - [`supervise`]: helper threads whose death takes readiness down and the process out;
//!   [`health`] the liveness/readiness state `/healthz` and `/readyz` report.
//! - [`pinning`]: choosing cores from the allowed CPU set.
//! - [`clock`]: the one wall clock every timestamp comes from.
//! - [`small_file`]: operator-named files (password, CA) read without blocking, size-limited.
//! - [`log_limit`]: rate limits for log lines a peer can trigger per frame.
//! - [`sim`]: a Binance simulator speaking the real protocol on loopback, for tests and demos.

pub mod backfill;
pub mod binance;
pub mod cli;
pub mod clock;
pub mod config;
pub mod event_loop;
pub mod health;
pub mod http;
pub mod interval;
pub mod log_limit;
pub mod metrics;
pub mod pinning;
pub mod pipeline;
pub mod record;
pub mod recovery;
pub mod resolver;
pub mod ring;
pub mod sequence;
pub mod shutdown;
pub mod sim;
pub mod sink;
pub mod small_file;
pub mod supervise;
pub mod tls;
pub mod ws;

/// The commit this binary was built from (see `build.rs`).
pub const GIT_COMMIT: &str = env!("MARKETFLOW_GIT_COMMIT");
