//! The backfill thread's HTTP client: one GET, its status counted, the venue's weight header read,
//! and every wait the server asks for turned into a bounded [`Duration`] (the venue's rules are
//! its [`RestApi`]).
//!
//! Two hosts where the venue has a fallback: the main one (`BINANCE_REST_URL`) and the
//! market-data-only fallback (`BINANCE_REST_FALLBACK_URL`, spot's `data-api.binance.vision`;
//! USD-M has none, and a configured one is not used for it). A request goes to the main host
//! unless it recently failed in a way another host can get round: it refused or dropped the
//! connection, answered 5xx, or its firewall answered 403. The endpoints the fallback serves
//! (everything but `historicalTrades`) then go there at once and for [`MAIN_HOLD_OFF`] (a 403:
//! [`BLOCK_HOLD_OFF`]). A rate limit (429/418) is never routed round: Binance counts weight per
//! IP, so the fallback would only share the ban.

use std::cell::Cell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::warn;

use crate::config::{Config, Endpoint as Url, TimeUnit};
use crate::log_limit::LogLimiter;
use crate::metrics::Metrics;
use crate::venue::rest::{Call, RestApi};

/// How long the main host is avoided after a connection failure or a 5xx, for what the fallback
/// serves.
pub(super) const MAIN_HOLD_OFF: Duration = Duration::from_secs(60);
/// How long after a 403 (Binance's web-application firewall blocking this IP, not a rate limit:
/// REST API "LIMITS", 2025-12-09): such blocks last minutes, and asking again sooner only keeps
/// the firewall's attention.
pub(super) const BLOCK_HOLD_OFF: Duration = Duration::from_secs(300);

/// Why a fetch failed.
#[derive(Debug)]
pub(super) enum FetchError {
    /// Worth retrying later (network, 5xx, 403, 429/418 after the wait).
    Retry(String),
    /// Will not succeed (4xx other than rate limits and firewall blocks): the range is reported
    /// unrecoverable.
    Permanent(String),
}

/// A reply, and how long to hold off before the next request (a rate limit, a firewall block).
pub(super) struct Reply {
    pub body: Result<String, FetchError>,
    pub pause: Option<Duration>,
}

/// One REST host and the weight it reported for the current minute.
struct Host {
    base: String,
    /// `(minute, weight used)`: from `X-MBX-USED-WEIGHT-1M`, else our own sum of request weights.
    used: Cell<(i64, u32)>,
}

impl Host {
    fn new(url: &Url) -> Host {
        let scheme = if url.tls { "https" } else { "http" };
        Host { base: format!("{scheme}://{}{}", url.authority(), url.path), used: Cell::new((0, 0)) }
    }

    /// Weight used in the minute of `now_ms`.
    fn used_in(&self, now_ms: i64) -> u32 {
        let (minute, used) = self.used.get();
        if minute == now_ms.div_euclid(60_000) {
            used
        } else {
            0
        }
    }
}

/// How a request ended, before the fallback decides anything.
enum Outcome {
    Done(Reply),
    /// The host failed in a way another host can get round; `blocked` for a 403.
    Unreachable {
        reply: Reply,
        blocked: bool,
    },
}

pub(super) struct Rest {
    api: &'static RestApi,
    agent: ureq::Agent,
    main: Host,
    fallback: Option<Host>,
    /// Until then, what the fallback serves goes to the fallback.
    main_avoided_until: Cell<Option<Instant>>,
    /// The venue's time-unit header and `MICROSECOND`, when records carry microseconds.
    time_unit: Option<(&'static str, &'static str)>,
    metrics: Arc<Metrics>,
    limiter: LogLimiter,
}

impl Rest {
    pub fn new(cfg: &Config, api: &'static RestApi, metrics: Arc<Metrics>) -> Rest {
        let mut b = ureq::AgentBuilder::new().timeout(Duration::from_secs(10)).user_agent("marketflow-ingestor");
        let fallback = cfg.rest_fallback.as_ref().filter(|_| api.has_fallback);
        if cfg.rest.tls || fallback.is_some_and(|f| f.tls) {
            if let Ok(tls) = crate::tls::client_config(cfg.tls_ca_file.as_deref()) {
                b = b.tls_config(tls);
            }
        }
        Rest {
            api,
            agent: b.build(),
            main: Host::new(&cfg.rest),
            fallback: fallback.map(Host::new),
            main_avoided_until: Cell::new(None),
            time_unit: api.time_unit_header.filter(|_| cfg.time_unit == TimeUnit::Micros).map(|h| (h, "MICROSECOND")),
            metrics,
            limiter: LogLimiter::new(Duration::from_secs(10)),
        }
    }

    /// The host `call` goes to now: the fallback while the main host is avoided.
    fn host_for(&self, call: &Call) -> (&Host, bool) {
        match &self.fallback {
            Some(f) if call.on_fallback && self.main_avoided_until.get().is_some_and(|t| Instant::now() < t) => {
                (f, true)
            }
            _ => (&self.main, false),
        }
    }

    /// How long to wait before sending `call`, so that its weight stays within the budget of
    /// the host it goes to (Binance counts per minute: the wait ends past the next one).
    pub fn wait_before(&self, call: &Call) -> Option<Duration> {
        let now_ms = crate::clock::now_ms();
        let used = self.host_for(call).0.used_in(now_ms);
        (used.saturating_add(call.weight) > self.api.weight_budget).then(|| (self.api.weight_pause)(now_ms))
    }

    pub fn get(&self, call: &Call) -> Reply {
        let (host, on_fallback) = self.host_for(call);
        let (reply, blocked) = match self.send(host, call, on_fallback) {
            Outcome::Done(reply) => return reply,
            Outcome::Unreachable { reply, blocked } => (reply, blocked),
        };
        let fallback = self.fallback.as_ref().filter(|_| !on_fallback && call.on_fallback);
        let Some(fallback) = fallback else {
            // Nowhere else to ask (historicalTrades, no fallback, or the fallback failing too):
            // a firewall block is waited out, the rest retried with the backfill's backoff.
            return Reply { pause: reply.pause.or(blocked.then_some(BLOCK_HOLD_OFF)), ..reply };
        };
        let hold = if blocked { BLOCK_HOLD_OFF } else { MAIN_HOLD_OFF };
        self.main_avoided_until.set(Some(Instant::now() + hold));
        if let Some(suppressed) = self.limiter.check("fallback") {
            let why = match &reply.body {
                Err(FetchError::Retry(e) | FetchError::Permanent(e)) => e.as_str(),
                Ok(_) => "",
            };
            warn!(
                endpoint = call.label,
                hold_s = hold.as_secs(),
                suppressed,
                "main REST host failed ({why}): using the fallback host for what it serves"
            );
        }
        match self.send(fallback, call, true) {
            Outcome::Done(reply) => reply,
            Outcome::Unreachable { reply, blocked } => {
                Reply { pause: reply.pause.or(blocked.then_some(BLOCK_HOLD_OFF)), ..reply }
            }
        }
    }

    fn send(&self, host: &Host, call: &Call, on_fallback: bool) -> Outcome {
        let url = format!("{}{}", host.base, call.path);
        let mut req = self.agent.get(&url);
        if let Some((header, unit)) = self.time_unit {
            req = req.set(header, unit);
        }
        let resp = req.call();
        let status = match &resp {
            Ok(r) => r.status(),
            Err(ureq::Error::Status(c, _)) => *c,
            Err(_) => 0,
        };
        let counter = if on_fallback { &self.metrics.rest_fallback_requests } else { &self.metrics.rest_requests };
        counter.with_label_values(&[call.label, status_class(status)]).inc();
        let now_ms = crate::clock::now_ms();
        let spent = host.used_in(now_ms).saturating_add(call.weight);
        host.used.set((now_ms.div_euclid(60_000), spent));
        let unreachable = |e: String, blocked| Outcome::Unreachable {
            reply: Reply { body: Err(FetchError::Retry(e)), pause: None },
            blocked,
        };
        match resp {
            Ok(r) => {
                let mut pause = None;
                if let Some(w) = r.header(self.api.used_weight_header).and_then(|w| w.trim().parse::<u32>().ok()) {
                    host.used.set((now_ms.div_euclid(60_000), w));
                    if !on_fallback {
                        self.metrics.rest_used_weight.set(i64::from(w));
                    }
                    if w >= self.api.weight_budget {
                        let wait = (self.api.weight_pause)(now_ms);
                        warn!(
                            used_weight = w,
                            wait_ms = wait.as_millis() as u64,
                            "REST weight budget reached: pausing"
                        );
                        pause = Some(wait);
                    }
                }
                let body = r.into_string().map_err(|e| FetchError::Retry(format!("reading body: {e}")));
                Outcome::Done(Reply { body, pause })
            }
            Err(ureq::Error::Status(code @ (429 | 418), r)) => {
                // 418 is Binance's IP ban after ignoring 429s: honour Retry-After to the letter,
                // within what a ban can last.
                let header = r.header("Retry-After");
                let wait = (self.api.retry_after)(header);
                warn!(status = code, retry_after = header.unwrap_or(""), wait_s = wait.as_secs(), "REST rate limited");
                Outcome::Done(Reply { body: Err(FetchError::Retry(format!("HTTP {code}"))), pause: Some(wait) })
            }
            Err(ureq::Error::Status(403, _)) => {
                if let Some(suppressed) = self.limiter.check("blocked") {
                    warn!(
                        endpoint = call.label,
                        fallback = on_fallback,
                        suppressed,
                        "REST answered 403: the venue's firewall blocks this IP"
                    );
                }
                unreachable("HTTP 403 (firewall block)".into(), true)
            }
            Err(ureq::Error::Status(code, r)) if (400..500).contains(&code) => {
                // Bounded: a hostile body is not copied whole into a log line.
                let mut body = r.into_string().unwrap_or_default();
                body.truncate(char_floor(&body, 200));
                Outcome::Done(Reply { body: Err(FetchError::Permanent(format!("HTTP {code}: {body}"))), pause: None })
            }
            Err(ureq::Error::Status(code, _)) => unreachable(format!("HTTP {code}"), false),
            Err(e) => unreachable(e.to_string(), false),
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

/// The `status` label of `rest_requests_total`: a 403 is a firewall block, not any 4xx.
pub(crate) fn status_class(code: u16) -> &'static str {
    match code {
        0 => "network",
        200..=299 => "2xx",
        429 => "429",
        418 => "418",
        403 => "403",
        400..=499 => "4xx",
        _ => "5xx",
    }
}
