//! Spot and USD-M futures in one process (two lanes), against the simulator's two markets and the
//! real local Kafka: spot publishes exactly what a spot-only process publishes, and USD-M's
//! aggregate trades, mark prices and liquidations arrive each once with every field as sent; a
//! USD-M stream on the retired root path (subscription acknowledged, nothing delivered) is found
//! silent by the per-stream watch within 30 s.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use crate::common::*;
use binance_sim::{Market, SimConfig, SimHandle, StreamKind};

/// How long both markets generate events.
const MARKET: Duration = Duration::from_secs(20);

/// A spot market (trades and aggregate trades, backfilled from REST) and a USD-M one beside it,
/// both generating for `duration` (`None`: until the test ends).
fn two_markets(duration: Option<Duration>) -> SimHandle {
    sim(SimConfig {
        symbols: vec!["btcusdt".into(), "ethusdt".into()],
        trade_rate: 40.0,
        duration,
        usdm: Some(Box::new(SimConfig {
            symbols: vec!["btcusdt".into(), "ethusdt".into()],
            trade_rate: 8.0,
            duration,
            // The last 2 of every 25 aggregate trades never reach the stream: gaps, which this
            // lane fetches from the futures REST (`/fapi/v1/aggTrades`).
            stream_skip: Some((25, 2)),
            ..SimConfig::usdm_market()
        })),
        ..SimConfig::default()
    })
}

/// Writes to `topic`, for every symbol of `market`, a trade and an aggregate trade just before
/// the market's first, as a previous run would have left them: a process started on the topic
/// continues from there (recovery from Kafka) and fetches whatever it joined the market too late
/// for from REST. So two processes that join the market a moment apart publish the same records.
fn seed_before_the_market(topic: &str, market: &Market) {
    use rdkafka::config::ClientConfig;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer as _};
    let producer: BaseProducer = ClientConfig::new().set("bootstrap.servers", kafka()).create().unwrap();
    for (s, symbol) in market.cfg.symbols.iter().enumerate() {
        let (key, before) = (symbol.to_uppercase(), Market::trade_id_base(s) - 1);
        for (kind, id) in [("trade", "trade_id"), ("agg_trade", "agg_id")] {
            let payload = serde_json::json!({
                "type": kind, "exchange": "binance", "symbol": key, id: before, "backfilled": true, "seed": true
            })
            .to_string();
            producer.send(BaseRecord::to(topic).key(&key).payload(&payload)).map_err(|(e, _)| e).unwrap();
        }
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}

/// A record as both runs must agree on it: without its receive time, and without whether it came
/// live or from REST (which depends on when each process connected, not on what it published).
fn comparable(p: &serde_json::Value) -> String {
    let mut p = p.clone();
    let o = p.as_object_mut().unwrap();
    o.remove("recv_time_ns");
    o.remove("backfilled");
    p.to_string()
}

/// The records of `msgs` by (symbol, type), `stale` records (when each process noticed the
/// market's end) left out.
fn by_symbol_and_type(msgs: &[Consumed]) -> BTreeMap<(String, String), BTreeSet<String>> {
    let mut out: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for m in msgs.iter().filter(|m| !is_stale(m)) {
        let p = &m.payload;
        let key = (p["symbol"].as_str().unwrap().to_string(), p["type"].as_str().unwrap().to_string());
        let fresh = out.entry(key).or_default().insert(comparable(p));
        assert!(fresh, "published twice: {p}");
    }
    out
}

/// Waits until `market` has generated every event of its duration of `kind`.
fn wait_finished(market: &Market, kind: StreamKind) {
    let t = Instant::now();
    let want = market.total_trades_per_symbol().unwrap();
    while market.generated(kind) < want {
        assert!(t.elapsed() < MARKET + Duration::from_secs(60), "market never finished");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// USD-M aggregate trades: each `a` once with every field as the simulator sent it, those the
/// stream skipped fetched from `/fapi/v1/aggTrades` (`backfilled`), none named missing (REST has
/// every id), none twice.
fn check_agg_trades(msgs: &[&Consumed], market: &Market) {
    let per = market.total_trades_per_symbol().unwrap();
    for (s, symbol) in market.cfg.symbols.iter().enumerate() {
        let upper = symbol.to_uppercase();
        let base = Market::trade_id_base(s);
        let mut seen = BTreeSet::new();
        let mut fetched = 0;
        for m in msgs.iter().filter(|m| m.payload["symbol"] == upper.as_str()) {
            let p = &m.payload;
            assert_eq!(p["exchange"], "binance-usdm", "{p}");
            assert_eq!(m.key, upper.as_bytes(), "key = symbol: {p}");
            match p["type"].as_str().unwrap() {
                "gap" => panic!("{symbol}: a gap named, but the futures REST has every id: {p}"),
                "agg_trade" => {
                    let k = (p["agg_id"].as_i64().unwrap() - base) as u64;
                    assert!(seen.insert(k), "{symbol}: aggTrade #{k} published twice");
                    if market.stream_skips(k) {
                        assert_eq!(p["backfilled"], true, "{symbol}: aggTrade #{k} was never streamed: {p}");
                        fetched += 1;
                    }
                    let e = market.expected_agg_trade(s, k);
                    assert_eq!(p["symbol"], e.symbol, "{p}");
                    assert_eq!(p["price"], e.price, "{p}");
                    assert_eq!(p["qty"], e.qty, "{p}");
                    assert_eq!(p["first_trade_id"], e.first_trade_id, "{p}");
                    assert_eq!(p["last_trade_id"], e.last_trade_id, "{p}");
                    assert_eq!(p["side"], if e.buyer_is_maker { "sell" } else { "buy" }, "{p}");
                    assert_eq!(p["trade_time_ms"], e.trade_time_ms, "{p}");
                    // REST has no event time: a fetched record carries its trade time (README).
                    let event_time = if p["backfilled"] == true { e.trade_time_ms } else { e.event_time_ms };
                    assert_eq!(p["event_time_ms"], event_time, "{p}");
                }
                _ => {}
            }
        }
        assert!(fetched > 0, "{symbol}: the skipped aggTrades were fetched from REST");
        // The lane's own subscription started this market: it saw it from its first event. A gap
        // at the very end (skipped, no later id to show it) cannot be seen by anyone.
        for k in 0..per {
            let trailing = (k..per).all(|j| market.stream_skips(j));
            assert!(seen.contains(&k) || trailing, "{symbol}: aggTrade #{k} never published");
        }
    }
}

/// Mark prices and liquidations: every record one the simulator sent (found by its event time),
/// every field equal, none twice, a few of each for every symbol.
fn check_mark_prices_and_liquidations(msgs: &[&Consumed], market: &Market) {
    for (s, symbol) in market.cfg.symbols.iter().enumerate() {
        let upper = symbol.to_uppercase();
        let of = |t: &str| -> Vec<&serde_json::Value> {
            msgs.iter().map(|m| &m.payload).filter(|p| p["type"] == t && p["symbol"] == upper.as_str()).collect()
        };
        // What the simulator sent, by event time (k beyond what it generated is never looked up).
        let marks: HashMap<i64, _> = (0..market.generated_for(StreamKind::MarkPrice1s, s) + 2)
            .map(|k| market.expected_mark_price(s, StreamKind::MarkPrice1s, k))
            .map(|e| (e.event_time_ms, e))
            .collect();
        let got = of("mark_price");
        assert!(got.len() >= 5, "{symbol}: {} mark prices in {MARKET:?}", got.len());
        let mut times = BTreeSet::new();
        for p in got {
            let t = p["event_time_ms"].as_i64().unwrap();
            assert!(times.insert(t), "{symbol}: mark price of {t} twice");
            let e = marks.get(&t).unwrap_or_else(|| panic!("{symbol}: a mark price the simulator never sent: {p}"));
            assert_eq!(p["exchange"], "binance-usdm", "{p}");
            assert_eq!(p["symbol"], e.symbol, "{p}");
            assert_eq!(p["mark_price"], e.mark_price, "{p}");
            assert_eq!(p["index_price"], e.index_price, "{p}");
            assert_eq!(p["estimated_settle_price"], e.settle_price, "{p}");
            assert_eq!(p["funding_rate"], e.funding_rate, "{p}");
            assert_eq!(p["next_funding_time_ms"], e.next_funding_time_ms, "{p}");
        }

        let liquidations: HashMap<i64, _> = (0..market.generated_for(StreamKind::ForceOrder, s) + 2)
            .map(|k| market.expected_liquidation(s, k))
            .map(|e| (e.event_time_ms, e))
            .collect();
        let got = of("liquidation");
        assert!(got.len() >= 3, "{symbol}: {} liquidations in {MARKET:?}", got.len());
        let mut times = BTreeSet::new();
        for p in got {
            let t = p["event_time_ms"].as_i64().unwrap();
            assert!(times.insert(t), "{symbol}: liquidation of {t} twice");
            let e = liquidations.get(&t).unwrap_or_else(|| panic!("{symbol}: a liquidation never sent: {p}"));
            assert_eq!(p["exchange"], "binance-usdm", "{p}");
            assert_eq!(p["symbol"], e.symbol, "{p}");
            assert_eq!(p["side"], e.side.to_lowercase(), "{p}");
            assert_eq!(p["order_type"], e.order_type, "{p}");
            assert_eq!(p["time_in_force"], e.time_in_force, "{p}");
            assert_eq!(p["status"], e.status, "{p}");
            assert_eq!(p["orig_qty"], e.orig_qty, "{p}");
            assert_eq!(p["price"], e.price, "{p}");
            assert_eq!(p["avg_price"], e.avg_price, "{p}");
            assert_eq!(p["last_filled_qty"], e.last_filled_qty, "{p}");
            assert_eq!(p["filled_qty"], e.filled_qty, "{p}");
            assert_eq!(p["trade_time_ms"], e.trade_time_ms, "{p}");
            assert_eq!(p["snapshot"], true, "{p}");
        }
    }
}

#[test]
fn spot_and_usdm_in_one_process_and_spot_publishes_what_it_publishes_alone() {
    let sim = two_markets(Some(MARKET));
    let usdm = sim.usdm.as_ref().unwrap();
    let (alone_topic, both_topic, usdm_topic) =
        (unique_topic("spot_alone"), unique_topic("spot_both"), unique_topic("usdm_both"));
    seed_before_the_market(&alone_topic, &sim.market);
    seed_before_the_market(&both_topic, &sim.market);
    let spot = [("STREAMS", "trade,aggTrade"), ("SYMBOLS", "btcusdt,ethusdt")];
    // Both processes against the same spot market at once: the same events, the same REST.
    let mut alone = start(&sim, &alone_topic, &spot);
    let (usdm_ws, usdm_rest) = (usdm.ws_url(), usdm.rest_url());
    let mut both_env = spot.to_vec();
    both_env.extend([
        ("USDM_SYMBOLS", "BTCUSDT,ethusdt"),
        ("USDM_STREAMS", "aggTrade,markPrice@1s,forceOrder"),
        ("USDM_WS_URL", usdm_ws.as_str()),
        ("USDM_REST_URL", usdm_rest.as_str()),
        ("USDM_KAFKA_TOPIC", usdm_topic.as_str()),
    ]);
    let mut both = start(&sim, &both_topic, &both_env);
    let (_, ready) = both.get("/readyz");
    assert_eq!(ready, "market=spot subscribed=true sink=true\nmarket=usdm subscribed=true sink=true\n");

    wait_finished(&sim.market, StreamKind::Trade);
    wait_finished(&usdm.market, StreamKind::AggTrade);
    let per = sim.market.total_trades_per_symbol().unwrap();
    // Every trade and aggregate trade of both symbols, and the seeds: once a topic holds as many,
    // what either process joined too late for is back from REST.
    let want_spot = (2 * (per + sim.market.generated(StreamKind::AggTrade)) + 4) as usize;
    for topic in [&alone_topic, &both_topic] {
        consume(topic, want_spot, Duration::from_secs(90), Duration::from_secs(2));
    }

    // Two lanes' series in one scrape, each family once.
    let (_, metrics) = both.get("/metrics");
    assert_eq!(metrics.matches("# TYPE marketflow_ingestor_messages_sent_total ").count(), 1);
    let samples = parse_samples(&metrics);
    for symbol in ["btcusdt", "ethusdt"] {
        let usdm_sent = format!("marketflow_ingestor_messages_sent_total{{symbol=\"{symbol}\",market=\"usdm\"}}");
        assert!(sample(&samples, &usdm_sent).is_some_and(|n| n > 0.0), "{usdm_sent}: {metrics}");
        let spot_sent = format!("marketflow_ingestor_messages_sent_total{{symbol=\"{symbol}\"}}");
        assert!(sample(&samples, &spot_sent).is_some_and(|n| n > 0.0), "{spot_sent}: {metrics}");
    }

    // A shutdown stops and flushes both lanes.
    for ing in [&mut alone, &mut both] {
        let (st, _) = ing.terminate(Duration::from_secs(30));
        assert!(st.success(), "exit {st:?}:\n{}", ing.dump_logs());
    }
    let alone_msgs = consume(&alone_topic, want_spot, Duration::from_secs(60), Duration::from_secs(2));
    let both_msgs = consume(&both_topic, want_spot, Duration::from_secs(60), Duration::from_secs(2));
    let usdm_msgs = consume(&usdm_topic, 1, Duration::from_secs(60), Duration::from_secs(2));

    // Spot: trades and aggregate trades complete (verify_complete checks each field against the
    // simulator), and the very same records in both runs.
    let trades = |msgs: &[Consumed]| -> Vec<Consumed> {
        msgs.iter().filter(|m| m.payload["type"] == "trade" && m.payload["seed"] != true).cloned().collect()
    };
    verify_complete(&trades(&alone_msgs), &sim.market, per, |_| false);
    verify_complete(&trades(&both_msgs), &sim.market, per, |_| false);
    let (a, b) = (by_symbol_and_type(&alone_msgs), by_symbol_and_type(&both_msgs));
    let keys: Vec<_> = a.keys().cloned().collect();
    assert_eq!(keys.len(), 4, "btcusdt, ethusdt x trade, agg_trade: {keys:?}");
    for key in &keys {
        assert_eq!(a[key], b[key], "{key:?}: spot beside USD-M published other records than spot alone");
    }
    assert_eq!(a.len(), b.len(), "no other spot records beside USD-M");
    assert!(both_msgs.iter().all(|m| m.payload["exchange"] == "binance"), "no USD-M record on spot's topic");

    // USD-M on its own topic.
    let usdm_records: Vec<&Consumed> = usdm_msgs.iter().filter(|m| !is_stale(m)).collect();
    check_agg_trades(&usdm_records, &usdm.market);
    check_mark_prices_and_liquidations(&usdm_records, &usdm.market);
    let types: BTreeSet<&str> = usdm_records.iter().map(|m| m.payload["type"].as_str().unwrap()).collect();
    assert_eq!(types, BTreeSet::from(["agg_trade", "liquidation", "mark_price"]), "{types:?}");
}

/// A relay to the USD-M simulator that sends each connection to the retired root path: the
/// upgrade request's routed `/market/` path loses its route, as a client built for the old URLs
/// would send it. Everything else is passed through untouched.
fn retired_root_relay(target: SocketAddr) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for client in listener.incoming().map_while(Result::ok) {
            std::thread::spawn(move || relay(client, target));
        }
    });
    addr
}

fn relay(mut client: TcpStream, target: SocketAddr) {
    let head = read_request_head(&mut client);
    let _ = client.set_read_timeout(None);
    let rerouted = String::from_utf8_lossy(&head).replacen("GET /market/", "GET /", 1);
    let Ok(mut server) = TcpStream::connect(target) else { return };
    if server.write_all(rerouted.as_bytes()).is_err() {
        return;
    }
    let (Ok(mut from_server), Ok(mut to_client)) = (server.try_clone(), client.try_clone()) else { return };
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from_server, &mut to_client);
        let _ = to_client.shutdown(std::net::Shutdown::Both);
    });
    let _ = std::io::copy(&mut client, &mut server);
    let _ = server.shutdown(std::net::Shutdown::Both);
}

#[test]
fn a_usdm_stream_on_the_retired_root_path_is_found_silent_within_30_s() {
    // Markets without an end: nothing but the root path silences a stream.
    let sim = two_markets(None);
    let usdm = sim.usdm.as_ref().unwrap();
    let relay = retired_root_relay(usdm.addr);
    let (topic, usdm_topic) = (unique_topic("retired_spot"), unique_topic("retired_usdm"));
    let relay_url = format!("ws://{relay}");
    let usdm_rest = usdm.rest_url();
    let ing = start(
        &sim,
        &topic,
        &[
            ("SYMBOLS", "btcusdt"),
            ("USDM_SYMBOLS", "btcusdt"),
            // The mark price comes every second: its silence is unmistakable. The book ticker is
            // routed to `/public`, which the root still serves.
            ("USDM_STREAMS", "markPrice@1s,bookTicker"),
            ("USDM_WS_URL", relay_url.as_str()),
            ("USDM_REST_URL", usdm_rest.as_str()),
            ("USDM_KAFKA_TOPIC", usdm_topic.as_str()),
        ],
    );
    // Subscribed on the root, so ready: only the per-stream watch can tell.
    let t = Instant::now();
    let resubscribed = "marketflow_ingestor_stream_stale_total{action=\"resubscribe\",market=\"usdm\"}";
    while ing.metric(resubscribed) < 1.0 {
        assert!(t.elapsed() < Duration::from_secs(90), "the silent stream was never found:\n{}", ing.dump_logs());
        std::thread::sleep(Duration::from_millis(200));
    }
    let msgs = consume(&usdm_topic, 1, Duration::from_secs(60), Duration::from_secs(2));
    let stale: Vec<&serde_json::Value> = msgs.iter().filter(|m| is_stale(m)).map(|m| &m.payload).collect();
    let first = stale.first().unwrap_or_else(|| panic!("no stale record on {usdm_topic}: {msgs:?}"));
    assert_eq!((&first["exchange"], &first["symbol"]), (&"binance-usdm".into(), &"BTCUSDT".into()), "{first}");
    assert_eq!(first["stream"], "markPrice@1s", "{first}");
    assert_eq!(first["action"], "resubscribe", "{first}");
    let silent = first["silent_ms"].as_u64().unwrap();
    assert!(silent < 30_000, "found after {silent} ms of silence: {first}");
    // The book ticker flowed on the same connection all along; spot never noticed anything.
    assert!(msgs.iter().any(|m| m.payload["type"] == "book_ticker"), "the root still serves /public streams");
    assert_eq!(ing.metric("marketflow_ingestor_stream_stale_total{action=\"resubscribe\"}"), 0.0);
}
