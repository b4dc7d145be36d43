//! Gap backfill from the venue's REST API, off the event-loop thread. The venue is data: the
//! lane's [`RestApi`] (spot's `binance::rest::API`, USD-M's `binance::usdm::rest::API`) names
//! the requests, their weights, the budget and its header, and reads the bodies.
//!
//! The event loop (or the producer, for a failed delivery) sends a [`Job`] naming what is
//! missing; this thread queues it ([`queue::Pending`], bounded, merged per sequence; a
//! sequence's fetch waits up to a second while its ranges keep coming, so that ids dropped one at
//! a time share a call), fetches it
//! page by page (trades or aggregate trades from an id, e.g. spot's `/api/v3/aggTrades` with
//! `fromId`, 1000 per call),
//! publishes each missing record flagged `"backfilled":true`, in id order, and hands them to the
//! producer thread over a bounded channel. Ids the REST API does not have either are published as
//! one `gap` marker per missing range, so a consumer can prove completeness. The producer's
//! order books get their REST snapshots here ([`depth`]), and publish them themselves. Closed
//! candles that never arrived are refilled from the venue's klines.
//!
//! Weight limits are respected: the venue's used-weight header (`X-MBX-USED-WEIGHT-1M`) is read
//! on every response and the thread pauses to the next minute above the venue's budget (spot's
//! [`WEIGHT_BUDGET`]); 429/418 wait `Retry-After`, capped (see
//! [`MAX_SERVER_WAIT`]). Every wait is slept in slices that watch shutdown and keep moving
//! new jobs from the channel into the queue, so senders are never refused just because REST
//! asked us to wait.

mod client;
pub mod depth;
pub mod doubt;
pub mod queue;

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{RecvTimeoutError, SendTimeoutError, Sender};
use tracing::{info, warn};

use crate::config::Config;
use crate::handoff::marker::{self, Reason};
use crate::health::Health;
use crate::interval::{KLINE_INTERVALS, KLINE_INTERVAL_MS};
use crate::log_limit::LogLimiter;
use crate::metrics::Metrics;
use crate::record::{AggTrade, Kline, Record, Side, Trade};
use crate::ring::{RecordMeta, FLAG_BACKFILLED};
use crate::sequence::Dense;
use crate::shutdown::Shutdown;
use crate::symbols::Symbols;
use crate::time_unit::TimeUnit;
use crate::venue::rest::{Call, RestApi};
use crate::venue::Venue;

// What the backfill's callers have always found here (spot's bounds); the types live in the
// hand-off layer.
pub use crate::binance::rest::{MAX_SERVER_WAIT, WEIGHT_BUDGET};
pub use crate::handoff::jobs::{Job, JobReceiver, JobSender, Seq};
pub use crate::handoff::{gap_record, OwnedRecord};
use client::{FetchError, Rest};

/// One GET through the backfill's client (the lane's REST hosts, fallback, TLS and counters), for
/// start-up work on the lane's own thread: the body, or why there is none.
pub fn fetch_once(cfg: &Config, api: &'static RestApi, metrics: Arc<Metrics>, call: &Call) -> Result<String, String> {
    Rest::new(cfg, api, metrics).get(call).body.map_err(|e| match e {
        FetchError::Retry(e) | FetchError::Permanent(e) => e,
    })
}

/// The slice every wait is cut into: how late shutdown and new jobs are noticed.
const SLICE: Duration = Duration::from_millis(50);

pub struct Backfiller {
    /// The venue: the `exchange` of every record and marker published here.
    venue: &'static Venue,
    /// The venue's REST API: requests, weights, bodies.
    api: &'static RestApi,
    rest: Rest,
    symbols: Arc<Symbols>,
    max_ids: i64,
    /// The unit of the times REST sends (asked for with `X-MBX-TIME-UNIT`) and records carry.
    time_unit: TimeUnit,
    metrics: Arc<Metrics>,
    /// Readiness of the sink: REST fetches pause while it cannot deliver.
    health: Arc<Health>,
    out: Sender<OwnedRecord>,
    jobs: JobReceiver,
    shutdown: Shutdown,
    pending: RefCell<queue::Pending>,
    /// Set while jobs are being moved into the queue: publishing the gaps of refused jobs may
    /// wait, and that wait must not take jobs in again.
    absorbing: Cell<bool>,
    limiter: LogLimiter,
    /// Where REST snapshots for the producer's order books go (depth streams configured).
    depth: Option<depth::Seeds>,
    /// Failed deliveries that may have been written, waiting to be read back ([`doubt`]).
    doubts: RefCell<doubt::Doubts>,
    /// What the read-back consumer connects with (the sink's broker, security and topics).
    kafka: Box<Config>,
}

impl Backfiller {
    // The lane's parts, each a different thing main.rs hands over; a struct of them would only
    // be this list again.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cfg: &Config,
        venue: &'static Venue,
        api: &'static RestApi,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
        out: Sender<OwnedRecord>,
        jobs: JobReceiver,
        shutdown: Shutdown,
    ) -> Backfiller {
        Backfiller {
            venue,
            api,
            rest: Rest::new(cfg, api, metrics.clone()),
            symbols: metrics.symbols.clone(),
            max_ids: cfg.backfill_max_ids,
            // A venue without a time-unit header (USD-M) answers in ms whatever TIME_UNIT says;
            // its records then say `_ms`, never a millisecond count labelled `_us`.
            time_unit: if api.time_unit_header.is_some() { cfg.time_unit } else { TimeUnit::Millis },
            metrics,
            health,
            out,
            jobs,
            shutdown,
            pending: RefCell::default(),
            absorbing: Cell::new(false),
            limiter: LogLimiter::new(Duration::from_secs(10)),
            depth: None,
            doubts: RefCell::default(),
            kafka: Box::new(cfg.clone()),
        }
    }

    /// Serves the producer's order books: REST snapshots of `levels` a side go to `seeds`.
    pub fn with_depth_seeds(mut self, seeds: Sender<crate::handoff::depth::DepthSeed>, levels: usize) -> Self {
        self.depth = Some(depth::Seeds::new(seeds, levels, self.api.weight_budget));
        self
    }

    /// Runs until shutdown (then reports what is left as gaps) or until every job sender is gone.
    pub fn run(self) {
        loop {
            self.absorb();
            self.depth_seeds();
            self.read_back_doubts();
            if self.shutdown.is_triggered() {
                break;
            }
            let batch = self.pending.borrow_mut().next_batch(self.api.page, Instant::now());
            let Some((seq, mut ranges)) = batch else {
                if !self.pending.borrow().is_empty() {
                    // Every sequence queued is still gathering its ranges.
                    self.sleep(SLICE);
                    continue;
                }
                match self.jobs.recv_timeout(Duration::from_millis(200)) {
                    Ok(job) => self.enqueue(job),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => break,
                }
                continue;
            };
            self.metrics.backfill_jobs.inc_by(ranges.len() as u64);
            let left = match seq {
                Seq::Candles { symbol_idx, interval, unit } => {
                    let (from, to) = ranges[0];
                    self.klines(symbol_idx, interval, unit, from, to)
                        .map(|resume| vec![(resume, to)])
                        .unwrap_or_default()
                }
                Seq::Ids { symbol_idx, kind } => {
                    ranges[0] = self.capped(seq, ranges[0].0, ranges[0].1);
                    self.fetch_ranges(symbol_idx, kind, &ranges)
                }
            };
            self.pending.borrow_mut().put_back(seq, &left);
        }
        self.finish();
    }

    /// Shutdown: every job that will ever come is taken, and everything unfinished is published
    /// as gaps, with one summary line rather than one per range.
    fn finish(&self) {
        // Publishing may wait on the producer; nothing may slip into the queue once drained.
        self.absorbing.set(true);
        self.jobs.close();
        let mut left: Vec<(Seq, i64, i64)> = self.pending.borrow_mut().drain();
        while let Some(job) = self.jobs.try_recv() {
            match job {
                Job::InDoubt { symbol_idx, kind, id, timestamp_ms, partition } => {
                    self.doubt(doubt::Doubt { symbol_idx, kind, id, timestamp_ms, partition })
                }
                _ => left.extend(job.range()),
            }
        }
        self.give_up_doubts();
        let (mut ranges, mut ids) = (0u64, 0i64);
        for (seq, from, to) in left {
            ranges += 1;
            ids = ids.saturating_add(marker::count(seq, from, to));
            self.publish_gap(seq, from, to, Reason::Shutdown);
        }
        self.metrics.backfill_queue_ranges.set(0);
        if ranges > 0 {
            warn!(ranges, ids, "backfill unfinished at shutdown: published as gap records (reason shutdown)");
        }
    }

    /// Moves the jobs waiting in the channel into the queue (a bounded number per call, so a
    /// flood cannot keep this thread here); what does not fit is published as a gap at once.
    fn absorb(&self) {
        if self.absorbing.replace(true) {
            return;
        }
        for _ in 0..queue::CHANNEL_JOBS {
            let Some(job) = self.jobs.try_recv() else { break };
            self.enqueue(job);
        }
        self.metrics.backfill_queue_ranges.set(self.pending.borrow().len() as i64);
        self.absorbing.set(false);
    }

    fn enqueue(&self, job: Job) {
        if let Job::InDoubt { symbol_idx, kind, id, timestamp_ms, partition } = job {
            return self.doubt(doubt::Doubt { symbol_idx, kind, id, timestamp_ms, partition });
        }
        // A depth resync is a flag, taken by the main loop; its channel entry only woke us.
        let Some((seq, from, to)) = job.range() else { return };
        let fits = self.pending.borrow_mut().insert(seq, from, to).is_ok();
        if !fits {
            self.metrics.backfill_queue_full[seq.symbol_idx() as usize].inc();
            self.publish_gap(seq, from, to, Reason::QueueFull);
        }
    }

    /// Refills closed candles opening at `from..to` from the venue's klines, in order, flagged;
    /// candles REST does not have are reported as a gap, and those beyond `BACKFILL_MAX_IDS`
    /// candles as `backfill_limit`. Returns where to resume when interrupted by shutdown.
    /// Open times are in `unit`, as REST answers them (`startTime`/`endTime` take either unit).
    fn klines(&self, symbol_idx: u16, interval: u8, unit: TimeUnit, from: i64, to: i64) -> Option<i64> {
        let seq = Seq::Candles { symbol_idx, interval, unit };
        let (sym, iv) = (self.symbols.upper(symbol_idx), KLINE_INTERVALS[interval as usize]);
        let len = unit.from_ms(KLINE_INTERVAL_MS[interval as usize]?);
        let mut to = to;
        if marker::count(seq, from, to) > self.max_ids {
            // The oldest candles first, so what is fetched joins what was published before.
            let cut = from.saturating_add(self.max_ids.saturating_mul(len));
            self.publish_gap(seq, cut, to, Reason::BackfillLimit);
            to = cut;
        }
        let mut cur = from;
        let mut attempt = 0u32;
        while cur < to {
            if self.shutdown.is_triggered() {
                return Some(cur);
            }
            if !self.health.sink_delivering() {
                self.sleep(Duration::from_millis(200));
                continue;
            }
            let limit = (to.saturating_sub(cur) / len).clamp(1, self.api.klines_page);
            let call = (self.api.klines)(sym, iv, cur, to.saturating_sub(1), limit);
            let page = self.get(call).and_then(|body| {
                (self.api.parse_klines)(&body).map_err(|e| FetchError::Retry(format!("bad klines body: {e}")))
            });
            let candles = match page {
                Ok(c) => c,
                Err(FetchError::Permanent(e)) => {
                    warn!(symbol = %sym, interval = iv, from = cur, to, "kline refill impossible: {e}");
                    self.publish_gap(seq, cur, to, Reason::RestError);
                    return None;
                }
                Err(FetchError::Retry(e)) => {
                    attempt += 1;
                    self.retry_wait(attempt, "kline refill", &e);
                    continue;
                }
            };
            attempt = 0;
            let mut next = cur;
            let now = unit.from_ms(crate::clock::now_ms());
            for c in &candles {
                let (open, close_time) = (c.open_time, c.close_time);
                // Only candles of this range, in order, each once, and only final ones: REST also
                // returns the candle still open, whose values are not final.
                if open < next || open >= to || open.saturating_sub(from) % len != 0 || close_time >= now {
                    continue;
                }
                if open > next {
                    self.publish_gap(seq, next, open, Reason::NotInRest);
                }
                let r = Record::Kline(Kline {
                    exchange: self.venue.exchange,
                    symbol: sym,
                    interval: iv,
                    open_time_ms: open,
                    close_time_ms: close_time,
                    open: c.open.as_str().into(),
                    high: c.high.as_str().into(),
                    low: c.low.as_str().into(),
                    close: c.close.as_str().into(),
                    volume: c.volume.as_str().into(),
                    quote_volume: c.quote_volume.as_str().into(),
                    trades: c.trades,
                    taker_buy_volume: c.taker_buy_volume.as_str().into(),
                    taker_buy_quote_volume: c.taker_buy_quote_volume.as_str().into(),
                    closed: true,
                    first_trade_id: None,
                    last_trade_id: None,
                    // REST has no event time; the candle's close is when it became final.
                    event_time_ms: close_time,
                });
                self.publish(self.encode(symbol_idx, &r));
                self.metrics.backfilled[symbol_idx as usize].inc();
                next = open.saturating_add(len);
            }
            if next == cur {
                // Nothing from `cur` on: REST has none of the rest.
                self.publish_gap(seq, cur, to, Reason::NotInRest);
                return None;
            }
            cur = next;
        }
        info!(symbol = %sym, interval = iv, from, to, candles = marker::count(seq, from, to), "kline refill done");
        None
    }

    /// `from..to`, cut to [`Config::backfill_max_ids`]; the cut-off rest is reported at once.
    fn capped(&self, seq: Seq, from: i64, to: i64) -> (i64, i64) {
        if to.saturating_sub(from) <= self.max_ids {
            return (from, to);
        }
        // The oldest ids first, so what is fetched joins what was published before.
        let cut = from.saturating_add(self.max_ids);
        if let Some(suppressed) = self.limiter.check("backfill_limit") {
            warn!(from, to, max_ids = self.max_ids, suppressed, "gap larger than BACKFILL_MAX_IDS: fetching its start");
        }
        self.publish_gap(seq, cut, to, Reason::BackfillLimit);
        (from, cut)
    }

    /// Fetches the sorted, disjoint `ranges` of one sequence page by page; returns what is left
    /// when interrupted by shutdown.
    fn fetch_ranges(&self, symbol_idx: u16, kind: Dense, ranges: &[(i64, i64)]) -> Vec<(i64, i64)> {
        let seq = Seq::Ids { symbol_idx, kind };
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
            // Publishing into a broker that is down or stalled only queues: wait for it to answer.
            if !self.health.sink_delivering() {
                self.sleep(Duration::from_millis(200));
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
                    warn!(symbol = %self.symbols.upper(symbol_idx), from = cur, to = end, "backfill impossible: {e}");
                    for (a, b) in from_cur(cur) {
                        self.publish_gap(seq, a, b, Reason::RestError);
                    }
                    return Vec::new();
                }
                Err(FetchError::Retry(e)) => {
                    attempt += 1;
                    self.retry_wait(attempt, "backfill fetch", &e);
                }
            }
        }
        info!(
            symbol = %self.symbols.upper(symbol_idx),
            kind = ?kind,
            from = first,
            to = end,
            ranges = ranges.len(),
            ms = started.elapsed().as_millis() as u64,
            "backfill done"
        );
        Vec::new()
    }

    /// Backs off after a failed fetch: 0.5 s doubling to 32 s.
    fn retry_wait(&self, attempt: u32, what: &str, e: &str) {
        self.metrics.backfill_retries.inc();
        let wait = Duration::from_millis(250 * (1u64 << attempt.min(7)));
        if let Some(suppressed) = self.limiter.check("retry") {
            warn!(attempt, wait_ms = wait.as_millis() as u64, suppressed, "{what} failed, retrying: {e}");
        }
        self.sleep(wait);
    }

    /// Waits `d` in slices, until shutdown, taking new jobs in meanwhile. Measured from a start
    /// instant rather than computed as `now + d`, which can overflow for a long enough `d`.
    fn sleep(&self, d: Duration) {
        let start = Instant::now();
        loop {
            let left = d.saturating_sub(start.elapsed());
            if left.is_zero() || self.shutdown.is_triggered() {
                return;
            }
            std::thread::sleep(left.min(SLICE));
            self.absorb();
        }
    }

    /// A GET, within the weight budget, honouring any wait the server asked for before returning.
    fn get(&self, call: Call) -> Result<String, FetchError> {
        if let Some(wait) = self.rest.wait_before(&call) {
            self.sleep(wait);
        }
        let reply = self.rest.get(&call);
        if let Some(wait) = reply.pause {
            self.sleep(wait);
        }
        reply.body
    }

    /// Fetches one page from `cur` and publishes the ids it holds that fall in `ranges`; ids of
    /// the ranges that REST skipped are reported as gaps. Returns the next id to fetch.
    fn page(&self, symbol_idx: u16, kind: Dense, ranges: &[(i64, i64)], cur: i64, to: i64) -> Result<i64, FetchError> {
        let sym = self.symbols.upper(symbol_idx);
        let limit = to.saturating_sub(cur).clamp(1, self.api.page);
        // (id, record) pairs in id order.
        let mut got: Vec<(i64, OwnedRecord)> = Vec::new();
        match kind {
            Dense::Trade => {
                let Some(call) = self.api.trades else {
                    return Err(FetchError::Permanent(format!("{} has no trades to fetch", self.api.name)));
                };
                let body = self.get(call(sym, cur, limit))?;
                let trades = (self.api.parse_trades)(&body)
                    .map_err(|e| FetchError::Retry(format!("bad historicalTrades body: {e}")))?;
                for t in &trades {
                    let r = Record::Trade(Trade {
                        exchange: self.venue.exchange,
                        symbol: sym,
                        trade_id: t.id,
                        price: t.price.as_str().into(),
                        qty: t.qty.as_str().into(),
                        side: Side::from_buyer_is_maker(t.buyer_is_maker),
                        trade_time_ms: t.time,
                        // REST has no event time; the trade time is the closest truth.
                        event_time_ms: t.time,
                    });
                    got.push((t.id, self.encode(symbol_idx, &r)));
                }
            }
            Dense::AggTrade => {
                let body = self.get((self.api.agg_trades)(sym, cur, limit))?;
                let aggs = (self.api.parse_agg_trades)(&body)
                    .map_err(|e| FetchError::Retry(format!("bad aggTrades body: {e}")))?;
                for a in &aggs {
                    let r = Record::AggTrade(AggTrade {
                        exchange: self.venue.exchange,
                        symbol: sym,
                        agg_id: a.agg_id,
                        first_trade_id: a.first_trade_id,
                        last_trade_id: a.last_trade_id,
                        price: a.price.as_str().into(),
                        qty: a.qty.as_str().into(),
                        side: Side::from_buyer_is_maker(a.buyer_is_maker),
                        trade_time_ms: a.time,
                        event_time_ms: a.time,
                    });
                    got.push((a.agg_id, self.encode(symbol_idx, &r)));
                }
            }
            Dense::Depth => return Ok(to),
        }
        let mut next = cur;
        for (id, rec) in got {
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
            next = id.saturating_add(1);
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
                self.publish_gap(Seq::Ids { symbol_idx, kind }, a, b, Reason::NotInRest);
            }
        }
    }

    fn encode(&self, symbol_idx: u16, r: &Record<'_>) -> OwnedRecord {
        let recv_ns = crate::clock::now_ns();
        let mut payload = Vec::with_capacity(256);
        // REST data went through the same validation as the stream; a record that fails it is
        // reported as a gap rather than published half-checked.
        let ok = r.encode_in(self.time_unit, recv_ns, true, &mut payload).is_ok();
        if !ok {
            payload.clear();
        }
        OwnedRecord {
            meta: RecordMeta {
                kind: r.record_type(),
                flags: FLAG_BACKFILLED,
                symbol_idx,
                event_time_ms: r.event_time_ms().map_or((recv_ns / 1_000_000) as i64, |t| self.time_unit.to_ms(t)),
                recv_ns,
            },
            key: r.symbol().as_bytes().to_vec(),
            payload,
        }
    }

    /// Hands a record to the producer. Bounded: when the producer is behind, this waits instead
    /// of growing memory, taking new jobs in meanwhile.
    fn publish(&self, rec: OwnedRecord) {
        if rec.payload.is_empty() {
            return;
        }
        let mut rec = rec;
        loop {
            match self.out.send_timeout(rec, SLICE) {
                Ok(()) => return,
                Err(SendTimeoutError::Timeout(r)) => {
                    rec = r;
                    self.absorb();
                }
                // The producer is gone: the process is failing, and says so elsewhere.
                Err(SendTimeoutError::Disconnected(_)) => return,
            }
        }
    }

    /// Publishes a `gap` record naming a range that will never arrive, and counts it.
    fn publish_gap(&self, seq: Seq, from: i64, to: i64, reason: Reason) {
        let symbol_idx = seq.symbol_idx();
        let sym = self.symbols.upper(symbol_idx);
        // At shutdown one summary line says it all; otherwise at most one line per reason and
        // interval (a flood of gaps must not flood the log).
        if reason != Reason::Shutdown {
            if let Some(suppressed) = self.limiter.check(reason.as_str()) {
                warn!(symbol = %sym, ?seq, from, to, reason = reason.as_str(), suppressed, "unrecoverable gap: marker published");
            }
        }
        self.metrics.gap_markers[symbol_idx as usize].inc();
        self.publish(gap_record(self.venue.exchange, sym, seq, from, to, reason));
    }
}
