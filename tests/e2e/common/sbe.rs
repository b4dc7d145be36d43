//! `TRANSPORT=sbe` lanes for the end-to-end tests: a simulated market whose SBE endpoint admits
//! one API key, the key in a file, the settings, and an ingester started on SBE.

use std::time::Duration;

use binance_sim::{SimConfig, SimHandle};

use super::{start, Ingester};

/// A market of `trade_rate` trades a second over its symbols for `secs` seconds whose SBE
/// endpoint admits only `key` (the rest of [`SimConfig::default`]).
pub fn sbe_market(key: &str, trade_rate: f64, secs: u64) -> SimConfig {
    SimConfig {
        trade_rate,
        duration: Some(Duration::from_secs(secs)),
        sbe_api_key: Some(key.into()),
        ..SimConfig::default()
    }
}

/// A file holding `key`, for `SBE_API_KEY_FILE`, named `name` in this process's folder.
pub fn key_file(name: &str, key: &str) -> String {
    let dir = std::env::temp_dir().join(format!("mf-e2e-sbe-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, key).unwrap();
    path.to_str().unwrap().to_string()
}

/// The settings of a lane asking for SBE at `url` with the key in `key_file`, then `extra` (a
/// later entry wins).
pub fn sbe_env<'a>(url: &'a str, key_file: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![("TRANSPORT", "sbe"), ("SBE_API_KEY_FILE", key_file), ("BINANCE_SBE_URL", url)];
    env.extend_from_slice(extra);
    env
}

/// An ingester on `sim`'s SBE endpoint (which admits `key`) publishing to `topic`, with `extra`
/// settings on top, once ready and streaming SBE (its `transport_info` says so).
pub fn start_sbe(sim: &SimHandle, key: &str, topic: &str, extra: &[(&str, &str)]) -> Ingester {
    let (url, key) = (sim.sbe_url(), key_file(&format!("key-{topic}"), key));
    let ing = start(sim, topic, &sbe_env(&url, &key, extra));
    let used = "marketflow_ingestor_transport_info{reason=\"\",requested=\"sbe\",used=\"sbe\"}";
    assert_eq!(ing.metric(used), 1.0, "{}", ing.dump_logs());
    ing
}
