//! `/metrics` at 1,000 symbols (issue 14, "Many symbols"): by default a lane of more than
//! `METRICS_SYMBOL_DETAIL_MAX` symbols exports the seed's counters and the stream ages per symbol
//! and the rest of the detail once, as `symbol="_all"`, order books included (depth streams),
//! within 10,000 series and 2 MB a scrape; the totals are those of the full detail. Counts and sizes only, nothing timed (the scrape's
//! time, RSS and CPU are measured by scripts/metrics_scale.py against the real process).

use std::collections::BTreeMap;
use std::sync::Arc;

use marketflow_ingestor::config::VARS;
use marketflow_ingestor::handoff::{depth, jobs};
use marketflow_ingestor::metrics::{Detail, Metrics, Stage, ALL_SYMBOLS, DEFAULT_SYMBOL_DETAIL_MAX};
use marketflow_ingestor::sink::books::{BookSettings, Books};

/// Counts this thread's allocations (tests run on parallel threads): const-initialized
/// thread-locals without a destructor allocate nothing themselves.
struct Counting;

thread_local! {
    static ALLOCS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

// SAFETY: every call is passed unchanged to `System`, which upholds GlobalAlloc's contract; the
// counter is a thread-local cell and allocates nothing.
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: std::alloc::Layout) -> *mut u8 {
        ALLOCS.with(|n| n.set(n.get() + 1));
        // SAFETY: our caller upholds `alloc`'s contract (non-zero size), which is System's.
        unsafe { std::alloc::System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: std::alloc::Layout) {
        // SAFETY: `p` came from `System` with layout `l`: every block this allocator hands out does.
        unsafe { std::alloc::System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: std::alloc::Layout, n: usize) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        // SAFETY: as for `dealloc`, `p` and `l` are System's; our caller upholds the rest of the contract.
        unsafe { std::alloc::System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const SYMBOLS: usize = 1_000;
/// The venue's names of the stream kinds of `scripts/metrics_scale.py --streams
/// trade,aggTrade,kline_1m,bookTicker,depth@100ms` (depth: an order book a symbol, with its own
/// series).
const KINDS: [&str; 5] = ["trade", "aggTrade", "kline_1m", "bookTicker", "depth@100ms"];
const MAX_SERIES: usize = 10_000;
const MAX_BYTES: usize = 2 << 20;

fn symbols(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("sym{i:04}usdt")).collect()
}

/// A lane of 1,000 symbols with their order books that has seen something of everything for
/// every symbol, scraped.
fn scrape(detail: Detail) -> (Arc<Metrics>, String) {
    let m = Metrics::build(&symbols(SYMBOLS), None, detail);
    // The producer thread's books register their series as the lane starts (sink/books/metrics.rs).
    let (requests, _) = jobs::channel(SYMBOLS);
    let (_, seeds) = depth::channel();
    let _books = Books::new("binance", &m, BookSettings { levels: 100, interval: None }, requests, seeds);
    // The event loop resolves one age gauge per configured stream (event_loop/streams.rs).
    for s in m.symbols.iter() {
        for k in KINDS {
            m.stream_age.with_label_values(&[s, k]).set(1.5);
        }
    }
    let mut rec = m.latency.recorder();
    for i in 0..SYMBOLS {
        m.messages_sent[i].inc_by(2);
        m.ws_reconnects[i].inc();
        m.gaps[i].inc();
        m.gap_ids_missing[i].inc_by(3);
        m.duplicates[i].inc();
        m.backfilled[i].inc();
        m.ordering.named[i][0].inc();
        for (k, stage) in Stage::ALL.into_iter().enumerate() {
            rec.record(stage, i, 1_000 * (i as u64 + 1) + k as u64);
        }
    }
    rec.publish();
    let text = m.render();
    (m, text)
}

/// Series per family (a histogram's buckets, `_sum` and `_count` each count, as in Prometheus).
fn series(text: &str) -> BTreeMap<String, usize> {
    let mut by = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let name = line.split(['{', ' ']).next().unwrap();
        let family = ["_bucket", "_sum", "_count"].iter().fold(name, |n, s| n.strip_suffix(s).unwrap_or(n));
        *by.entry(family.to_string()).or_insert(0) += 1;
    }
    by
}

fn value(text: &str, series: &str) -> f64 {
    let line = text.lines().find(|l| l.starts_with(series)).unwrap_or_else(|| panic!("{series} missing"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[test]
fn a_thousand_symbols_stay_within_ten_thousand_series_and_two_megabytes_by_default() {
    let detail = Detail::for_symbols(SYMBOLS, DEFAULT_SYMBOL_DETAIL_MAX);
    assert_eq!(detail, Detail::Aggregated);
    let (m, text) = scrape(detail);
    let by = series(&text);
    let total: usize = by.values().sum();
    assert!(total <= MAX_SERIES, "{total} series: {by:?}");
    assert!(text.len() <= MAX_BYTES, "{} bytes", text.len());

    // The seed's counters and the stream ages keep one series per symbol ...
    assert_eq!(by["marketflow_ingestor_messages_sent_total"], SYMBOLS);
    assert_eq!(by["marketflow_ingestor_ws_reconnects_total"], SYMBOLS);
    assert_eq!(by["marketflow_ingestor_stream_last_message_age_seconds"], SYMBOLS * KINDS.len());
    assert!(text.contains("marketflow_ingestor_messages_sent_total{symbol=\"sym0999usdt\"} 2"));
    // ... the detail is one `_all` series holding every symbol's total.
    assert_eq!(by["marketflow_ingestor_gaps_total"], 1);
    // So are the order books: one `_all` series a family (and side, and snapshot reason).
    assert_eq!(by["marketflow_ingestor_depth_book_synced"], 1);
    assert_eq!(by["marketflow_ingestor_depth_book_levels"], 2);
    assert_eq!(by["marketflow_ingestor_depth_snapshots_total"], 4);
    assert_eq!(by["marketflow_ingestor_depth_books_unsynced"], 1);
    assert!(text.contains("marketflow_ingestor_depth_book_synced{symbol=\"_all\"} 0"), "no book synced yet");
    assert_eq!(value(&text, "marketflow_ingestor_gaps_total{symbol=\"_all\"}"), SYMBOLS as f64);
    assert_eq!(value(&text, "marketflow_ingestor_gap_ids_missing_total{symbol=\"_all\"}"), 3.0 * SYMBOLS as f64);
    assert_eq!(
        value(&text, "marketflow_ingestor_ordering_gaps_total{reason=\"ordering_timeout\",symbol=\"_all\"}"),
        SYMBOLS as f64
    );
    // The seed's latency histogram keeps its name and labels: 25 series a stage.
    assert_eq!(by["marketflow_ingestor_latency_seconds"], Stage::ALL.len() * 25);
    assert_eq!(
        value(&text, "marketflow_ingestor_latency_seconds_count{stage=\"enqueue_to_ack\",symbol=\"_all\"}"),
        SYMBOLS as f64
    );
    assert!(!text.contains("latency_seconds_count{stage=\"enqueue_to_ack\",symbol=\"sym"));
    // One symbol's distribution is still there on demand (/latency/<stage>?symbol=).
    let one = m.latency.percentile_distribution_of(Stage::EnqueueToAck, 499);
    assert!(one.contains("Total count    =            1"), "{one}");
    // Held at 1 significant digit when aggregated (they were most of the RSS at 1,000 symbols).
    let max = m.latency.quantile_ns(Stage::EnqueueToAck, 499, 1.0) as f64;
    assert!((max - 500_002.0).abs() / 500_002.0 <= 1.0 / 16.0, "{max}: symbol 499's own 500 µs, within 1/16");
    assert!(m.latency.symbol_histogram_bytes() <= 5 << 10, "{} bytes", m.latency.symbol_histogram_bytes());
}

#[test]
fn the_full_detail_at_a_thousand_symbols_is_what_the_bound_is_about_and_holds_the_same_totals() {
    let (_, agg) = scrape(Detail::Aggregated);
    let (_, full) = scrape(Detail::PerSymbol);
    let total: usize = series(&full).values().sum();
    assert!(total > 10 * MAX_SERIES, "{total} series with every symbol's detail");
    assert!(full.len() > 4 * MAX_BYTES, "{} bytes", full.len());

    // What a dashboard sums over symbols is the same in both modes.
    let sum = |text: &str, family: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with(&format!("{family}{{")))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum()
    };
    for family in [
        "marketflow_ingestor_gaps_total",
        "marketflow_ingestor_duplicates_dropped_total",
        "marketflow_ingestor_backfilled_total",
        "marketflow_ingestor_messages_sent_total",
        "marketflow_ingestor_latency_seconds_sum",
        "marketflow_ingestor_latency_seconds_count",
    ] {
        let (a, f) = (sum(&agg, family), sum(&full, family));
        // Sums of seconds as floats: one sum of nanoseconds against a thousand.
        assert!((a - f).abs() <= 1e-9 * f.abs().max(1.0), "{family}: {a} aggregated, {f} per symbol");
    }
    let bucket = "marketflow_ingestor_latency_seconds_bucket";
    for le in ["0.0001", "0.001", "+Inf"] {
        let in_le = |text: &str| -> f64 {
            text.lines()
                .filter(|l| l.starts_with(bucket) && l.contains(&format!("le=\"{le}\"")))
                .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
                .sum()
        };
        assert_eq!(in_le(&agg), in_le(&full), "bucket le={le}");
    }
}

#[test]
fn up_to_the_default_bound_every_symbol_keeps_its_detail() {
    let var = VARS.iter().find(|v| v.env == "METRICS_SYMBOL_DETAIL_MAX").unwrap();
    assert_eq!(var.default_text().parse::<usize>(), Ok(DEFAULT_SYMBOL_DETAIL_MAX), "the variable's default");
    assert_eq!(Detail::for_symbols(DEFAULT_SYMBOL_DETAIL_MAX, DEFAULT_SYMBOL_DETAIL_MAX), Detail::PerSymbol);
    assert_eq!(Detail::for_symbols(DEFAULT_SYMBOL_DETAIL_MAX + 1, DEFAULT_SYMBOL_DETAIL_MAX), Detail::Aggregated);
    let m = Metrics::new(&symbols(3));
    m.gaps[1].inc();
    let text = m.render();
    assert!(text.contains("marketflow_ingestor_gaps_total{symbol=\"sym0001usdt\"} 1"), "{text}");
    assert!(!text.contains("_all"), "{text}");
}

/// config/parse.rs refuses the aggregate's label as a symbol by its text (config sits below
/// metrics): the two must stay the same word.
#[test]
fn the_aggregate_label_is_the_word_config_refuses_as_a_symbol() {
    assert_eq!(ALL_SYMBOLS, "_all");
}

/// The hot path's recording, aggregated (a coarse histogram a symbol and an exact one a stage)
/// as per symbol: no allocation per message (tests/no_alloc.rs runs the pipeline per symbol).
#[test]
fn recording_a_latency_allocates_nothing_in_either_mode() {
    for detail in [Detail::Aggregated, Detail::PerSymbol] {
        let m = Metrics::build(&symbols(SYMBOLS), None, detail);
        let mut rec = m.latency.recorder_for(&[Stage::ExchangeToReceive, Stage::ReceiveToEnqueue]);
        let before = ALLOCS.with(|n| n.get());
        for i in 0..100_000u64 {
            let symbol = (i as usize * 7) % SYMBOLS;
            rec.record(Stage::ExchangeToReceive, symbol, 1 + i * 13);
            rec.record(Stage::ReceiveToEnqueue, symbol, 1 + (i % 1_000) * 1_000_003);
        }
        assert_eq!(ALLOCS.with(|n| n.get()) - before, 0, "{detail:?}");
        rec.publish();
        assert_eq!(m.latency.merged(Stage::ReceiveToEnqueue).len(), 100_000, "{detail:?}");
    }
}
