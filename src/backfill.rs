//! Gap backfill from Binance's REST API, off the event-loop thread.
//!
//! The event loop (or the producer, for a failed delivery) sends a [`Job`] naming what is
//! missing; this thread fetches it page by page (`/api/v3/historicalTrades` or
//! `/api/v3/aggTrades` with `fromId`, 1000 per call), publishes each missing record flagged
//! `"backfilled":true`, in id order, and hands them to the producer thread over a bounded channel.
//! Ids the REST API does not have either are published as one `gap` marker per missing range, so a
//! consumer can prove completeness. A depth-sequence break publishes a `depth_resync` marker and a
//! fresh REST snapshot. Closed candles that never arrived are refilled from `/api/v3/klines`.
//!
//! Weight limits are respected: `X-MBX-USED-WEIGHT-1M` is read on every response and the thread
//! pauses to the next minute above [`WEIGHT_BUDGET`]; 429/418 wait `Retry-After`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use serde::Deserialize;
use tracing::{info, warn};

use crate::binance::stream::RecordType;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::record::{AggTrade, Kline, Record, Side, Trade};
use crate::ring::{RecordMeta, FLAG_BACKFILLED, FLAG_MARKER};
use crate::sequence::Dense;
use crate::shutdown::Shutdown;

/// Binance allows 6000 weight per minute per IP; leave room for other clients on the same IP.
pub const WEIGHT_BUDGET: u32 = 4800;
const PAGE: i64 = 1000;

/// Something to fetch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Job {
    /// Ids `from..to` (exclusive) of a dense trade or aggTrade sequence never reached Kafka.
    Range { symbol_idx: u16, kind: Dense, from: i64, to: i64 },
    /// The depth sequence broke: publish a resync marker and a fresh snapshot.
    DepthResync { symbol_idx: u16 },
    /// Closed candles of interval `KLINE_INTERVALS[interval]` opening at `from..to` (ms,
    /// exclusive) never arrived.
    Klines { symbol_idx: u16, interval: u8, from: i64, to: i64 },
}

/// A record built off the hot path (backfilled, a marker or a snapshot), for the producer thread.
#[derive(Clone, Debug)]
pub struct OwnedRecord {
    pub meta: RecordMeta,
    pub key: Vec<u8>,
    pub payload: Vec<u8>,
}

/// Merges adjacent or overlapping ranges of the same sequence, so a burst of single-id jobs (a
/// ring overflow) becomes one fetch.
pub fn coalesce(jobs: &mut Vec<Job>) {
    jobs.sort_by_key(|j| match *j {
        Job::Range { symbol_idx, kind, from, .. } => (symbol_idx, kind as u8, from),
        Job::Klines { symbol_idx, interval, from, .. } => (symbol_idx, 16 + interval, from),
        Job::DepthResync { symbol_idx } => (symbol_idx, u8::MAX, 0),
    });
    let mut out: Vec<Job> = Vec::with_capacity(jobs.len());
    for j in jobs.drain(..) {
        match (out.last_mut(), j) {
            (Some(Job::Range { symbol_idx: s0, kind: k0, to: t0, .. }), Job::Range { symbol_idx, kind, from, to })
                if *s0 == symbol_idx && *k0 == kind && from <= *t0 =>
            {
                *t0 = (*t0).max(to)
            }
            (
                Some(Job::Klines { symbol_idx: s0, interval: i0, to: t0, .. }),
                Job::Klines { symbol_idx, interval, from, to },
            ) if *s0 == symbol_idx && *i0 == interval && from <= *t0 => *t0 = (*t0).max(to),
            (Some(Job::DepthResync { symbol_idx: s0 }), Job::DepthResync { symbol_idx }) if *s0 == symbol_idx => {}
            _ => out.push(j),
        }
    }
    *jobs = out;
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RestTrade {
    id: i64,
    price: String,
    qty: String,
    time: i64,
    is_buyer_maker: bool,
}

#[derive(Deserialize)]
struct RestAggTrade {
    a: i64,
    p: String,
    q: String,
    f: i64,
    l: i64,
    #[serde(rename = "T")]
    time: i64,
    m: bool,
}

/// `[openTime, open, high, low, close, volume, closeTime, quoteVolume, trades, takerBuyBase,
/// takerBuyQuote, unused]`
type RestKline = (i64, String, String, String, String, String, i64, String, i64, String, String, serde::de::IgnoredAny);

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RestDepth {
    last_update_id: i64,
    bids: Vec<[String; 2]>,
    asks: Vec<[String; 2]>,
}

/// Why a fetch failed.
#[derive(Debug)]
enum FetchError {
    /// Worth retrying later (network, 5xx, 429/418 after the wait).
    Retry(String),
    /// Will not succeed (4xx other than rate limits): the range is reported unrecoverable.
    Permanent(String),
}

pub struct Backfiller {
    agent: ureq::Agent,
    base: String,
    symbols: Vec<String>,
    max_ids: i64,
    metrics: Arc<Metrics>,
    out: Sender<OwnedRecord>,
    shutdown: Shutdown,
}

impl Backfiller {
    pub fn new(cfg: &Config, metrics: Arc<Metrics>, out: Sender<OwnedRecord>, shutdown: Shutdown) -> Backfiller {
        let mut b = ureq::AgentBuilder::new().timeout(Duration::from_secs(10)).user_agent("marketflow-ingestor");
        if cfg.rest.tls {
            if let Ok(tls) = crate::tls::client_config(cfg.tls_ca_file.as_deref()) {
                b = b.tls_config(tls);
            }
        }
        let scheme = if cfg.rest.tls { "https" } else { "http" };
        Backfiller {
            agent: b.build(),
            base: format!("{scheme}://{}{}", cfg.rest.authority(), cfg.rest.path),
            symbols: cfg.symbols.iter().map(|s| s.to_uppercase()).collect(),
            max_ids: cfg.backfill_max_ids,
            metrics,
            out,
            shutdown,
        }
    }

    /// Runs until shutdown (then reports what is left as gaps) or until every job sender is gone.
    pub fn run(self, jobs: Receiver<Job>) {
        let mut queue: Vec<Job> = Vec::new();
        loop {
            if queue.is_empty() {
                match jobs.recv_timeout(Duration::from_millis(200)) {
                    Ok(j) => queue.push(j),
                    Err(RecvTimeoutError::Timeout) if self.shutdown.is_triggered() => break,
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            }
            queue.extend(jobs.try_iter());
            coalesce(&mut queue);
            if self.shutdown.is_triggered() {
                break;
            }
            let job = queue.remove(0);
            self.metrics.backfill_jobs.inc();
            match job {
                Job::DepthResync { symbol_idx } => self.depth_resync(symbol_idx),
                Job::Klines { symbol_idx, interval, from, to } => {
                    if let Some(from) = self.klines(symbol_idx, interval, from, to) {
                        queue.insert(0, Job::Klines { symbol_idx, interval, from, to });
                    }
                }
                Job::Range { symbol_idx, kind, from, to } => {
                    let mut ranges = vec![self.capped(symbol_idx, kind, from, to)];
                    // Small gaps close together (scattered ring drops, skipped ids) share one
                    // REST page: the queue is sorted, so they are next to each other.
                    while let Some(&Job::Range { symbol_idx: s, kind: k, from, to }) = queue.first() {
                        if s != symbol_idx || k != kind || to - ranges[0].0 > PAGE {
                            break;
                        }
                        queue.remove(0);
                        self.metrics.backfill_jobs.inc();
                        ranges.push((from, to));
                    }
                    let left = self.fetch_ranges(symbol_idx, kind, &ranges);
                    queue.splice(0..0, left.into_iter().map(|(from, to)| Job::Range { symbol_idx, kind, from, to }));
                }
            }
        }
        queue.extend(jobs.try_iter());
        coalesce(&mut queue);
        for j in queue {
            match j {
                Job::Range { symbol_idx, kind, from, to } => {
                    warn!(symbol = %self.symbols[symbol_idx as usize], from, to, "backfill unfinished at shutdown");
                    self.marker(symbol_idx, kind, from, to, "shutdown");
                }
                Job::Klines { symbol_idx, interval, from, to } => {
                    self.kline_marker(symbol_idx, interval, from, to, "shutdown");
                }
                Job::DepthResync { .. } => {}
            }
        }
    }

    /// Refills closed candles opening at `from..to` from `/api/v3/klines`, in order, flagged;
    /// candles REST does not have are reported as a gap. Returns where to resume when
    /// interrupted by shutdown.
    fn klines(&self, symbol_idx: u16, interval: u8, from: i64, to: i64) -> Option<i64> {
        use crate::binance::stream::{KLINE_INTERVALS, KLINE_INTERVAL_MS};
        let (sym, iv) = (&self.symbols[symbol_idx as usize], KLINE_INTERVALS[interval as usize]);
        let len = KLINE_INTERVAL_MS[interval as usize]?;
        let mut cur = from;
        let mut attempt = 0u32;
        while cur < to {
            if self.shutdown.is_triggered() {
                return Some(cur);
            }
            if !self.metrics.health.sink_ready.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
            let limit = ((to - cur) / len).clamp(1, PAGE);
            let path =
                format!("/api/v3/klines?symbol={sym}&interval={iv}&startTime={cur}&endTime={}&limit={limit}", to - 1);
            let page = self.get(&path, "klines").and_then(|body| {
                serde_json::from_str::<Vec<RestKline>>(&body)
                    .map_err(|e| FetchError::Retry(format!("bad klines body: {e}")))
            });
            let candles = match page {
                Ok(c) => c,
                Err(FetchError::Permanent(e)) => {
                    warn!(symbol = %sym, interval = iv, from = cur, to, "kline refill impossible: {e}");
                    self.kline_marker(symbol_idx, interval, cur, to, "rest_error");
                    return None;
                }
                Err(FetchError::Retry(e)) => {
                    attempt += 1;
                    self.metrics.backfill_retries.inc();
                    let wait = Duration::from_millis(250 * (1u64 << attempt.min(7)));
                    warn!(attempt, wait_ms = wait.as_millis() as u64, "kline refill failed, retrying: {e}");
                    self.sleep(wait);
                    continue;
                }
            };
            attempt = 0;
            let mut next = cur;
            let now_ms = crate::clock::now_ms();
            for c in &candles {
                let (open, close_time) = (c.0, c.6);
                // Only candles of this range, in order, each once, and only final ones: REST also
                // returns the candle still open, whose values are not final.
                if open < next || open >= to || (open - from) % len != 0 || close_time >= now_ms {
                    continue;
                }
                if open > next {
                    self.kline_marker(symbol_idx, interval, next, open, "not_in_rest");
                }
                let r = Record::Kline(Kline {
                    symbol: sym,
                    interval: iv,
                    open_time_ms: open,
                    close_time_ms: close_time,
                    open: &c.1,
                    high: &c.2,
                    low: &c.3,
                    close: &c.4,
                    volume: &c.5,
                    quote_volume: &c.7,
                    trades: c.8,
                    taker_buy_volume: &c.9,
                    taker_buy_quote_volume: &c.10,
                    closed: true,
                    first_trade_id: None,
                    last_trade_id: None,
                    // REST has no event time; the candle's close is when it became final.
                    event_time_ms: close_time,
                });
                self.publish(self.encode(symbol_idx, &r));
                self.metrics.backfilled[symbol_idx as usize].inc();
                next = open + len;
            }
            if next == cur {
                // Nothing from `cur` on: REST has none of the rest.
                self.kline_marker(symbol_idx, interval, cur, to, "not_in_rest");
                return None;
            }
            cur = next;
        }
        info!(symbol = %sym, interval = iv, from, to, candles = (to - from) / len, "kline refill done");
        None
    }

    /// A `gap` marker for candles opening at `from..to` that will never be published.
    fn kline_marker(&self, symbol_idx: u16, interval: u8, from: i64, to: i64, reason: &str) {
        use crate::binance::stream::{KLINE_INTERVALS, KLINE_INTERVAL_MS};
        let sym = &self.symbols[symbol_idx as usize];
        let iv = KLINE_INTERVALS[interval as usize];
        let len = KLINE_INTERVAL_MS[interval as usize].unwrap_or(1);
        let now = crate::clock::now_ns();
        let payload = format!(
            r#"{{"type":"gap","exchange":"binance","symbol":"{sym}","stream":"kline_{iv}","interval":"{iv}","from_open_time_ms":{from},"to_open_time_ms":{},"missing":{},"reason":"{reason}","recv_time_ns":{now}}}"#,
            to - len,
            (to - from) / len
        );
        warn!(symbol = %sym, interval = iv, from, to, reason, "unrecoverable candles: marker published");
        self.metrics.gap_markers[symbol_idx as usize].inc();
        self.publish(OwnedRecord {
            meta: RecordMeta {
                kind: RecordType::Kline,
                flags: FLAG_MARKER,
                symbol_idx,
                event_time_ms: (now / 1_000_000) as i64,
                recv_ns: now,
            },
            key: sym.as_bytes().to_vec(),
            payload: payload.into_bytes(),
        });
    }

    /// `from..to`, cut to [`Config::backfill_max_ids`]; the cut-off rest is reported at once.
    fn capped(&self, symbol_idx: u16, kind: Dense, from: i64, to: i64) -> (i64, i64) {
        if to.saturating_sub(from) <= self.max_ids {
            return (from, to);
        }
        // The oldest ids first, so what is fetched joins what was published before.
        let cut = from + self.max_ids;
        warn!(
            symbol = %self.symbols[symbol_idx as usize],
            from,
            to,
            max_ids = self.max_ids,
            "gap larger than BACKFILL_MAX_IDS: fetching its start, reporting the rest"
        );
        self.marker(symbol_idx, kind, cut, to, "backfill_limit");
        (from, cut)
    }

    /// Fetches the sorted, disjoint `ranges` of one sequence page by page; returns what is left
    /// when interrupted by shutdown.
    fn fetch_ranges(&self, symbol_idx: u16, kind: Dense, ranges: &[(i64, i64)]) -> Vec<(i64, i64)> {
        let started = Instant::now();
        let (first, end) = (ranges[0].0, ranges[ranges.len() - 1].1);
        let mut cur = first;
        let mut attempt = 0u32;
        let from_cur = |cur: i64| -> Vec<(i64, i64)> {
            ranges.iter().filter(|r| r.1 > cur).map(|&(a, b)| (a.max(cur), b)).collect()
        };
        while cur < end {
            if self.shutdown.is_triggered() {
                return from_cur(cur);
            }
            // Publishing into a broker that is down only queues: wait for it to come back.
            if !self.metrics.health.sink_ready.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
            // Skip the ids between ranges: nothing is missing there.
            if let Some(&(a, _)) = ranges.iter().find(|r| r.1 > cur) {
                cur = cur.max(a);
            }
            match self.page(symbol_idx, kind, ranges, cur, end) {
                Ok(next) => {
                    attempt = 0;
                    cur = next;
                }
                Err(FetchError::Permanent(e)) => {
                    warn!(symbol = %self.symbols[symbol_idx as usize], from = cur, to = end, "backfill impossible: {e}");
                    for (a, b) in from_cur(cur) {
                        self.marker(symbol_idx, kind, a, b, "rest_error");
                    }
                    return Vec::new();
                }
                Err(FetchError::Retry(e)) => {
                    attempt += 1;
                    self.metrics.backfill_retries.inc();
                    let wait = Duration::from_millis(250 * (1u64 << attempt.min(7)));
                    warn!(attempt, wait_ms = wait.as_millis() as u64, "backfill fetch failed, retrying: {e}");
                    self.sleep(wait);
                }
            }
        }
        info!(
            symbol = %self.symbols[symbol_idx as usize],
            kind = ?kind,
            from = first,
            to = end,
            ranges = ranges.len(),
            ms = started.elapsed().as_millis() as u64,
            "backfill done"
        );
        Vec::new()
    }

    fn sleep(&self, d: Duration) {
        let end = Instant::now() + d;
        while Instant::now() < end && !self.shutdown.is_triggered() {
            std::thread::sleep(Duration::from_millis(50).min(end.saturating_duration_since(Instant::now())));
        }
    }

    fn get(&self, path: &str, endpoint: &'static str) -> Result<String, FetchError> {
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
                if let Some(w) = r.header("X-MBX-USED-WEIGHT-1M").and_then(|w| w.parse::<u32>().ok()) {
                    self.metrics.rest_used_weight.set(w as i64);
                    if w >= WEIGHT_BUDGET {
                        let into_minute = (crate::clock::now_ms() % 60_000) as u64;
                        let wait = Duration::from_millis(60_000 - into_minute + 100);
                        warn!(
                            used_weight = w,
                            wait_ms = wait.as_millis() as u64,
                            "REST weight budget reached: pausing"
                        );
                        self.sleep(wait);
                    }
                }
                r.into_string().map_err(|e| FetchError::Retry(format!("reading body: {e}")))
            }
            Err(ureq::Error::Status(code @ (429 | 418), r)) => {
                // 418 is Binance's IP ban after ignoring 429s: honour Retry-After to the letter.
                let secs = r.header("Retry-After").and_then(|s| s.parse::<u64>().ok()).unwrap_or(60);
                warn!(status = code, retry_after_s = secs, "REST rate limited");
                self.sleep(Duration::from_secs(secs));
                Err(FetchError::Retry(format!("HTTP {code}")))
            }
            Err(ureq::Error::Status(code, r)) if (400..500).contains(&code) => {
                Err(FetchError::Permanent(format!("HTTP {code}: {}", r.into_string().unwrap_or_default())))
            }
            Err(ureq::Error::Status(code, _)) => Err(FetchError::Retry(format!("HTTP {code}"))),
            Err(e) => Err(FetchError::Retry(e.to_string())),
        }
    }

    /// Fetches one page from `cur` and publishes the ids it holds that fall in `ranges`; ids of
    /// the ranges that REST skipped are reported as gaps. Returns the next id to fetch.
    fn page(&self, symbol_idx: u16, kind: Dense, ranges: &[(i64, i64)], cur: i64, to: i64) -> Result<i64, FetchError> {
        let sym = &self.symbols[symbol_idx as usize];
        let limit = (to - cur).clamp(1, PAGE);
        // (id, record) pairs in id order.
        let mut got: Vec<(i64, i64, OwnedRecord)> = Vec::new();
        match kind {
            Dense::Trade => {
                let body = self.get(
                    &format!("/api/v3/historicalTrades?symbol={sym}&fromId={cur}&limit={limit}"),
                    "historicalTrades",
                )?;
                let trades: Vec<RestTrade> = serde_json::from_str(&body)
                    .map_err(|e| FetchError::Retry(format!("bad historicalTrades body: {e}")))?;
                for t in &trades {
                    let r = Record::Trade(Trade {
                        symbol: sym,
                        trade_id: t.id,
                        price: &t.price,
                        qty: &t.qty,
                        side: Side::from_buyer_is_maker(t.is_buyer_maker),
                        trade_time_ms: t.time,
                        // REST has no event time; the trade time is the closest truth.
                        event_time_ms: t.time,
                    });
                    got.push((t.id, t.id, self.encode(symbol_idx, &r)));
                }
            }
            Dense::AggTrade => {
                let body =
                    self.get(&format!("/api/v3/aggTrades?symbol={sym}&fromId={cur}&limit={limit}"), "aggTrades")?;
                let aggs: Vec<RestAggTrade> =
                    serde_json::from_str(&body).map_err(|e| FetchError::Retry(format!("bad aggTrades body: {e}")))?;
                for a in &aggs {
                    let r = Record::AggTrade(AggTrade {
                        symbol: sym,
                        agg_id: a.a,
                        first_trade_id: a.f,
                        last_trade_id: a.l,
                        price: &a.p,
                        qty: &a.q,
                        side: Side::from_buyer_is_maker(a.m),
                        trade_time_ms: a.time,
                        event_time_ms: a.time,
                    });
                    got.push((a.a, a.a, self.encode(symbol_idx, &r)));
                }
            }
            Dense::Depth => return Ok(to),
        }
        let mut next = cur;
        for (id, _, rec) in got {
            if id < next {
                continue;
            }
            if id >= to {
                break;
            }
            // REST skipped ids it does not have: they are gone for good.
            self.unrecoverable(symbol_idx, kind, ranges, next, id);
            if ranges.iter().any(|&(a, b)| (a..b).contains(&id)) {
                self.publish(rec);
                self.metrics.backfilled[symbol_idx as usize].inc();
            }
            next = id + 1;
        }
        if next == cur {
            // Nothing at or after `cur` below `to`: REST's history holds no more of these ranges.
            // (A page that ended before `to` only means "fetch again from `next`".)
            self.unrecoverable(symbol_idx, kind, ranges, cur, to);
            return Ok(to);
        }
        Ok(next)
    }

    /// Reports the ids of `ranges` within `from..to` as gaps REST cannot fill.
    fn unrecoverable(&self, symbol_idx: u16, kind: Dense, ranges: &[(i64, i64)], from: i64, to: i64) {
        for &(a, b) in ranges {
            let (a, b) = (a.max(from), b.min(to));
            if a < b {
                self.marker(symbol_idx, kind, a, b, "not_in_rest");
            }
        }
    }

    fn encode(&self, symbol_idx: u16, r: &Record<'_>) -> OwnedRecord {
        let recv_ns = crate::clock::now_ns();
        let mut payload = Vec::with_capacity(256);
        // REST data went through the same validation as the stream; a record that fails it is
        // reported as a gap rather than published half-checked.
        let ok = r.encode(recv_ns, true, &mut payload).is_ok();
        if !ok {
            payload.clear();
        }
        OwnedRecord {
            meta: RecordMeta {
                kind: r.record_type(),
                flags: FLAG_BACKFILLED,
                symbol_idx,
                event_time_ms: r.event_time_ms().unwrap_or((recv_ns / 1_000_000) as i64),
                recv_ns,
            },
            key: r.symbol().as_bytes().to_vec(),
            payload,
        }
    }

    fn publish(&self, rec: OwnedRecord) {
        if rec.payload.is_empty() {
            return;
        }
        // Bounded: when the producer is behind, backfill waits instead of growing memory.
        let _ = self.out.send(rec);
    }

    /// Publishes a control record naming a range that will never arrive, and counts it.
    fn marker(&self, symbol_idx: u16, kind: Dense, from: i64, to: i64, reason: &str) {
        let sym = &self.symbols[symbol_idx as usize];
        let (rtype, stream) = match kind {
            Dense::Trade => (RecordType::Trade, "trade"),
            Dense::AggTrade => (RecordType::AggTrade, "aggTrade"),
            Dense::Depth => (RecordType::DepthUpdate, "depth"),
        };
        let now = crate::clock::now_ns();
        let payload = format!(
            r#"{{"type":"gap","exchange":"binance","symbol":"{sym}","stream":"{stream}","from_id":{from},"to_id":{},"missing":{},"reason":"{reason}","recv_time_ns":{now}}}"#,
            to - 1,
            to.saturating_sub(from)
        );
        warn!(symbol = %sym, stream, from, to = to - 1, reason, "unrecoverable gap: marker published");
        self.metrics.gap_markers[symbol_idx as usize].inc();
        self.publish(OwnedRecord {
            meta: RecordMeta {
                kind: rtype,
                flags: FLAG_MARKER,
                symbol_idx,
                event_time_ms: (now / 1_000_000) as i64,
                recv_ns: now,
            },
            key: sym.as_bytes().to_vec(),
            payload: payload.into_bytes(),
        });
    }

    fn depth_resync(&self, symbol_idx: u16) {
        let sym = &self.symbols[symbol_idx as usize];
        let now = crate::clock::now_ns();
        let meta = RecordMeta {
            kind: RecordType::DepthUpdate,
            flags: FLAG_MARKER,
            symbol_idx,
            event_time_ms: (now / 1_000_000) as i64,
            recv_ns: now,
        };
        self.publish(OwnedRecord {
            meta,
            key: sym.as_bytes().to_vec(),
            payload: format!(
                r#"{{"type":"depth_resync","exchange":"binance","symbol":"{sym}","reason":"sequence_gap","recv_time_ns":{now}}}"#
            )
            .into_bytes(),
        });
        for attempt in 0..5u32 {
            match self.get(&format!("/api/v3/depth?symbol={sym}&limit=1000"), "depth") {
                Ok(body) => {
                    let Ok(d) = serde_json::from_str::<RestDepth>(&body) else { break };
                    let ok = d
                        .bids
                        .iter()
                        .chain(&d.asks)
                        .all(|[p, q]| crate::record::is_decimal(p) && crate::record::is_decimal(q));
                    if !ok {
                        break;
                    }
                    let levels = |v: &Vec<[String; 2]>| {
                        v.iter().map(|[p, q]| format!(r#"["{p}","{q}"]"#)).collect::<Vec<_>>().join(",")
                    };
                    let now = crate::clock::now_ns();
                    self.publish(OwnedRecord {
                        meta: RecordMeta { recv_ns: now, ..meta },
                        key: sym.as_bytes().to_vec(),
                        payload: format!(
                            r#"{{"type":"depth_snapshot","exchange":"binance","symbol":"{sym}","last_update_id":{},"bids":[{}],"asks":[{}],"recv_time_ns":{now}}}"#,
                            d.last_update_id,
                            levels(&d.bids),
                            levels(&d.asks)
                        )
                        .into_bytes(),
                    });
                    return;
                }
                Err(FetchError::Permanent(e)) => {
                    warn!(symbol = %sym, "depth snapshot refused: {e}");
                    return;
                }
                Err(FetchError::Retry(e)) => {
                    warn!(symbol = %sym, attempt, "depth snapshot failed: {e}");
                    self.sleep(Duration::from_millis(500 << attempt));
                }
            }
        }
    }
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
    fn adjacent_ranges_merge_and_others_stay() {
        let r = |s: u16, k: Dense, from: i64, to: i64| Job::Range { symbol_idx: s, kind: k, from, to };
        let mut jobs = vec![
            r(0, Dense::Trade, 10, 11),
            r(0, Dense::Trade, 11, 12),
            r(0, Dense::Trade, 5, 8),
            r(1, Dense::Trade, 11, 12),
            r(0, Dense::AggTrade, 11, 12),
            r(0, Dense::Trade, 12, 20),
            Job::DepthResync { symbol_idx: 0 },
            Job::DepthResync { symbol_idx: 0 },
        ];
        coalesce(&mut jobs);
        assert_eq!(
            jobs,
            vec![
                r(0, Dense::Trade, 5, 8),
                r(0, Dense::Trade, 10, 20),
                r(0, Dense::AggTrade, 11, 12),
                Job::DepthResync { symbol_idx: 0 },
                r(1, Dense::Trade, 11, 12),
            ]
        );
    }
}
