//! Binance's REST API as the backfill thread uses it: one GET, its status counted, its weight
//! header read, and every wait the server asks for turned into a bounded [`Duration`].

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tracing::warn;

use crate::config::Config;
use crate::metrics::Metrics;

/// Binance allows 6000 weight per minute per IP; leave room for other clients on the same IP.
pub const WEIGHT_BUDGET: u32 = 4800;
/// The longest wait a server can impose. Binance's longest IP ban is three days ("from 2 minutes
/// to 3 days", REST API "LIMITS"); a `Retry-After` beyond it is not a ban but a broken or hostile
/// header, and is cut to it (a wait of `u64::MAX` seconds used to overflow `Instant + Duration`
/// and kill the thread). The wait is slept in slices that watch shutdown and keep taking jobs.
pub const MAX_SERVER_WAIT: Duration = Duration::from_secs(3 * 86_400);
/// When a 429/418 carries no usable `Retry-After`: Binance's weight window.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(60);

/// The wait a `Retry-After` header asks for: whole seconds, read saturating (any number of digits)
/// and capped at [`MAX_SERVER_WAIT`]; missing or not a number (e.g. an HTTP date, which Binance
/// does not send) means [`DEFAULT_RETRY_AFTER`].
pub fn retry_after(header: Option<&str>) -> Duration {
    let Some(v) = header.map(str::trim).filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit())) else {
        return DEFAULT_RETRY_AFTER;
    };
    let secs = v.bytes().fold(0u64, |n, b| n.saturating_mul(10).saturating_add(u64::from(b - b'0')));
    Duration::from_secs(secs).min(MAX_SERVER_WAIT)
}

/// How long to pause once the weight budget is used up: to the next minute (the window Binance
/// counts in), plus a margin. `now_ms` is our own clock, but taken `rem_euclid` so that even a
/// clock before 1970 gives a wait within one minute.
pub fn weight_pause(now_ms: i64) -> Duration {
    Duration::from_millis(60_000 - now_ms.rem_euclid(60_000) as u64 + 100)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RestTrade {
    pub id: i64,
    pub price: String,
    pub qty: String,
    pub time: i64,
    pub is_buyer_maker: bool,
}

#[derive(Deserialize)]
pub(super) struct RestAggTrade {
    pub a: i64,
    pub p: String,
    pub q: String,
    pub f: i64,
    pub l: i64,
    #[serde(rename = "T")]
    pub time: i64,
    pub m: bool,
}

/// `[openTime, open, high, low, close, volume, closeTime, quoteVolume, trades, takerBuyBase,
/// takerBuyQuote, unused]`
pub(super) type RestKline =
    (i64, String, String, String, String, String, i64, String, i64, String, String, serde::de::IgnoredAny);

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RestDepth {
    pub last_update_id: i64,
    pub bids: Vec<[String; 2]>,
    pub asks: Vec<[String; 2]>,
}

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
                if let Some(w) = r.header("X-MBX-USED-WEIGHT-1M").and_then(|w| w.trim().parse::<u32>().ok()) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_waits_are_read_saturating_and_capped() {
        let cases = [
            (Some("30"), Duration::from_secs(30)),
            (Some(" 7 "), Duration::from_secs(7)),
            (Some("0"), Duration::ZERO),
            // TC3-4: the header that killed the thread, and beyond u64.
            (Some("18446744073709551615"), MAX_SERVER_WAIT),
            (Some("99999999999999999999999999999"), MAX_SERVER_WAIT),
            (Some("259201"), MAX_SERVER_WAIT),
            (Some("259200"), Duration::from_secs(259_200)),
            // TC7-10: nothing usable: Binance's weight window.
            (None, DEFAULT_RETRY_AFTER),
            (Some("-5"), DEFAULT_RETRY_AFTER),
            (Some("Wed, 21 Oct 2015 07:28:00 GMT"), DEFAULT_RETRY_AFTER),
            (Some(""), DEFAULT_RETRY_AFTER),
        ];
        for (i, (h, want)) in cases.into_iter().enumerate() {
            assert_eq!(retry_after(h), want, "TC{i}: {h:?}");
        }
        // Instant + any of them never overflows.
        assert!(std::time::Instant::now().checked_add(MAX_SERVER_WAIT).is_some());
    }

    #[test]
    fn the_weight_pause_ends_past_the_next_minute_even_for_a_negative_clock() {
        for (now, want_ms) in [(0, 60_100), (59_999, 101), (120_500, 59_600), (-1, 101), (i64::MIN, 55_908)] {
            assert_eq!(weight_pause(now), Duration::from_millis(want_ms), "{now}");
        }
    }
}
