//! The backfill thread's HTTP client: one GET, its status counted, the venue's weight header read,
//! and every wait the server asks for turned into a bounded [`Duration`] (the venue's rules are in
//! [`crate::binance::rest`]).

use std::sync::Arc;
use std::time::Duration;

use tracing::warn;

use crate::binance::rest::{retry_after, weight_pause, USED_WEIGHT_HEADER, WEIGHT_BUDGET};
use crate::config::Config;
use crate::metrics::Metrics;

/// Why a fetch failed.
#[derive(Debug)]
pub(super) enum FetchError {
    /// Worth retrying later (network, 5xx, 429/418 after the wait).
    Retry(String),
    /// Will not succeed (4xx other than rate limits): the range is reported unrecoverable.
    Permanent(String),
}

/// A reply, and how long to hold off before the next request (a rate limit, the weight budget).
pub(super) struct Reply {
    pub body: Result<String, FetchError>,
    pub pause: Option<Duration>,
}

pub(super) struct Rest {
    agent: ureq::Agent,
    base: String,
    metrics: Arc<Metrics>,
}

impl Rest {
    pub fn new(cfg: &Config, metrics: Arc<Metrics>) -> Rest {
        let mut b = ureq::AgentBuilder::new().timeout(Duration::from_secs(10)).user_agent("marketflow-ingestor");
        if cfg.rest.tls {
            if let Ok(tls) = crate::tls::client_config(cfg.tls_ca_file.as_deref()) {
                b = b.tls_config(tls);
            }
        }
        let scheme = if cfg.rest.tls { "https" } else { "http" };
        Rest { agent: b.build(), base: format!("{scheme}://{}{}", cfg.rest.authority(), cfg.rest.path), metrics }
    }

    pub fn get(&self, path: &str, endpoint: &'static str) -> Reply {
        let url = format!("{}{path}", self.base);
        let resp = self.agent.get(&url).call();
        let status = match &resp {
            Ok(r) => r.status(),
            Err(ureq::Error::Status(c, _)) => *c,
            Err(_) => 0,
        };
        self.metrics.rest_requests.with_label_values(&[endpoint, status_class(status)]).inc();
        match resp {
            Ok(r) => {
                let mut pause = None;
                if let Some(w) = r.header(USED_WEIGHT_HEADER).and_then(|w| w.trim().parse::<u32>().ok()) {
                    self.metrics.rest_used_weight.set(i64::from(w));
                    if w >= WEIGHT_BUDGET {
                        let wait = weight_pause(crate::clock::now_ms());
                        warn!(
                            used_weight = w,
                            wait_ms = wait.as_millis() as u64,
                            "REST weight budget reached: pausing"
                        );
                        pause = Some(wait);
                    }
                }
                Reply { body: r.into_string().map_err(|e| FetchError::Retry(format!("reading body: {e}"))), pause }
            }
            Err(ureq::Error::Status(code @ (429 | 418), r)) => {
                // 418 is Binance's IP ban after ignoring 429s: honour Retry-After to the letter,
                // within what a ban can last.
                let header = r.header("Retry-After");
                let wait = retry_after(header);
                warn!(status = code, retry_after = header.unwrap_or(""), wait_s = wait.as_secs(), "REST rate limited");
                Reply { body: Err(FetchError::Retry(format!("HTTP {code}"))), pause: Some(wait) }
            }
            Err(ureq::Error::Status(code, r)) if (400..500).contains(&code) => {
                // Bounded: a hostile body is not copied whole into a log line.
                let mut body = r.into_string().unwrap_or_default();
                body.truncate(char_floor(&body, 200));
                Reply { body: Err(FetchError::Permanent(format!("HTTP {code}: {body}"))), pause: None }
            }
            Err(ureq::Error::Status(code, _)) => {
                Reply { body: Err(FetchError::Retry(format!("HTTP {code}"))), pause: None }
            }
            Err(e) => Reply { body: Err(FetchError::Retry(e.to_string())), pause: None },
        }
    }
}

/// The largest char boundary of `s` at or below `max`.
fn char_floor(s: &str, max: usize) -> usize {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    end
}

fn status_class(code: u16) -> &'static str {
    match code {
        0 => "network",
        200..=299 => "2xx",
        429 => "429",
        418 => "418",
        400..=499 => "4xx",
        _ => "5xx",
    }
}
