//! One Prometheus text exposition from several registries: each market's (see
//! [`Metrics::for_market`](crate::metrics::Metrics::for_market)) and the server's own. A scrape
//! must carry each family once, its `# HELP` and `# TYPE` once and all its series together
//! (promtool refuses a family split in two), so families of the same name are merged before
//! encoding, then written in name order as one registry's gather is.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;

use prometheus::proto::MetricFamily;
use prometheus::{Encoder as _, Registry, TextEncoder};
use tracing::warn;

/// The families of every registry, those of one name merged.
pub fn gather(registries: &[&Registry]) -> Vec<MetricFamily> {
    let mut by_name: BTreeMap<String, MetricFamily> = BTreeMap::new();
    for r in registries {
        for mut family in r.gather() {
            match by_name.entry(family.name().to_string()) {
                Entry::Vacant(e) => {
                    e.insert(family);
                }
                // One code path makes every market's metrics, so a name has one type; were it
                // ever not so, the second family is left out (and said) rather than written
                // under the first's TYPE.
                Entry::Occupied(mut e) if e.get().get_field_type() == family.get_field_type() => {
                    e.get_mut().mut_metric().extend(family.take_metric());
                }
                Entry::Occupied(e) => warn!(family = e.key(), "metric family of two types: the second left out"),
            }
        }
    }
    by_name.into_values().collect()
}

/// The text exposition of every registry, families merged.
pub fn render(registries: &[&Registry]) -> String {
    let mut buf = Vec::new();
    // Encoding into a Vec fails only on a family without metrics or of an unknown type; gather
    // never returns one.
    if let Err(e) = TextEncoder::new().encode(&gather(registries), &mut buf) {
        warn!("metrics encoding: {e}");
    }
    String::from_utf8(buf).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::{IntCounterVec, Opts};

    fn registry(market: Option<&str>, sent: u64) -> Registry {
        let r = match market {
            Some(m) => Registry::new_custom(None, Some([("market".to_string(), m.to_string())].into())).unwrap(),
            None => Registry::new(),
        };
        let v = IntCounterVec::new(Opts::new("x_sent_total", "Records sent"), &["symbol"]).unwrap();
        r.register(Box::new(v.clone())).unwrap();
        v.with_label_values(&["btcusdt"]).inc_by(sent);
        r
    }

    /// The lines of a well-formed exposition: every family's HELP and TYPE once, before its
    /// samples, and its samples contiguous (what `promtool check metrics` holds a scrape to).
    fn check_shape(text: &str) {
        let mut seen: Vec<String> = Vec::new();
        let mut current = String::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap().to_string();
                assert!(!seen.contains(&name), "{name} described twice:\n{text}");
                seen.push(name.clone());
                current = name;
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                assert_eq!(rest.split(' ').next().unwrap(), current, "TYPE after its HELP:\n{text}");
            } else {
                let name = line.split(['{', ' ']).next().unwrap();
                assert!(name.starts_with(&current), "{line} outside its family:\n{text}");
            }
        }
    }

    #[test]
    fn two_registries_with_one_family_render_it_once_with_both_label_sets() {
        let (spot, usdm) = (registry(None, 3), registry(Some("usdm"), 5));
        let text = render(&[&spot, &usdm]);
        assert_eq!(
            text,
            "# HELP x_sent_total Records sent\n# TYPE x_sent_total counter\n\
             x_sent_total{symbol=\"btcusdt\"} 3\nx_sent_total{symbol=\"btcusdt\",market=\"usdm\"} 5\n"
        );
        check_shape(&text);
    }

    #[test]
    fn one_registry_renders_as_it_always_did() {
        let spot = registry(None, 3);
        let mut alone = String::new();
        TextEncoder::new().encode_utf8(&spot.gather(), &mut alone).unwrap();
        assert_eq!(render(&[&spot]), alone);
    }

    #[test]
    fn whole_markets_merge_into_a_well_formed_exposition() {
        use crate::metrics::Metrics;
        let symbols = ["btcusdt".to_string()];
        let (spot, usdm) = (Metrics::new(&symbols), Metrics::for_market(&symbols, "usdm"));
        let text = render(&[&spot.registry, &usdm.registry]);
        check_shape(&text);
        let sent: Vec<&str> =
            text.lines().filter(|l| l.starts_with("marketflow_ingestor_messages_sent_total")).collect();
        assert_eq!(
            sent,
            [
                "marketflow_ingestor_messages_sent_total{symbol=\"btcusdt\"} 0",
                "marketflow_ingestor_messages_sent_total{symbol=\"btcusdt\",market=\"usdm\"} 0"
            ]
        );
        // The spot lines are the spot registry's own, unchanged.
        for line in spot.render().lines().filter(|l| !l.starts_with('#')) {
            assert!(text.lines().any(|l| l == line), "{line}");
        }
    }
}
