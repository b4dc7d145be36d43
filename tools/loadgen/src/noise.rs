//! `--noise`: the noise floor of the core the ingester's event loop takes.

use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};

use crate::cpuset::START_CPUS;
use crate::host::Host;

/// The noise floor of the event loop's core: a thread that only reads the clock sees a gap
/// whenever the core is taken away (interrupts, other tasks, hypervisor steal). Every frame in
/// flight during a gap waits that long, so the share of time lost bounds the latency percentiles
/// any program can reach on this core.
pub fn mode_noise(secs: f64, host_note: &str) -> Result<()> {
    let host = Host::begin(host_note);
    let allowed = START_CPUS.get().cloned().unwrap_or_default();
    let core = *allowed.last().ok_or_else(|| anyhow!("no allowed core"))?;
    let h = std::thread::spawn(move || {
        marketflow_ingestor::pinning::pin_current(core);
        let bounds_us = [1u64, 5, 10, 20, 50, 100, 1000, u64::MAX];
        let mut counts = [0u64; 7];
        let mut lost = [Duration::ZERO; 7];
        let start = Instant::now();
        let end = start + Duration::from_secs_f64(secs);
        let mut prev = start;
        loop {
            let now = Instant::now();
            if now >= end {
                break;
            }
            let gap = now - prev;
            prev = now;
            let us = gap.as_micros() as u64;
            if us >= 1 {
                let i = bounds_us.windows(2).position(|w| us >= w[0] && us < w[1]).unwrap_or(6);
                counts[i] += 1;
                lost[i] += gap;
            }
        }
        (core, counts, lost, start.elapsed())
    });
    let (core, counts, lost, took) = h.join().map_err(|_| anyhow!("noise thread panicked"))?;
    let labels = ["1-5 µs", "5-10 µs", "10-20 µs", "20-50 µs", "50-100 µs", "0.1-1 ms", "≥ 1 ms"];
    let pct = |d: Duration| 100.0 * d.as_secs_f64() / took.as_secs_f64();
    println!("| core | gap | count | per second | time lost |\n|---|---|---:|---:|---:|");
    for ((l, c), d) in labels.iter().zip(counts).zip(lost) {
        println!("| {core} | {l} | {c} | {:.0} | {:.3} % |", c as f64 / took.as_secs_f64(), pct(d));
    }
    println!(
        "\ncore {core}: {:.2} % of {:.1} s lost in gaps of 1 µs or more, {:.2} % in gaps of 10 µs or more",
        pct(lost.iter().sum()),
        took.as_secs_f64(),
        pct(lost[2..].iter().sum()),
    );
    // The gaps are the host's, so the table says which host and how loaded it was.
    println!("\n{}", host.end().line());
    Ok(())
}
