//! The USD-M futures market's own settings (`USDM_*`): its symbols, streams, endpoints, topics and
//! core. Set `USDM_SYMBOLS` and the process runs a second lane (see `lane.rs`) beside spot's, with
//! every other setting shared; the table here follows the spot variables' in `--help`,
//! `--check-config` and README.

use super::build::Build;
use super::parse;
use super::var::*;
use super::{Config, CorePin, Endpoint};
use crate::binance::usdm;
use crate::record::RecordType;
use crate::stream::StreamKind;
use crate::time_unit::TimeUnit;

/// The USD-M market's values; the rest of its lane's configuration is the process's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsdmConfig {
    /// Empty: no USD-M lane.
    pub symbols: Vec<String>,
    pub streams: Vec<StreamKind>,
    pub ws: Endpoint,
    pub rest: Endpoint,
    /// Topic per record type, indexed by `RecordType as usize`.
    pub topics: [String; RecordType::COUNT],
    pub pin_core: CorePin,
}

impl Config {
    /// The spot market's lane configuration; `None` when `SYMBOLS` is empty (a USD-M-only process).
    pub fn spot_lane(&self) -> Option<Config> {
        (!self.symbols.is_empty()).then(|| self.clone())
    }

    /// The USD-M market's lane configuration: the process's, with the market's symbols, streams,
    /// endpoints, topics and core; `None` when `USDM_SYMBOLS` is empty.
    pub fn usdm_lane(&self) -> Option<Config> {
        let u = &self.usdm;
        (!u.symbols.is_empty()).then(|| Config {
            symbols: u.symbols.clone(),
            streams: u.streams.clone(),
            ws: u.ws.clone(),
            rest: u.rest.clone(),
            // `data-api.binance.vision` serves spot only.
            rest_fallback: None,
            topics: u.topics.clone(),
            pin_core: u.pin_core,
            // USD-M has no `timeUnit` parameter: its times are milliseconds, and its records say so.
            time_unit: TimeUnit::Millis,
            // Binance's SBE streams are spot's.
            transport: super::Transport::Json,
            ..self.clone()
        })
    }
}

impl Build<'_> {
    fn usdm_ws(&mut self, v: &str) {
        if let Some(e) = self.endpoint(v, WS_SCHEMES) {
            match crate::binance::usdm::endpoint::check_ws_base(&e.path) {
                Ok(()) => self.cfg.usdm.ws = e,
                Err(msg) => self.errs.push(msg),
            }
        }
    }
}

/// A per-type USD-M topic: unset, the record type takes `USDM_KAFKA_TOPIC`'s.
macro_rules! usdm_topic_var {
    ($env:literal, $flag:literal, $kind:literal, $t:expr) => {
        Var {
            env: $env,
            flag: $flag,
            value_name: "TOPIC",
            unset: Unset::Derived("USDM_KAFKA_TOPIC"),
            help: concat!("Topic for USD-M ", $kind, " records"),
            more: "",
            secret: false,
            apply: |v, b| b.usdm_topic_override($t, v),
            show: |c, o| o.value(&c.usdm.topics[$t as usize]),
        }
    };
}

/// In the order `--help`, `--check-config` and README list them, after the spot variables.
pub(super) const USDM_VARS: &[Var] = &[
    Var {
        env: "USDM_SYMBOLS",
        flag: "usdm-symbols",
        value_name: "LIST",
        unset: Unset::Empty,
        help: "USD-M futures symbols to ingest beside spot's, comma-separated (Binance's grammar, as `SYMBOLS`)",
        more: "Unset or empty: no USD-M market. Set, the process runs the USD-M market on connections, a ring, a \
               producer and metrics of its own (series labelled `market=\"usdm\"`); `SYMBOLS` may then be empty \
               for a USD-M-only process.",
        secret: false,
        apply: |v, b| b.cfg.usdm.symbols = parse::symbols(v, &mut b.errs),
        show: |c, o| o.value(c.usdm.symbols.join(",")),
    },
    Var {
        env: "USDM_STREAMS",
        flag: "usdm-streams",
        value_name: "LIST",
        unset: Unset::Default("aggTrade,markPrice@1s,forceOrder,bookTicker,depth@100ms"),
        help: "USD-M stream kinds: `aggTrade`, `kline_<interval>`, `bookTicker`, `depth`, `depth@100ms`, \
               `depth@500ms`, `markPrice`, `markPrice@1s`, `forceOrder`",
        more: "A stream USD-M does not have (`trade`, `kline_1s`) is refused. Liquidations (`forceOrder`) are \
               snapshots: Binance pushes at most one a symbol a second.",
        secret: false,
        apply: |v, b| b.cfg.usdm.streams = parse::streams_of(v, usdm::stream::parse_kind, &mut b.errs),
        show: |c, o| o.value(c.usdm.streams.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(",")),
    },
    Var {
        env: "USDM_WS_URL",
        flag: "usdm-ws-url",
        value_name: "URL",
        unset: Unset::Default("wss://fstream.binance.com"),
        help: "Binance USD-M WebSocket base URL, without a route: each connection adds `/public` or `/market` \
               and `/stream`",
        more: "A URL ending in a route, `/ws` or `/stream` is refused: a stream on the wrong path, or on the root \
               path Binance retired in April 2026, is acknowledged and never delivered. The same rules as \
               `BINANCE_WS_URL` otherwise.",
        secret: false,
        apply: |v, b| b.usdm_ws(v),
        show: |c, o| o.value(url(&c.usdm.ws, WS_SCHEMES)),
    },
    Var {
        env: "USDM_REST_URL",
        flag: "usdm-rest-url",
        value_name: "URL",
        unset: Unset::Default("https://fapi.binance.com"),
        help: "Binance USD-M REST base URL",
        more: "The same rules as `BINANCE_REST_URL`.",
        secret: false,
        apply: |v, b| {
            if let Some(e) = b.endpoint(v, REST_SCHEMES) {
                b.cfg.usdm.rest = e;
            }
        },
        show: |c, o| o.value(url(&c.usdm.rest, REST_SCHEMES)),
    },
    Var {
        env: "USDM_KAFKA_TOPIC",
        flag: "usdm-kafka-topic",
        value_name: "TOPIC",
        unset: Unset::Derived("`<KAFKA_TOPIC>.usdm`"),
        help: "Default topic for every USD-M record type",
        more: "Apart from spot's, so that recovery from Kafka never reads one market's ids as the other's. \
               `USDM_KAFKA_TOPIC_<TYPE>` overrides it for one type.",
        secret: false,
        apply: |v, b| b.usdm_default_topic(v),
        // Shown in each per-type line that took it.
        show: |_, _| {},
    },
    usdm_topic_var!("USDM_KAFKA_TOPIC_AGG_TRADE", "usdm-kafka-topic-agg-trade", "agg_trade", RecordType::AggTrade),
    usdm_topic_var!("USDM_KAFKA_TOPIC_KLINE", "usdm-kafka-topic-kline", "kline", RecordType::Kline),
    usdm_topic_var!(
        "USDM_KAFKA_TOPIC_BOOK_TICKER",
        "usdm-kafka-topic-book-ticker",
        "book_ticker",
        RecordType::BookTicker
    ),
    usdm_topic_var!(
        "USDM_KAFKA_TOPIC_DEPTH_UPDATE",
        "usdm-kafka-topic-depth-update",
        "depth_update",
        RecordType::DepthUpdate
    ),
    usdm_topic_var!("USDM_KAFKA_TOPIC_MARK_PRICE", "usdm-kafka-topic-mark-price", "mark_price", RecordType::MarkPrice),
    usdm_topic_var!(
        "USDM_KAFKA_TOPIC_LIQUIDATION",
        "usdm-kafka-topic-liquidation",
        "liquidation",
        RecordType::Liquidation
    ),
    Var {
        env: "USDM_PIN_CORE",
        flag: "usdm-pin-core",
        value_name: "CORE",
        unset: Unset::Default("auto"),
        help: "Core for the USD-M event loop: a CPU id from the allowed set, `auto` or `none`",
        more: "`auto` avoids the spot event loop's core. The USD-M producer thread follows `PRODUCER_CORE`.",
        secret: false,
        apply: |v, b| b.cfg.usdm.pin_core = parse::core(v, &mut b.errs),
        show: |c, o| o.value(core_name(c.usdm.pin_core)),
    },
];

#[cfg(test)]
mod tests {
    use super::super::RawConfig;
    use super::*;

    fn validate(pairs: &[(&str, &str)]) -> Result<Config, Vec<String>> {
        RawConfig::from_pairs(pairs).validate_with_memory_limit(None).map_err(|e| e.0)
    }

    #[test]
    fn no_usdm_symbols_no_usdm_lane() {
        let c = validate(&[]).unwrap();
        assert!(c.usdm.symbols.is_empty());
        assert!(c.usdm_lane().is_none());
        assert_eq!(c.spot_lane().unwrap().symbols, c.symbols);
        assert!(validate(&[("USDM_SYMBOLS", " ")]).unwrap().usdm_lane().is_none());
    }

    #[test]
    fn the_usdm_lane_takes_the_market_s_values_and_the_process_s_others() {
        let c =
            validate(&[("USDM_SYMBOLS", "BTCUSDT,ethusdt"), ("KAFKA_TOPIC", "raw"), ("PROM_PORT", "9100")]).unwrap();
        let u = c.usdm_lane().unwrap();
        assert_eq!(u.symbols, ["btcusdt", "ethusdt"]);
        assert_eq!(u.ws, Endpoint { tls: true, host: "fstream.binance.com".into(), port: 443, path: "".into() });
        assert_eq!(u.rest, Endpoint { tls: true, host: "fapi.binance.com".into(), port: 443, path: "".into() });
        assert_eq!(u.topics, std::array::from_fn(|_| "raw.usdm".to_string()));
        assert_eq!(c.topics, std::array::from_fn(|_| "raw".to_string()), "spot's topics unchanged");
        assert_eq!((u.prom_port, u.backfill, u.rest_fallback.is_none()), (9100, c.backfill, true));
        use StreamKind::*;
        assert_eq!(u.streams, [AggTrade, MarkPrice1s, ForceOrder, BookTicker, Depth100ms]);
        let us = validate(&[("TIME_UNIT", "us"), ("USDM_SYMBOLS", "btcusdt")]).unwrap();
        assert_eq!((us.time_unit, us.usdm_lane().unwrap().time_unit), (TimeUnit::Micros, TimeUnit::Millis));
        assert_eq!(u.pin_core, CorePin::Auto);
    }

    #[test]
    fn usdm_topics_are_set_per_type_and_all_at_once() {
        let c = validate(&[
            ("USDM_SYMBOLS", "btcusdt"),
            ("USDM_KAFKA_TOPIC", "fut"),
            ("USDM_KAFKA_TOPIC_BOOK_TICKER", "fut-bbo"),
            ("KAFKA_TOPIC_BOOK_TICKER", "spot-bbo"),
        ])
        .unwrap();
        assert_eq!(c.usdm.topics[RecordType::AggTrade as usize], "fut");
        assert_eq!(c.usdm.topics[RecordType::BookTicker as usize], "fut-bbo");
        assert_eq!(c.topics[RecordType::BookTicker as usize], "spot-bbo");
        let e = validate(&[("USDM_KAFKA_TOPIC", "a b"), ("USDM_KAFKA_TOPIC_KLINE", "ü")]).unwrap_err();
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[0].starts_with("USDM_KAFKA_TOPIC: `a b`"), "{e:?}");
        assert!(e[1].starts_with("USDM_KAFKA_TOPIC_KLINE: `ü`"), "{e:?}");
    }

    #[test]
    fn a_usdm_only_process_leaves_symbols_empty_and_both_empty_is_refused() {
        let c = validate(&[("SYMBOLS", ""), ("USDM_SYMBOLS", "btcusdt")]).unwrap();
        assert!(c.spot_lane().is_none());
        assert_eq!(c.usdm_lane().unwrap().symbols, ["btcusdt"]);
        // Spot's streams are not asked of a USD-M-only process, nor USD-M's of spot.
        assert!(validate(&[("SYMBOLS", ""), ("USDM_SYMBOLS", "btcusdt"), ("USDM_STREAMS", "markPrice")]).is_ok());
        assert!(validate(&[("STREAMS", "markPrice")]).unwrap_err()[0].contains("USD-M stream"));
        let e = validate(&[("SYMBOLS", "")]).unwrap_err();
        assert_eq!(e, ["SYMBOLS: no symbol given (e.g. btcusdt,ethusdt), and USDM_SYMBOLS is empty too"]);
        // A refused symbol is said once, not also as "none given".
        let e = validate(&[("SYMBOLS", "a<b")]).unwrap_err();
        assert_eq!(e.len(), 1, "{e:?}");
    }

    #[test]
    fn streams_usdm_does_not_have_are_refused_with_every_other_problem() {
        let e = validate(&[
            ("USDM_SYMBOLS", "btcusdt,BTCUSDT"),
            ("USDM_STREAMS", "aggTrade,trade,kline_1s,nope"),
            ("USDM_PIN_CORE", "x"),
            ("PROM_PORT", "x"),
        ])
        .unwrap_err();
        let vars: Vec<&str> = e.iter().map(|l| l.split(':').next().unwrap()).collect();
        assert_eq!(
            vars,
            ["PROM_PORT", "USDM_SYMBOLS", "USDM_STREAMS", "USDM_STREAMS", "USDM_STREAMS", "USDM_PIN_CORE"]
        );
        assert!(e[2].contains("trade is not a USD-M stream"), "{e:?}");
        assert!(e[3].contains("kline_1s is a spot interval"), "{e:?}");
        assert!(e[4].contains("unknown USD-M stream kind `nope`"), "{e:?}");
        assert!(validate(&[("USDM_STREAMS", "")]).unwrap_err()[0].starts_with("USDM_STREAMS: no stream kind"));
    }

    #[test]
    fn two_lanes_rings_must_fit_the_memory_limit_together() {
        let with_limit = |pairs: &[(&str, &str)]| {
            RawConfig::from_pairs(pairs).validate_with_memory_limit(Some(64 << 20)).map_err(|e| e.0)
        };
        let ring = ("RING_BYTES", "16777216");
        assert!(with_limit(&[ring]).is_ok(), "one 16 MiB ring is a quarter of 64 MiB");
        assert!(with_limit(&[ring, ("SYMBOLS", ""), ("USDM_SYMBOLS", "btcusdt")]).is_ok(), "one lane, one ring");
        let e = with_limit(&[ring, ("USDM_SYMBOLS", "btcusdt")]).unwrap_err();
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].starts_with("RING_BYTES: 16777216 a lane, twice with USDM_SYMBOLS set"), "{e:?}");
        assert!(with_limit(&[("RING_BYTES", "8388608"), ("USDM_SYMBOLS", "btcusdt")]).is_ok());
    }

    #[test]
    fn a_ws_base_that_ends_in_a_route_or_mode_is_refused() {
        for path in ["/public", "/market", "/ws", "/stream", "/x/Market", "/private"] {
            let url = format!("wss://fstream.binance.com{path}");
            let e = validate(&[("USDM_WS_URL", &url)]).unwrap_err();
            assert_eq!(e.len(), 1, "{url}: {e:?}");
            assert!(e[0].starts_with("USDM_WS_URL: path ") && e[0].contains("give the base URL"), "{e:?}");
        }
        for ok in ["ws://127.0.0.1:9001", "wss://fstream.binance.com/", "wss://proxy.example/fstream"] {
            assert!(validate(&[("USDM_WS_URL", ok)]).is_ok(), "{ok}");
        }
        assert!(validate(&[("USDM_WS_URL", "http://x")]).is_err());
    }
}
