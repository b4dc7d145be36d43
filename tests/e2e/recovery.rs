//! Never lose a trade: each fault, injected by the simulator (or by killing the ingester), must
//! leave the topic with zero missing and zero duplicated trade ids per symbol.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::common::*;
use binance_sim::{SimConfig, SimHandle};

const RATE: f64 = 3_000.0;
const SECS: u64 = 20;

fn market(extra: impl FnOnce(&mut SimConfig)) -> SimHandle {
    let mut cfg = SimConfig { trade_rate: RATE, duration: Some(Duration::from_secs(SECS)), ..SimConfig::default() };
    extra(&mut cfg);
    sim(cfg)
}

/// Waits for the market to finish, then reads the topic back and stops the ingester cleanly.
fn finish(sim: &SimHandle, mut ing: Ingester, topic: &str, min_records: u64) -> Vec<Consumed> {
    wait_market_done(sim, Duration::from_secs(SECS + 30), || ing.dump_logs());
    let msgs = consume(topic, min_records as usize, Duration::from_secs(60), Duration::from_secs(3));
    let (st, _) = ing.terminate(Duration::from_secs(20));
    assert!(st.success(), "{}", ing.dump_logs());
    msgs
}

#[test]
fn forced_disconnects_every_few_seconds_lose_nothing() {
    // A peer that drops us every 3 s is flapping: each reconnect waits longer (up to 2-4 s after
    // the fifth drop). The market trades on past that, or the trades after the last drop would
    // be the unseen tail of a market that never trades again (README, "One limit").
    let sim = market(|c| c.duration = Some(Duration::from_secs(SECS + 10)));
    let topic = unique_topic("drops");
    let ing = start(&sim, &topic, &[]);
    for _ in 0..5 {
        std::thread::sleep(Duration::from_secs(3));
        sim.drop_connections();
    }
    let per = sim.market.total_trades_per_symbol().unwrap();
    let reconnects = ing.metric("marketflow_ingestor_ws_reconnects_total{symbol=\"btcusdt\"}");
    let msgs = finish(&sim, ing, &topic, 3 * per);
    let c = verify_complete(&msgs, &sim.market, per, |_| false);
    assert!(reconnects >= 4.0, "{reconnects} reconnects");
    assert!(c.backfilled > 0, "the disconnects opened gaps that REST filled: {c:?}");
    assert_eq!(c.live + c.backfilled, 3 * per);
}

#[test]
fn server_shutdown_rotates_without_a_gap() {
    let sim = market(|_| {});
    let topic = unique_topic("shutdown");
    // Backfill off: make-before-break alone must keep the stream whole.
    let ing = start(&sim, &topic, &[("BACKFILL", "off")]);
    std::thread::sleep(Duration::from_secs(4));
    sim.announce_shutdown();
    std::thread::sleep(Duration::from_secs(6));
    assert!(ing.metric("marketflow_ingestor_ws_rotations_total") >= 1.0);
    assert!(ing.metric("marketflow_ingestor_duplicates_dropped_total{symbol=\"btcusdt\"}") > 0.0, "overlap seen");
    let per = sim.market.total_trades_per_symbol().unwrap();
    let msgs = finish(&sim, ing, &topic, 3 * per);
    verify_trades(&msgs, &sim.market, Some(per));
}

#[test]
fn short_connection_lifetime_forces_rotations_without_a_gap() {
    // The server cuts every connection after 5 s; the ingester rotates at 2 s, before the cut.
    let sim = market(|c| c.connection_lifetime = Some(Duration::from_secs(5)));
    let topic = unique_topic("lifetime");
    let ing = start(&sim, &topic, &[("BACKFILL", "off"), ("WS_MAX_AGE_SECS", "2")]);
    std::thread::sleep(Duration::from_secs(SECS / 2));
    let rotations = ing.metric("marketflow_ingestor_ws_rotations_total");
    assert!(rotations >= 3.0, "{rotations} rotations");
    let per = sim.market.total_trades_per_symbol().unwrap();
    let msgs = finish(&sim, ing, &topic, 3 * per);
    verify_trades(&msgs, &sim.market, Some(per));
}

#[test]
fn ids_skipped_by_the_stream_are_backfilled_from_rest() {
    // 3 of every 499 trades never reach the stream (the market ends on live trades: a gap at the
    // very end of a market that never trades again cannot be seen).
    let sim = market(|c| c.stream_skip = Some((499, 3)));
    let topic = unique_topic("skips");
    let ing = start(&sim, &topic, &[]);
    let per = sim.market.total_trades_per_symbol().unwrap();
    let msgs = finish(&sim, ing, &topic, 3 * per);
    let c = verify_complete(&msgs, &sim.market, per, |_| false);
    let skipped = (0..per).filter(|k| sim.market.stream_skips(*k)).count() as u64;
    assert_eq!(c.backfilled, 3 * skipped, "{c:?}");
    assert!(sim.rest_stats.requests.load(std::sync::atomic::Ordering::Relaxed) > 0);
}

#[test]
fn ids_missing_from_rest_too_become_gap_markers() {
    // 3 of every 997 skipped in the stream; REST lacks the last of those 3. (Sparse enough that
    // the backfill stays inside the REST weight budget, which it would otherwise wait out.)
    let sim = market(|c| {
        c.stream_skip = Some((997, 3));
        c.rest_missing = Some((997, 1));
    });
    let topic = unique_topic("unrecoverable");
    let ing = start(&sim, &topic, &[]);
    let per = sim.market.total_trades_per_symbol().unwrap();
    let lost = (0..per).filter(|k| sim.market.rest_lacks(*k)).count() as u64;
    let msgs = finish(&sim, ing, &topic, 3 * (per - lost) + 3 * lost);
    let c = verify_complete(&msgs, &sim.market, per, |k| sim.market.rest_lacks(k));
    assert_eq!(c.in_markers, 3 * lost, "{c:?}");
}

#[test]
fn sigkill_and_restart_continue_where_the_topic_ends() {
    let sim = market(|_| {});
    let topic = unique_topic("sigkill");
    let mut first = start(&sim, &topic, &[]);
    std::thread::sleep(Duration::from_secs(5));
    first.child.kill().unwrap(); // SIGKILL: no drain, no flush
    first.child.wait().unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let second = start(&sim, &topic, &[]);
    assert!(
        second.logs.lock().unwrap().iter().any(|l| l.contains("recovery: continuing after")),
        "the restart found where the first run stopped"
    );
    let per = sim.market.total_trades_per_symbol().unwrap();
    let msgs = finish(&sim, second, &topic, 3 * per);
    let c = verify_complete(&msgs, &sim.market, per, |_| false);
    assert!(c.backfilled > 0, "the hole while down was filled from REST: {c:?}");
}

#[test]
fn a_broken_depth_sequence_publishes_a_resync_marker_and_a_fresh_snapshot() {
    let sim = market(|c| c.aux_rate = 50.0);
    let topic = unique_topic("depth");
    let mut ing = start(&sim, &topic, &[("STREAMS", "depth@100ms"), ("SYMBOLS", "btcusdt")]);
    std::thread::sleep(Duration::from_secs(3));
    sim.drop_connections();
    // The reconnect resumes at the live update id: the U/u chain breaks.
    let t = Instant::now();
    while ing.metric("marketflow_ingestor_gaps_total{symbol=\"btcusdt\"}") < 1.0 {
        assert!(t.elapsed() < Duration::from_secs(20), "no depth gap seen:\n{}", ing.dump_logs());
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(2));
    let (st, _) = ing.terminate(Duration::from_secs(20));
    assert!(st.success());
    let msgs = consume(&topic, 100, Duration::from_secs(30), Duration::from_secs(2));
    let mut sorted: Vec<&Consumed> = msgs.iter().collect();
    sorted.sort_by_key(|m| (m.partition, m.offset));
    let types: Vec<&str> = sorted.iter().map(|m| m.payload["type"].as_str().unwrap()).collect();
    // The book's first snapshot comes before its first diff; the break's marker is followed by a
    // new one (tests/e2e/book.rs checks their contents against the simulator's book).
    assert_eq!((types[0], &sorted[0].payload["reason"]), ("depth_snapshot", &serde_json::json!("start")));
    let resync = types.iter().position(|t| *t == "depth_resync").expect("a depth_resync marker");
    let snap =
        resync + types[resync..].iter().position(|t| *t == "depth_snapshot").expect("a snapshot after the marker");
    assert_eq!(sorted[snap].payload["reason"], "resync");
    let s = &sorted[snap].payload;
    assert!(s["last_update_id"].as_i64().unwrap() > 0);
    assert!(!s["bids"].as_array().unwrap().is_empty() && !s["asks"].as_array().unwrap().is_empty());
    // Updates keep flowing around the resync.
    assert!(types.iter().filter(|t| **t == "depth_update").count() > 50);
}

#[test]
fn gaps_beyond_backfill_max_ids_are_fetched_in_part_and_reported() {
    // 20 of every 499 trades skipped; each gap fetches its first 5 ids and reports the other 15.
    let sim = market(|c| c.stream_skip = Some((499, 20)));
    let topic = unique_topic("capped");
    let ing = start(&sim, &topic, &[("BACKFILL_MAX_IDS", "5")]);
    let per = sim.market.total_trades_per_symbol().unwrap();
    let skipped = (0..per).filter(|k| sim.market.stream_skips(*k)).count() as u64;
    // Every id but the cut-off ones, plus one marker per gap.
    let msgs = finish(&sim, ing, &topic, 3 * (per - skipped * 3 / 4 + skipped / 20));
    let cut_off = |k: u64| k % 499 >= 499 - 15;
    let c = verify_complete(&msgs, &sim.market, per, cut_off);
    assert_eq!(c.backfilled, 3 * skipped / 4, "{c:?}");
    assert_eq!(c.in_markers, 3 * skipped * 3 / 4, "{c:?}");
    let reasons: Vec<&str> =
        msgs.iter().filter(|m| m.payload["type"] == "gap").map(|m| m.payload["reason"].as_str().unwrap()).collect();
    assert!(!reasons.is_empty() && reasons.iter().all(|r| *r == "backfill_limit"), "{reasons:?}");
}

#[test]
fn rest_bans_and_rate_limits_are_waited_out() {
    // Three trades of every 499 skipped, about three gaps a second over the symbols; REST allows
    // three historicalTrades calls per second and starts with a 3 s ban (418).
    let sim = market(|c| {
        c.trade_rate = 1_500.0;
        c.stream_skip = Some((499, 3));
        c.rest_weight_limit = 75;
        c.rest_weight_window = Duration::from_secs(1);
    });
    sim.ban_rest(Duration::from_secs(3));
    let topic = unique_topic("ratelimit");
    let ing = start(&sim, &topic, &[]);
    let per = sim.market.total_trades_per_symbol().unwrap();
    let t = Instant::now();
    while sim.rest_stats.throttled.load(Ordering::Relaxed) == 0 {
        assert!(t.elapsed() < Duration::from_secs(SECS + 20), "never throttled:\n{}", ing.dump_logs());
        std::thread::sleep(Duration::from_millis(200));
    }
    let series = |status: &str| {
        format!("marketflow_ingestor_rest_requests_total{{endpoint=\"historicalTrades\",status=\"{status}\"}}")
    };
    // Both statuses were answered by now, so both series exist.
    let (banned, throttled) = (ing.metric(&series("418")), ing.metric(&series("429")));
    let msgs = finish(&sim, ing, &topic, 3 * per);
    let c = verify_complete(&msgs, &sim.market, per, |_| false);
    let skipped = (0..per).filter(|k| sim.market.stream_skips(*k)).count() as u64;
    assert_eq!(c.backfilled, 3 * skipped, "{c:?}");
    assert_eq!(sim.rest_stats.early.load(Ordering::Relaxed), 0, "a request came before its Retry-After");
    assert_eq!(sim.rest_stats.banned.load(Ordering::Relaxed), 1, "one 418, then the ban was waited out");
    assert!(banned == 1.0 && throttled >= 1.0, "418s {banned}, 429s {throttled}: counted by status");
}

#[test]
fn missed_closed_candles_are_refilled_from_rest() {
    // kline_1s at four updates a second; every update of one candle in five is left out of the
    // stream, so its closed version must come from /api/v3/klines.
    let sim = market(|c| {
        c.aux_rate = 4.0;
        c.kline_skip = Some((5, 1));
        c.duration = Some(Duration::from_secs(10));
    });
    let topic = unique_topic("klines");
    let mut ing = start(&sim, &topic, &[("STREAMS", "kline_1s")]);
    let kind = binance_sim::StreamKind::Kline(0);
    let t = Instant::now();
    while sim.market.generated(kind) < 40 {
        assert!(t.elapsed() < Duration::from_secs(30), "market never finished");
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(2));
    let (st, _) = ing.terminate(Duration::from_secs(20));
    assert!(st.success(), "{}", ing.dump_logs());
    // About 32 live updates and 2 refilled candles per symbol.
    let msgs = consume(&topic, 3 * 25, Duration::from_secs(30), Duration::from_secs(2));
    assert!(msgs.iter().all(|m| m.payload["type"] == "kline"), "no gap markers: REST has every candle");
    for (s, sym) in sim.market.cfg.symbols.iter().enumerate() {
        let mut closed: Vec<&serde_json::Value> = msgs
            .iter()
            .map(|m| &m.payload)
            .filter(|p| p["symbol"].as_str() == Some(&sym.to_uppercase()) && p["closed"] == true)
            .collect();
        closed.sort_by_key(|p| p["open_time_ms"].as_i64());
        let opens: Vec<i64> = closed.iter().map(|p| p["open_time_ms"].as_i64().unwrap()).collect();
        // Every candle from the first to the last closed one, each once (a gap after the last
        // live candle cannot be seen yet).
        let want: Vec<i64> = (0..opens.len() as i64).map(|i| opens[0] + 1000 * i).collect();
        assert_eq!(opens, want, "{sym}: candles missing or repeated");
        let mut refilled = 0;
        for p in &closed {
            let open = p["open_time_ms"].as_i64().unwrap();
            let c = sim.market.candle(s, 0, open);
            let skipped = sim.market.candle_index(0, open) % 5 == 4;
            assert_eq!(p["backfilled"] == true, skipped, "{sym}: only left-out candles are refilled: {p}");
            for (field, want) in
                [("open", &c.open), ("high", &c.high), ("low", &c.low), ("close", &c.close), ("volume", &c.volume)]
            {
                assert_eq!(p[field], want.as_str(), "{sym} {field}: {p}");
            }
            assert_eq!(p["close_time_ms"], c.close_time_ms, "{p}");
            if skipped {
                refilled += 1;
                assert!(p["first_trade_id"].is_null(), "REST gives no trade ids: {p}");
            } else {
                assert_eq!(p["first_trade_id"], c.first_trade_id, "{p}");
            }
        }
        assert!(refilled >= 1, "{sym}: nothing was refilled: {opens:?}");
    }
}
