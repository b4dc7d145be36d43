//! The ingester's HTTP endpoints as the harness reads them: `/metrics`, `/readyz`,
//! `/latency/<stage>`.

use std::time::Duration;

use anyhow::{anyhow, Result};
use marketflow_ingestor::metrics::NAMESPACE;

pub fn http_get(url: &str) -> Result<(u16, String)> {
    match ureq::get(url).timeout(Duration::from_secs(5)).call() {
        Ok(r) => {
            let status = r.status();
            Ok((status, r.into_string()?))
        }
        Err(ureq::Error::Status(code, r)) => Ok((code, r.into_string().unwrap_or_default())),
        Err(e) => Err(anyhow!("GET {url}: {e}")),
    }
}

/// The Prometheus text exposition, as (name, labels, value).
pub struct Prom(pub Vec<(String, String, f64)>);

impl Prom {
    pub fn parse(text: &str) -> Prom {
        let mut v = Vec::new();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let (series, value) = match line.rsplit_once(' ') {
                Some(x) => x,
                None => continue,
            };
            let Ok(value) = value.parse::<f64>() else { continue };
            let (name, labels) = match series.split_once('{') {
                Some((n, l)) => (n.to_string(), l.trim_end_matches('}').to_string()),
                None => (series.to_string(), String::new()),
            };
            v.push((name, labels, value));
        }
        Prom(v)
    }

    pub fn sum(&self, name: &str) -> f64 {
        self.0.iter().filter(|(n, _, _)| n == name).map(|(_, _, v)| v).sum()
    }
}

/// The full name of one of the ingester's metrics.
pub fn metric_name(name: &str) -> String {
    format!("{NAMESPACE}_{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_sums() {
        let p = Prom::parse("# HELP x\nfoo_total{a=\"1\"} 2\nfoo_total{a=\"2\"} 3\nbar 1e3\n");
        assert_eq!(p.sum("foo_total"), 5.0);
        assert_eq!(p.sum("bar"), 1000.0);
    }
}
