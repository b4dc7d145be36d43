//! HdrHistogram percentile distributions (`.hgrm`): parsed from the ingester, written for the
//! histograms recorded here, and cut to the measured window.

use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::Serialize;

#[derive(Clone, Debug, Default, Serialize)]
pub struct Pcts {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub count: u64,
}

/// A parsed `.hgrm`: rows of (value µs, cumulative count), and the footer.
#[derive(Clone, Debug, Default)]
pub struct Hgrm {
    pub rows: Vec<(f64, u64)>,
    pub max: f64,
    pub count: u64,
}

impl Hgrm {
    pub fn parse(text: &str) -> Hgrm {
        let mut h = Hgrm::default();
        let mut counts = Vec::new();
        for line in text.lines() {
            let t = line.trim();
            if let Some(rest) = t.strip_prefix("#[Max") {
                // #[Max     =     2000.000, Total count    =            5]
                let mut parts = rest.split(',');
                h.max =
                    parts.next().and_then(|p| p.split('=').nth(1)).and_then(|v| v.trim().parse().ok()).unwrap_or(0.0);
                h.count = parts
                    .next()
                    .and_then(|p| p.split('=').nth(1))
                    .and_then(|v| v.trim().trim_end_matches(']').trim().parse().ok())
                    .unwrap_or(0);
                continue;
            }
            let f: Vec<&str> = t.split_whitespace().collect();
            if f.len() == 4 {
                if let (Ok(v), Ok(_), Ok(c)) = (f[0].parse::<f64>(), f[1].parse::<f64>(), f[2].parse::<u64>()) {
                    counts.push((v, c));
                }
            }
        }
        // The ingester writes the count since the previous row in the TotalCount column
        // (HdrHistogram's own format has the running total there): accept either.
        let sum: u64 = counts.iter().map(|x| x.1).sum();
        let cumulative_already = sum != h.count && counts.last().is_some_and(|x| x.1 == h.count);
        let mut run = 0;
        for (v, c) in counts {
            run = if cumulative_already { c } else { run + c };
            h.rows.push((v, run));
        }
        h
    }
}

/// A latency distribution as (value µs, cumulative fraction) steps.
#[derive(Clone, Debug, Default)]
pub struct Dist {
    pub steps: Vec<(f64, f64)>,
    pub max: f64,
    pub count: u64,
}

impl Dist {
    pub fn whole(h: &Hgrm) -> Dist {
        let n = h.count.max(1) as f64;
        Dist { steps: h.rows.iter().map(|&(v, c)| (v, c as f64 / n)).collect(), max: h.max, count: h.count }
    }

    /// What was recorded between snapshot `a` and snapshot `b` of the same cumulative histogram.
    /// `b`'s cumulative counts are exact at its row values; `a`'s are interpolated between its
    /// rows, so the error is bounded by `a`'s mass in one row interval (small: `a` is the warm-up).
    pub fn window(a: &Hgrm, b: &Hgrm) -> Dist {
        let total = b.count.saturating_sub(a.count);
        if total == 0 || a.rows.is_empty() {
            return if total == 0 { Dist::default() } else { Dist::whole(b) };
        }
        let ca = |v: f64| -> f64 {
            match a.rows.iter().position(|r| r.0 >= v) {
                None => a.count as f64,
                Some(0) => {
                    let (v0, c0) = a.rows[0];
                    if v >= v0 {
                        c0 as f64
                    } else {
                        0.0
                    }
                }
                Some(i) => {
                    let ((v0, c0), (v1, c1)) = (a.rows[i - 1], a.rows[i]);
                    if v1 <= v0 {
                        c1 as f64
                    } else {
                        c0 as f64 + (c1 as f64 - c0 as f64) * (v - v0) / (v1 - v0)
                    }
                }
            }
        };
        let mut steps = Vec::with_capacity(b.rows.len());
        let mut best = 0.0f64;
        let mut last_rise = 0.0;
        for &(v, cb) in &b.rows {
            let d = (cb as f64 - ca(v)).clamp(0.0, total as f64);
            if d > best + 0.5 {
                last_rise = v;
            }
            best = best.max(d);
            steps.push((v, best / total as f64));
        }
        // The window's max: the run's max if it grew during the window, else the last value
        // whose count grew in the window.
        let max = if b.max > a.max { b.max } else { last_rise };
        Dist { steps, max, count: total }
    }

    pub fn quantile(&self, q: f64) -> f64 {
        if q >= 1.0 {
            return self.max;
        }
        self.steps.iter().find(|(_, f)| *f >= q - 1e-12).map(|(v, _)| *v).unwrap_or(self.max)
    }

    pub fn pcts(&self) -> Pcts {
        Pcts {
            p50: self.quantile(0.5),
            p90: self.quantile(0.9),
            p99: self.quantile(0.99),
            p999: self.quantile(0.999),
            max: self.max,
            count: self.count,
        }
    }

    /// Chart points: (1/(1-p), value), up to the max.
    pub fn points(&self) -> Vec<(f64, f64)> {
        let mut pts: Vec<(f64, f64)> = Vec::new();
        for &(v, f) in &self.steps {
            if f >= 1.0 - 1e-9 {
                break;
            }
            pts.push((1.0 / (1.0 - f), v.max(0.001)));
        }
        let x_end = (self.count.max(2) as f64).max(pts.last().map(|p| p.0 * 2.0).unwrap_or(2.0));
        if !pts.is_empty() {
            pts.push((x_end, self.max.max(0.001)));
        }
        pts
    }
}

/// The same `.hgrm` layout the ingester serves, for histograms recorded here (values in µs).
pub fn hgrm_text(h: &Histogram<u64>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{:>12} {:>14} {:>10} {:>14}\n", "Value", "Percentile", "TotalCount", "1/(1-Percentile)");
    if !h.is_empty() {
        for v in h.iter_quantiles(5) {
            let q = v.quantile_iterated_to();
            let inv = if q < 1.0 { 1.0 / (1.0 - q) } else { f64::INFINITY };
            let _ = writeln!(
                out,
                "{:>12.3} {:>14.12} {:>10} {:>14.2}",
                v.value_iterated_to() as f64,
                q,
                v.count_since_last_iteration(),
                inv
            );
        }
    }
    let _ = writeln!(
        out,
        "#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]\n#[Max     = {:>12.3}, Total count    = {:>12}]",
        h.mean(),
        h.stdev(),
        h.max() as f64,
        h.len()
    );
    out
}

pub fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("static bounds")
}

/// Percentiles of a histogram recorded here in µs, in ms.
pub fn hist_pcts_ms(h: &Histogram<u64>) -> Pcts {
    let q = |x: f64| if h.is_empty() { 0.0 } else { h.value_at_quantile(x) as f64 / 1000.0 };
    Pcts { p50: q(0.5), p90: q(0.9), p99: q(0.99), p999: q(0.999), max: h.max() as f64 / 1000.0, count: h.len() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hgrm_round_trip_and_quantiles() {
        let mut h = new_hist();
        for v in 1..=1000u64 {
            h.record(v).unwrap();
        }
        let first = Hgrm::parse(&hgrm_text(&h));
        let p = Dist::whole(&first);
        assert_eq!(p.count, 1000);
        assert!((p.max - 1000.0).abs() < 1.0);
        assert!((p.quantile(0.5) - 500.0).abs() <= 5.0, "{}", p.quantile(0.5));
        assert!(p.quantile(0.99) >= 990.0 && p.quantile(0.99) <= 1000.0);
        // A window: 1000 more values around 5000 recorded after the first snapshot.
        for v in 4501..=5500u64 {
            h.record(v).unwrap();
        }
        let w = Dist::window(&first, &Hgrm::parse(&hgrm_text(&h)));
        assert_eq!(w.count, 1000);
        assert!((w.quantile(0.5) - 5000.0).abs() <= 60.0, "{}", w.quantile(0.5));
        assert!(w.quantile(0.01) >= 4500.0, "{}", w.quantile(0.01));
        assert!((w.max - 5500.0).abs() <= 6.0);
    }
}
