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
