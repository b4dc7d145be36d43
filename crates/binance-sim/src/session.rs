//! One WebSocket connection's state: the URL it was opened with, its subscriptions and control
//! requests (Binance's `SUBSCRIBE` and friends), and the streams a `mutes` fault stopped on it.

use std::borrow::Cow;
use std::sync::atomic::Ordering;
use std::time::Instant;

use percent_encoding::percent_decode_str;
use tracing::info;

use crate::clock::TimeUnit;
use crate::config::{Mute, MuteUntil};
use crate::kind::StreamKind;
use crate::market::{Market, Venue};
use crate::usdm::streams::{self as usdm, Endpoint};

/// A stream name as a client may write it, percent-encoded or not (Binance, 2025-12: "stream
/// URLs may be percent-encoded"; UTF-8 symbols in request parameters): the name itself.
pub(crate) fn decode(s: &str) -> Cow<'_, str> {
    percent_decode_str(s).decode_utf8_lossy()
}

/// What the URL of a WebSocket upgrade asks for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Target {
    /// `/stream` wraps events as `{"stream":..,"data":..}`; `/ws` sends them raw.
    pub combined: bool,
    pub streams: Vec<String>,
    pub unit: TimeUnit,
    /// USD-M: the routed path (`None` on spot).
    pub endpoint: Option<Endpoint>,
    /// Binance's SBE endpoint: its own stream names (`sbe::delivered`).
    pub sbe: bool,
}

/// Reads `/stream?streams=a/b&timeUnit=MICROSECOND`, `/ws/<name>` or `/ws` (on USD-M each under
/// `/public`, `/market` or the retired root); `Err` names what is wrong (an unknown path: 404;
/// a `timeUnit` Binance does not list: 400).
pub(crate) fn parse_target(uri: &str, venue: Venue) -> Result<Target, (u16, String)> {
    let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
    let (endpoint, path) = match venue {
        Venue::Spot => (None, path),
        Venue::UsdM => usdm::split_endpoint(path).map(|(e, rest)| (Some(e), rest))?,
    };
    let combined = path == "/stream" || path == "/stream/";
    let mut t = Target { combined, streams: Vec::new(), unit: TimeUnit::Millisecond, endpoint, sbe: false };
    if let Some(name) = path.strip_prefix("/ws/") {
        t.streams.extend(Some(decode(name).into_owned()).filter(|n| !n.is_empty()));
    } else if !combined && path != "/ws" {
        return Err((404, format!("no such path: {path}")));
    }
    for (k, v) in query.split('&').filter_map(|kv| kv.split_once('=')) {
        match &*decode(k) {
            // The whole list may be encoded, separators included (`%2F`), or each name.
            "streams" => t.streams.extend(decode(v).split('/').filter(|s| !s.is_empty()).map(str::to_string)),
            // Spot's (README §2.4); USD-M documents no such parameter and always writes milliseconds.
            "timeUnit" if venue == Venue::Spot => {
                t.unit = TimeUnit::parse(&decode(v)).ok_or_else(|| (400, format!("invalid timeUnit: {v}")))?;
            }
            _ => {}
        }
    }
    Ok(t)
}

pub(crate) struct Sub {
    pub name: String,
    /// `None` for a stream the market does not produce (Binance accepts and sends nothing).
    pub source: Option<(StreamKind, usize)>,
    pub cursor: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MuteState {
    Armed(Instant),
    Active,
    Lifted,
}

pub(crate) struct Session<'m> {
    market: &'m Market,
    conn_id: u64,
    pub subs: Vec<Sub>,
    pub combined: bool,
    pub unit: TimeUnit,
    endpoint: Option<Endpoint>,
    sbe: bool,
    mutes: Vec<(Mute, MuteState)>,
}

impl<'m> Session<'m> {
    /// A connection opened at `opened` with `target`; the `mutes` faults aimed at it are armed.
    pub(crate) fn new(market: &'m Market, conn_id: u64, opened: Instant, target: Target) -> Session<'m> {
        let mutes = market
            .cfg
            .mutes
            .iter()
            .filter(|m| m.connection.is_none_or(|n| n == conn_id))
            .map(|m| (Mute { stream: decode(&m.stream).into_owned(), ..m.clone() }, MuteState::Armed(opened + m.after)))
            .collect();
        let mut s = Session {
            market,
            conn_id,
            subs: Vec::new(),
            combined: target.combined,
            unit: target.unit,
            endpoint: target.endpoint,
            sbe: target.sbe,
            mutes,
        };
        for name in &target.streams {
            s.subscribe(name);
        }
        s
    }

    /// Fires the mutes that are due.
    pub(crate) fn mute_due(&mut self, now: Instant) {
        for (m, state) in &mut self.mutes {
            if matches!(*state, MuteState::Armed(at) if now >= at) {
                *state = MuteState::Active;
                self.market.muted.fetch_add(1, Ordering::Relaxed);
                info!(conn = self.conn_id, stream = %m.stream, until = ?m.until, "muting a stream (fault)");
            }
        }
    }

    /// Whether the stream `name` is muted on this connection now.
    pub(crate) fn muted(&self, name: &str) -> bool {
        self.mutes.iter().any(|(m, s)| *s == MuteState::Active && m.stream == name)
    }

    fn subscribe(&mut self, name: &str) {
        let name = decode(name);
        let live = |market: &Market, source: Option<(StreamKind, usize)>| {
            source.map(|(k, sym)| market.available(k, sym, Instant::now())).unwrap_or(0)
        };
        for (m, state) in &mut self.mutes {
            if *state == MuteState::Active && m.until == MuteUntil::Resubscribed && m.stream == name {
                *state = MuteState::Lifted;
                self.market.unmuted.fetch_add(1, Ordering::Relaxed);
                info!(conn = self.conn_id, stream = %m.stream, "resubscribed: the muted stream resumes");
                // It resumes at the live edge, like a fresh subscription.
                if let Some(sub) = self.subs.iter_mut().find(|s| s.name == name) {
                    sub.cursor = live(self.market, sub.source);
                }
            }
        }
        if self.subs.iter().any(|s| s.name == name) {
            return;
        }
        let source = name.split_once('@').and_then(|(sym, kind)| {
            let kind = match self.endpoint {
                None if self.sbe => crate::sbe::delivered(kind)?,
                None => StreamKind::from_suffix(kind)?,
                Some(endpoint) => usdm::delivered(endpoint, kind)?,
            };
            Some((kind, self.market.symbol_index(sym)?))
        });
        let cfg = &self.market.cfg;
        // Only streams the market makes are remembered: the set stays within symbols x kinds
        // whatever names a client sends.
        let first = cfg.first_from_start && source.is_some() && self.market.first_subscription(&name);
        let cursor = if cfg.from_start || first { 0 } else { live(self.market, source) };
        self.subs.push(Sub { name: name.into_owned(), source, cursor });
    }

    /// Answers one control request, Binance style.
    pub(crate) fn control(&mut self, text: &str) -> String {
        let v: serde_json::Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                return format!(
                    r#"{{"code":3,"msg":"Invalid JSON: expected value at line {} column {}"}}"#,
                    e.line(),
                    e.column()
                )
            }
        };
        let id = v.get("id").cloned().unwrap_or(serde_json::Value::Null);
        if !(id.is_null() || id.is_i64() || id.is_string()) {
            return r#"{"code":2,"msg":"Invalid request: request ID must be an unsigned integer"}"#.into();
        }
        let params: Vec<String> = v
            .get("params")
            .and_then(|p| p.as_array())
            .map(|a| a.iter().filter_map(|x| x.as_str().map(|s| decode(s).into_owned())).collect())
            .unwrap_or_default();
        let method = match v.get("method").and_then(|m| m.as_str()) {
            Some(m) => m,
            None => return r#"{"code":2,"msg":"Invalid request: missing field `method` at line 1 column 73"}"#.into(),
        };
        let result = match method {
            "SUBSCRIBE" => {
                let mut new: Vec<&String> =
                    params.iter().filter(|p| !self.subs.iter().any(|s| s.name == **p)).collect();
                new.sort_unstable();
                new.dedup();
                if self.subs.len() + new.len() > self.market.cfg.max_streams {
                    return serde_json::json!({
                        "code": 2,
                        "msg": format!(
                            "Invalid request: a connection can listen to at most {} streams",
                            self.market.cfg.max_streams
                        ),
                        "id": id,
                    })
                    .to_string();
                }
                for p in &params {
                    self.subscribe(p);
                }
                serde_json::Value::Null
            }
            "UNSUBSCRIBE" => {
                self.subs.retain(|s| !params.contains(&s.name));
                serde_json::Value::Null
            }
            "LIST_SUBSCRIPTIONS" => self.subs.iter().map(|s| serde_json::Value::from(s.name.clone())).collect(),
            "SET_PROPERTY" => {
                match v.get("params").and_then(|p| p.get(1)).and_then(|b| b.as_bool()) {
                    Some(b) => self.combined = b,
                    None => return r#"{"code":1,"msg":"Invalid value type: expected Boolean"}"#.into(),
                }
                serde_json::Value::Null
            }
            "GET_PROPERTY" => serde_json::Value::Bool(self.combined),
            other => {
                return format!(
                    r#"{{"code":2,"msg":"Invalid request: unknown variant {other}, expected one of `SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, `GET_PROPERTY` at line 1 column 28"}}"#
                )
            }
        };
        serde_json::json!({"result": result, "id": id}).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SimConfig;
    use std::time::Duration;

    #[test]
    fn urls_name_streams_raw_or_percent_encoded_with_a_time_unit() {
        let t = parse_target(
            "/stream?streams=btcusdt@trade/%E5%B8%81%E5%AE%89%E4%BA%BA%E7%94%9Fusdt%40aggTrade",
            Venue::Spot,
        )
        .unwrap();
        assert_eq!((t.combined, t.unit), (true, TimeUnit::Millisecond));
        assert_eq!(t.streams, ["btcusdt@trade", "币安人生usdt@aggTrade"]);
        // The whole list encoded, separators included, and the unit before it.
        let t =
            parse_target("/stream?timeUnit=MICROSECOND&streams=btcusdt%40trade%2Fethusdt%40depth%40100ms", Venue::Spot)
                .unwrap();
        assert_eq!(
            (t.streams.as_slice(), t.unit),
            (&["btcusdt@trade".to_string(), "ethusdt@depth@100ms".into()][..], TimeUnit::Microsecond)
        );
        let t = parse_target("/ws/%E5%B8%81%E5%AE%89%E4%BA%BA%E7%94%9Fusdt@trade?timeUnit=microsecond", Venue::Spot)
            .unwrap();
        assert_eq!(
            (t.combined, t.streams.as_slice(), t.unit),
            (false, &["币安人生usdt@trade".to_string()][..], TimeUnit::Microsecond)
        );
        assert_eq!(parse_target("/ws", Venue::Spot).unwrap().streams, Vec::<String>::new());
        assert_eq!(parse_target("/ws/", Venue::Spot).unwrap().streams, Vec::<String>::new());
        assert!(parse_target("/stream/?streams=a@trade", Venue::Spot).unwrap().combined);
        assert_eq!(parse_target("/stream?streams=a@trade&timeUnit=NANOSECOND", Venue::Spot).unwrap_err().0, 400);
        assert_eq!(parse_target("/api/v3/depth", Venue::Spot).unwrap_err().0, 404);
    }

    #[test]
    fn subscribe_accepts_names_raw_or_percent_encoded_and_lists_them_decoded() {
        let m = Market::new(SimConfig {
            symbols: vec!["币安人生usdt".into(), "btcusdt".into()],
            ..SimConfig::default()
        });
        let t = Target { combined: true, streams: vec![], unit: TimeUnit::Millisecond, endpoint: None, sbe: false };
        let mut s = Session::new(&m, 1, Instant::now(), t);
        let reply = s.control(r#"{"method":"SUBSCRIBE","params":["币安人生usdt@trade","%E5%B8%81%E5%AE%89%E4%BA%BA%E7%94%9Fusdt%40aggTrade"],"id":1}"#);
        assert_eq!(reply, r#"{"id":1,"result":null}"#);
        assert_eq!(
            s.subs.iter().map(|s| s.source).collect::<Vec<_>>(),
            [Some((StreamKind::Trade, 0)), Some((StreamKind::AggTrade, 0))]
        );
        // The same stream written the other way is the same subscription.
        s.control(r#"{"method":"SUBSCRIBE","params":["%E5%B8%81%E5%AE%89%E4%BA%BA%E7%94%9Fusdt@trade"],"id":2}"#);
        let list: serde_json::Value =
            serde_json::from_str(&s.control(r#"{"method":"LIST_SUBSCRIPTIONS","id":3}"#)).unwrap();
        assert_eq!(list["result"], serde_json::json!(["币安人生usdt@trade", "币安人生usdt@aggTrade"]));
        s.control(r#"{"method":"UNSUBSCRIBE","params":["%E5%B8%81%E5%AE%89%E4%BA%BA%E7%94%9Fusdt%40trade"],"id":4}"#);
        assert_eq!(s.subs.len(), 1);
    }

    #[test]
    fn with_first_from_start_only_a_streams_first_subscription_starts_at_the_first_event() {
        let m = Market::new(SimConfig {
            symbols: vec!["btcusdt".into(), "ethusdt".into()],
            trade_rate: 2_000.0,
            first_from_start: true,
            ..SimConfig::default()
        });
        let t = || Target { combined: true, streams: vec![], unit: TimeUnit::Millisecond, endpoint: None, sbe: false };
        let cursor = |s: &Session<'_>, name: &str| s.subs.iter().find(|s| s.name == name).map(|s| s.cursor);
        let mut first = Session::new(&m, 1, Instant::now(), t());
        first.control(r#"{"method":"SUBSCRIBE","params":["btcusdt@trade"],"id":1}"#);
        assert_eq!(cursor(&first, "btcusdt@trade"), Some(0));
        // The clock runs from that subscription: wait until the market has made some trades.
        let t0 = Instant::now();
        while m.available(StreamKind::Trade, 0, Instant::now()) < 5 {
            assert!(t0.elapsed() < Duration::from_secs(30), "the market made no trade");
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut second = Session::new(&m, 2, Instant::now(), t());
        second.control(r#"{"method":"SUBSCRIBE","params":["btcusdt@trade","ethusdt@trade"],"id":1}"#);
        // A replacement for btcusdt starts live, as on Binance; ethusdt's first subscriber, late
        // as it is, gets its stream from the first trade.
        assert!(cursor(&second, "btcusdt@trade").unwrap() >= 5, "a later subscription starts live");
        assert_eq!(cursor(&second, "ethusdt@trade"), Some(0));
    }

    #[test]
    fn a_mute_fires_once_and_lifts_only_as_configured() {
        let mute = |until| Mute { stream: "btcusdt@aggTrade".into(), connection: None, after: Duration::ZERO, until };
        for until in [MuteUntil::Resubscribed, MuteUntil::Reconnected] {
            let m = Market::new(SimConfig { mutes: vec![mute(until)], ..SimConfig::default() });
            let t = Target {
                combined: true,
                streams: vec!["btcusdt@aggTrade".into()],
                unit: TimeUnit::Millisecond,
                endpoint: None,
                sbe: false,
            };
            let mut s = Session::new(&m, 1, Instant::now(), t);
            assert!(!s.muted("btcusdt@aggTrade"), "armed, not yet fired");
            s.mute_due(Instant::now());
            s.mute_due(Instant::now());
            assert_eq!(m.muted.load(Ordering::Relaxed), 1, "fires once");
            assert!(s.muted("btcusdt@aggTrade") && !s.muted("btcusdt@trade"));
            s.control(r#"{"method":"UNSUBSCRIBE","params":["btcusdt@aggTrade"],"id":1}"#);
            s.control(r#"{"method":"SUBSCRIBE","params":["btcusdt@aggTrade"],"id":2}"#);
            assert_eq!(s.muted("btcusdt@aggTrade"), until == MuteUntil::Reconnected, "{until:?}");
        }
    }
}
