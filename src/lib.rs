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
//! # Layers
//!
//! Imports run down: a module uses modules of its own layer and of the layers below, never one
//! above. A layer marked `independent` is stricter: its modules do not use one another either
//! (what they share sits in a layer below them). `tests/layers.rs` reads the table below and
//! fails on any `crate::` path in `src/` that breaks it, naming the file, the import and both
//! layers; a module missing from the table fails it too.
//!
//! ```text
//! layer application: http lane supervise
//! layer loop: event_loop
//! layer connection: ws
//! layer stages independent: pipeline sink backfill recovery transport
//! layer handoff: handoff kafka_client
//! layer runtime: ring health metrics pinning
//! layer config: config cli
//! layer venue: binance
//! layer model: book interval liveness record sequence stream symbols time_unit venue
//! layer foundation: clock log_limit small_file shutdown tls resolver
//! ```
//!
//! Why this order:
//! - foundation: no knowledge of markets; used by everything (the clock, log rate limits,
//!   operator-named files, the TLS client configuration and DNS, signals).
//! - model: what a normalized record is, its JSON, and its sequences; no venue in it (records
//!   carry their `exchange` id as data).
//! - venue: all of Binance under `binance/`, built on the model: stream names, wire formats,
//!   symbol grammar, URL shape, SUBSCRIBE messages, limits, REST endpoints and weights.
//! - config sits above the venue: an operator writes the venue's stream names and symbols, and
//!   config checks them with the venue's own grammar. Nothing below config reads it.
//! - runtime: shared state of the running process (the ring, metrics, health), no threads.
//! - handoff: what the engine's threads pass one another (backfill jobs, owned records, gap
//!   markers) and the librdkafka properties (and topic scan) the sink, recovery and the backfill
//!   share, so that the stages above need not know one another.
//! - stages, connection, loop: the engine. Each stage has one job and knows only the hand-off
//!   types; a connection feeds the pipeline; the loop owns the connections.
//! - application: the HTTP endpoints, thread supervision and the lanes (one market's engine
//!   each); `main.rs` only wires.
//! - The simulator and the load harness are crates of their own (`crates/binance-sim`,
//!   `tools/loadgen`): nothing in the product can import them.
//!
//! # Modules
//!
//! - [`config`]: every setting, from the environment or flags, validated at once.
//! - [`binance`]: all of Binance: stream names, wire formats, symbol grammar, the endpoint as a
//!   [`venue::Venue`], REST endpoints and weights; USD-M futures, a market of its own with routed
//!   endpoints, in [`binance::usdm`].
//! - [`venue`]: the seam between the engine and a venue, as data.
//! - [`record`]: the normalized record model and its JSON encoding; [`interval`] candle intervals;
//!   [`stream`] the kinds of stream and their record types; [`time_unit`] ms or µs times.
//! - [`sequence`]: per-symbol exchange ids: duplicates dropped, gaps detected.
//! - [`book`]: one symbol's L2 order book, keyed by price, bounded, allocation-free per update.
//! - [`liveness`]: per-stream last message, cadence learned, silent streams found.
//! - [`symbols`]: the configured symbols, indexed once.
//! - [`handoff`]: what the engine's threads pass one another (jobs, owned records, gap markers);
//!   [`kafka_client`] the librdkafka properties the sink and recovery share.
//! - [`ring`]: the lock-free byte ring between the event loop and the producer thread.
//! - [`event_loop`]: the hand-rolled mio loop that owns every connection.
//! - [`ws`]: one WebSocket connection's state machine (TCP, TLS, upgrade, streaming).
//! - [`tls`]: the rustls client configuration.
//! - [`sink`]: where records go (Kafka, stdout, or a counter), and the producer thread.
//! - [`metrics`] and [`http`]: counters, HdrHistogram latencies, and the endpoints serving them.
//! - [`backfill`]: gaps fetched from REST off the event loop, gap markers for what REST lacks.
//! - [`recovery`]: where the last run stopped, read back from Kafka.
//! - [`transport`]: a lane's transport: the venue's text streams, or its binary one (Binance's
//!   SBE, `TRANSPORT=sbe`) when a key and every symbol's scale are there; when to fall back to
//!   text and try again (the event loop switches), and the scales kept current.
//! - [`resolver`]: DNS off the event-loop thread, the last good answer cached.
//! - [`shutdown`]: signals to an orderly drain.
//! - [`lane`]: one market's pipeline (its configuration, metrics, event loop, ring, producer,
//!   sink, backfill and books); a process runs one per configured market.
//! - [`supervise`]: helper threads whose death takes readiness down and the process out;
//!   [`health`] the liveness/readiness state `/healthz` and `/readyz` report.
//! - [`pinning`]: choosing cores from the allowed CPU set.
//! - [`clock`]: the one wall clock every timestamp comes from.
//! - [`small_file`]: operator-named files (password, CA) read without blocking, size-limited.
//! - [`log_limit`]: rate limits for log lines a peer can trigger per frame.

pub mod backfill;
pub mod binance;
pub mod book;
pub mod cli;
pub mod clock;
pub mod config;
pub mod event_loop;
pub mod handoff;
pub mod health;
pub mod http;
pub mod interval;
pub mod kafka_client;
pub mod lane;
pub mod liveness;
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
pub mod sink;
pub mod small_file;
pub mod stream;
pub mod supervise;
pub mod symbols;
pub mod time_unit;
pub mod tls;
pub mod transport;
pub mod venue;
pub mod ws;

/// The commit this binary was built from (see `build.rs`).
pub const GIT_COMMIT: &str = env!("MARKETFLOW_GIT_COMMIT");
