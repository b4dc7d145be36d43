//! How much per-symbol detail `/metrics` carries (`METRICS_SYMBOL_DETAIL_MAX`). The table here
//! follows the spot variables' in `--help`, `--check-config` and README.

use super::var::*;

/// More symbols than a process can ingest (`Symbols` indexes them with a `u16`): "every series
/// per symbol, always".
const MAX: usize = u16::MAX as usize;

/// In the order `--help`, `--check-config` and README list them, after the spot variables.
pub(super) const METRICS_VARS: &[Var] = &[Var {
    env: "METRICS_SYMBOL_DETAIL_MAX",
    flag: "metrics-symbol-detail-max",
    value_name: "N",
    // crate::metrics::DEFAULT_SYMBOL_DETAIL_MAX (a layer above: tests/metrics_scale.rs holds them equal).
    unset: Unset::Default("100"),
    help: "Most symbols a lane exports every per-symbol series for; above it the detail is exported once as \
           `symbol=\"_all\"`",
    more: "The detail is the latency histograms and quantiles, the gap, duplicate, backfill, overflow and \
           ordering counters and the order books' series (sums; `depth_book_synced` and `depth_book_levels` the \
           minimum); `messages_sent_total`, `ws_reconnects_total` and the stream ages stay per symbol, and \
           `/latency/<stage>?symbol=<s>` gives one symbol's latency distribution in any case. `0`: always aggregated; `65535`: never. The default keeps a scrape of 100 symbols as it was and \
           one of 1,000 under 10,000 series (README, Metrics).",
    secret: false,
    apply: |v, b| {
        if let Some(n) = b.int_in(v, 0..=MAX, "") {
            b.cfg.metrics_symbol_detail_max = n;
        }
    },
    show: |c, o| o.value(c.metrics_symbol_detail_max),
}];
