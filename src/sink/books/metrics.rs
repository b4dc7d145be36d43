//! The order books' metrics: per symbol up to `METRICS_SYMBOL_DETAIL_MAX` symbols, above it
//! ([`Detail::Aggregated`]) once per lane as `symbol="_all"`, like the rest of the per-symbol
//! detail (README, Metrics), so that 1,000 symbols with depth stay within a Prometheus target's
//! bounds (10 series a symbol otherwise). The `_all` values keep the alerts meaning what they
//! meant per symbol:
//!
//! - counters (snapshots by reason, resyncs, unsynced diffs published, trimmed levels): the sum
//!   over the symbols, as every other `_all` counter;
//! - `depth_book_synced`: the minimum, 1 only while every book is valid, so "`== 0` for 2
//!   minutes" still means some book has been missing that long (which one: the `order book
//!   resync` log lines, or every series with `METRICS_SYMBOL_DETAIL_MAX` raised);
//! - `depth_book_levels`: the minimum by side, the thinnest book (0 while a symbol has none yet);
//! - `depth_books_unsynced` (in both modes, one series a lane): how many books are invalid now.

use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts};

use super::Reason;
use crate::metrics::{Detail, Metrics, ALL_SYMBOLS, NAMESPACE};

/// One symbol's book as the gauges see it, at a scan.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct BookState {
    pub synced: bool,
    /// Levels a side (bid, ask) and levels trimmed since start; `None`: no book yet.
    pub book: Option<([usize; 2], u64)>,
}

pub(super) struct BookMetrics {
    detail: Detail,
    /// Per symbol; aggregated, every symbol's handle is the one `_all` series (a clone shares
    /// its value), so an increment stays one atomic add and the callers index by symbol.
    snapshots: Vec<[IntCounter; 4]>,
    resyncs: Vec<IntCounter>,
    unsynced_published: Vec<IntCounter>,
    trimmed: Vec<IntCounter>,
    /// Each book's trimmed levels already counted: a shared `_all` counter cannot tell a symbol's
    /// part of it.
    trimmed_counted: Vec<u64>,
    /// Per symbol; aggregated, one: the `_all` series, set from all symbols at each scan.
    levels: Vec<[IntGauge; 2]>,
    synced: Vec<IntGauge>,
    unsynced_books: IntGauge,
    pub seeds_refused: IntCounterVec,
}

impl BookMetrics {
    pub fn new(metrics: &Metrics) -> BookMetrics {
        let reg = |c: Box<dyn prometheus::core::Collector>| metrics.registry.register(c).expect("registered once");
        let opts = |name: &str, help: &str| Opts::new(format!("{NAMESPACE}_{name}"), help);
        let counters = |name, help, labels: &[&str]| {
            let v = IntCounterVec::new(opts(name, help), labels).expect("valid metric");
            reg(Box::new(v.clone()));
            v
        };
        let gauges = |name, help, labels: &[&str]| {
            let v = IntGaugeVec::new(opts(name, help), labels).expect("valid metric");
            reg(Box::new(v.clone()));
            v
        };
        let detail = metrics.detail;
        let syms: Vec<&str> = metrics.symbols.iter().map(String::as_str).collect();
        // The label values of the per-symbol handles: each symbol, or `_all` for every one.
        let handles: Vec<&str> = match detail {
            Detail::PerSymbol => syms.clone(),
            Detail::Aggregated => vec![ALL_SYMBOLS; syms.len()],
        };
        // The gauges' series: each symbol's, or the one `_all`.
        let gauge_labels: &[&str] = match detail {
            Detail::PerSymbol => &syms,
            Detail::Aggregated => &[ALL_SYMBOLS],
        };
        let snapshots = counters("depth_snapshots_total", "depth_snapshot records published", &["symbol", "reason"]);
        let resyncs = counters("depth_resyncs_total", "Order books discarded: the depth sequence broke", &["symbol"]);
        let unsynced = counters(
            "depth_unsynced_published_total",
            "depth_update records published with no snapshot before them (held too long)",
            &["symbol"],
        );
        let trimmed =
            counters("depth_book_trimmed_levels_total", "Far levels dropped to keep a book within bounds", &["symbol"]);
        let levels = gauges(
            "depth_book_levels",
            "Levels in the in-process order book (symbol=\"_all\": the thinnest book's)",
            &["symbol", "side"],
        );
        let synced = gauges(
            "depth_book_synced",
            "1 while the symbol's order book is valid, else 0 (symbol=\"_all\": 1 while every book is)",
            &["symbol"],
        );
        let unsynced_books =
            IntGauge::with_opts(opts("depth_books_unsynced", "Order books not valid now")).expect("valid metric");
        reg(Box::new(unsynced_books.clone()));
        let seeds_refused =
            counters("depth_seeds_refused_total", "REST snapshots the books could not use, by reason", &["reason"]);
        for r in ["stale", "invalid"] {
            seeds_refused.with_label_values(&[r]);
        }
        BookMetrics {
            detail,
            snapshots: handles
                .iter()
                .map(|s| Reason::ALL.map(|r| snapshots.with_label_values(&[s, r.as_str()])))
                .collect(),
            resyncs: handles.iter().map(|s| resyncs.with_label_values(&[s])).collect(),
            unsynced_published: handles.iter().map(|s| unsynced.with_label_values(&[s])).collect(),
            trimmed: handles.iter().map(|s| trimmed.with_label_values(&[s])).collect(),
            trimmed_counted: vec![0; syms.len()],
            levels: gauge_labels
                .iter()
                .map(|s| ["bid", "ask"].map(|side| levels.with_label_values(&[s, side])))
                .collect(),
            synced: gauge_labels.iter().map(|s| synced.with_label_values(&[s])).collect(),
            unsynced_books,
            seeds_refused,
        }
    }

    pub fn snapshot(&self, s: usize, reason: Reason) {
        self.snapshots[s][reason as usize].inc();
    }

    /// Symbol `s`'s book broke: invalid from now (aggregated: so is the `_all` minimum).
    pub fn resync(&self, s: usize) {
        self.resyncs[s].inc();
        let gauge = if self.detail == Detail::PerSymbol { s } else { 0 };
        self.synced[gauge].set(0);
    }

    pub fn unsynced_published(&self, s: usize, n: usize) {
        self.unsynced_published[s].inc_by(n as u64);
    }

    /// Sets the gauges (and the trimmed counters) from every symbol's book, in symbol order.
    pub fn scan(&mut self, books: impl Iterator<Item = BookState>) {
        let (mut unsynced, mut thinnest) = (0i64, [usize::MAX; 2]);
        let mut any = false;
        for (s, b) in books.enumerate() {
            any = true;
            unsynced += i64::from(!b.synced);
            if let Some((_, trimmed)) = b.book {
                let counted = &mut self.trimmed_counted[s];
                self.trimmed[s].inc_by(trimmed.saturating_sub(*counted));
                *counted = (*counted).max(trimmed);
            }
            let levels = b.book.map_or([0, 0], |(levels, _)| levels);
            match self.detail {
                Detail::PerSymbol => {
                    self.synced[s].set(i64::from(b.synced));
                    if b.book.is_some() {
                        self.levels[s][0].set(levels[0] as i64);
                        self.levels[s][1].set(levels[1] as i64);
                    }
                }
                Detail::Aggregated => {
                    thinnest = [thinnest[0].min(levels[0]), thinnest[1].min(levels[1])];
                }
            }
        }
        self.unsynced_books.set(unsynced);
        if self.detail == Detail::Aggregated && any {
            self.synced[0].set(i64::from(unsynced == 0));
            self.levels[0][0].set(thinnest[0] as i64);
            self.levels[0][1].set(thinnest[1] as i64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics(n: usize, detail: Detail) -> (std::sync::Arc<Metrics>, BookMetrics) {
        let symbols: Vec<String> = (0..n).map(|i| format!("s{i}usdt")).collect();
        let m = Metrics::build(&symbols, None, detail);
        let b = BookMetrics::new(&m);
        (m, b)
    }

    fn synced(levels: [usize; 2], trimmed: u64) -> BookState {
        BookState { synced: true, book: Some((levels, trimmed)) }
    }

    fn depth_lines(text: &str) -> Vec<&str> {
        text.lines().filter(|l| l.starts_with("marketflow_ingestor_depth_")).collect()
    }

    #[test]
    fn aggregated_books_are_one_all_series_whose_values_keep_the_alerts_meaning() {
        let (m, mut b) = metrics(3, Detail::Aggregated);
        for s in 0..3 {
            b.snapshot(s, Reason::Start);
        }
        b.snapshot(1, Reason::Periodic);
        b.unsynced_published(2, 5);
        // Symbol 1 has no book yet: not all synced, and the thinnest book is empty.
        b.scan([synced([100, 90], 3), BookState::default(), synced([40, 60], 1)].into_iter());
        let text = m.render();
        let has =
            |line: &str| assert!(text.lines().any(|l| l == line), "{line} in:\n{}", depth_lines(&text).join("\n"));
        has(r#"marketflow_ingestor_depth_snapshots_total{reason="start",symbol="_all"} 3"#);
        has(r#"marketflow_ingestor_depth_snapshots_total{reason="periodic",symbol="_all"} 1"#);
        has(r#"marketflow_ingestor_depth_unsynced_published_total{symbol="_all"} 5"#);
        has(r#"marketflow_ingestor_depth_book_trimmed_levels_total{symbol="_all"} 4"#);
        has(r#"marketflow_ingestor_depth_book_synced{symbol="_all"} 0"#);
        has(r#"marketflow_ingestor_depth_books_unsynced 1"#);
        has(r#"marketflow_ingestor_depth_book_levels{side="bid",symbol="_all"} 0"#);
        // 4 snapshot reasons, resyncs, unsynced, trimmed, 2 level sides, synced, the count, and
        // the 2 refusal reasons (a lane's, never per symbol).
        assert_eq!(depth_lines(&text).len(), 13, "{}", depth_lines(&text).join("\n"));
        assert!(depth_lines(&text).iter().all(|l| !l.contains("s0usdt")), "no per-symbol book series");

        // Every book valid: `_all` synced; the thinnest book by side; trimming counted once.
        b.scan([synced([100, 90], 5), synced([20, 80], 0), synced([40, 60], 1)].into_iter());
        let text = m.render();
        let has =
            |line: &str| assert!(text.lines().any(|l| l == line), "{line} in:\n{}", depth_lines(&text).join("\n"));
        has(r#"marketflow_ingestor_depth_book_synced{symbol="_all"} 1"#);
        has(r#"marketflow_ingestor_depth_books_unsynced 0"#);
        has(r#"marketflow_ingestor_depth_book_levels{side="bid",symbol="_all"} 20"#);
        has(r#"marketflow_ingestor_depth_book_levels{side="ask",symbol="_all"} 60"#);
        has(r#"marketflow_ingestor_depth_book_trimmed_levels_total{symbol="_all"} 6"#);

        // One book breaks: `_all` is 0 at once, before the next scan.
        b.resync(2);
        let text = m.render();
        assert!(text.contains(r#"marketflow_ingestor_depth_book_synced{symbol="_all"} 0"#));
        assert!(text.contains(r#"marketflow_ingestor_depth_resyncs_total{symbol="_all"} 1"#));
    }

    #[test]
    fn per_symbol_books_keep_their_own_series() {
        let (m, mut b) = metrics(2, Detail::PerSymbol);
        b.snapshot(1, Reason::Resync);
        b.scan([BookState::default(), synced([7, 8], 2)].into_iter());
        b.scan([BookState::default(), synced([7, 8], 3)].into_iter());
        let text = m.render();
        for line in [
            r#"marketflow_ingestor_depth_snapshots_total{reason="resync",symbol="s1usdt"} 1"#,
            r#"marketflow_ingestor_depth_book_synced{symbol="s0usdt"} 0"#,
            r#"marketflow_ingestor_depth_book_synced{symbol="s1usdt"} 1"#,
            r#"marketflow_ingestor_depth_book_levels{side="ask",symbol="s1usdt"} 8"#,
            r#"marketflow_ingestor_depth_book_trimmed_levels_total{symbol="s1usdt"} 3"#,
            r#"marketflow_ingestor_depth_books_unsynced 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in:\n{}", depth_lines(&text).join("\n"));
        }
        assert!(depth_lines(&text).iter().all(|l| !l.contains("_all")), "{text}");
    }
}
