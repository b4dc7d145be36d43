//! The payload target's inputs: a stream name for a payload (right, wrong or mangled), and the
//! `data` member of a combined frame.

use rand::rngs::SmallRng;
use rand::RngExt;

use super::seeds;

/// Stream names for the payload target: mostly the right one for the payload, often a wrong
/// kind or symbol, sometimes mangled.
pub(crate) fn stream_for(rng: &mut SmallRng, data: &str) -> String {
    const SUFFIXES: &[&str] = &[
        "trade",
        "aggTrade",
        "bookTicker",
        "depth",
        "depth@100ms",
        "kline_1m",
        "kline_1M",
        "kline_1s",
        "kline_1w",
        "kline_12h",
        "kline_2m",
        "kline_",
        "Trade",
        "TRADE",
        "depth5",
        "depth@1000ms",
        "miniTicker",
        "",
        "trade@",
        "kline_1m\0",
        "depth@100ms@x",
    ];
    if rng.random_ratio(1, 16) {
        return "!serverShutdown".into();
    }
    // The payload's own symbol (and kind) make a matching stream likely.
    let own_symbol = data.find("\"s\":\"").and_then(|i| {
        let rest = &data[i + 5..];
        rest.find('"').map(|j| rest[..j].to_string())
    });
    let own_kind = data.find("\"e\":\"").and_then(|i| {
        let rest = &data[i + 5..];
        rest.find('"').map(|j| match &rest[..j] {
            "trade" => "trade",
            "aggTrade" => "aggTrade",
            "depthUpdate" => "depth",
            _ => "kline_1m",
        })
    });
    let symbol = match (rng.random_range(0..8), own_symbol) {
        (0..=5, Some(s)) => s.to_ascii_lowercase(),
        (6, Some(s)) => s,
        _ => seeds::ALL_SYMBOLS[rng.random_range(0..seeds::ALL_SYMBOLS.len())].to_string(),
    };
    let interval = data.find("\"i\":\"").and_then(|i| {
        let rest = &data[i + 5..];
        rest.find('"').map(|j| format!("kline_{}", &rest[..j]))
    });
    let suffix = match (rng.random_range(0..4), own_kind, interval) {
        (0, Some("kline_1m"), Some(iv)) => iv,
        (0 | 1, Some(k), _) => k.to_string(),
        _ => SUFFIXES[rng.random_range(0..SUFFIXES.len())].to_string(),
    };
    let mut s = format!("{symbol}@{suffix}");
    if rng.random_ratio(1, 8) {
        // Mangle: a byte dropped, doubled or replaced.
        let mut b = s.into_bytes();
        let i = rng.random_range(0..b.len());
        match rng.random_range(0..3) {
            0 => {
                b.remove(i);
            }
            1 => b.insert(i, b[i]),
            _ => b[i] = [b'@', b'_', b'A', 0, 0xc3][rng.random_range(0..5)],
        }
        s = String::from_utf8_lossy(&b).into_owned();
    }
    s
}

/// The `data` member of a combined frame, roughly (the input is mutated: no JSON parse).
pub(crate) fn data_of(frame: &str) -> &str {
    match frame.find("\"data\":") {
        Some(i) => {
            let rest = &frame[i + 7..];
            rest.rfind('}').map_or(rest, |j| &rest[..j])
        }
        None => frame,
    }
}
