//! The metrics of `ORDERING=strict` (the producer thread's hold behind open gaps). Exported in
//! every mode, at 0 when ordering is default, so dashboards and alerts need no second variant.

use prometheus::{IntCounter, IntGauge};

use super::{per_symbol_handles, Detail, Registrar};

/// Why the hold named ids in a `gap` record itself (the `reason` label and field).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Named {
    /// `ordering_timeout`: not filled within `ORDERING_MAX_WAIT_MS`.
    Timeout = 0,
    /// `ordering_full`: the hold reached its memory bound.
    Full = 1,
    /// `ordering_late`: a record came after its place had passed.
    Late = 2,
}

pub const NAMED_REASONS: [&str; 3] = ["ordering_timeout", "ordering_full", "ordering_late"];

pub struct OrderingMetrics {
    /// Records held behind an open gap, per symbol.
    pub held: Vec<IntCounter>,
    /// Gap records the hold published itself, per symbol and [`Named`] reason.
    pub named: Vec<[IntCounter; 3]>,
    /// Records that came after their ids had been named in a gap record, dropped, per symbol.
    pub late_dropped: Vec<IntCounter>,
    /// Records held now, over all symbols.
    pub held_records: IntGauge,
    /// Memory the hold takes now (buffers included), bytes.
    pub held_bytes: IntGauge,
}

impl OrderingMetrics {
    pub(super) fn new(r: &Registrar<'_>, symbols: &[String], detail: Detail) -> OrderingMetrics {
        let held = r.counter_vec(
            "ordering_held_total",
            "Records held behind an open gap until it was filled or named (ORDERING=strict)",
            &["symbol"],
        );
        let named = r.counter_vec(
            "ordering_gaps_total",
            "Gap records published by the strict ordering itself, by reason (ORDERING=strict)",
            &["symbol", "reason"],
        );
        let late = r.counter_vec(
            "ordering_late_dropped_total",
            "Records that came after their ids were named in a gap record, dropped (ORDERING=strict)",
            &["symbol"],
        );
        OrderingMetrics {
            held: per_symbol_handles(detail, symbols, |s| held.with_label_values(&[s])),
            named: per_symbol_handles(detail, symbols, |s| NAMED_REASONS.map(|r| named.with_label_values(&[s, r]))),
            late_dropped: per_symbol_handles(detail, symbols, |s| late.with_label_values(&[s])),
            held_records: r.int_gauge("ordering_held_records", "Records held behind open gaps now (ORDERING=strict)"),
            held_bytes: r.int_gauge(
                "ordering_held_bytes",
                "Memory holding records behind open gaps now, bytes (ORDERING=strict)",
            ),
        }
    }
}
