//! The seed corpus: every fixture file (as is and compacted), the raw payloads wrapped as
//! combined frames, the documented error replies, and the simulator's rendering of every stream
//! kind for several symbols (one of them non-ASCII). Deterministic: same seeds on every run.

use std::path::{Path, PathBuf};

use binance_sim::{Market, SimConfig};
use marketflow_ingestor::binance::stream::{StreamKind, KLINE_INTERVALS};

/// The repository root (this file is compiled from the ingester's tests and from fuzz/).
pub fn repo_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    if here.join("tests/fixtures").is_dir() {
        here.to_path_buf()
    } else {
        here.parent().expect("fuzz/ has a parent").to_path_buf()
    }
}

/// Symbols of the simulator seeds; lower case as in stream names.
pub const SIM_SYMBOLS: [&str; 3] = ["btcusdt", "ethusdt", "币安人生usdt"];

/// Every symbol the seeds use (fixtures and simulator), as the pipeline target configures them.
pub const ALL_SYMBOLS: [&str; 5] = ["bnbbtc", "bnbusdt", "btcusdt", "ethusdt", "币安人生usdt"];

/// Every stream kind the ingester subscribes to.
pub fn all_kinds() -> Vec<StreamKind> {
    let mut kinds = vec![StreamKind::Trade, StreamKind::AggTrade, StreamKind::BookTicker, StreamKind::Depth];
    kinds.push(StreamKind::Depth100ms);
    kinds.extend((0..KLINE_INTERVALS.len()).map(|i| StreamKind::Kline(i as u8)));
    kinds
}

/// Removes insignificant whitespace (outside strings); the input need not be valid JSON.
pub fn compact(json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len());
    let mut in_str = false;
    let mut escaped = false;
    for &b in json {
        if in_str {
            out.push(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_str = false;
            }
        } else if b == b'"' {
            in_str = true;
            out.push(b);
        } else if !matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
            out.push(b);
        }
    }
    out
}

/// Replaces every run of exactly 13 digits (millisecond timestamps) by a fixed one: the simulator
/// stamps events with the wall clock, and seeds must not depend on when the run started.
fn pin_timestamps(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() {
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            out.push_str(if i - start == 13 { "1672515782136" } else { &s[start..i] });
        } else {
            let ch = s[i..].chars().next().expect("in bounds");
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// Wraps a raw payload as a combined-stream frame.
pub fn combined(stream: &str, data: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(data.len() + stream.len() + 24);
    f.extend_from_slice(b"{\"stream\":\"");
    f.extend_from_slice(stream.as_bytes());
    f.extend_from_slice(b"\",\"data\":");
    f.extend_from_slice(data);
    f.push(b'}');
    f
}

/// The simulator's payloads, wrapped as combined frames: every kind, every symbol, two events each.
pub fn sim_frames() -> Vec<Vec<u8>> {
    let market =
        Market::new(SimConfig { symbols: SIM_SYMBOLS.iter().map(|s| s.to_string()).collect(), ..SimConfig::default() });
    let mut out = Vec::new();
    for kind in all_kinds() {
        // The simulator reads stream names itself: the ingester's name for each kind must be one
        // it serves.
        let sim_kind: binance_sim::StreamKind =
            kind.to_string().parse().unwrap_or_else(|e| panic!("the simulator does not serve {kind}: {e}"));
        for (sym, name) in SIM_SYMBOLS.iter().enumerate() {
            for k in 0..2 {
                let mut payload = String::new();
                market.render(sim_kind, sym, k, &mut payload);
                out.push(combined(&kind.stream_name(name), pin_timestamps(&payload).as_bytes()));
            }
        }
    }
    out
}

/// The simulator's USD-M payloads, wrapped as combined frames: every USD-M kind, every symbol,
/// two events each.
pub fn usdm_sim_frames() -> Vec<Vec<u8>> {
    let symbols = SIM_SYMBOLS.iter().map(|s| s.to_string()).collect();
    let market = Market::usdm(SimConfig { symbols, aux_rate: 50.0, ..SimConfig::usdm_market() });
    let mut out = Vec::new();
    for kind in binance_sim::usdm_kinds() {
        for (sym, name) in SIM_SYMBOLS.iter().enumerate() {
            for k in 0..2 {
                let mut payload = String::new();
                market.render(kind, sym, k, &mut payload);
                out.push(combined(&format!("{name}@{kind}"), pin_timestamps(&payload).as_bytes()));
            }
        }
    }
    out
}

/// The whole seed corpus, deduplicated, in a fixed order.
pub fn seeds() -> Vec<Vec<u8>> {
    let fixtures = repo_root().join("tests/fixtures");
    let mut files = Vec::new();
    files_under(&fixtures, &mut files);
    files.sort();
    assert!(files.len() >= 20, "fixtures not found under {}", fixtures.display());
    let mut out: Vec<Vec<u8>> = Vec::new();
    for path in &files {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let rel = path.strip_prefix(&fixtures).expect("under fixtures").to_string_lossy().replace('\\', "/");
        let compacted = compact(&bytes);
        // Raw payloads: also as the combined frame they would arrive in.
        if let Some(stem) = rel.strip_prefix("raw/").and_then(|r| r.strip_suffix(".json")) {
            let v: serde_json::Value = serde_json::from_slice(&bytes).expect("raw fixtures are JSON");
            if stem == "serverShutdown" {
                out.push(combined("!serverShutdown", &compacted));
            } else {
                let sym = v["s"].as_str().expect("raw payloads carry a symbol").to_lowercase();
                out.push(combined(&format!("{sym}@{stem}"), &compacted));
                if stem == "depth" {
                    out.push(combined(&format!("{sym}@depth@100ms"), &compacted));
                }
            }
        }
        // USD-M payloads: as the combined frame they would arrive in.
        if let Some(stem) = rel.strip_prefix("usdm/").and_then(|r| r.strip_suffix(".json")) {
            let v: serde_json::Value = serde_json::from_slice(&bytes).expect("USD-M fixtures are JSON");
            if let Some(sym) = v["s"].as_str().or(v["o"]["s"].as_str()) {
                let suffix = if stem == "trade_undocumented_observed" { "trade" } else { stem };
                out.push(combined(&format!("{}@{suffix}", sym.to_lowercase()), &compacted));
            }
        }
        // Documented error replies: every template with its placeholders filled in.
        if rel == "control/error_messages.json" {
            let v: serde_json::Value = serde_json::from_slice(&bytes).expect("error templates are JSON");
            for t in v.as_array().expect("an array") {
                if let Some(m) = t["message_template"].as_str() {
                    out.push(m.replace("%s", "7").into_bytes());
                }
            }
        }
        out.push(bytes);
        out.push(compacted);
    }
    out.extend(sim_frames());
    out.extend(usdm_sim_frames());
    // Shapes the fixtures do not show: ids that are strings or floats, an empty result.
    for extra in [
        &br#"{"result":null,"id":"abc"}"#[..],
        br#"{"result":[],"id":9223372036854775807}"#,
        br#"{"code":0,"msg":""}"#,
        br#"{"stream":"!serverShutdown","data":{"e":"serverShutdown","E":1}}"#,
    ] {
        out.push(extra.to_vec());
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|s| seen.insert(s.clone()));
    out
}
