//! The end-to-end tests, in one binary: the real ingester binary against the Binance simulator
//! (crates/binance-sim) and the real local Kafka (`scripts/kafka.sh`, started on first use and
//! left running; every test writes topics of its own, so one broker serves them all).
//!
//! `cargo test -p e2e` (scripts/test.sh runs it after the rest); one concern:
//! `cargo test -p e2e recovery::`. `KAFKA_PORT` picks another local broker, `TEST_VERBOSE=1`
//! echoes the ingesters' logs.
//!
//! A test file written for the old layout (`tests/e2e_*.rs` with `mod common; use common::*;`)
//! joins as a module: move it here, declare it below, and import the helpers with
//! `use crate::common::*;` instead.

mod common;

mod alarms;
mod backfill_hostile;
mod basics;
mod book;
mod exactly_once;
mod hostile;
mod hostile_ws;
mod kafka_outage;
mod kafka_stall;
mod ordering;
mod quarantine;
mod recovery;
mod replay;
mod sasl;
mod sbe;
mod sbe_book;
mod sbe_mixed;
mod silence;
mod stale;
mod transport_switch;
mod usdm;
mod usdm_guarantees;
mod venue_2026;
