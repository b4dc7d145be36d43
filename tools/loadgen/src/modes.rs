//! The ingester's own modes: one fixed rate, the highest rate sustained (`--max`), and the soak;
//! the first two once per `--transport` (JSON, SBE), the soak with the first.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use serde::Serialize;

use crate::args::{split, Args};
use crate::outcome::RunResult;
use crate::report::print_and_save;
use crate::run::{run_once, RunSpec};
use crate::search::RateSearch;
use crate::units::fmt_rate;

pub fn mode_fixed(args: &Args) -> Result<()> {
    let name = args.name.clone().unwrap_or_else(|| default_name(args, Some(args.rate)));
    let root = args.out.join(&name);
    let mut results = Vec::new();
    for (n, dir, t) in per_transport(args, &name, &root)? {
        results.push(run_once(args, &spec_for(args, &n, dir, args.rate, args.secs, &t))?);
    }
    print_and_save(&root, &results, None)
}

/// The highest loss-free rate of each `--transport`, searched in turn with the same steps; with
/// JSON and SBE both, their ratio (issue 13's target: SBE at least twice JSON's).
pub fn mode_max(args: &Args) -> Result<()> {
    let name = args.name.clone().unwrap_or_else(|| default_name(args, None));
    let root = args.out.join(&name);
    let mut results = Vec::new();
    let mut extra = String::new();
    let mut best = BTreeMap::new();
    for (n, dir, t) in per_transport(args, &name, &root)? {
        let (rate, steps, text) = search_max(args, &n, &dir, &t)?;
        extra.push_str(&text);
        best.insert(
            t,
            (
                rate,
                steps.iter().filter(|r| r.sustained).max_by(|a, b| a.target_rate.total_cmp(&b.target_rate)).cloned(),
            ),
        );
        results.extend(steps);
    }
    if let (Some((json, jr)), Some((sbe, sr))) = (best.get("json"), best.get("sbe")) {
        let ratio = if *json > 0.0 { sbe / json } else { 0.0 };
        let _ = writeln!(
            extra,
            "\n**SBE / JSON, highest loss-free rate: x{ratio:.2}** ({} vs {} msg/s; issue 13's target: at least x2). \
             Event loop CPU per message at those steps: JSON {:.0} ns, SBE {:.0} ns.",
            fmt_rate(*sbe),
            fmt_rate(*json),
            jr.as_ref().map_or(0.0, |r| r.event_loop_ns_per_msg),
            sr.as_ref().map_or(0.0, |r| r.event_loop_ns_per_msg),
        );
        #[derive(Serialize)]
        struct Comparison {
            json_max_sustained_rate: f64,
            sbe_max_sustained_rate: f64,
            sbe_over_json: f64,
        }
        std::fs::create_dir_all(&root)?;
        let c = Comparison { json_max_sustained_rate: *json, sbe_max_sustained_rate: *sbe, sbe_over_json: ratio };
        std::fs::write(root.join("comparison.json"), serde_json::to_string_pretty(&c)?)?;
    }
    print_and_save(&root, &results, Some(&extra))
}

/// One `--max` search with `transport`: its steps under `dir` (with their `summary.json`), the
/// highest rate sustained and the lines saying so.
fn search_max(args: &Args, name: &str, dir: &Path, transport: &str) -> Result<(f64, Vec<RunResult>, String)> {
    let mut results = Vec::new();
    let good = RateSearch::from_args(args, 1000.0).run(|rate, _| {
        let n = format!("{name}-{}", fmt_rate(rate).to_lowercase());
        eprintln!("loadgen: --max step at {} msg/s ({transport})", fmt_rate(rate));
        let spec = spec_for(args, &n, dir.join(format!("step-{:09.0}", rate)), rate, args.step_secs, transport);
        let r = run_once(args, &spec)?;
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
        "**Highest rate sustained without loss: {} msg/s** ({} feeder, {transport}, {} sink, {}).\n",
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
        transport: &'a str,
        max_sustained_rate: f64,
        best: Option<&'a RunResult>,
        steps: &'a [RunResult],
    }
    std::fs::create_dir_all(dir)?;
    let summary = MaxSummary { transport, max_sustained_rate: best, best: best_run, steps: &results };
    std::fs::write(dir.join("summary.json"), serde_json::to_string_pretty(&summary)?)?;
    Ok((best, results, extra))
}

/// Each `--transport` with its run name and folder: the run's own when there is one, else
/// `<name>-<transport>` in `<root>/<transport>/`.
fn per_transport(args: &Args, name: &str, root: &Path) -> Result<Vec<(String, PathBuf, String)>> {
    let ts = split(&args.transport);
    if let Some(bad) = ts.iter().find(|t| !["json", "sbe"].contains(&t.as_str())) {
        bail!("--transport: `{bad}` is neither json nor sbe");
    }
    Ok(match ts.as_slice() {
        [] => bail!("--transport names no transport"),
        [one] => vec![(name.to_string(), root.to_path_buf(), one.clone())],
        _ => ts.iter().map(|t| (format!("{name}-{t}"), root.join(t), t.clone())).collect(),
    })
}

pub fn mode_soak(args: &Args, minutes: f64) -> Result<()> {
    let name = args.name.clone().unwrap_or_else(|| format!("soak-{}-{minutes}min", fmt_rate(args.rate).to_lowercase()));
    let dir = args.out.join(&name);
    let transport = per_transport(args, &name, &dir)?.remove(0).2;
    let mut spec = spec_for(args, &name, dir.clone(), args.rate, minutes * 60.0, &transport);
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

/// `<sink>-<plain|tls>-<streams>-<rate|max>[-replay][-<transports>][-<N>pe]` (no transport part
/// for JSON alone, no `-<N>pe` for a trade an event: the names of the runs before them).
fn default_name(args: &Args, rate: Option<f64>) -> String {
    format!(
        "{}-{}-{}-{}{}{}{}",
        args.sink,
        if args.tls { "tls" } else { "plain" },
        args.streams.replace(',', "+"),
        rate.map(|r| fmt_rate(r).to_lowercase()).unwrap_or_else(|| "max".into()),
        if args.feeder == "replay" { "-replay" } else { "" },
        if args.transport == "json" { String::new() } else { format!("-{}", args.transport.replace(',', "+")) },
        if args.trades_per_event > 1 { format!("-{}pe", args.trades_per_event) } else { String::new() }
    )
}

fn spec_for(args: &Args, name: &str, dir: PathBuf, rate: f64, secs: f64, transport: &str) -> RunSpec {
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
        transport: transport.to_string(),
        soak: false,
    }
}
