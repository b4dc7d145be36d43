//! The backfill thread on a USD-M lane against the simulator's futures REST (`/fapi/v1/...`,
//! started in-process): aggregate trades fetched from an id, page by page, exactly once, as
//! `binance-usdm` records; a depth snapshot for the book equal to the market's own book at its
//! id; the weight the futures tables charge, accounted from `X-MBX-USED-WEIGHT-1M`; a 429 and a
//! 418 ban waited out as their `Retry-After` says (the simulator counts any request that comes
//! early); a closed candle refilled from `/fapi/v1/klines`; and a kline window read with the USD-M
//! calls and parser; ids dropped one at a time fetched together, not a call each.

use std::sync::Arc;
use std::time::{Duration, Instant};

use binance_sim::{SimConfig, SimHandle, StreamKind};
use marketflow_ingestor::backfill::queue::{self, Job, JobSender};
use marketflow_ingestor::backfill::{Backfiller, OwnedRecord};
use marketflow_ingestor::binance::usdm::{rest as fapi, venue::VENUE};
use marketflow_ingestor::config::RawConfig;
use marketflow_ingestor::handoff::depth::DepthSeed;
use marketflow_ingestor::metrics::Metrics;
use marketflow_ingestor::sequence::Dense;
use marketflow_ingestor::shutdown::Shutdown;

/// A USD-M market of one symbol trading `rate` aggregate trades a second.
fn market(rate: f64, weight_limit: u32, window: Duration) -> SimHandle {
    let usdm = SimConfig {
        symbols: vec!["btcusdt".into()],
        trade_rate: rate,
        rest_weight_limit: weight_limit,
        rest_weight_window: window,
        ..SimConfig::usdm_market()
    };
    binance_sim::spawn(SimConfig { usdm: Some(Box::new(usdm)), ..SimConfig::default() }, "127.0.0.1:0").unwrap()
}

fn wait_aggs(sim: &SimHandle, n: u64) {
    let m = &sim.usdm.as_ref().unwrap().market;
    let t = Instant::now();
    while m.generated_for(StreamKind::AggTrade, 0) < n {
        assert!(t.elapsed() < Duration::from_secs(60), "the market never made {n} aggregate trades");
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct Lane {
    jobs: JobSender,
    out: crossbeam_channel::Receiver<OwnedRecord>,
    seeds: crossbeam_channel::Receiver<DepthSeed>,
    metrics: Arc<Metrics>,
    shutdown: Shutdown,
    thread: std::thread::JoinHandle<()>,
}

/// A backfill thread with USD-M's REST API against the simulator's `fapi` listener.
fn lane(sim: &SimHandle, extra: &[(&str, &str)]) -> Lane {
    let rest = sim.usdm.as_ref().unwrap().rest_url();
    let mut pairs = vec![("SYMBOLS", "btcusdt"), ("BINANCE_REST_URL", &rest)];
    pairs.extend_from_slice(extra);
    let cfg = RawConfig::from_pairs(&pairs).validate_with_memory_limit(None).unwrap();
    let metrics = Metrics::new(&["btcusdt".to_string()]);
    metrics.health.sink_ready.store(true, std::sync::atomic::Ordering::Relaxed);
    let (jobs, job_rx) = queue::channel(1);
    let (out_tx, out) = crossbeam_channel::bounded(10_000);
    let (seed_tx, seeds) = marketflow_ingestor::handoff::depth::channel();
    let shutdown = Shutdown::new();
    let b = Backfiller::new(
        &cfg,
        &VENUE,
        &fapi::API,
        metrics.clone(),
        metrics.health.clone(),
        out_tx,
        job_rx,
        shutdown.clone(),
    )
    .with_depth_seeds(seed_tx, 1000);
    let thread = std::thread::spawn(move || b.run());
    Lane { jobs, out, seeds, metrics, shutdown, thread }
}

impl Lane {
    fn stop(self) {
        self.shutdown.trigger();
        self.thread.join().unwrap();
    }

    /// `n` records, each as JSON.
    fn records(&self, n: usize) -> Vec<serde_json::Value> {
        (0..n)
            .map(|i| {
                let r = self.out.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|_| panic!("record {i} of {n}"));
                serde_json::from_slice(&r.payload).unwrap()
            })
            .collect()
    }

    fn metric(&self, series: &str) -> f64 {
        let text = self.metrics.render();
        let line = text.lines().find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '));
        line.map_or(0.0, |l| l[series.len()..].trim().parse().unwrap())
    }
}

/// Asks for aggregate trades `k0..k1` (counted from the symbol's first) and checks they arrive
/// as the market made them, once each, in order.
fn backfill_aggs(sim: &SimHandle, lane: &Lane, k0: u64, k1: u64) {
    let m = &sim.usdm.as_ref().unwrap().market;
    let id = |k: u64| m.expected_agg_trade(0, k).agg_id;
    let job = Job::Range { symbol_idx: 0, kind: Dense::AggTrade, from: id(k0), to: id(k1) };
    lane.jobs.try_send(job).unwrap();
    let recs = lane.records((k1 - k0) as usize);
    for (k, r) in (k0..k1).zip(&recs) {
        let want = m.expected_agg_trade(0, k);
        assert_eq!(r["type"], "agg_trade", "{r}");
        assert_eq!(r["exchange"], "binance-usdm");
        assert_eq!(r["symbol"], "BTCUSDT");
        assert_eq!(r["agg_id"], want.agg_id, "{r}");
        assert_eq!(r["price"], want.price.as_str());
        assert_eq!(r["qty"], want.qty.as_str());
        assert_eq!(
            (r["first_trade_id"].as_i64(), r["last_trade_id"].as_i64()),
            (Some(want.first_trade_id), Some(want.last_trade_id))
        );
        assert_eq!(r["trade_time_ms"], want.trade_time_ms);
        assert_eq!(r["side"], if want.buyer_is_maker { "sell" } else { "buy" });
        assert_eq!(r["backfilled"], true);
    }
    assert!(lane.out.recv_timeout(Duration::from_millis(300)).is_err(), "nothing more than asked");
}

#[test]
fn agg_trades_from_an_id_and_a_depth_snapshot_with_futures_weights() {
    let sim = market(800.0, 2400, Duration::from_secs(60));
    wait_aggs(&sim, 1300);
    let lane = lane(&sim, &[]);
    // 1200 ids: two pages (1000 + 200), each weight 20.
    backfill_aggs(&sim, &lane, 50, 1250);
    let agg_2xx = r#"marketflow_ingestor_rest_requests_total{endpoint="aggTrades",status="2xx"}"#;
    assert_eq!(lane.metric(agg_2xx), 2.0);
    assert_eq!(lane.metric("marketflow_ingestor_rest_used_weight"), 40.0, "X-MBX-USED-WEIGHT-1M: 2 x 20");

    // A snapshot for the book: 1000 levels asked (weight 20), equal to the market's book at its id.
    lane.jobs.try_send(Job::DepthResync { symbol_idx: 0 }).unwrap();
    let seed = lane.seeds.recv_timeout(Duration::from_secs(30)).expect("a depth snapshot");
    let book = sim.usdm.as_ref().unwrap().market.book_at(0, seed.last_update_id);
    // A futures `lastUpdateId` may fall inside the last event's `[U, u]`: the book holds that event.
    assert!(book.last_update_id >= seed.last_update_id && book.last_update_id - seed.last_update_id < 10);
    let pairs =
        |levels: &[(String, String)]| levels.iter().take(1000).map(|(p, q)| [p.clone(), q.clone()]).collect::<Vec<_>>();
    assert!(!seed.bids.is_empty() && !seed.asks.is_empty());
    assert_eq!(seed.bids, pairs(&book.bids));
    assert_eq!(seed.asks, pairs(&book.asks));
    assert_eq!(lane.metric("marketflow_ingestor_rest_used_weight"), 60.0, "+ depth limit=1000: 20");
    assert_eq!(lane.metric(r#"marketflow_ingestor_rest_requests_total{endpoint="depth",status="2xx"}"#), 1.0);
    // No fallback host on USD-M, though one is configured (spot's default).
    let fallback: f64 = ["aggTrades", "klines", "depth"]
        .iter()
        .map(|e| {
            lane.metric(&format!(r#"marketflow_ingestor_rest_fallback_requests_total{{endpoint="{e}",status="2xx"}}"#))
        })
        .sum();
    assert_eq!(fallback, 0.0);
    lane.stop();
}

#[test]
fn a_429_and_a_418_ban_are_waited_out_as_retry_after_says() {
    // 30 weight a 2 s window: the second aggTrades page (20 + 20) is refused with 429.
    let sim = market(800.0, 30, Duration::from_secs(2));
    wait_aggs(&sim, 1300);
    let usdm = sim.usdm.as_ref().unwrap();
    let lane = lane(&sim, &[]);
    backfill_aggs(&sim, &lane, 100, 1300);
    let stats = &usdm.rest_stats;
    let count = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::SeqCst);
    assert!(count(&stats.throttled) >= 1, "the limit was reached");
    assert_eq!(
        lane.metric(r#"marketflow_ingestor_rest_requests_total{endpoint="aggTrades",status="429"}"#),
        count(&stats.throttled) as f64
    );
    assert_eq!(count(&stats.early), 0, "no request before Retry-After had passed");
    assert_eq!(count(&stats.banned), 0);

    // Banned for 2 s: one 418, then the wait it names, then the page.
    usdm.ban_rest(Duration::from_secs(2));
    backfill_aggs(&sim, &lane, 1300, 1310);
    assert_eq!(count(&stats.banned), 1, "one 418, then a wait, not a retry loop");
    assert_eq!(count(&stats.early), 0);
    assert_eq!(lane.metric(r#"marketflow_ingestor_rest_requests_total{endpoint="aggTrades",status="418"}"#), 1.0);
    lane.stop();
}

#[test]
fn a_kline_window_is_read_with_the_usdm_calls() {
    let sim = market(50.0, 2400, Duration::from_secs(60));
    let usdm = sim.usdm.as_ref().unwrap();
    let m = &usdm.market;
    let iv = binance_sim::interval_index("1m").unwrap();
    let t = Instant::now();
    while m.generated(StreamKind::Kline(iv)) == 0 {
        assert!(t.elapsed() < Duration::from_secs(30), "no kline yet");
        std::thread::sleep(Duration::from_millis(50));
    }
    let first = m.first_candle(iv);
    let call = fapi::klines("BTCUSDT", "1m", first, first + 59_999, 1);
    assert_eq!(call.weight, 1);
    let body = ureq::get(&format!("{}{}", usdm.rest_url(), call.path)).call().unwrap();
    assert_eq!(body.header("X-MBX-USED-WEIGHT-1M"), Some("1"), "the sim charges what the table says");
    let rows = (fapi::API.parse_klines)(&body.into_string().unwrap()).unwrap();
    assert_eq!(rows.len(), 1);
    let want = m.candle(0, iv, first);
    assert_eq!((rows[0].open_time, rows[0].close_time), (first, want.close_time_ms));
    assert_eq!(
        (rows[0].open.as_str(), rows[0].high.as_str(), rows[0].low.as_str()),
        (want.open.as_str(), want.high.as_str(), want.low.as_str())
    );
    assert_eq!((rows[0].volume.as_str(), rows[0].trades), (want.volume.as_str(), want.trades));
    // A window past the page: the page's limit (1000 candles, weight 5) bounds what comes back.
    let wide = fapi::klines("BTCUSDT", "1m", first - 3_600_000, first + 59_999, 1000);
    assert_eq!(wide.weight, 5);
    let body = ureq::get(&format!("{}{}", usdm.rest_url(), wide.path)).call().unwrap();
    let rows = (fapi::API.parse_klines)(&body.into_string().unwrap()).unwrap();
    assert_eq!(
        rows.iter().map(|r| r.open_time).collect::<Vec<_>>(),
        [first],
        "nothing before the market's first candle"
    );
}

#[test]
fn records_say_milliseconds_whatever_time_unit_asks_for_fapi_has_no_other() {
    let sim = market(800.0, 2400, Duration::from_secs(60));
    wait_aggs(&sim, 20);
    let lane = lane(&sim, &[("TIME_UNIT", "us")]);
    backfill_aggs(&sim, &lane, 0, 10);
    lane.stop();
}

#[test]
fn a_closed_candle_is_refilled_from_fapi_klines() {
    let sim = market(50.0, 2400, Duration::from_secs(60));
    let m = &sim.usdm.as_ref().unwrap().market;
    let iv = binance_sim::interval_index("1m").unwrap();
    let t = Instant::now();
    while m.generated(StreamKind::Kline(iv)) == 0 {
        assert!(t.elapsed() < Duration::from_secs(30), "no kline yet");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The market's first candle closes within a minute; only closed candles are refilled.
    let first = m.first_candle(iv);
    while marketflow_ingestor::clock::now_ms() <= first + 60_000 {
        std::thread::sleep(Duration::from_millis(200));
    }
    let lane = lane(&sim, &[]);
    let interval = marketflow_ingestor::interval::index("1m").unwrap() as u8;
    let unit = marketflow_ingestor::time_unit::TimeUnit::Millis;
    lane.jobs.try_send(Job::Klines { symbol_idx: 0, interval, unit, from: first, to: first + 60_000 }).unwrap();
    let r = &lane.records(1)[0];
    let want = m.candle(0, iv, first);
    assert_eq!((r["type"].as_str(), r["exchange"].as_str()), (Some("kline"), Some("binance-usdm")), "{r}");
    assert_eq!((r["open_time_ms"].as_i64(), r["close_time_ms"].as_i64()), (Some(first), Some(want.close_time_ms)));
    assert_eq!((r["open"].as_str(), r["close"].as_str()), (Some(want.open.as_str()), Some(want.close.as_str())));
    assert_eq!((r["volume"].as_str(), r["trades"].as_i64()), (Some(want.volume.as_str()), Some(want.trades)));
    assert_eq!((r["closed"].as_bool(), r["backfilled"].as_bool()), (Some(true), Some(true)));
    assert!(lane.out.recv_timeout(Duration::from_millis(300)).is_err(), "one candle asked, one published");
    // One klines call of limit 1: weight 1.
    assert_eq!(lane.metric("marketflow_ingestor_rest_used_weight"), 1.0);
    lane.stop();
}

#[test]
fn a_stalled_sink_holds_the_fetches_until_it_delivers_again() {
    let sim = market(800.0, 2400, Duration::from_secs(60));
    wait_aggs(&sim, 300);
    let lane = lane(&sim, &[]);
    // Ready (connected) but not acknowledging: what is fetched now could only queue, and each fetch
    // spends REST weight that the ids dropped meanwhile will need.
    let stall = &lane.metrics.health.sink_stall_ms;
    stall.store(20_000, std::sync::atomic::Ordering::Relaxed);
    let m = &sim.usdm.as_ref().unwrap().market;
    let id = |k: u64| m.expected_agg_trade(0, k).agg_id;
    lane.jobs.try_send(Job::Range { symbol_idx: 0, kind: Dense::AggTrade, from: id(10), to: id(110) }).unwrap();
    // Nothing may come however long this waits; without the hold, the fetch takes milliseconds.
    assert!(lane.out.recv_timeout(Duration::from_secs(2)).is_err(), "fetched while the sink was stalled");
    let agg_2xx = r#"marketflow_ingestor_rest_requests_total{endpoint="aggTrades",status="2xx"}"#;
    assert_eq!(lane.metric(agg_2xx), 0.0, "no aggTrades request while the sink was stalled");
    stall.store(0, std::sync::atomic::Ordering::Relaxed);
    let recs = lane.records(100);
    assert_eq!(recs[0]["agg_id"], id(10));
    assert_eq!(recs[99]["agg_id"], id(109));
    lane.stop();
}

#[test]
fn ids_dropped_one_at_a_time_are_fetched_together() {
    let sim = market(800.0, 2400, Duration::from_secs(60));
    wait_aggs(&sim, 300);
    let lane = lane(&sim, &[]);
    let m = &sim.usdm.as_ref().unwrap().market;
    let id = |k: u64| m.expected_agg_trade(0, k).agg_id;
    // A full ring drops ids one at a time, about one every 20 ms per symbol at 50 a second.
    for k in 10..40 {
        lane.jobs.try_send(Job::Range { symbol_idx: 0, kind: Dense::AggTrade, from: id(k), to: id(k + 1) }).unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    let recs = lane.records(30);
    let got: Vec<i64> = recs.iter().map(|r| r["agg_id"].as_i64().unwrap()).collect();
    assert_eq!(got, (10..40).map(id).collect::<Vec<_>>(), "each once, in order");
    // Fetched as they came, 30 calls (the weight of 30 pages); held while they keep coming, one
    // or two (a send delayed past the quiet wait by a busy machine may start another).
    let calls = lane.metric(r#"marketflow_ingestor_rest_requests_total{endpoint="aggTrades",status="2xx"}"#);
    assert!(calls <= 6.0, "{calls} aggTrades calls for 30 ids dropped one at a time");
    lane.stop();
}
