//! The Binance of 2026, end to end against the simulator and the real local Kafka: a UTF-8
//! listing, microsecond times (stream and REST), the web-application firewall's 403 on REST (the
//! data-api host takes over what it serves) and on the WebSocket upgrade (waited out for minutes).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use binance_sim::{SimConfig, SimHandle, StreamKind, Waf, WafScope};
use serde_json::Value;

use crate::common::*;

const UNI: &str = "币安人生usdt";

/// Waits until the market has generated `n` events of `kind` for every symbol.
fn wait_generated(sim: &SimHandle, kind: StreamKind, n: u64, ing: &Ingester) {
    let t = Instant::now();
    while (0..sim.market.cfg.symbols.len()).any(|s| sim.market.generated_for(kind, s) < n) {
        assert!(t.elapsed() < Duration::from_secs(90), "market too slow:\n{}", ing.dump_logs());
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_utf8_listing_is_subscribed_keyed_labelled_and_published_exactly() {
    let sim = sim(SimConfig {
        symbols: vec![UNI.into(), "btcusdt".into()],
        trade_rate: 400.0,
        duration: Some(Duration::from_secs(6)),
        ..SimConfig::default()
    });
    let topic = unique_topic("utf8");
    let mut ing = start(&sim, &topic, &[("SYMBOLS", "币安人生USDT,btcusdt"), ("STREAMS", "trade")]);
    let per = sim.market.total_trades_per_symbol().unwrap();
    wait_generated(&sim, StreamKind::Trade, per, &ing);
    let series = format!("marketflow_ingestor_messages_sent_total{{symbol=\"{UNI}\"}}");
    let t = Instant::now();
    while ing.metric(&series) < per as f64 {
        assert!(t.elapsed() < Duration::from_secs(60), "{series} = {}:\n{}", ing.metric(&series), ing.dump_logs());
        std::thread::sleep(Duration::from_millis(200));
    }
    let (st, _) = ing.terminate(Duration::from_secs(20));
    assert!(st.success(), "{}", ing.dump_logs());
    let msgs = consume(&topic, 2 * per as usize, Duration::from_secs(60), Duration::from_secs(2));
    // Every trade of both symbols once, in order, every field as sent; the key is the listing's
    // UTF-8 bytes, the record's symbol its upper-case name.
    verify_trades(&msgs, &sim.market, Some(per));
    let uni: Vec<&Consumed> = msgs.iter().filter(|m| m.payload["symbol"] == "币安人生USDT").collect();
    assert_eq!(uni.len() as u64, per);
    assert!(uni.iter().all(|m| m.key == "币安人生USDT".as_bytes()));
}

#[test]
fn time_unit_us_carries_microseconds_from_the_stream_and_from_rest() {
    // Trades, and one-second candles of which every fifth never shows on the stream: its closed
    // version must come from REST, asked for in microseconds too.
    let sim = sim(SimConfig {
        symbols: vec!["btcusdt".into(), "ethusdt".into()],
        trade_rate: 400.0,
        aux_rate: 4.0,
        kline_skip: Some((5, 1)),
        duration: Some(Duration::from_secs(10)),
        ..SimConfig::default()
    });
    let (trades, klines) = (unique_topic("us_trades"), unique_topic("us_klines"));
    let mut ing = start(
        &sim,
        &trades,
        &[
            ("STREAMS", "trade,kline_1s"),
            ("TIME_UNIT", "us"),
            ("SYMBOLS", "btcusdt,ethusdt"),
            ("KAFKA_TOPIC_KLINE", &klines),
        ],
    );
    wait_generated(&sim, StreamKind::Kline(0), 40, &ing);
    std::thread::sleep(Duration::from_secs(3));
    let (st, _) = ing.terminate(Duration::from_secs(20));
    assert!(st.success(), "{}", ing.dump_logs());

    let per = sim.market.total_trades_per_symbol().unwrap();
    for m in consume(&trades, 2 * per as usize, Duration::from_secs(60), Duration::from_secs(2)) {
        let p = &m.payload;
        let s = sim.market.symbol_index(&p["symbol"].as_str().unwrap().to_lowercase()).unwrap();
        let e = sim
            .market
            .expected_trade(s, (p["trade_id"].as_i64().unwrap() - binance_sim::Market::trade_id_base(s)) as u64);
        assert_eq!(
            (&p["trade_time_us"], &p["event_time_us"]),
            (&Value::from(e.trade_time_us), &Value::from(e.trade_time_us)),
            "{p}"
        );
        assert!(p.get("trade_time_ms").is_none() && p.get("event_time_ms").is_none(), "{p}");
        assert_eq!(m.timestamp_ms, Some(e.trade_time_ms), "Kafka timestamps stay milliseconds: {p}");
    }
    let msgs = consume(&klines, 2 * 25, Duration::from_secs(60), Duration::from_secs(2));
    for (s, sym) in ["BTCUSDT", "ETHUSDT"].iter().enumerate() {
        let mut closed: Vec<&Value> =
            msgs.iter().map(|m| &m.payload).filter(|p| p["symbol"] == *sym && p["closed"] == true).collect();
        closed.sort_by_key(|p| p["open_time_us"].as_i64());
        let opens: Vec<i64> = closed.iter().map(|p| p["open_time_us"].as_i64().unwrap()).collect();
        let want: Vec<i64> = (0..opens.len() as i64).map(|i| opens[0] + 1_000_000 * i).collect();
        assert_eq!(opens, want, "{sym}: candles missing or repeated, counted in microseconds");
        let mut refilled = 0;
        for p in &closed {
            let open_us = p["open_time_us"].as_i64().unwrap();
            let c = sim.market.candle(s, 0, open_us / 1000);
            assert_eq!(p["close_time_us"], open_us + 999_999, "the candle's last microsecond: {p}");
            assert_eq!(
                (&p["open"], &p["close"]),
                (&Value::from(c.open.as_str()), &Value::from(c.close.as_str())),
                "{p}"
            );
            assert!(
                p.get("open_time_ms").is_none() && p["event_time_us"].as_i64().unwrap() > 1_000_000_000_000_000,
                "{p}"
            );
            refilled += usize::from(p["backfilled"] == true);
        }
        assert!(refilled >= 1, "{sym}: no candle refilled from REST: {opens:?}");
    }
    assert!(msgs.iter().all(|m| m.payload["type"] == "kline"), "no gap: REST had every candle");
}

#[test]
fn a_firewall_block_on_the_main_rest_host_sends_what_data_api_serves_there() {
    // The main REST host answers 403 throughout; candles left out of the stream are refilled
    // from the data-api host, at once and every time.
    let sim = sim(SimConfig {
        symbols: vec!["btcusdt".into()],
        aux_rate: 4.0,
        kline_skip: Some((4, 1)),
        duration: Some(Duration::from_secs(10)),
        waf: Some(Waf {
            scope: WafScope { rest: true, ..WafScope::default() },
            after: Duration::ZERO,
            len: Duration::from_secs(600),
        }),
        ..SimConfig::default()
    });
    let topic = unique_topic("waf_rest");
    let data_api = sim.data_api_url();
    let mut ing = start(
        &sim,
        &topic,
        &[("STREAMS", "kline_1s"), ("SYMBOLS", "btcusdt"), ("BINANCE_REST_FALLBACK_URL", &data_api)],
    );
    // Exported at 0 from the start, so an alert fires at the first block.
    assert_eq!(ing.metric("marketflow_ingestor_rest_requests_total{endpoint=\"klines\",status=\"403\"}"), 0.0);
    wait_generated(&sim, StreamKind::Kline(0), 40, &ing);
    std::thread::sleep(Duration::from_secs(3));
    let blocked = ing.metric("marketflow_ingestor_rest_requests_total{endpoint=\"klines\",status=\"403\"}");
    let fallback = ing.metric("marketflow_ingestor_rest_fallback_requests_total{endpoint=\"klines\",status=\"2xx\"}");
    let (st, _) = ing.terminate(Duration::from_secs(20));
    assert!(st.success(), "{}", ing.dump_logs());
    // One 403, then the main host is left alone: the refills all went to data-api.
    assert_eq!(blocked, 1.0, "{}", ing.dump_logs());
    assert_eq!(sim.rest_stats.waf_blocked.load(Ordering::Relaxed), 1);
    assert!(fallback >= 2.0 && sim.data_api_stats.requests.load(Ordering::Relaxed) as f64 == fallback, "{fallback}");
    let msgs = consume(&topic, 25, Duration::from_secs(60), Duration::from_secs(2));
    let mut closed: Vec<&Value> = msgs.iter().map(|m| &m.payload).filter(|p| p["closed"] == true).collect();
    closed.sort_by_key(|p| p["open_time_ms"].as_i64());
    let opens: Vec<i64> = closed.iter().map(|p| p["open_time_ms"].as_i64().unwrap()).collect();
    assert_eq!(opens, (0..opens.len() as i64).map(|i| opens[0] + 1000 * i).collect::<Vec<_>>(), "every candle once");
    for p in &closed {
        let c = sim.market.candle(0, 0, p["open_time_ms"].as_i64().unwrap());
        assert_eq!((&p["high"], &p["low"]), (&Value::from(c.high.as_str()), &Value::from(c.low.as_str())), "{p}");
    }
    assert!(closed.iter().filter(|p| p["backfilled"] == true).count() >= 2, "{opens:?}");
    assert!(msgs.iter().all(|m| m.payload["type"] == "kline"), "no gap record: data-api had every candle");
}

#[test]
fn a_firewall_block_on_the_upgrade_is_waited_out_for_minutes_not_hammered() {
    // New WebSocket connections are refused with 403. The ingester's usual backoff would try a
    // dozen times in the 8 s watched below; a block is waited out for minutes instead.
    let sim = sim(SimConfig::default());
    sim.block_waf(WafScope { ws: true, ..WafScope::default() }, Duration::from_secs(120));
    let ws = sim.ws_url();
    let mut ing = Ingester::spawn(&[("BINANCE_WS_URL", &ws), ("SINK", "null"), ("SYMBOLS", "btcusdt")]);
    let blocked = "marketflow_ingestor_ws_connect_attempts_total{result=\"blocked\"}";
    let t = Instant::now();
    while ing.metric_if_present(blocked).unwrap_or(0.0) < 1.0 {
        assert!(t.elapsed() < Duration::from_secs(60), "never blocked:\n{}", ing.dump_logs());
        std::thread::sleep(Duration::from_millis(200));
    }
    // Still the one attempt, and not ready: the next comes minutes on.
    std::thread::sleep(Duration::from_secs(8));
    let attempts = ing.metric_sum("marketflow_ingestor_ws_connect_attempts_total");
    assert_eq!((ing.metric(blocked), attempts), (1.0, 1.0), "{}", ing.dump_logs());
    assert_eq!(ing.get("/readyz").0, 503);
    assert!(
        ing.log_event("connection failed: upgrade refused with HTTP 403: the venue's firewall blocks this IP")
            .is_some(),
        "{}",
        ing.dump_logs()
    );
    let (st, _) = ing.terminate(Duration::from_secs(20));
    assert!(st.success(), "{}", ing.dump_logs());
}

/// The main REST host's firewall answers 403 throughout, to every endpoint.
fn rest_blocked() -> Option<Waf> {
    Some(Waf {
        scope: WafScope { rest: true, ..WafScope::default() },
        after: Duration::ZERO,
        len: Duration::from_secs(600),
    })
}

#[test]
fn while_the_main_rest_host_is_blocked_data_api_serves_agg_trades_and_depth_snapshots() {
    // Aggregate trades missed across dropped connections and diff-depth events left out of the
    // stream (the book's chain breaks): both are fetched from data-api, which serves them.
    let sim = sim(SimConfig {
        symbols: vec!["btcusdt".into()],
        trade_rate: 200.0,
        aux_rate: 50.0,
        depth_skip: Some((60, 2)),
        duration: Some(Duration::from_secs(20)),
        waf: rest_blocked(),
        ..SimConfig::default()
    });
    let topic = unique_topic("waf_agg_depth");
    let data_api = sim.data_api_url();
    let mut ing = start(
        &sim,
        &topic,
        &[("STREAMS", "aggTrade,depth@100ms"), ("SYMBOLS", "btcusdt"), ("BINANCE_REST_FALLBACK_URL", &data_api)],
    );
    let served = |ing: &Ingester, endpoint: &str| {
        ing.metric_if_present(&format!(
            "marketflow_ingestor_rest_fallback_requests_total{{endpoint=\"{endpoint}\",status=\"2xx\"}}"
        ))
        .unwrap_or(0.0)
    };
    // A dropped connection opens a gap in the aggregate ids unless the reconnect beats the next
    // trade: drop until one did (each drop waits for the reconnect first).
    let t = Instant::now();
    while served(&ing, "aggTrades") < 1.0 || served(&ing, "depth") < 1.0 {
        assert!(t.elapsed() < Duration::from_secs(60), "data-api never served both:\n{}", ing.dump_logs());
        std::thread::sleep(Duration::from_secs(2));
        if served(&ing, "aggTrades") < 1.0 && ing.metric("marketflow_ingestor_ws_connections{state=\"open\"}") >= 1.0 {
            sim.drop_connections();
        }
    }
    // Then the market runs to its end, so that every gap is followed by trades that reveal it.
    // (Aggregate trades run on a schedule of their own: count them once the market has ended,
    // which its last trade marks.)
    wait_generated(&sim, StreamKind::Trade, sim.market.total_trades_per_symbol().unwrap(), &ing);
    let per = sim.market.generated_for(StreamKind::AggTrade, 0);
    let msgs = consume(&topic, per as usize, Duration::from_secs(60), Duration::from_secs(3));
    let blocked = ing.metric_sum("marketflow_ingestor_rest_requests_total");
    let on_fallback = ing.metric_sum("marketflow_ingestor_rest_fallback_requests_total");
    let (st, _) = ing.terminate(Duration::from_secs(20));
    assert!(st.success(), "{}", ing.dump_logs());
    // The first request met the block; every later one went to data-api without asking the
    // main host again (the block is held off for minutes), and data-api answered each.
    assert_eq!(blocked, 1.0, "{}", ing.dump_logs());
    assert_eq!(sim.rest_stats.waf_blocked.load(Ordering::Relaxed), 1);
    assert_eq!(sim.data_api_stats.requests.load(Ordering::Relaxed) as f64, on_fallback);

    // Aggregate trades: every one the market made exactly once, every field as made, the
    // missed ones flagged as backfilled.
    let mut aggs: Vec<&Value> = msgs.iter().map(|m| &m.payload).filter(|p| p["type"] == "agg_trade").collect();
    aggs.sort_by_key(|p| p["agg_id"].as_i64());
    assert_eq!(aggs.len() as u64, per, "aggregate trades missing or repeated");
    for (k, p) in aggs.iter().enumerate() {
        let (id, price, qty, f, l, time, maker) = sim.market.agg_parts(0, k as u64);
        assert_eq!(p["agg_id"], id, "missing or repeated aggregate ids: {p}");
        assert_eq!(
            (&p["price"], &p["qty"], &p["first_trade_id"], &p["last_trade_id"], &p["trade_time_ms"]),
            (&Value::from(price), &Value::from(qty), &Value::from(f), &Value::from(l), &Value::from(time)),
            "{p}"
        );
        assert_eq!(p["side"], if maker { "sell" } else { "buy" }, "{p}");
    }
    assert!(aggs.iter().any(|p| p["backfilled"] == true), "no aggregate trade came from data-api");
    // Depth: a resync marker, then data-api's snapshot, the simulated book at its update id.
    let payloads = || msgs.iter().map(|m| &m.payload);
    let snaps: Vec<&Value> = payloads().filter(|p| p["type"] == "depth_snapshot").collect();
    assert!(!snaps.is_empty() && payloads().any(|p| p["type"] == "depth_resync"), "no resync");
    for s in snaps {
        let book = sim.market.book_at(0, s["last_update_id"].as_i64().unwrap());
        assert_eq!(book.last_update_id, s["last_update_id"].as_i64().unwrap());
        let levels = |v: &[(String, String)], n: usize| -> Value {
            v.iter().take(n).map(|(p, q)| Value::from(vec![p.as_str(), q.as_str()])).collect()
        };
        let (bids, asks) = (s["bids"].as_array().unwrap(), s["asks"].as_array().unwrap());
        assert!(!bids.is_empty() && !asks.is_empty(), "{s}");
        assert_eq!(s["bids"], levels(&book.bids, bids.len()), "snapshot bids differ from the book");
        assert_eq!(s["asks"], levels(&book.asks, asks.len()), "snapshot asks differ from the book");
    }
}

#[test]
fn historical_trades_are_never_asked_of_data_api() {
    // Trades left out of the stream can only come from the main host: data-api does not serve
    // historicalTrades. While the main host's firewall blocks us the refill waits (minutes), and
    // data-api, though configured and up, is never asked.
    let sim = sim(SimConfig {
        symbols: vec!["btcusdt".into()],
        trade_rate: 200.0,
        stream_skip: Some((199, 3)),
        duration: Some(Duration::from_secs(20)),
        waf: rest_blocked(),
        ..SimConfig::default()
    });
    let topic = unique_topic("waf_trades");
    let data_api = sim.data_api_url();
    let mut ing =
        start(&sim, &topic, &[("STREAMS", "trade"), ("SYMBOLS", "btcusdt"), ("BINANCE_REST_FALLBACK_URL", &data_api)]);
    let blocked = "marketflow_ingestor_rest_requests_total{endpoint=\"historicalTrades\",status=\"403\"}";
    let t = Instant::now();
    while ing.metric(blocked) < 1.0 {
        assert!(t.elapsed() < Duration::from_secs(60), "no historicalTrades request:\n{}", ing.dump_logs());
        std::thread::sleep(Duration::from_millis(200));
    }
    // More skipped trades keep coming; none of their refills may go to data-api.
    wait_generated(&sim, StreamKind::Trade, 3 * 199, &ing);
    let sent = ing.metric_sum("marketflow_ingestor_rest_requests_total");
    assert!(ing.log_event("REST answered 403: the venue's firewall blocks this IP").is_some(), "{}", ing.dump_logs());
    // The block's wait (minutes) ends at shutdown.
    let (st, _) = ing.terminate(Duration::from_secs(20));
    assert!(st.success(), "{}", ing.dump_logs());
    // One request, blocked, and the refill held off for minutes; data-api saw nothing.
    assert_eq!(sent, 1.0, "{}", ing.dump_logs());
    assert_eq!(sim.data_api_stats.requests.load(Ordering::Relaxed), 0, "{}", ing.dump_logs());
    assert_eq!(sim.rest_stats.waf_blocked.load(Ordering::Relaxed), 1);
}
