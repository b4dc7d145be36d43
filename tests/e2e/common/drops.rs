//! Reading a topic after an ingester dropped records at its buffer cap: first wait for the
//! backfill to fetch every drop again (it may wait for the venue's REST weight budget, past the
//! read's quiet wait, and the ingester's `stale` records count towards the read's total), then
//! check it with the ingester's log at hand when the check fails.

use std::time::{Duration, Instant};

use super::{verify_complete, Completeness, Consumed, Ingester};

/// Waits until `ing` has backfilled as many records as it dropped at its buffer cap, at most
/// `within`; fails with its log after that. For trade and aggTrade streams without quarantine,
/// where every drop is asked of REST; `backfilled_total` also counts other refills (a live
/// sequence gap, a delivery in doubt), so this may end early where there are some: the read's own
/// wait and the completeness check still apply.
pub fn wait_drops_backfilled(ing: &Ingester, what: &str, within: Duration) {
    let t = Instant::now();
    loop {
        let dropped = ing.metric_sum("marketflow_ingestor_overflow_dropped_total");
        let backfilled = ing.metric_sum("marketflow_ingestor_backfilled_total");
        if backfilled >= dropped {
            return;
        }
        assert!(
            t.elapsed() < within,
            "{what}: {backfilled} of {dropped} drops backfilled after {within:?}\n{}",
            ing.dump_logs()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// [`verify_complete`] with nothing unrecoverable, printing `ing`'s log before a failed check
/// fails the test.
pub fn verify_complete_logged(
    msgs: &[Consumed],
    market: &binance_sim::Market,
    per_symbol: u64,
    ing: &Ingester,
    what: &str,
) -> Completeness {
    let checked =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| verify_complete(msgs, market, per_symbol, |_| false)));
    checked.unwrap_or_else(|e| {
        eprintln!("{what}: the ingester's log:\n{}", ing.dump_logs());
        std::panic::resume_unwind(e)
    })
}
