//! An arrival process on the wire (`SimConfig::arrival`): segments go out whole (a write carries
//! one or more, never a part of one), every trade once and in order, with the time REST and
//! `expected_trade` give it.

mod common;

use std::sync::atomic::Ordering;

use binance_sim::{Market, SimConfig};
use common::*;

#[test]
fn poisson_segments_go_out_whole_in_order_at_their_times() {
    let sim =
        sim(SimConfig { trade_rate: 3_000.0, arrival: Some("poisson:5".parse().unwrap()), ..SimConfig::default() });
    let names = ["btcusdt", "ethusdt", "solusdt"];
    let mut c = connect(&sim, "/stream?streams=btcusdt@trade/ethusdt@trade/solusdt@trade");
    let mut next: [Option<u64>; 3] = [None; 3];
    for _ in 0..600 {
        let v = c.next().expect("a trade");
        let sym = names.iter().position(|s| stream(&v) == format!("{s}@trade")).expect("one of ours");
        let k = (v["data"]["t"].as_i64().unwrap() - Market::trade_id_base(sym)) as u64;
        if let Some(want) = next[sym] {
            assert_eq!(k, want, "{}: every trade once, in order", names[sym]);
        }
        next[sym] = Some(k + 1);
        assert_eq!(v["data"]["T"].as_i64(), Some(sim.market.expected_trade(sym, k).trade_time_ms), "{v}");
    }
    // Writes first: a connection counts a write's messages before the write itself.
    let writes = sim.market.data_writes.load(Ordering::SeqCst);
    let sent = sim.market.sent.load(Ordering::SeqCst);
    assert!(writes > 0 && sent >= 5 * writes, "{sent} messages in {writes} writes: a segment was split");
}
