//! Which transport a lane streams with: the venue's text streams, or its binary transport
//! (Binance's SBE) when `TRANSPORT` asks for it and everything it needs is there: the venue has
//! one, an API key was given, and REST gave every symbol's decimal scale. Decided at start
//! ([`choose`]) and changed while running (`policy.rs`: repeated failures, a refused key, scales
//! that arrive late, a retry after a fallback; the event loop switches, `event_loop/switch.rs`).
//! Each decision is said three ways: a log line (with the details), the
//! `transport_info{requested,used,reason}` gauge, and a `transport=` line of `/readyz`.
//!
//! Kinds the binary transport has no stream for (SBE: aggTrade, kline_*, ...) stream text beside
//! it, by design: `transport_info` keeps describing the streams that may use the binary
//! transport (so `used="json"` still means a fallback, and an alert on it does not fire for
//! them), `/readyz` names those kinds (`transport=sbe (aggTrade on json: no sbe stream)`), and
//! `transport_streams{transport}` counts the streams each transport carries now.

mod policy;
pub mod scales;

use std::sync::Arc;

use prometheus::{IntGaugeVec, Opts};
use tracing::{info, warn};

use crate::config::{Config, Transport};
use crate::health::Health;
use crate::metrics::Metrics;
use crate::stream::StreamKind;
use crate::venue::{Binary, Scale, Venue};
pub use policy::{Mode, Policy, Seen, Switch};

/// Why a lane that asked for its binary transport streams text (the gauge's `reason`, and
/// `/readyz`'s). Static words: the details, which may quote a REST body, go to the log only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fallback {
    /// The venue has no binary transport (USD-M).
    NoBinary,
    /// `SBE_API_KEY_FILE` is not set.
    NoApiKey,
    /// REST's `exchangeInfo` failed, or lacked a symbol's scale (fetched again until it comes).
    NoScales,
    /// An upgrade was answered 401: the venue refused the API key.
    KeyRefused,
    /// `SBE_MAX_FAILURES` attempts in a row failed.
    SbeFailures,
    /// None of the kinds asked for has a stream on the binary transport (`STREAMS=aggTrade`):
    /// every stream is text by design, and neither key nor scales are needed.
    NoBinaryStreams,
}

impl Fallback {
    pub fn as_str(self) -> &'static str {
        match self {
            Fallback::NoBinary => "no_binary_transport",
            Fallback::NoApiKey => "no_api_key",
            Fallback::NoScales => "no_scales",
            Fallback::KeyRefused => "key_refused",
            Fallback::SbeFailures => "sbe_failures",
            Fallback::NoBinaryStreams => "no_binary_streams",
        }
    }
}

/// What a lane may stream with, decided at start.
pub struct Decision {
    /// The binary transport the lane may switch to and from (asked for, the venue has one, a key
    /// is there); `None`: text for good.
    pub binary: Option<&'static Binary>,
    /// Every symbol's scale (in `SYMBOLS`' order), when REST gave them at start.
    pub scales: Option<Vec<Scale>>,
    /// Where the transport in use is said.
    pub status: Status,
}

/// Decides the lane's transport at start. `fetch` is one REST GET (the backfill's client; a
/// parameter so that tests need no server).
pub fn choose(
    cfg: &Config,
    venue: &Venue,
    metrics: &Metrics,
    fetch: impl FnOnce(&crate::venue::rest::Call) -> Result<String, String>,
) -> Decision {
    let mut status = Status::new(metrics, cfg.transport.as_str());
    let mut nothing_binary = false;
    if let (Transport::Sbe, Some(b)) = (cfg.transport, venue.binary) {
        let (on_binary, on_text) = split_kinds(&cfg.streams, b, venue);
        nothing_binary = on_binary.is_empty();
        if !on_text.is_empty() && !nothing_binary {
            info!(
                binary = %on_binary.join(","),
                text = %on_text.join(","),
                "kinds {} has no stream for go over JSON connections beside it",
                b.name
            );
        }
        status.text_by_design = on_text.join(",");
    }
    if cfg.transport == Transport::Json {
        status.report("json", None);
        return Decision { binary: None, scales: None, status };
    }
    let binary = match (venue.binary, cfg.sbe_api_key.is_empty()) {
        (None, _) => Err((Fallback::NoBinary, format!("{} has none", venue.exchange))),
        (Some(b), _) if nothing_binary => {
            Err((Fallback::NoBinaryStreams, format!("{} has no stream of any kind in STREAMS", b.name)))
        }
        (Some(_), true) => Err((Fallback::NoApiKey, "SBE_API_KEY_FILE is not set".to_string())),
        (Some(b), false) => Ok(b),
    };
    let binary = match binary {
        Ok(b) => b,
        Err((why, detail)) => {
            status.fallback(why, &detail);
            // Text for good: every stream on JSON.
            status.streams(0, cfg.symbols.len() * cfg.streams.len());
            return Decision { binary: None, scales: None, status };
        }
    };
    let scales = fetch(&(binary.scales_call)(&cfg.symbols))
        .map_err(|e| format!("exchangeInfo failed: {e}"))
        .and_then(|body| (binary.parse_scales)(&body, &cfg.symbols));
    match scales {
        Ok(scales) => {
            info!(transport = binary.name, symbols = scales.len(), "streaming with the binary transport");
            status.report(binary.name, None);
            Decision { binary: Some(binary), scales: Some(scales), status }
        }
        Err(detail) => {
            status.fallback(Fallback::NoScales, &format!("{detail}; asking again"));
            Decision { binary: Some(binary), scales: None, status }
        }
    }
}

/// The venue's names of the `kinds` `binary` carries, and of those it has no stream for.
pub fn split_kinds(kinds: &[StreamKind], binary: &Binary, venue: &Venue) -> (Vec<String>, Vec<String>) {
    let (on_binary, on_text): (Vec<StreamKind>, Vec<StreamKind>) =
        kinds.iter().partition(|&&k| (binary.carried)(k).is_some());
    let names = |ks: Vec<StreamKind>| ks.into_iter().map(venue.kind_name).collect();
    (names(on_binary), names(on_text))
}

/// Says which transport a lane streams with: the gauge, and the `/readyz` line when another
/// transport than JSON was asked for (a JSON lane's body stays the seed's).
pub struct Status {
    requested: &'static str,
    gauge: Option<IntGaugeVec>,
    /// Streams per transport now (`transport_streams{transport}`), set by the event loop.
    streams: Option<IntGaugeVec>,
    /// The kinds streaming text because the binary transport has none of them (`aggTrade`),
    /// comma-separated; empty when it carries every kind asked for.
    text_by_design: String,
    health: Arc<Health>,
}

impl Status {
    fn new(metrics: &Metrics, requested: &'static str) -> Status {
        let gauge = IntGaugeVec::new(
            Opts::new(
                format!("{}_transport_info", crate::metrics::NAMESPACE),
                "The transport market data streams with (1), as requested, and why not",
            ),
            &["requested", "used", "reason"],
        );
        // Registered once per lane, at start.
        let gauge = gauge.ok().filter(|g| metrics.registry.register(Box::new(g.clone())).is_ok());
        let streams = IntGaugeVec::new(
            Opts::new(
                format!("{}_transport_streams", crate::metrics::NAMESPACE),
                "Streams carried now by connections of each transport (a lane that may switch)",
            ),
            &["transport"],
        );
        let streams = streams.ok().filter(|g| metrics.registry.register(Box::new(g.clone())).is_ok());
        let health = metrics.health.clone();
        Status { requested, gauge, streams, text_by_design: String::new(), health }
    }

    /// `binary` streams ride connections of the binary transport now, `text` JSON ones.
    pub fn streams(&self, binary: usize, text: usize) {
        if let Some(g) = &self.streams {
            g.with_label_values(&[self.requested]).set(binary as i64);
            g.with_label_values(&["json"]).set(text as i64);
        }
    }

    /// The lane streams text because of `why` (`detail` goes to the log only).
    pub fn fallback(&self, why: Fallback, detail: &str) {
        let requested = self.requested;
        warn!(requested, reason = why.as_str(), "{requested} transport unavailable ({detail}): streaming JSON");
        self.report("json", Some(why));
    }

    /// The lane streams with `used`: one series of the gauge at 1 (the last decision's).
    pub fn report(&self, used: &str, fallback: Option<Fallback>) {
        let (requested, reason) = (self.requested, fallback.map_or("", Fallback::as_str));
        if let Some(g) = &self.gauge {
            g.reset();
            g.with_label_values(&[requested, used, reason]).set(1);
        }
        if requested == "json" {
            return;
        }
        self.health.transport.set(match fallback {
            Some(f) => format!("{used} ({requested} unavailable: {})", f.as_str()),
            None if self.text_by_design.is_empty() || used == "json" => used.to_string(),
            None => format!("{used} ({} on json: no {used} stream)", self.text_by_design),
        });
    }
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
        let d = choose(c, &crate::binance::venue::VENUE, &m, |call| {
            assert!(call.path.starts_with("/api/v3/exchangeInfo?symbols="), "{}", call.path);
            fetch.map(str::to_string).map_err(str::to_string)
        });
        assert_eq!(d.binary.is_some(), c.transport == Transport::Sbe && !c.sbe_api_key.is_empty());
        let gauge = m.render().lines().find(|l| l.contains("transport_info{")).unwrap_or_default().to_string();
        (d.scales, gauge, m.health.transport.get())
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
        let d = choose(&cfg(Transport::Sbe, "k"), usdm, &m, |_| Ok(INFO.into()));
        assert!(d.binary.is_none() && d.scales.is_none());
        assert_eq!(m.health.transport.get().as_deref(), Some("json (sbe unavailable: no_binary_transport)"));
    }

    #[test]
    fn kinds_sbe_lacks_are_named_in_readyz_and_never_make_transport_info_say_json() {
        let mut c = cfg(Transport::Sbe, "k");
        c.streams = vec![StreamKind::Trade, StreamKind::AggTrade, StreamKind::Kline(0)];
        let m = Metrics::new(&c.symbols);
        let d = choose(&c, &crate::binance::venue::VENUE, &m, |_| Ok(INFO.into()));
        let gauge = m.render().lines().find(|l| l.contains("transport_info{")).unwrap_or_default().to_string();
        assert!(gauge.ends_with(r#"{reason="",requested="sbe",used="sbe"} 1"#), "{gauge}");
        assert_eq!(m.health.transport.get().as_deref(), Some("sbe (aggTrade,kline_1s on json: no sbe stream)"));
        // A fallback says the fallback: every kind is on JSON then.
        d.status.fallback(Fallback::KeyRefused, "HTTP 401");
        assert_eq!(m.health.transport.get().as_deref(), Some("json (sbe unavailable: key_refused)"));
        // Without a key, text for good: every stream counted on JSON.
        c.sbe_api_key = Secret::new("");
        let m = Metrics::new(&c.symbols);
        choose(&c, &crate::binance::venue::VENUE, &m, |_| unreachable!("no key: no REST call"));
        assert!(m.render().contains(r#"transport_streams{transport="json"} 3"#), "{}", m.render());
    }

    #[test]
    fn sbe_asked_for_kinds_it_has_no_stream_for_only_says_json_for_good_and_needs_no_key_nor_scales() {
        let mut c = cfg(Transport::Sbe, "");
        c.streams = vec![StreamKind::AggTrade, StreamKind::Kline(0)];
        let m = Metrics::new(&c.symbols);
        let d = choose(&c, &crate::binance::venue::VENUE, &m, |_| unreachable!("no SBE stream: no REST call"));
        assert!(d.binary.is_none() && d.scales.is_none());
        let text = m.render();
        assert!(text.contains(r#"transport_info{reason="no_binary_streams",requested="sbe",used="json"} 1"#), "{text}");
        assert!(text.contains(r#"transport_streams{transport="json"} 2"#), "{text}");
        assert_eq!(m.health.transport.get().as_deref(), Some("json (sbe unavailable: no_binary_streams)"));
    }

    #[test]
    fn a_switch_leaves_one_series_of_the_gauge_and_says_so_in_readyz() {
        let c = cfg(Transport::Sbe, "k");
        let m = Metrics::new(&c.symbols);
        let d = choose(&c, &crate::binance::venue::VENUE, &m, |_| Ok(INFO.into()));
        d.status.fallback(Fallback::KeyRefused, "HTTP 401");
        let gauges: Vec<String> =
            m.render().lines().filter(|l| l.contains("transport_info{")).map(String::from).collect();
        assert_eq!(gauges.len(), 1, "{gauges:?}");
        assert!(gauges[0].ends_with(r#"{reason="key_refused",requested="sbe",used="json"} 1"#), "{gauges:?}");
        assert_eq!(m.health.transport.get().as_deref(), Some("json (sbe unavailable: key_refused)"));
        d.status.report("sbe", None);
        assert_eq!(m.health.transport.get().as_deref(), Some("sbe"));
        assert_eq!(Fallback::SbeFailures.as_str(), "sbe_failures");
    }
}
