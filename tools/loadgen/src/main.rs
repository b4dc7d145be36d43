//! Load harness: drives the real `marketflow-ingestor` binary (a child process) from a Binance
//! feeder on loopback and reports what it sustained, what it cost and how long it took.
//!
//! Feeders (both in this process, on 127.0.0.1):
//! - `sim`: the project's Binance simulator (the `binance-sim` crate, `binance_sim::spawn`), plain or TLS.
//! - `replay`: a WebSocket server that writes pre-rendered frames (only ids and times patched per
//!   message), for rates the simulator cannot generate itself (it formats JSON and frames each
//!   message through tungstenite).
//!
//! Per run: messages/s sustained, CPU per message of the ingester (utime+stime from
//! `/proc/<pid>/stat` over the measured window), peak RSS (`VmHWM`), per-stage latency
//! percentiles from `GET /latency/<stage>` (saved as `.hgrm`), a latency-by-percentile chart
//! (`latency.svg`), wake-ups (voluntary context switches), preemptions and CPU per wake-up per
//! thread group (`/proc/<pid>/task/*/schedstat` and `status`), `summary.json`, and a markdown
//! table on stdout. With `--sink kafka` a consumer
//! also measures end to end: Kafka log-append time (and consumer receive time) minus the
//! exchange event time in the record.
//!
//! Modes: fixed rate (default), `--max` (stepwise search of the highest rate sustained without
//! loss), `--soak MINUTES` (RSS every 10 s), `--compare-cryptofeed` (the same feed through the
//! ingester and through cryptofeed's Binance feed with its Kafka backend, measured identically),
//! `--table` (every rate x arrival through ours into Kafka, ours with SINK=null and cryptofeed:
//! CPU per delivered message per thread group, source -> broker-append percentiles).
//!
//! Arrival (`--arrival`, the simulator's): `even`, `poisson` (seeded), `even:K`/`poisson:K` (K
//! messages per write), `burst:N`.
//!
//! Transports (`--transport json,sbe`): Binance's JSON streams, or its SBE streams (the ingester
//! runs `TRANSPORT=sbe`; trades only), each run in turn with the same settings in one command;
//! `--max` then compares their highest loss-free rates.
//!
//! Every child is killed when this process exits (SIGTERM, then SIGKILL; and PDEATHSIG if this
//! process dies first). Nothing is pinned: the ingester chooses its own cores.
//!
//! # Layout
//!
//! ```text
//! main.rs      wiring: flags, the feeder's core, signals, logging, the mode
//! modes.rs     fixed rate, --max, --soak      compare.rs  --compare-cryptofeed   noise.rs  --noise
//! table.rs     --table (issue 14's table)     cell.rs     one contender, one rate and arrival
//! search.rs    the rate search both --max modes use
//! run.rs       one measured run               outcome.rs  what it measured, and the verdict
//! report.rs    the markdown tables            units.rs    rates and latencies as text
//! feeder.rs    simulator or replay            replay.rs   the pre-rendered-frame feeder
//! ingester.rs  the child under test           kafka.rs    the topic and the end-to-end consumer
//! scrape.rs    the ingester's endpoints       hgrm.rs     .hgrm distributions    chart.rs  latency.svg
//! procfs.rs    /proc readings                 child.rs    child processes, interruptible waits
//! sched.rs     per-thread CPU, wake-ups and preemptions over a window
//! cpuset.rs    the feeder's core, the children's CPU set
//! host.rs      the host (CPU model, cores, load before and after) every summary records
//! ```

mod args;
mod cell;
mod chart;
mod child;
mod compare;
mod cpuset;
mod feeder;
mod hgrm;
mod host;
mod ingester;
mod kafka;
mod modes;
mod noise;
mod outcome;
mod replay;
mod report;
mod run;
mod scrape;
mod search;
mod table;
mod units;

use clap::Parser;
// Shared with the kafka_floor binary (src/lib.rs); `crate::procfs` and `crate::sched` still name them.
use loadgen::{procfs, sched};

use crate::args::Args;
use crate::child::interrupted_flag;
use crate::compare::mode_compare;
use crate::cpuset::pin_feeder;
use crate::modes::{mode_fixed, mode_max, mode_soak};
use crate::noise::mode_noise;
use crate::table::mode_table;

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match pin_feeder(&args.feeder_core) {
        Ok(Some(c)) => eprintln!("loadgen: feeder on core {c}"),
        Ok(None) => {}
        Err(e) => {
            eprintln!("loadgen: {e:#}");
            return std::process::ExitCode::FAILURE;
        }
    }
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register(sig, interrupted_flag().clone());
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let r = if let Some(secs) = args.noise {
        mode_noise(secs, &args.host_note)
    } else if args.table {
        mode_table(&args)
    } else if args.compare_cryptofeed {
        mode_compare(&args)
    } else if let Some(min) = args.soak {
        mode_soak(&args, min)
    } else if args.max {
        mode_max(&args)
    } else {
        mode_fixed(&args)
    };
    match r {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
