//! Which transport a lane streams with, decided once at start: the venue's text streams, or its
//! binary transport (Binance's SBE) when `TRANSPORT` asks for it and everything it needs is
//! there: the venue has one, an API key was given, and REST gave every symbol's decimal scale.
//! Otherwise the lane streams text and says so three ways: a log line (with the details), the
//! `transport_info{requested,used,reason}` gauge, and a `transport=` line of `/readyz`.

use prometheus::{IntGaugeVec, Opts};
use tracing::{info, warn};

use crate::config::{Config, Transport};
use crate::metrics::Metrics;
use crate::venue::{Binary, Scale, Venue};

/// The binary transport a lane uses, and each symbol's scale (in `SYMBOLS`' order).
pub struct BinaryPlan {
    pub binary: &'static Binary,
    pub scales: Vec<Scale>,
}

/// Why a lane that asked for its binary transport streams text (the gauge's `reason`, and
/// `/readyz`'s). Static words: the details, which may quote a REST body, go to the log only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fallback {
    /// The venue has no binary transport (USD-M).
    NoBinary,
    /// `SBE_API_KEY_FILE` is not set.
    NoApiKey,
    /// REST's `exchangeInfo` failed, or lacked a symbol's scale.
    NoScales,
}

impl Fallback {
    pub fn as_str(self) -> &'static str {
        match self {
            Fallback::NoBinary => "no_binary_transport",
            Fallback::NoApiKey => "no_api_key",
            Fallback::NoScales => "no_scales",
        }
    }
}

/// Decides the lane's transport. `fetch` is one REST GET (the backfill's client; a parameter so
/// that tests need no server). `Some`: stream with the binary transport.
pub fn choose(
    cfg: &Config,
    venue: &Venue,
    metrics: &Metrics,
    fetch: impl FnOnce(&crate::venue::rest::Call) -> Result<String, String>,
) -> Option<BinaryPlan> {
    if cfg.transport == Transport::Json {
        report(metrics, "json", "json", None);
        return None;
    }
    let requested = cfg.transport.as_str();
    let plan = plan(cfg, venue, fetch);
    match &plan {
        Ok(p) => {
            info!(transport = p.binary.name, symbols = p.scales.len(), "streaming with the binary transport");
            report(metrics, requested, p.binary.name, None);
        }
        Err((why, detail)) => {
            warn!(requested, reason = why.as_str(), "{requested} transport unavailable ({detail}): streaming JSON");
            report(metrics, requested, "json", Some(*why));
        }
    }
    plan.ok()
}

fn plan(
    cfg: &Config,
    venue: &Venue,
    fetch: impl FnOnce(&crate::venue::rest::Call) -> Result<String, String>,
) -> Result<BinaryPlan, (Fallback, String)> {
    let binary = venue.binary.ok_or((Fallback::NoBinary, format!("{} has none", venue.exchange)))?;
    if cfg.sbe_api_key.is_empty() {
        return Err((Fallback::NoApiKey, "SBE_API_KEY_FILE is not set".into()));
    }
    let body = fetch(&(binary.scales_call)(&cfg.symbols))
        .map_err(|e| (Fallback::NoScales, format!("exchangeInfo failed: {e}")))?;
    let scales = (binary.parse_scales)(&body, &cfg.symbols).map_err(|e| (Fallback::NoScales, e))?;
    Ok(BinaryPlan { binary, scales })
}

/// The gauge, and the `/readyz` line when another transport than JSON was asked for (a JSON
/// lane's body stays the seed's).
fn report(metrics: &Metrics, requested: &str, used: &str, fallback: Option<Fallback>) {
    let reason = fallback.map_or("", Fallback::as_str);
    let gauge = IntGaugeVec::new(
        Opts::new(
            format!("{}_transport_info", crate::metrics::NAMESPACE),
            "The transport market data streams with (1), as requested, and why not",
        ),
        &["requested", "used", "reason"],
    );
    // Registered once per lane, at start; a second call (none today) keeps the first.
    if let Ok(g) = gauge {
        if metrics.registry.register(Box::new(g.clone())).is_ok() {
            g.with_label_values(&[requested, used, reason]).set(1);
        }
    }
    if requested == "json" {
        return;
    }
    let note = match fallback {
        Some(f) => format!("{used} ({requested} unavailable: {})", f.as_str()),
        None => used.to_string(),
    };
    let _ = metrics.health.transport.set(note);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{RawConfig, Secret};

    fn cfg(transport: Transport, key: &str) -> Config {
        let mut c = RawConfig::from_pairs(&[("SYMBOLS", "btcusdt")]).validate_with_memory_limit(None).unwrap();
        c.transport = transport;
        c.sbe_api_key = Secret::new(key);
        c
    }

    const INFO: &str = r#"{"symbols":[{"symbol":"BTCUSDT","filters":[{"filterType":"PRICE_FILTER","tickSize":"0.01000000"},{"filterType":"LOT_SIZE","stepSize":"0.00001000"}]}]}"#;

    /// What `choose` decided, and what the gauge and `/readyz` say.
    fn decide(c: &Config, fetch: Result<&str, &str>) -> (Option<Vec<Scale>>, String, Option<String>) {
        let m = Metrics::new(&c.symbols);
        let plan = choose(c, &crate::binance::venue::VENUE, &m, |call| {
            assert!(call.path.starts_with("/api/v3/exchangeInfo?symbols="), "{}", call.path);
            fetch.map(str::to_string).map_err(str::to_string)
        });
        let gauge = m.render().lines().find(|l| l.contains("transport_info{")).unwrap_or_default().to_string();
        (plan.map(|p| p.scales), gauge, m.health.transport.get().cloned())
    }

    #[test]
    fn sbe_is_used_with_a_key_and_every_scale_and_json_otherwise_saying_why() {
        let (plan, gauge, note) = decide(&cfg(Transport::Sbe, "k"), Ok(INFO));
        assert_eq!(plan, Some(vec![Scale { price: 8, qty: 8 }]));
        assert!(gauge.ends_with(r#"transport_info{reason="",requested="sbe",used="sbe"} 1"#), "{gauge}");
        assert_eq!(note.as_deref(), Some("sbe"));

        for (key, fetch, reason) in [
            ("", Ok(INFO), "no_api_key"),
            ("k", Err("HTTP 503"), "no_scales"),
            ("k", Ok(r#"{"symbols":[{"symbol":"BTCUSDT","filters":[]}]}"#), "no_scales"),
        ] {
            let (plan, gauge, note) = decide(&cfg(Transport::Sbe, key), fetch);
            assert!(plan.is_none(), "{reason}");
            assert!(gauge.ends_with(&format!(r#"{{reason="{reason}",requested="sbe",used="json"}} 1"#)), "{gauge}");
            assert_eq!(note, Some(format!("json (sbe unavailable: {reason})")));
        }

        // JSON asked for: JSON, and /readyz says nothing of it (the seed's body).
        let (plan, gauge, note) = decide(&cfg(Transport::Json, "k"), Err("not called"));
        assert!(plan.is_none() && note.is_none());
        assert!(gauge.ends_with(r#"transport_info{reason="",requested="json",used="json"} 1"#), "{gauge}");
        // USD-M has no binary transport.
        let m = Metrics::new(&["btcusdt".to_string()]);
        let usdm = &crate::binance::usdm::venue::VENUE;
        assert!(choose(&cfg(Transport::Sbe, "k"), usdm, &m, |_| Ok(INFO.into())).is_none());
        assert_eq!(m.health.transport.get().map(String::as_str), Some("json (sbe unavailable: no_binary_transport)"));
    }
}
