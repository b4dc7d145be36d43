//! The search for the highest rate sustained without loss, one algorithm for `--max` and for
//! `--compare-cryptofeed --max`: double from the start rate until a step fails (or the ceiling),
//! then bisect between the last rate that held and the first that did not.

use anyhow::Result;

use crate::args::Args;

/// Which half of the search tried a rate (the callers report the two differently).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Doubling,
    Bisecting,
}

#[derive(Clone, Copy, Debug)]
pub struct RateSearch {
    pub start: f64,
    /// No rate above this is tried.
    pub ceiling: f64,
    /// Bisection steps after the first failure.
    pub refine: u32,
    /// Bisection rates are rounded to a multiple of this, msg/s: finer steps than the machine's
    /// noise only cost run time.
    pub granularity: f64,
}

impl RateSearch {
    pub fn from_args(args: &Args, granularity: f64) -> RateSearch {
        RateSearch { start: args.max_start, ceiling: args.max_ceiling, refine: args.max_refine, granularity }
    }

    /// Runs `step` at each rate the search picks (it answers whether the rate was sustained) and
    /// returns the highest rate sustained, if any was. A step's error ends the search.
    pub fn run(&self, mut step: impl FnMut(f64, Phase) -> Result<bool>) -> Result<Option<f64>> {
        let mut good: Option<f64> = None;
        let mut bad: Option<f64> = None;
        let mut rate = self.start;
        while rate <= self.ceiling {
            if step(rate, Phase::Doubling)? {
                good = Some(rate);
                rate *= 2.0;
            } else {
                bad = Some(rate);
                break;
            }
        }
        if let Some(mut hi) = bad {
            let mut lo = good.unwrap_or(0.0);
            for _ in 0..self.refine {
                let mid = ((lo + hi) / 2.0 / self.granularity).round() * self.granularity;
                if mid <= lo || mid >= hi {
                    break;
                }
                if step(mid, Phase::Bisecting)? {
                    lo = mid;
                    good = Some(mid);
                } else {
                    hi = mid;
                }
            }
        }
        Ok(good)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::bail;

    struct Case {
        search: RateSearch,
        /// The highest rate the fake ingester sustains.
        holds_up_to: f64,
        tried: Vec<(f64, Phase)>,
        found: Option<f64>,
    }

    fn search(start: f64, ceiling: f64, refine: u32, granularity: f64) -> RateSearch {
        RateSearch { start, ceiling, refine, granularity }
    }

    #[test]
    fn doubles_then_bisects() {
        use Phase::{Bisecting as B, Doubling as D};
        let cases = [
            // TC0: bench-results/null-plain-trade-max-rt (`--max --max-start 400000`): the event
            // loop held 1.6M/s, not 1.8M/s; the steps it ran, in this order.
            Case {
                search: search(400_000.0, 8_000_000.0, 3, 1000.0),
                holds_up_to: 1_700_000.0,
                tried: vec![
                    (400_000.0, D),
                    (800_000.0, D),
                    (1_600_000.0, D),
                    (3_200_000.0, D),
                    (2_400_000.0, B),
                    (2_000_000.0, B),
                    (1_800_000.0, B),
                ],
                found: Some(1_600_000.0),
            },
            // TC1: bench-results/compare-cryptofeed-max (cryptofeed, `--max-refine 2`, 100 msg/s
            // steps): 32k held, 64k, 48k and 40k did not.
            Case {
                search: search(1000.0, 256_000.0, 2, 100.0),
                holds_up_to: 32_000.0,
                tried: vec![
                    (1000.0, D),
                    (2000.0, D),
                    (4000.0, D),
                    (8000.0, D),
                    (16_000.0, D),
                    (32_000.0, D),
                    (64_000.0, D),
                    (48_000.0, B),
                    (40_000.0, B),
                ],
                found: Some(32_000.0),
            },
            // TC2: everything holds: doubling stops at the ceiling, nothing to bisect.
            Case {
                search: search(100_000.0, 1_000_000.0, 3, 1000.0),
                holds_up_to: f64::MAX,
                tried: vec![(100_000.0, D), (200_000.0, D), (400_000.0, D), (800_000.0, D)],
                found: Some(800_000.0),
            },
            // TC3: nothing holds: bisection runs between 0 and the start, midpoints rounded
            // half away from zero (250 -> 300, 150 -> 200).
            Case {
                search: search(1000.0, 256_000.0, 3, 100.0),
                holds_up_to: 0.0,
                tried: vec![(1000.0, D), (500.0, B), (300.0, B), (200.0, B)],
                found: None,
            },
            // TC4: bisection ends early once a rounded midpoint is no longer strictly between
            // the last good and the first bad rate.
            Case {
                search: search(1000.0, 8000.0, 5, 1000.0),
                holds_up_to: 2500.0,
                tried: vec![(1000.0, D), (2000.0, D), (4000.0, D), (3000.0, B)],
                found: Some(2000.0),
            },
            // TC5: a start above the ceiling runs nothing.
            Case { search: search(2000.0, 1000.0, 3, 100.0), holds_up_to: f64::MAX, tried: vec![], found: None },
        ];
        for (i, c) in cases.iter().enumerate() {
            let mut tried = Vec::new();
            let found = c
                .search
                .run(|rate, phase| {
                    tried.push((rate, phase));
                    Ok(rate <= c.holds_up_to)
                })
                .unwrap();
            assert_eq!(tried, c.tried, "TC{i}: rates tried");
            assert_eq!(found, c.found, "TC{i}: highest rate sustained");
        }
    }

    #[test]
    fn a_failing_step_ends_the_search() {
        let mut calls = 0;
        let r = search(1000.0, 1e9, 3, 100.0).run(|rate, _| {
            calls += 1;
            if rate >= 4000.0 {
                bail!("the ingester died");
            }
            Ok(true)
        });
        assert_eq!(r.unwrap_err().to_string(), "the ingester died");
        assert_eq!(calls, 3);
    }
}
