//! The ingester's own modes: one fixed rate, the highest rate sustained (`--max`), and the soak.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Result;
use serde::Serialize;

use crate::args::{split, Args};
use crate::outcome::RunResult;
use crate::report::print_and_save;
use crate::run::{run_once, RunSpec};
use crate::search::RateSearch;
use crate::units::fmt_rate;

pub fn mode_fixed(args: &Args) -> Result<()> {
    let name = args.name.clone().unwrap_or_else(|| default_name(args, Some(args.rate)));
    let dir = args.out.join(&name);
    let r = run_once(args, &spec_for(args, &name, dir.clone(), args.rate, args.secs))?;
    print_and_save(&dir, &[r], None)
}

pub fn mode_max(args: &Args) -> Result<()> {
    let name = args.name.clone().unwrap_or_else(|| default_name(args, None));
    let root = args.out.join(&name);
    let mut results = Vec::new();
    let good = RateSearch::from_args(args, 1000.0).run(|rate, _| {
        let n = format!("{name}-{}", fmt_rate(rate).to_lowercase());
        eprintln!("loadgen: --max step at {} msg/s", fmt_rate(rate));
        let r = run_once(args, &spec_for(args, &n, root.join(format!("step-{:09.0}", rate)), rate, args.step_secs))?;
        eprintln!(
            "loadgen:   sustained {} msg/s: {} ({})",
            fmt_rate(r.parsed_rate),
            if r.sustained { "no loss" } else { "LOSS" },
            r.bottleneck
        );
        let ok = r.sustained;
        results.push(r);
        Ok(ok)
    })?;
    let best = good.unwrap_or(0.0);
    let best_run = results.iter().filter(|r| r.sustained).max_by(|a, b| a.target_rate.total_cmp(&b.target_rate));
    let first_fail = results.iter().filter(|r| !r.sustained).min_by(|a, b| a.target_rate.total_cmp(&b.target_rate));
    let mut extra = format!(
        "**Highest rate sustained without loss: {} msg/s** ({} feeder, {} sink, {}).\n",
        fmt_rate(best),
        args.feeder,
        args.sink,
        if args.tls { "wss" } else { "ws" }
    );
    if let Some(f) = first_fail {
        let _ = writeln!(
            extra,
            "Lowest failing step {} msg/s: sustained {} msg/s, feeder wrote {} msg/s; limit: {}.",
            fmt_rate(f.target_rate),
            fmt_rate(f.parsed_rate),
            fmt_rate(f.feeder_rate),
            f.bottleneck
        );
    }
    #[derive(Serialize)]
    struct MaxSummary<'a> {
        max_sustained_rate: f64,
        best: Option<&'a RunResult>,
        steps: &'a [RunResult],
    }
    std::fs::create_dir_all(&root)?;
    std::fs::write(
        root.join("summary.json"),
        serde_json::to_string_pretty(&MaxSummary { max_sustained_rate: best, best: best_run, steps: &results })?,
    )?;
    print_and_save(&root, &results, Some(&extra))
}

pub fn mode_soak(args: &Args, minutes: f64) -> Result<()> {
    let name = args.name.clone().unwrap_or_else(|| format!("soak-{}-{minutes}min", fmt_rate(args.rate).to_lowercase()));
    let dir = args.out.join(&name);
    let mut spec = spec_for(args, &name, dir.clone(), args.rate, minutes * 60.0);
    spec.soak = true;
    let r = run_once(args, &spec)?;
    let rss: Vec<f64> = r.rss_series_mib.iter().map(|x| x.1).collect();
    let max = rss.iter().copied().fold(0.0, f64::max);
    let after_1min: Vec<f64> = r.rss_series_mib.iter().filter(|x| x.0 >= 60.0).map(|x| x.1).collect();
    let growth = match (after_1min.first(), after_1min.last()) {
        (Some(a), Some(b)) => b - a,
        _ => rss.last().copied().unwrap_or(0.0) - rss.first().copied().unwrap_or(0.0),
    };
    let mut extra = String::from("RSS every 10 s (MiB): ");
    extra.push_str(&r.rss_series_mib.iter().map(|(t, v)| format!("{t:.0}s={v:.1}")).collect::<Vec<_>>().join(", "));
    let _ = write!(
        extra,
        "\n\nRSS max {max:.1} MiB, VmHWM {:.1} MiB, growth after the first minute {growth:+.1} MiB: {} (limit {} MiB).\n",
        r.vm_hwm_mib,
        if r.vm_hwm_mib < args.soak_limit_mib && growth.abs() < 2.0 { "flat and under the limit" } else { "NOT within the limit / not flat" },
        args.soak_limit_mib
    );
    print_and_save(&dir, &[r], Some(&extra))
}

/// `<sink>-<plain|tls>-<streams>-<rate|max>[-replay]`
fn default_name(args: &Args, rate: Option<f64>) -> String {
    format!(
        "{}-{}-{}-{}{}",
        args.sink,
        if args.tls { "tls" } else { "plain" },
        args.streams.replace(',', "+"),
        rate.map(|r| fmt_rate(r).to_lowercase()).unwrap_or_else(|| "max".into()),
        if args.feeder == "replay" { "-replay" } else { "" }
    )
}

fn spec_for(args: &Args, name: &str, dir: PathBuf, rate: f64, secs: f64) -> RunSpec {
    RunSpec {
        name: name.to_string(),
        dir,
        rate,
        warmup: args.warmup,
        secs,
        sink: args.sink.clone(),
        tls: args.tls,
        feeder: args.feeder.clone(),
        symbols: split(&args.symbols),
        streams: split(&args.streams),
        soak: false,
    }
}
