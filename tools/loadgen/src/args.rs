//! The command line: every flag of every mode.

use std::path::PathBuf;

use clap::Parser;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "loadgen",
    about = "Load harness: the real ingester binary fed over loopback by the simulator (or a replay feeder)"
)]
pub struct Args {
    /// Messages per second over all symbols and streams
    #[arg(long, default_value_t = 100_000.0)]
    pub rate: f64,
    /// Core the feeder's threads run on: a number, `none`, or `auto` (the lowest allowed core when
    /// there are two or more). The ingester pins its event loop to the highest core by default, so
    /// on a two-core machine the feeder shares a core with the producer thread and the event loop
    /// has its own, as in production, where the exchange is not on the same machine.
    #[arg(long, default_value = "auto")]
    pub feeder_core: String,
    /// Only measure the machine's noise floor: spin this many seconds on the core the ingester's
    /// event loop would take, and report the gaps (interrupts, hypervisor steal) it saw
    #[arg(long, value_name = "SECS")]
    pub noise: Option<f64>,
    /// Length of the measured window, seconds (after the warm-up)
    #[arg(long, default_value_t = 20.0)]
    pub secs: f64,
    /// Warm-up before the measured window, seconds
    #[arg(long, default_value_t = 3.0)]
    pub warmup: f64,
    /// Ingester sink: null (counting) or kafka (the local broker)
    #[arg(long, default_value = "null", value_parser = ["null", "kafka"])]
    pub sink: String,
    /// Serve wss:// (the ingester trusts the generated certificate through TLS_CA_FILE)
    #[arg(long)]
    pub tls: bool,
    /// Lower-case symbols, comma-separated
    #[arg(long, default_value = "btcusdt,ethusdt,solusdt")]
    pub symbols: String,
    /// Stream kinds, comma-separated (trade, aggTrade, ...); the rate is split evenly between them
    #[arg(long, default_value = "trade")]
    pub streams: String,
    /// How the simulator's trades arrive: even, poisson (seeded), even:K or poisson:K (K messages
    /// per write), burst:N; unset: the simulator's default (every symbol on one beat, sent on a tick).
    /// With `--feeder replay`: even:K or burst:K writes K messages a write (unset: whatever is due);
    /// with `--trades-per-event N`, K events (K SBE frames, K x N JSON messages)
    #[arg(long)]
    pub arrival: Option<binance_sim::Arrival>,
    /// With `--feeder replay` and trade streams: trades in each event, as Binance's matching
    /// engine groups the fills of one taker order. SBE sends an event as one `TradesStreamEvent`
    /// of this many trades, JSON as this many messages (its trade stream has one trade a
    /// message); `--rate` and every count stay in trades, so both transports get the same trades.
    /// The recorded BTCUSDT day averages 3.0 (`scripts/trade_runs.py`)
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub trades_per_event: u32,
    /// Who sends: the Binance simulator, or the replay feeder (trade and aggTrade only)
    #[arg(long, default_value = "sim", value_parser = ["sim", "replay"])]
    pub feeder: String,
    /// How market data travels, comma-separated: json, sbe (Binance's SBE streams: the ingester
    /// runs TRANSPORT=sbe, trade streams only). Each is run in turn with the same settings, and
    /// with --max the highest loss-free rates are compared (SBE over JSON)
    #[arg(long, default_value = "json")]
    pub transport: String,
    /// Find the highest rate sustained without loss (doubling from --max-start, then bisecting)
    #[arg(long)]
    pub max: bool,
    /// First rate of the --max search
    #[arg(long, default_value_t = 100_000.0)]
    pub max_start: f64,
    /// Highest rate the --max search tries
    #[arg(long, default_value_t = 8_000_000.0)]
    pub max_ceiling: f64,
    /// Bisection steps after the first failure
    #[arg(long, default_value_t = 3)]
    pub max_refine: u32,
    /// Measured seconds of each --max step
    #[arg(long, default_value_t = 6.0)]
    pub step_secs: f64,
    /// Soak: --rate (default 100,000/s) for this many minutes, RSS sampled every 10 s
    #[arg(long, value_name = "MINUTES")]
    pub soak: Option<f64>,
    /// RSS ceiling the soak checks against, MiB
    #[arg(long, default_value_t = 64.0)]
    pub soak_limit_mib: f64,
    /// Output folder; each run writes `OUT/<run>/`
    #[arg(long, default_value = "bench-results")]
    pub out: PathBuf,
    /// Run name (default: derived from the settings)
    #[arg(long)]
    pub name: Option<String>,
    /// The ingester binary (default: marketflow-ingestor next to this binary)
    #[arg(long)]
    pub ingester: Option<PathBuf>,
    /// Kafka bootstrap server for --sink kafka and --compare-cryptofeed
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub kafka_broker: String,
    /// Kafka topic (default: a fresh one per run, created with LogAppendTime timestamps)
    #[arg(long)]
    pub topic: Option<String>,
    /// Extra environment for the ingester, K=V (repeatable), e.g. --env RING_BYTES=8388608
    #[arg(long = "env", value_name = "K=V")]
    pub extra_env: Vec<String>,
    /// Longest wait after the window for everything sent to be counted, seconds
    #[arg(long, default_value_t = 5.0)]
    pub drain_secs: f64,
    /// Run the same feed through the ingester and through cryptofeed (Kafka sink, aggTrade)
    #[arg(long)]
    pub compare_cryptofeed: bool,
    /// Which contenders the comparison runs: ours, cryptofeed (comma-separated)
    #[arg(long, default_value = "ours,cryptofeed")]
    pub contenders: String,
    /// Python interpreter with cryptofeed installed
    #[arg(long, default_value = "python3")]
    pub cf_python: String,
    /// The cryptofeed helper script
    #[arg(long, default_value = "scripts/cryptofeed_feed.py")]
    pub cf_script: PathBuf,
    /// Passed to the helper: cryptofeed's backend batch_interval (seconds); default = cryptofeed's own
    #[arg(long)]
    pub cf_batch_interval: Option<f64>,
    /// The issue-14 table: every rate of --table-rates x every arrival of --table-arrivals, each
    /// through every contender of --contenders (ours = Kafka sink, ours-null = SINK=null,
    /// cryptofeed), --secs measured each; CPU per delivered message per thread group and source
    /// -> broker-append percentiles side by side (table.md, summary.json)
    #[arg(long)]
    pub table: bool,
    /// Rates of the --table, msg/s, comma-separated
    #[arg(long, default_value = "1000,10000,16000,100000")]
    pub table_rates: String,
    /// Arrivals of the --table, comma-separated (see --arrival)
    #[arg(long, default_value = "even,poisson:3")]
    pub table_arrivals: String,
    /// With --table: `perf record -e cpu-clock -g` on the ingester (Kafka sink, the first
    /// arrival) at this rate for the whole window, summarised per thread and function in
    /// `profile-<rate>.txt`
    #[arg(long)]
    pub profile_rate: Option<f64>,
    /// What to record about the host in every summary besides what loadgen reads itself (CPU
    /// model, cores, load average), e.g. "cores shared with other builds"
    #[arg(long, default_value = "")]
    pub host_note: String,
}

/// The items of a comma-separated flag value.
pub fn split(s: &str) -> Vec<String> {
    s.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect()
}
